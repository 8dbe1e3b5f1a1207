//! What the `intercept` command needs beyond the core library: finding a
//! program before `intercept run` starts it, supervising the programs
//! that bypass the shim, and checking a journal afterwards
//! (`intercept verify`).

pub mod program;
pub mod supervise;
pub mod verify;
