//! What `intercept run` can tell about a program before starting it: a
//! statically linked or setuid program ignores `LD_PRELOAD`, so its
//! connections would bypass the shim. Read from the ELF header; scripts and
//! anything unreadable get the benefit of the doubt. And what it says when
//! a program cannot start.

use std::ffi::OsStr;
use std::io::Read;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

/// Finds a command the way `execvp` does: a path as given, else on PATH.
pub fn find(command: &OsStr) -> Option<PathBuf> {
    let given = Path::new(command);
    if given.components().count() > 1 {
        return Some(given.to_path_buf());
    }
    let paths = std::env::var_os("PATH")?;
    std::env::split_paths(&paths).map(|dir| dir.join(given)).find(|p| p.is_file())
}

/// What `intercept run` says and exits with when the program cannot
/// start: 127 when it is not found, as a shell does, else 126.
pub fn cannot_run(command: &OsStr, e: &std::io::Error) -> std::process::ExitCode {
    eprintln!("intercept: cannot run {}: {e}", command.to_string_lossy());
    std::process::ExitCode::from(if e.kind() == std::io::ErrorKind::NotFound { 127 } else { 126 })
}

/// A one-line reason why the shim cannot reach this program, if there is one.
pub fn bypass_reason(path: &Path) -> Option<&'static str> {
    let meta = std::fs::metadata(path).ok()?;
    let mut head = vec![0u8; 64 * 1024];
    let n = std::fs::File::open(path).ok()?.read(&mut head).ok()?;
    head.truncate(n);
    intercept::program::bypass_reason(meta.permissions().mode(), &head)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn system_programs_are_dynamic_and_scripts_are_not_judged() {
        let sh = find(OsStr::new("sh")).unwrap();
        assert_eq!(bypass_reason(&sh.canonicalize().unwrap()), None);
        let exe = std::env::current_exe().unwrap();
        assert_eq!(bypass_reason(&exe), None);
    }
}
