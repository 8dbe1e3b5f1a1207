//! What happens before a program is started from under the shim: a
//! program the shim cannot reach (statically linked, Go) is put under the
//! run's supervisor when `intercept run` has one, or named in a one-line
//! warning when it has not; every other program starts as it would
//! without us, with nothing changed (setuid programs keep their
//! privileges).
//!
//! The exec hooks run this in the calling process just before the real
//! exec: the filter goes on the caller, which becomes the program (if the
//! exec then fails, the caller goes on under the filter, served all the
//! same). `posix_spawn`'s child runs none of our code, so there the
//! program is started through the launcher, `intercept __supervise`,
//! which does the same and then becomes the program.
//!
//! Exec may run in a `vfork` child, on the parent's memory: judging a file
//! allocates nothing (stack buffers for its first bytes, paths and lines)
//! and takes no lock; only the `posix_spawn` path, which runs in the
//! caller, allocates.

use std::ffi::{CStr, CString, c_char};
use std::sync::OnceLock;

use core_lib::log::{self, Level};
use core_lib::program::{self, Kind};
use core_lib::supervision::{filter, handover};
use libc::c_int;

use crate::{real, state};

/// A path built on the stack, NUL-terminated.
pub struct PathBuf {
    buf: [u8; 4096],
    len: usize,
}

impl PathBuf {
    pub fn new() -> PathBuf {
        PathBuf { buf: [0; 4096], len: 0 }
    }

    pub fn push(&mut self, bytes: &[u8]) -> bool {
        if self.len + bytes.len() >= self.buf.len() {
            return false;
        }
        self.buf[self.len..self.len + bytes.len()].copy_from_slice(bytes);
        self.len += bytes.len();
        self.buf[self.len] = 0;
        true
    }

    pub fn as_cstr(&self) -> &CStr {
        CStr::from_bytes_until_nul(&self.buf[..=self.len]).unwrap_or(c"")
    }
}

/// What exec would run for `file`, searched on PATH as `execvp` does
/// when it names no directory; None when nothing is found (exec then
/// fails by itself).
pub fn search(file: &CStr, out: &mut PathBuf) -> bool {
    let name = file.to_bytes();
    if name.is_empty() {
        return false;
    }
    if name.contains(&b'/') {
        return out.push(name);
    }
    // SAFETY: getenv reads the environment without allocating.
    let path = unsafe { libc::getenv(c"PATH".as_ptr()) };
    let path = if path.is_null() {
        b"/bin:/usr/bin".as_slice()
    } else {
        // SAFETY: a NUL-terminated string of the environment.
        unsafe { CStr::from_ptr(path) }.to_bytes()
    };
    for dir in path.split(|&b| b == b':') {
        *out = PathBuf::new();
        let dir = if dir.is_empty() { b".".as_slice() } else { dir };
        if !(out.push(dir) && out.push(b"/") && out.push(name)) {
            continue;
        }
        // SAFETY: a NUL-terminated path of ours.
        if unsafe { libc::access(out.as_cstr().as_ptr(), libc::X_OK) } == 0 {
            return true;
        }
    }
    false
}

/// What kind of program the file at `dir`/`path` is (`dir` as for
/// `openat`); a script is judged by its interpreter.
pub fn kind_at(dir: c_int, path: &CStr) -> Kind {
    kind_of(dir, path, 2)
}

fn kind_of(dir: c_int, path: &CStr, depth: u32) -> Kind {
    let mut head = [0u8; 4096];
    // SAFETY: the real openat, fstat, read, pread and close on an fd that
    // is ours until the close.
    let (n, kind) = unsafe {
        let fd = real::openat(dir, path.as_ptr(), libc::O_RDONLY | libc::O_CLOEXEC, 0);
        if fd < 0 {
            return Kind::Other;
        }
        let mut st: libc::stat = std::mem::zeroed();
        let mode = if libc::fstat(fd, &mut st) == 0 { st.st_mode } else { 0 };
        let n = usize::try_from(real::read(fd, head.as_mut_ptr().cast(), head.len())).unwrap_or(0);
        let kind = program::kind(mode, &head[..n], |offset, buf| {
            let got = libc::pread(fd, buf.as_mut_ptr().cast(), buf.len(), offset as libc::off_t);
            usize::try_from(got).unwrap_or(0)
        });
        real::close(fd);
        (n, kind)
    };
    match program::interpreter(&head[..n]) {
        Some(interpreter) if depth > 0 && kind == Kind::Other => {
            let mut path = PathBuf::new();
            if !path.push(interpreter) {
                return Kind::Other;
            }
            kind_of(libc::AT_FDCWD, path.as_cstr(), depth - 1)
        }
        _ => kind,
    }
}

/// Before the calling process execs `path` (a program of kind `kind`):
/// puts it under the run's supervisor when the program needs it, else
/// warns when the shim cannot reach it.
pub fn before_exec(path: &CStr, kind: Kind) {
    match supervisor_for(kind) {
        Some(Supervisor::Inherited) => {}
        Some(Supervisor::At(socket)) => {
            // SAFETY: the caller execs next.
            if let Err(refused) = unsafe { handover::supervise_self(socket) } {
                say(|out| handover::write_notice(out, &path.to_string_lossy(), refused.why()));
            }
        }
        None => warn(path, kind),
    }
}

/// Who supervises a program of kind `kind` started now.
enum Supervisor {
    /// The filter this process runs under already (a supervised parent's).
    Inherited,
    /// The run's supervisor, at this socket.
    At(&'static CStr),
}

/// None when the program needs no supervisor or the run has none.
fn supervisor_for(kind: Kind) -> Option<Supervisor> {
    let socket = state::supervisor().filter(|_| kind.bypasses_shim())?;
    Some(if filter::ours() { Supervisor::Inherited } else { Supervisor::At(socket) })
}

/// The warning for a program the shim cannot reach and nothing
/// supervises.
fn warn(path: &CStr, kind: Kind) {
    if !state::active() || !log::enabled(Level::Error) {
        return;
    }
    if let Some(why) = kind.reason() {
        say(|out| program::write_warning(out, &path.to_string_lossy(), why));
    }
}

/// Whether anything would be done or said before exec: the file is read
/// only then.
pub fn wanted() -> bool {
    state::supervisor().is_some() || (state::active() && log::enabled(Level::Error))
}

/// For `posix_spawn`: the launcher's arguments when the program at `path`
/// (of kind `kind`) is to start under the run's supervisor, else None
/// (after the warning, if one is due).
pub fn launcher_argv(path: &CStr, kind: Kind, argv: *const *const c_char) -> Option<(&'static CStr, Vec<*const c_char>)> {
    let (socket, launcher) = match supervisor_for(kind) {
        Some(Supervisor::Inherited) => return None,
        Some(Supervisor::At(socket)) if let Some(launcher) = launcher() => (socket, launcher),
        _ => {
            warn(path, kind);
            return None;
        }
    };
    let mut args = vec![launcher.as_ptr(), c"__supervise".as_ptr(), socket.as_ptr(), path.as_ptr()];
    let mut at = argv;
    // SAFETY: the caller's argv, a null-terminated array of strings.
    unsafe {
        while !at.is_null() && !(*at).is_null() {
            args.push(*at);
            at = at.add(1);
        }
    }
    args.push(std::ptr::null());
    Some((launcher, args))
}

/// `intercept` beside this library, when it is there.
fn launcher() -> Option<&'static CStr> {
    static LAUNCHER: OnceLock<Option<CString>> = OnceLock::new();
    LAUNCHER
        .get_or_init(|| {
            // SAFETY: dladdr fills a zeroed Dl_info for an address of ours;
            // the name it points at belongs to the loader.
            let library = unsafe {
                let mut info: libc::Dl_info = std::mem::zeroed();
                if libc::dladdr(launcher as *const () as *const libc::c_void, &mut info) == 0 || info.dli_fname.is_null() {
                    return None;
                }
                CStr::from_ptr(info.dli_fname).to_bytes().to_vec()
            };
            let dir = library.iter().rposition(|&b| b == b'/').map(|at| &library[..at])?;
            let mut path = dir.to_vec();
            path.extend_from_slice(b"/intercept");
            let path = CString::new(path).ok()?;
            // SAFETY: a NUL-terminated path of ours.
            (unsafe { libc::access(path.as_ptr(), libc::X_OK) } == 0).then_some(path)
        })
        .as_deref()
}

/// One line to stderr, formatted on the stack by `write`, cut short if it
/// does not fit.
fn say(write: impl FnOnce(&mut dyn std::fmt::Write) -> std::fmt::Result) {
    let mut line = Line { buf: [0; 1024], len: 0 };
    let _ = write(&mut line);
    // SAFETY: writes the bytes of our stack buffer to stderr.
    let _ = unsafe { real::write(2, line.buf.as_ptr().cast(), line.len) };
}

struct Line {
    buf: [u8; 1024],
    len: usize,
}

impl std::fmt::Write for Line {
    fn write_str(&mut self, s: &str) -> std::fmt::Result {
        let n = s.len().min(self.buf.len() - self.len);
        self.buf[self.len..self.len + n].copy_from_slice(&s.as_bytes()[..n]);
        self.len += n;
        Ok(())
    }
}
