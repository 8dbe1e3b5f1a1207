//! Requests answered in the caller's thread: a client's own write of a
//! whole request to an `echo` route finds the answer in its socket when
//! the write returns. Driven by tests/c/caller_thread.c, which says
//! "immediate" when it does; the rest must be answered exactly as the
//! event thread or a thread of its own answers it.

use crate::common::*;
use std::path::{Path, PathBuf};
use std::process::Command;

const ROUTES: &str = "INTERCEPT_ROUTE_ECHO=http://h.test -> echo\n";

fn program(dir: &TempDir) -> PathBuf {
    need("cc", "gcc");
    let program = dir.join("caller_thread");
    let source = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/c/caller_thread.c");
    let built = Command::new("cc").arg("-O2").arg("-pthread").arg("-o").arg(&program).arg(&source).output().unwrap();
    assert!(built.status.success(), "cc: {}", stderr(&built));
    program
}

fn run(name: &str, mode: &str) -> String {
    let dir = temp_dir(name);
    let program = program(&dir);
    let env = env_file(&dir, ROUTES);
    let out = run_with(&env, &[program.to_str().unwrap(), mode, "h.test"]);
    assert!(stderr(&out).is_empty(), "{}", stderr(&out));
    ok(out)
}

#[test]
fn pipelined_requests_in_one_write_are_answered_before_it_returns() {
    assert_eq!(run("caller-pipelined", "pipelined"), "immediate answers: 3\n");
}

#[test]
fn a_head_written_a_byte_at_a_time_is_answered_at_its_last_byte() {
    assert_eq!(run("caller-bytewise", "bytewise"), "immediate body: hello\n");
}

#[test]
fn answers_larger_than_the_socket_reach_a_client_that_reads_late() {
    assert_eq!(run("caller-lagging", "lagging"), "answers: 72 in order: 72 bytes over 4 MiB: yes\n");
}

#[test]
fn requests_written_by_a_signal_handler_and_its_thread_are_all_answered() {
    assert_eq!(run("caller-signal", "signal"), "written: 2200 answered: 2200\n");
}

/// A process's first connection is answered in its own writes and starts
/// no event thread: a one-request process never spawns one.
#[test]
fn one_request_starts_no_thread() {
    assert_eq!(run("caller-single", "single"), "answers: 1 threads: 1\n");
}

/// stdio writes around the hooks: opening a stream on the connection
/// starts the event thread, which answers what it wrote.
#[test]
fn a_request_written_through_stdio_is_answered() {
    assert_eq!(run("caller-stdio", "stdio"), "stdio: HTTP/1.1 200 OK\r\n");
}

#[test]
fn a_forked_child_reads_the_answer_and_both_sides_ask_again() {
    assert_eq!(run("caller-fork", "fork"), "child: first second\nparent: third\n");
}
