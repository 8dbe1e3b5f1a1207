//! Loading at start and keeping both sides of a fork working.
//!
//! Loading runs from `.init_array`, before `main`. A bad configuration
//! prints `FILE:LINE: message` and ends the process with status 2, as
//! `intercept check` would; hooks called before loading finishes (by other
//! libraries' constructors) see the shim as inactive and go to libc.

use core_lib::config;
use core_lib::log;
use core_lib::routing::Router;
use core_lib::serve::trust;
use core_lib::supervision;

use crate::{arena, fdtable, hooks, peer, reactor, real, state, upstream};

#[used]
#[unsafe(link_section = ".init_array")]
static LOAD_AT_START: extern "C" fn() = load_at_start;

extern "C" fn load_at_start() {
    let loaded = std::panic::catch_unwind(load);
    // Loading's allocations came from the arena; the rest are libc's.
    arena::close();
    if loaded.is_err() {
        // Never take the host down for our own bug: stay inactive.
        state::deactivate();
    }
}

fn load() {
    // Every `INTERCEPT_*` variable in one scan of `environ` (std's
    // `var_os` would scan it again for each, under a lock of its own).
    let vars = config::process_vars();
    let var = |key: &str| vars.iter().rev().find(|(k, _)| k == key).map(|(_, v)| v.as_str());
    let config = match config::load(&vars) {
        Ok(config) => config,
        Err(e) => {
            eprintln!("{e}");
            // SAFETY: ends the process without running the host's atexit
            // handlers, which have not been set up for a run that never started.
            unsafe { libc::_exit(2) }
        }
    };
    log::set_level(config.log);
    fdtable::claim();
    // The real `dlopen` and `dlmopen` are looked up at their first call
    // (and before a fork), not here: most programs never call them.
    // The core count (`peer::spare_cores`, read from cgroup files: a few
    // opens, which a sandbox makes slow) and the high fd base wait for the
    // first connection, so a process that never uses a route does not pay
    // for them; `before_fork` makes sure a child never inherits either
    // half-made. (A program may also lower its fd limit before then.)
    // Cheap (no thread, no file): kept even with no route, so the runtime
    // API can add routes later.
    state::set_router(Router::new(&config));
    // A recording har: route reaches its real host around our hooks.
    core_lib::apps::origin::set_real_connector(upstream::connect);
    // SAFETY: registers plain extern "C" functions.
    unsafe { libc::pthread_atfork(Some(before_fork), Some(after_fork_in_parent), Some(after_fork_in_child)) };
    if config.is_active() {
        state::activate();
    }
    if config.supervise != supervision::Mode::Never
        && let Some(socket) = var(supervision::SOCKET_KEY).and_then(|s| std::ffi::CString::new(s).ok())
    {
        state::set_supervisor(socket);
    }
    // The CLI names the bundle (a UTF-8 path of its own making).
    if let Some(bundle) = var(trust::BUNDLE_VARIABLE).filter(|b| !b.is_empty()) {
        let store = trust::truststore_of(std::path::Path::new(bundle));
        let store = store.into_os_string().into_encoded_bytes();
        if let (Ok(bundle), Ok(store)) = (std::ffi::CString::new(bundle), std::ffi::CString::new(store)) {
            state::set_trust(bundle, store);
        }
    }
}

extern "C" fn before_fork() {
    // A child must not be the first to call dlsym: it takes a lock.
    real::resolve_all();
    hooks::dl::resolve();
    // Nor inherit a one-time value another thread is computing: the child
    // would wait forever for a thread it does not have.
    peer::spare_cores();
    fdtable::high_base();
    if let Some(r) = state::router() {
        r.ca_dir();
    }
    // A child may write to a connection it shares with this process, whose
    // writes its own caller's thread does not answer: the loop here does.
    reactor::wanted();
    fdtable::hold_for_fork();
    if let Some(r) = state::router() {
        r.hold_for_fork();
    }
}

extern "C" fn after_fork_in_parent() {
    release_after_fork();
}

/// The child has no dispatcher threads: connections opened before the fork
/// stay served by the parent's, and the child's own connections get threads
/// of its own when it makes them.
extern "C" fn after_fork_in_child() {
    fdtable::claim();
    release_after_fork();
    fdtable::close_owned_in_child();
    reactor::forget_in_child();
}

fn release_after_fork() {
    fdtable::release_after_fork();
    if let Some(r) = state::router() {
        // SAFETY: paired with before_fork's hold, once per process.
        unsafe { r.release_after_fork() };
    }
}
