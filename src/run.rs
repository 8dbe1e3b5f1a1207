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
