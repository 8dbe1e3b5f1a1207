//! `libintercept.so`: the `LD_PRELOAD` layer of intercept.
//!
//! It only translates libc calls: name lookups and connects are handed to
//! the core's router, routed connections become an `AF_UNIX` socketpair whose
//! far end a dispatcher thread serves with the core's HTTP loop (or, for
//! apps that answer from memory, one shared event thread). Every hook
//! starts with one atomic load; when the shim has nothing configured, or the
//! call is not ours, it jumps straight to the real function.
//!
//! Imports flow one way, each layer using only those before it:
//!
//! 1. `arena` (allocation while loading), `real` (the real libc
//!    functions, errno), `sockaddr`, `fdtable`, `state` (the router),
//!    `spawn` (what happens before a program starts: supervised, warned
//!    of, or left alone), `upstream` (connecting for real), `peer` (our end of a connection
//!    and the threads that serve it), `slots` (who serves an event-thread
//!    connection now);
//! 2. `reactor` (the event thread);
//! 3. `dispatch` (event thread or a thread of its own);
//! 4. `hooks` (the exported libc functions) and `api` (the runtime API);
//! 5. `init` (loading at start, fork handlers).
//!
//! The integration tests check this order.

mod api;
mod arena;
mod dispatch;
mod fdtable;
mod hooks;
mod init;
mod peer;
mod reactor;
mod real;
mod slots;
mod sockaddr;
mod spawn;
mod state;
mod upstream;

#[global_allocator]
static ALLOCATOR: arena::LoadFirst = arena::LoadFirst;
