//! A directory of a test's own, for the core's unit tests and the
//! integration tests (which include this file): made fresh under `TMPDIR`,
//! removed when the last handle to it is dropped — kept instead, and named
//! on stderr, with `INTERCEPT_KEEP_TEST_DIRS=1`.

use std::ops::Deref;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

/// Derefs to the directory's path; clones share the directory.
#[derive(Clone)]
pub struct TempDir(Arc<Removed>);

struct Removed(PathBuf);

impl Drop for Removed {
    fn drop(&mut self) {
        if std::env::var_os("INTERCEPT_KEEP_TEST_DIRS").is_some_and(|v| v == "1") {
            eprintln!("kept {}", self.0.display());
        } else {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
}

impl Deref for TempDir {
    type Target = Path;
    fn deref(&self) -> &Path {
        &self.0.0
    }
}

impl AsRef<Path> for TempDir {
    fn as_ref(&self) -> &Path {
        self
    }
}

/// A fresh, empty directory whose name says which test made it.
pub fn temp_dir(name: &str) -> TempDir {
    static COUNT: AtomicUsize = AtomicUsize::new(0);
    let n = COUNT.fetch_add(1, Ordering::Relaxed);
    let dir = std::env::temp_dir().join(format!("intercept-test-{}-{n}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    TempDir(Arc::new(Removed(dir)))
}

/// A path inside a fresh directory that does not exist yet (a CA directory
/// the code under test makes itself), with the guard that removes it.
pub fn temp_path(name: &str, inside: &str) -> (TempDir, PathBuf) {
    let guard = temp_dir(name);
    let path = guard.join(inside);
    (guard, path)
}
