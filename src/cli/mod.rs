//! What the `intercept` command needs beyond the core library: finding a
//! program before `intercept run` starts it, and checking a journal
//! afterwards (`intercept verify`).

pub mod program;
pub mod verify;
