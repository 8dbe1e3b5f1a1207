//! `INTERCEPT_LOG`: levelled lines to stderr, each starting `intercept:`.
//!
//! The level is one process-wide atomic so a disabled line costs one load.
//! Each line goes out in a single `write` so lines from threads and child
//! processes sharing stderr do not interleave.

use std::sync::atomic::{AtomicU8, Ordering};

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Default)]
pub enum Level {
    Off = 0,
    #[default]
    Error = 1,
    Info = 2,
    Debug = 3,
}

impl Level {
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

pub fn set_level(level: Level) {
    LEVEL.store(level as u8, Ordering::Relaxed);
}

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

/// One write(2), no lock: std's stderr lock could be held by a thread that
/// does not exist in a forked child. A failing stderr is not the host's
/// problem.
#[cfg(not(test))]
fn write_stderr(text: &str) {
    // SAFETY: writes a valid buffer to fd 2.
    let _ = unsafe { libc::write(2, text.as_ptr().cast(), text.len()) };
}

/// Under `cargo test`, through the harness's capture instead.
#[cfg(test)]
fn write_stderr(text: &str) {
    eprint!("{text}");
}

#[macro_export]
macro_rules! log_error { ($($t:tt)*) => { $crate::log::line($crate::log::Level::Error, format_args!($($t)*)) } }
#[macro_export]
macro_rules! log_info { ($($t:tt)*) => { $crate::log::line($crate::log::Level::Info, format_args!($($t)*)) } }
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
