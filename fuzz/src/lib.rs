//! What the fuzz targets share.

use std::path::PathBuf;

/// A folder of this fuzz crate (`scratch/<target>`, ignored by git) for the files a target
/// writes on every run: reused across runs, so a libFuzzer process that exits without running
/// destructors leaves nothing behind in the system's temporary folder.
pub fn scratch(target: &str) -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("scratch").join(target);
    std::fs::create_dir_all(&dir).expect("the fuzz crate's folder is writable");
    dir
}
