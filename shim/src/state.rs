//! The process-wide state: the configuration read once when the library is
//! loaded, and the router built from it.
//!
//! Loading runs from `.init_array`, before `main`. A bad configuration
//! prints `FILE:LINE: message` and ends the process with status 2, as
//! `intercept check` would; hooks called before loading finishes (by other
//! libraries' constructors) see the shim as inactive and go to libc.

use std::sync::OnceLock;
use std::sync::atomic::{AtomicBool, Ordering};

use core_lib::config;
use core_lib::log;
use core_lib::router::Router;

static ROUTER: OnceLock<Router> = OnceLock::new();
static ACTIVE: AtomicBool = AtomicBool::new(false);

/// Whether hooks have anything to do. One relaxed load on every hook.
#[inline]
pub fn active() -> bool {
    ACTIVE.load(Ordering::Acquire)
}

pub fn router() -> Option<&'static Router> {
    ROUTER.get()
}

#[used]
#[unsafe(link_section = ".init_array")]
static LOAD_AT_START: extern "C" fn() = load_at_start;

extern "C" fn load_at_start() {
    if std::panic::catch_unwind(load).is_err() {
        // Never take the host down for our own bug: stay inactive.
        ACTIVE.store(false, Ordering::Release);
    }
}

fn load() {
    let config = match config::from_process_env() {
        Ok(config) => config,
        Err(e) => {
            eprintln!("{e}");
            // SAFETY: ends the process without running the host's atexit
            // handlers, which have not been set up for a run that never started.
            unsafe { libc::_exit(2) }
        }
    };
    log::set_level(config.log);
    if !config.is_active() {
        return;
    }
    let _ = ROUTER.set(Router::new(&config));
    ACTIVE.store(true, Ordering::Release);
}
