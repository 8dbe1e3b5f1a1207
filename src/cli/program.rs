//! What `intercept run` can tell about a program before starting it: a
//! statically linked or setuid program ignores `LD_PRELOAD` and a Go
//! program makes its own system calls, so their connections would bypass
//! the shim. Read from the ELF image; a script is judged by its `#!`
//! interpreter, anything unreadable gets the benefit of the doubt. And what
//! it says when a program cannot start.

use std::ffi::OsStr;
use std::io::Read;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use intercept::program::Kind;

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
    std::process::ExitCode::from(cannot_run_code(command, e))
}

/// As [`cannot_run`], the status as a number.
pub fn cannot_run_code(command: &OsStr, e: &std::io::Error) -> u8 {
    eprintln!("intercept: cannot run {}: {e}", command.to_string_lossy());
    if e.kind() == std::io::ErrorKind::NotFound { 127 } else { 126 }
}

/// What kind of program the file at `path` is; a script is judged by
/// the interpreter its `#!` line names.
pub fn kind(path: &Path) -> Kind {
    kind_of(path, 2)
}

fn kind_of(path: &Path, depth: u32) -> Kind {
    use std::os::unix::fs::FileExt;
    let (Ok(meta), Ok(file)) = (std::fs::metadata(path), std::fs::File::open(path)) else { return Kind::Other };
    let mut head = vec![0u8; 4096];
    let Ok(n) = (&file).read(&mut head) else { return Kind::Other };
    head.truncate(n);
    if let Some(interpreter) = intercept::program::interpreter(&head)
        && depth > 0
    {
        return kind_of(Path::new(std::ffi::OsStr::from_bytes(interpreter)), depth - 1);
    }
    intercept::program::kind(meta.permissions().mode(), &head, |offset, buf| file.read_at(buf, offset).unwrap_or(0))
}

/// A one-line reason why the shim cannot reach this program, if there is one.
pub fn bypass_reason(path: &Path) -> Option<&'static str> {
    kind(path).reason()
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
