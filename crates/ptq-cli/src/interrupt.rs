//! Ctrl-C removes what is half written (DESIGN.md Decision 13).
//!
//! Staging folders register here while they exist; the signal handler deletes those still
//! registered and exits with 130, the shell's code for an interrupted command. A signal handler
//! is process-wide by nature, hence the one static.

use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};

static IN_FLIGHT: Mutex<Vec<PathBuf>> = Mutex::new(Vec::new());
/// Folders where this process writes `ptq_onnx::temp_prefix()` files before renaming them.
static TEMP_FILES_IN: Mutex<Vec<PathBuf>> = Mutex::new(Vec::new());
static INTERRUPTED: AtomicBool = AtomicBool::new(false);

/// Installs the handler; call once at start.
pub fn install() {
    // Failing to install only loses the clean-up; the run itself is unaffected.
    let _ = ctrlc::set_handler(|| {
        INTERRUPTED.store(true, Ordering::SeqCst);
        if let Ok(paths) = IN_FLIGHT.lock() {
            for p in paths.iter() {
                remove_while_written(p);
            }
        }
        if let Ok(dirs) = TEMP_FILES_IN.lock() {
            let prefix = ptq_onnx::temp_prefix();
            for entry in dirs.iter().filter_map(|d| std::fs::read_dir(d).ok()).flatten().flatten() {
                if entry.file_name().to_string_lossy().starts_with(&prefix) {
                    let _ = std::fs::remove_file(entry.path());
                }
            }
        }
        eprintln!("interrupted: nothing was written");
        std::process::exit(130);
    });
}

/// Once Ctrl-C was pressed, errors are its echo (files vanishing under the workers): let the
/// handler finish cleaning up and exit instead of reporting them.
pub fn wait_if_interrupted() {
    if INTERRUPTED.load(Ordering::SeqCst) {
        loop {
            std::thread::park();
        }
    }
}

/// Ctrl-C also removes this process's temporary files in `dir`.
pub fn register_temp_files(dir: &Path) {
    if let Ok(mut dirs) = TEMP_FILES_IN.lock() {
        dirs.push(dir.to_owned());
    }
}

pub fn register(path: &Path) {
    if let Ok(mut paths) = IN_FLIGHT.lock() {
        paths.push(path.to_owned());
    }
}

pub fn unregister(path: &Path) {
    if let Ok(mut paths) = IN_FLIGHT.lock() {
        paths.retain(|p| p != path);
    }
}

/// Worker threads may still be writing into `dir`: moving it away first makes their next file
/// fail to open, so the removal is not raced by new files.
fn remove_while_written(dir: &Path) {
    let mut doomed = dir.as_os_str().to_owned();
    doomed.push(".interrupted");
    let doomed = PathBuf::from(doomed);
    let target = if std::fs::rename(dir, &doomed).is_ok() { doomed } else { dir.to_owned() };
    for _ in 0..10 {
        if std::fs::remove_dir_all(&target).is_ok() || !target.exists() {
            return;
        }
    }
}
