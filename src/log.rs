//! `INTERCEPT_LOG`: levelled lines to stderr, each starting `intercept:`.
//!
//! The level is one process-wide atomic so a disabled line costs one load.
//! Each line goes out in a single `write` so lines from threads and child
//! processes sharing stderr do not interleave, and only when stderr can
//! take it without waiting.

#[cfg(not(test))]
use std::sync::atomic::AtomicU64;
use std::sync::atomic::{AtomicU8, Ordering};

/// How much is logged; each level includes those below it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Default)]
pub enum Level {
    /// `off`: nothing.
    Off = 0,
    /// `error` (the default): what went wrong.
    #[default]
    Error = 1,
    /// `info`: also each request answered, and routes added or removed.
    Info = 2,
    /// `debug`: also each connection and lookup intercepted, and how it ended.
    Debug = 3,
}

impl Level {
    /// A level from its name, any case; None for an unknown one.
    pub fn parse(text: &str) -> Option<Level> {
        Some(match text.to_ascii_lowercase().as_str() {
            "off" => Level::Off,
            "error" => Level::Error,
            "info" => Level::Info,
            "debug" => Level::Debug,
            _ => return None,
        })
    }
}

static LEVEL: AtomicU8 = AtomicU8::new(Level::Error as u8);

thread_local! {
    /// Where this thread's lines go: stderr, unless the supervisor, which
    /// holds no stderr of its own, names the stderr of the process a
    /// thread works for.
    static SINK: std::cell::Cell<i32> = const { std::cell::Cell::new(2) };
}

/// Sends this thread's lines to `fd` (a copy of a supervised process's
/// stderr) instead of fd 2; returns where they went before.
pub fn set_thread_sink(fd: i32) -> i32 {
    SINK.with(|s| s.replace(fd))
}

/// Sets the process's level: lines above it are not written.
pub fn set_level(level: Level) {
    LEVEL.store(level as u8, Ordering::Relaxed);
}

/// Whether lines at `level` are written.
pub fn enabled(level: Level) -> bool {
    level as u8 <= LEVEL.load(Ordering::Relaxed)
}

/// Writes one `intercept: …` line if `level` is enabled.
pub fn line(level: Level, args: std::fmt::Arguments<'_>) {
    if !enabled(level) {
        return;
    }
    let mut text = format!("intercept: {args}");
    text.push('\n');
    write_stderr(&text);
}

/// Lines dropped because stderr could not take them.
#[cfg(not(test))]
static DROPPED: AtomicU64 = AtomicU64::new(0);

/// One write(2), no lock: std's stderr lock could be held by a thread that
/// does not exist in a forked child. And never a wait: a line goes out only
/// when stderr can take it now (a pipe nobody reads must not stall the
/// host's requests); otherwise it is dropped and counted, and the count is
/// reported with the next line that goes out. A failing stderr is not the
/// host's problem.
#[cfg(not(test))]
fn write_stderr(text: &str) {
    let fd = SINK.with(|s| s.get());
    let mut ready = libc::pollfd { fd, events: libc::POLLOUT, revents: 0 };
    // SAFETY: polls one valid pollfd, without waiting.
    let writable = unsafe { libc::poll(&mut ready, 1, 0) } == 1 && ready.revents & libc::POLLOUT != 0;
    if !writable {
        DROPPED.fetch_add(1, Ordering::Relaxed);
        return;
    }
    let dropped = DROPPED.swap(0, Ordering::Relaxed);
    let text = if dropped == 0 {
        std::borrow::Cow::Borrowed(text)
    } else {
        std::borrow::Cow::Owned(format!("intercept: {dropped} log line(s) dropped: stderr was not being read\n{text}"))
    };
    // SAFETY: writes a valid buffer to the sink.
    let _ = unsafe { libc::write(fd, text.as_ptr().cast(), text.len()) };
}

/// Under `cargo test`, through the harness's capture instead.
#[cfg(test)]
fn write_stderr(text: &str) {
    eprint!("{text}");
}

/// Writes an `intercept: …` line at [`Level::Error`](crate::log::Level::Error), `format!`-style.
#[macro_export]
macro_rules! log_error { ($($t:tt)*) => { $crate::log::line($crate::log::Level::Error, format_args!($($t)*)) } }
/// Writes an `intercept: …` line at [`Level::Info`](crate::log::Level::Info), `format!`-style.
#[macro_export]
macro_rules! log_info { ($($t:tt)*) => { $crate::log::line($crate::log::Level::Info, format_args!($($t)*)) } }
/// Writes an `intercept: …` line at [`Level::Debug`](crate::log::Level::Debug), `format!`-style.
#[macro_export]
macro_rules! log_debug { ($($t:tt)*) => { $crate::log::line($crate::log::Level::Debug, format_args!($($t)*)) } }

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn levels_order_and_parse() {
        assert_eq!(Level::parse("DEBUG"), Some(Level::Debug));
        assert_eq!(Level::parse("verbose"), None);
        assert!(Level::Error < Level::Info && Level::Off < Level::Error);
    }
}
