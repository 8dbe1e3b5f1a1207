//! The process-wide state: the router built from the configuration,
//! whether the hooks have anything to do, the trust files to serve in
//! place of the system's, and the run's supervisor, which takes the
//! programs that bypass the shim. Set once by `init`; the runtime API may turn the
//! hooks on later.

use std::ffi::CString;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicBool, Ordering};

use core_lib::routing::Router;

static ROUTER: OnceLock<Router> = OnceLock::new();
static ACTIVE: AtomicBool = AtomicBool::new(false);
/// The trust bundle and truststore served for system trust files.
static TRUST: OnceLock<(CString, CString)> = OnceLock::new();
/// The socket of the run's supervisor, when `intercept run` supervises
/// the programs of its run that bypass the shim.
static SUPERVISOR: OnceLock<CString> = OnceLock::new();

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

/// Sets the trust bundle (and the truststore beside it) that reads of the
/// system's trust files are served from.
pub fn set_trust(bundle: CString, truststore: CString) {
    let _ = TRUST.set((bundle, truststore));
}

/// The trust bundle and truststore, when `intercept run` named them.
#[inline]
pub fn trust() -> Option<&'static (CString, CString)> {
    TRUST.get()
}

/// Names the run's supervisor (once, at load).
pub fn set_supervisor(socket: CString) {
    let _ = SUPERVISOR.set(socket);
}

/// The run's supervisor's socket, when there is one.
pub fn supervisor() -> Option<&'static std::ffi::CStr> {
    SUPERVISOR.get().map(CString::as_c_str)
}
