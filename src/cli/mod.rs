//! What the `intercept` command needs beyond the core library: looking at a
//! program before `intercept run` starts it.

pub mod program;
