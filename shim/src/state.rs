//! The process-wide state: the router built from the configuration, and
//! whether the hooks have anything to do. Set once by `init`; the runtime
//! API may turn the hooks on later.

use std::sync::OnceLock;
use std::sync::atomic::{AtomicBool, Ordering};

use core_lib::routing::Router;

static ROUTER: OnceLock<Router> = OnceLock::new();
static ACTIVE: AtomicBool = AtomicBool::new(false);

/// Whether hooks have anything to do. One load on every hook.
#[inline]
pub fn active() -> bool {
    ACTIVE.load(Ordering::Acquire)
}

pub fn router() -> Option<&'static Router> {
    ROUTER.get()
}

/// Installs the router (once, at load).
pub fn set_router(router: Router) {
    let _ = ROUTER.set(router);
}

/// Turns the hooks on (at start, or when the runtime API adds a route).
pub fn activate() {
    ACTIVE.store(true, Ordering::Release);
}

/// Turns the hooks off (a load that failed).
pub fn deactivate() {
    ACTIVE.store(false, Ordering::Release);
}
