//! Supervision: how programs that bypass the shim (static executables, Go)
//! are intercepted all the same, by a seccomp filter whose stopped calls a
//! supervisor answers.
//!
//! [`Mode`] says which programs of a run are put under the filter: by
//! default (`auto`) only those that bypass the shim, when they are started
//! (the shim's exec hooks, or `intercept run` for its own program); `all`
//! filters the whole tree from the top; `never` none. [`filter`] is the
//! program and its installation; [`handover`] puts a process under it and
//! gives the listener to the run's supervisor, whose socket the
//! environment names ([`SOCKET_KEY`]). The supervisor itself lives in the
//! CLI (`intercept run`).

pub mod filter;
pub mod handover;

/// The run supervisor's socket, set by `intercept run` for every process
/// of the run.
pub const SOCKET_KEY: &str = "INTERCEPT_SUPERVISOR";

/// `INTERCEPT_SUPERVISE`: which programs are put under the filter.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Mode {
    /// Those that bypass the shim, when they start.
    #[default]
    Auto,
    /// The whole tree, from the program `intercept run` starts (a raw
    /// `syscall(SYS_connect)` in a dynamic program is caught too).
    All,
    /// None.
    Never,
}

impl Mode {
    /// A mode from its name, any case (empty is `auto`); None for an unknown one.
    pub fn parse(text: &str) -> Option<Mode> {
        Some(match text.trim().to_ascii_lowercase().as_str() {
            "auto" | "" => Mode::Auto,
            "all" => Mode::All,
            "never" => Mode::Never,
            _ => return None,
        })
    }

    /// The mode's name, as `INTERCEPT_SUPERVISE` spells it.
    pub fn as_str(self) -> &'static str {
        match self {
            Mode::Auto => "auto",
            Mode::All => "all",
            Mode::Never => "never",
        }
    }
}
