//! The run: what the processes of one `intercept run` share. `intercept
//! run` makes a directory of its own (mode 0700) and names it to every
//! process of the run in [`DIR_KEY`]; it lives until the last of them is
//! gone. What one process works out once for all of them (a recording's
//! index, say) is kept there. A process with no run (the bare shim) works
//! everything out for itself.

use std::path::PathBuf;

/// The variable naming the run's directory.
pub const DIR_KEY: &str = "INTERCEPT_RUN_DIR";

/// The directory of the run this process is in, if any.
pub fn dir() -> Option<PathBuf> {
    std::env::var_os(DIR_KEY).filter(|d| !d.is_empty()).map(PathBuf::from).filter(|d| d.is_absolute())
}

mod lines;
mod shared;

pub use lines::{Lines, MAX as MAX_LINES};
pub use shared::{Shared, Value, reset_all};

/// A short name for a file of the run's directory, from `what` (a path,
/// say): the same text gives the same name in every process.
pub fn name_for(kind: &str, what: &str) -> String {
    format!("{kind}-{:016x}", fnv(what.as_bytes()))
}

/// FNV-1a, 64 bits: a hash that is the same in every process and every
/// build, for names that processes must agree on.
pub fn fnv(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, &b| (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3))
}
