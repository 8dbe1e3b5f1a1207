//! What the `intercept` command does beyond parsing its arguments: the
//! options the commands share (`settings`), what a program under the shim
//! is given (`environment`), each command (`commands`), finding a program
//! before `intercept run` starts it, supervising the programs that bypass
//! the shim, and checking a journal afterwards (`intercept verify`).

pub mod commands;
pub mod environment;
pub mod program;
pub mod settings;
pub mod supervise;
pub mod verify;
