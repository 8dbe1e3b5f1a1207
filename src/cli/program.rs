//! What `intercept run` can tell about a program before starting it: a
//! statically linked or setuid program ignores `LD_PRELOAD`, so its
//! connections would bypass the shim. Read from the ELF header; scripts and
//! anything unreadable get the benefit of the doubt.

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

/// A one-line reason why the shim cannot reach this program, if there is one.
pub fn bypass_reason(path: &Path) -> Option<&'static str> {
    let meta = std::fs::metadata(path).ok()?;
    if meta.permissions().mode() & 0o6000 != 0 {
        return Some("is setuid or setgid, so the loader ignores LD_PRELOAD");
    }
    let mut head = vec![0u8; 64 * 1024];
    let n = std::fs::File::open(path).ok()?.read(&mut head).ok()?;
    head.truncate(n);
    match has_interpreter(&head) {
        Some(false) => Some("is statically linked, so it does not load libintercept.so"),
        _ => None,
    }
}

/// Whether a 64-bit little-endian ELF file names a program interpreter
/// (PT_INTERP): every dynamically linked executable does. None when the
/// bytes are not such a file (a script, say).
fn has_interpreter(elf: &[u8]) -> Option<bool> {
    const PT_INTERP: u32 = 3;
    if elf.len() < 64 || &elf[..4] != b"\x7fELF" || elf[4] != 2 || elf[5] != 1 {
        return None;
    }
    let u16_at = |at: usize| elf.get(at..at + 2).map(|b| u16::from_le_bytes([b[0], b[1]]));
    let phoff = usize::try_from(u64::from_le_bytes(elf[0x20..0x28].try_into().ok()?)).ok()?;
    let (entsize, count) = (usize::from(u16_at(0x36)?), usize::from(u16_at(0x38)?));
    let mut found = false;
    for i in 0..count {
        let at = phoff.checked_add(i.checked_mul(entsize)?)?;
        let kind = elf.get(at..at + 4)?;
        found |= u32::from_le_bytes(kind.try_into().ok()?) == PT_INTERP;
    }
    Some(found)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn system_programs_are_dynamic_and_scripts_are_not_judged() {
        let sh = find(OsStr::new("sh")).unwrap();
        assert_eq!(bypass_reason(&sh.canonicalize().unwrap()), None);
        assert_eq!(has_interpreter(b"#!/bin/sh\necho hi\n"), None);
        let exe = std::env::current_exe().unwrap();
        let mut bytes = Vec::new();
        std::fs::File::open(exe).unwrap().take(64 * 1024).read_to_end(&mut bytes).unwrap();
        assert_eq!(has_interpreter(&bytes), Some(true));
    }
}
