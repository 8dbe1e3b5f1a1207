//! The core of `intercept`, grouped by the stage a connection passes
//! through: [`config`] (the env file, its keys, route URLs and app specs)
//! → [`routing`] (synthetic names, the router that says what a lookup or
//! a connect becomes) → [`serve`] (one connection: TLS, HTTP/1.1) →
//! [`apps`] (what answers a request). [`log`] and [`journal`] are what every
//! stage writes to; [`fork_lock`] is the lock every stage may take;
//! [`run`] holds what the processes of one run share (its directory, the
//! shared values and lists of `stubs:` and `har:`); [`url`]
//! is the one reader of URLs and authorities;
//! [`program`] tells from a file whether the shim can reach it, and
//! [`supervision`] puts a program it cannot reach under the run's
//! supervisor.
//!
//! No libc hooks live here — the `shim` crate translates libc calls into
//! calls of this library — so everything below is tested without preloading
//! anything. Imports flow one way: `fork_lock`, `url` and `program` import
//! nothing, `run` only `fork_lock` and `log`, `supervision` only `program`, `journal` only `log`, `apps` only
//! `log`, `run` and `url`;
//! `config` imports `apps`; `routing` imports `config`, `apps` and
//! `journal`; `serve` imports all of those. The integration tests check it.

pub mod apps;
pub mod config;
pub mod fork_lock;
pub mod journal;
pub mod log;
pub mod program;
pub mod routing;
pub mod run;
pub mod serve;
pub mod supervision;
#[cfg(test)]
mod testing;
pub mod url;
