//! What can be told about a program from its file before it runs: a
//! statically linked or setuid program ignores `LD_PRELOAD`, and a Go
//! program makes its system calls itself, so their connections would
//! bypass the shim. Read from the file's mode, the start of its ELF image
//! and its notes (no allocation: the shim asks from `execve`, which may
//! run in a `vfork` child); scripts and anything that is not a 64-bit ELF
//! file get the benefit of the doubt.
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

/// How a program's file loads, as far as the shim is concerned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Loads the shim (a dynamically linked executable).
    Dynamic,
    /// Statically linked: the loader never runs, nothing is preloaded.
    Static,
    /// A Go program: it makes its system calls itself, even with cgo.
    Go,
    /// Setuid or setgid: the loader ignores `LD_PRELOAD`.
    Setuid,
    /// Not a 64-bit ELF file (a script, say): judged by what it runs.
    Other,
}

impl Kind {
    /// Whether the shim cannot reach such a program, so only a supervisor
    /// can (setuid programs are left as they are: they keep their
    /// privileges).
    pub fn bypasses_shim(self) -> bool {
        matches!(self, Kind::Static | Kind::Go)
    }

    /// A one-line reason why the shim cannot reach such a program.
    pub fn reason(self) -> Option<&'static str> {
        match self {
            Kind::Setuid => Some("is setuid or setgid, so the loader ignores LD_PRELOAD"),
            Kind::Static => Some("is statically linked, so it does not load libintercept.so"),
            Kind::Go => Some("is a Go program, which makes its system calls itself"),
            Kind::Dynamic | Kind::Other => None,
        }
    }
}

/// What kind of program the file with mode `mode` is, from its first
/// bytes `head`; `read_at(offset, buf)` reads further into the file (for
/// a Go program's build-ID note) and returns how much it read.
pub fn kind(mode: u32, head: &[u8], mut read_at: impl FnMut(u64, &mut [u8]) -> usize) -> Kind {
    if mode & 0o6000 != 0 {
        return Kind::Setuid;
    }
    match has_interpreter(head) {
        None => Kind::Other,
        Some(false) => Kind::Static,
        Some(true) => {
            let mut note = [0u8; 256];
            let go = notes(head).any(|(offset, size)| {
                let want = usize::try_from(size).unwrap_or(usize::MAX).min(note.len());
                let n = read_at(offset, &mut note[..want]);
                has_go_build_id(&note[..n])
            });
            if go { Kind::Go } else { Kind::Dynamic }
        }
    }
}

/// The interpreter a script's `#!` line names, from its first bytes.
pub fn interpreter(head: &[u8]) -> Option<&[u8]> {
    let line = head.strip_prefix(b"#!")?.split(|&b| b == b'\n').next()?;
    line.split(|b| b.is_ascii_whitespace()).find(|w| !w.is_empty())
}

/// The one line the shim and `intercept run` print for a program the
/// shim cannot reach and nothing supervises.
pub fn write_warning(out: &mut dyn std::fmt::Write, program: &dyn std::fmt::Display, reason: &str) -> std::fmt::Result {
    writeln!(out, "intercept: warning: {program} {reason}; its connections are not intercepted")
}

/// The program headers of a 64-bit little-endian ELF file in `elf`, as
/// (type, file offset, file size).
fn program_headers(elf: &[u8]) -> Option<impl Iterator<Item = (u32, u64, u64)> + '_> {
    if elf.len() < 64 || &elf[..4] != b"\x7fELF" || elf[4] != 2 || elf[5] != 1 {
        return None;
    }
    let u16_at = |at: usize| elf.get(at..at + 2).map(|b| u16::from_le_bytes([b[0], b[1]]));
    let phoff = usize::try_from(u64::from_le_bytes(elf[0x20..0x28].try_into().ok()?)).ok()?;
    let (entsize, count) = (usize::from(u16_at(0x36)?), usize::from(u16_at(0x38)?));
    let u64_at = |at: usize| elf.get(at..at + 8).map(|b| u64::from_le_bytes(b.try_into().unwrap_or_default()));
    let all = (0..count).map(move |i| {
        let at = phoff.checked_add(i.checked_mul(entsize)?)?;
        let kind = u32::from_le_bytes(elf.get(at..at + 4)?.try_into().ok()?);
        Some((kind, u64_at(at + 8)?, u64_at(at + 32)?))
    });
    // A header past what was read ends the list as an unreadable one would.
    let complete = all.clone().all(|h| h.is_some());
    complete.then(|| all.map_while(|h| h))
}

/// The notes segments (PT_NOTE) of an ELF file: offset and size.
fn notes(elf: &[u8]) -> impl Iterator<Item = (u64, u64)> + '_ {
    const PT_NOTE: u32 = 4;
    program_headers(elf).into_iter().flatten().filter(|h| h.0 == PT_NOTE).map(|(_, offset, size)| (offset, size))
}

/// Whether these notes hold Go's build ID (owner `Go`, type 4), which
/// Go's linker writes in every executable, however linked.
fn has_go_build_id(mut notes: &[u8]) -> bool {
    const NT_GO_BUILD_ID: u32 = 4;
    let u32_at = |b: &[u8], at: usize| b.get(at..at + 4).map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]));
    while let (Some(namesz), Some(descsz), Some(kind)) = (u32_at(notes, 0), u32_at(notes, 4), u32_at(notes, 8)) {
        let pad = |n: u32| (n as usize).div_ceil(4) * 4;
        if kind == NT_GO_BUILD_ID && notes.get(12..12 + namesz as usize) == Some(b"Go\0\0".as_slice()) {
            return true;
        }
        let Some(rest) = notes.get(12 + pad(namesz) + pad(descsz)..) else { return false };
        notes = rest;
    }
    false
}

/// Whether a 64-bit little-endian ELF file names a program interpreter
/// (PT_INTERP): every dynamically linked executable does. None when the
/// bytes are not such a file (a script, say).
pub fn has_interpreter(elf: &[u8]) -> Option<bool> {
    const PT_INTERP: u32 = 3;
    Some(program_headers(elf)?.any(|h| h.0 == PT_INTERP))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_scripts_interpreter_is_the_first_word_of_its_first_line() {
        assert_eq!(interpreter(b"#!/bin/busybox sh\necho"), Some(b"/bin/busybox".as_slice()));
        assert_eq!(interpreter(b"#!  /usr/bin/env python3\n"), Some(b"/usr/bin/env".as_slice()));
        assert_eq!(interpreter(b"#!\n"), None);
        assert_eq!(interpreter(b"\x7fELF"), None);
    }

    #[test]
    fn scripts_are_not_judged_and_setuid_is_named() {
        assert_eq!(has_interpreter(b"#!/bin/sh\necho hi\n"), None);
        let reason = |mode, head: &[u8]| kind(mode, head, |_, _| 0).reason();
        assert_eq!(reason(0o755, b"#!/bin/sh\n"), None);
        assert!(reason(0o4755, b"").unwrap().contains("setuid"));
        // An ELF header with no program headers: no interpreter, static.
        let mut elf = vec![0u8; 64];
        elf[..6].copy_from_slice(b"\x7fELF\x02\x01");
        elf[0x20] = 64;
        assert_eq!(has_interpreter(&elf), Some(false));
        assert!(reason(0o755, &elf).unwrap().contains("statically linked"));
    }

    /// An ELF header with one program header of type `kind` at offset 64,
    /// pointing at file offset 0x100 for 0x40 bytes.
    fn elf_with(kind: u32) -> Vec<u8> {
        let mut elf = vec![0u8; 64 + 56];
        elf[..6].copy_from_slice(b"\x7fELF\x02\x01");
        elf[0x20] = 64;
        elf[0x36] = 56;
        elf[0x38] = 1;
        elf[64..68].copy_from_slice(&kind.to_le_bytes());
        elf[64 + 8] = 0x00;
        elf[64 + 9] = 0x01;
        elf[64 + 32] = 0x40;
        elf
    }

    #[test]
    fn a_go_build_id_note_makes_a_dynamic_program_go() {
        let mut elf = elf_with(4);
        // An interpreter header too: dynamically linked.
        elf[0x38] = 2;
        elf.extend_from_slice(&[0u8; 56]);
        elf[120..124].copy_from_slice(&3u32.to_le_bytes());
        let note = |owner: &[u8], kind: u32| {
            let mut n = Vec::new();
            n.extend_from_slice(&(owner.len() as u32).to_le_bytes());
            n.extend_from_slice(&4u32.to_le_bytes());
            n.extend_from_slice(&kind.to_le_bytes());
            n.extend_from_slice(owner);
            n.extend_from_slice(b"abcd");
            n
        };
        let gnu = [note(b"GNU\0", 3), note(b"Go\0\0", 4)].concat();
        let read = |notes: Vec<u8>| {
            move |offset: u64, buf: &mut [u8]| {
                assert_eq!(offset, 0x100);
                let n = buf.len().min(notes.len());
                buf[..n].copy_from_slice(&notes[..n]);
                n
            }
        };
        assert_eq!(kind(0o755, &elf, read(gnu)), Kind::Go);
        assert_eq!(kind(0o755, &elf, read(note(b"GNU\0", 4))), Kind::Dynamic);
        assert_eq!(kind(0o4755, &elf, read(Vec::new())), Kind::Setuid);
        // A header table cut short is not judged.
        assert_eq!(has_interpreter(&elf[..100]), None);
    }
}
