//! The core of `intercept`: configuration, routes, synthetic names, the
//! HTTP/1.1 dispatcher and the apps. No libc hooks live here — the `shim`
//! crate translates libc calls into calls of this library — so everything
//! below is tested without preloading anything.

pub mod apps;
pub mod config;
pub mod connection;
pub mod dotenv;
pub mod forward;
pub mod http;
pub mod journal;
pub mod log;
pub mod names;
pub mod native;
pub mod program;
pub mod route;
pub mod router;
pub mod tls;
