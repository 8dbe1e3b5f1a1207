//! The run's own directory: made by `intercept run` before anything else,
//! named to every process of the run, and removed by the supervisor when
//! the run ends.

use std::ffi::{CString, OsString};
use std::path::PathBuf;

/// The run's own directory (mode 0700): the supervisor's socket lives
/// there. Removed by the supervisor when the run ends.
pub struct RunDir {
    pub dir: PathBuf,
}

impl RunDir {
    pub fn make() -> std::io::Result<RunDir> {
        // A unix socket's path holds at most 107 bytes.
        let base = std::env::temp_dir();
        let base = if base.as_os_str().len() > 60 { PathBuf::from("/tmp") } else { base };
        let template = CString::new(base.join("intercept-run.XXXXXX").into_os_string().into_encoded_bytes())?;
        let mut bytes = template.into_bytes_with_nul();
        // SAFETY: mkdtemp fills in the X's of a NUL-terminated template.
        if unsafe { libc::mkdtemp(bytes.as_mut_ptr().cast()) }.is_null() {
            return Err(std::io::Error::last_os_error());
        }
        bytes.pop();
        Ok(RunDir { dir: PathBuf::from(OsString::from(String::from_utf8_lossy(&bytes).into_owned())) })
    }
}

impl Drop for RunDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
