//! Output folders that appear whole or not at all (DESIGN.md Decision 13).

use std::fs;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};

/// Files are written into a hidden staging folder next to (or inside) the target and moved into
/// place by [`StagedDir::commit`]; dropping it without committing removes everything.
pub struct StagedDir {
    target: PathBuf,
    staging: tempfile::TempDir,
    target_existed: bool,
}

impl StagedDir {
    pub fn new(target: &Path) -> Result<StagedDir> {
        // Found now, not when the finished results cannot be moved onto the file.
        if target.exists() && !target.is_dir() {
            bail!(
                "--output_dir {} is a file, not a folder: remove it or give another --output_dir",
                target.display()
            );
        }
        let target_existed = target.is_dir();
        let parent = if target_existed {
            target.to_owned()
        } else {
            let parent = match target.parent() {
                Some(p) if !p.as_os_str().is_empty() => p.to_owned(),
                _ => PathBuf::from("."),
            };
            fs::create_dir_all(&parent)
                .with_context(|| format!("cannot create output directory {}", target.display()))?;
            parent
        };
        let staging = tempfile::Builder::new()
            .prefix(".ptq-")
            .tempdir_in(&parent)
            .with_context(|| format!("cannot create output directory {}", target.display()))?;
        crate::interrupt::register(staging.path());
        Ok(StagedDir { target: target.to_owned(), staging, target_existed })
    }

    /// Where to write now.
    pub fn path(&self) -> &Path {
        self.staging.path()
    }

    /// Moves everything written into the target folder, replacing entries of the same name.
    pub fn commit(self) -> Result<()> {
        crate::interrupt::unregister(self.staging.path());
        let fail = || format!("cannot move results into {}", self.target.display());
        if !self.target_existed {
            let staging = self.staging.keep();
            let moved = set_dir_mode(&staging).and_then(|()| fs::rename(&staging, &self.target));
            if moved.is_err() {
                let _ = fs::remove_dir_all(&staging);
            }
            return moved.with_context(fail);
        }
        for entry in fs::read_dir(self.staging.path()).with_context(fail)? {
            let entry = entry.with_context(fail)?;
            let dest = self.target.join(entry.file_name());
            if dest.is_dir() {
                fs::remove_dir_all(&dest).with_context(fail)?;
            }
            fs::rename(entry.path(), &dest).with_context(fail)?;
        }
        Ok(())
    }
}

#[cfg(unix)]
fn set_dir_mode(dir: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    // tempfile makes 0700 folders; results are ordinary folders.
    fs::set_permissions(dir, fs::Permissions::from_mode(0o755))
}

#[cfg(not(unix))]
fn set_dir_mode(_: &Path) -> std::io::Result<()> {
    Ok(())
}
