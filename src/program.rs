//! What can be told about a program from its file before it runs: a
//! statically linked or setuid program ignores `LD_PRELOAD`, so its
//! connections would bypass the shim. Read from the file's mode and the
//! start of its ELF image (no allocation: the shim asks from `execve`,
//! which may run in a `vfork` child); scripts and anything that is not a
//! 64-bit ELF file get the benefit of the doubt.
//!
//! Under `intercept run` such programs are supervised instead: their
//! socket calls stop in a seccomp filter. [`SHIM_CALL`] is how the filter
//! tells the shim's own calls, already decided, from a program's.

/// Passed by the shim in an argument slot the kernel ignores (the fourth
/// of `connect`, `getpeername`, `getsockname` and `open`, the fifth of
/// `openat`, the sixth of `setsockopt` and `getsockopt`), so the
/// supervisor's filter lets those calls through untouched. It marks, it
/// does not guard: a program that forges it only escapes interception.
pub const SHIM_CALL: u64 = 0x1e7e_5c0f_f1ce_0001;

/// A one-line reason why the shim cannot reach a program with file mode
/// `mode` whose file starts with `head`, if there is one.
pub fn bypass_reason(mode: u32, head: &[u8]) -> Option<&'static str> {
    if mode & 0o6000 != 0 {
        return Some("is setuid or setgid, so the loader ignores LD_PRELOAD");
    }
    match has_interpreter(head) {
        Some(false) => Some("is statically linked, so it does not load libintercept.so"),
        _ => None,
    }
}

/// Whether a 64-bit little-endian ELF file names a program interpreter
/// (PT_INTERP): every dynamically linked executable does. None when the
/// bytes are not such a file (a script, say).
pub fn has_interpreter(elf: &[u8]) -> Option<bool> {
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
    fn scripts_are_not_judged_and_setuid_is_named() {
        assert_eq!(has_interpreter(b"#!/bin/sh\necho hi\n"), None);
        assert_eq!(bypass_reason(0o755, b"#!/bin/sh\n"), None);
        assert!(bypass_reason(0o4755, b"").unwrap().contains("setuid"));
        // An ELF header with no program headers: no interpreter, static.
        let mut elf = vec![0u8; 64];
        elf[..6].copy_from_slice(b"\x7fELF\x02\x01");
        elf[0x20] = 64;
        assert_eq!(has_interpreter(&elf), Some(false));
        assert!(bypass_reason(0o755, &elf).unwrap().contains("statically linked"));
    }
}
