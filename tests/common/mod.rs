//! Helpers for the integration tests: find the built binaries, require the
//! real client programs, write env files, run commands and read their bytes.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// target/release/intercept (or the profile under test).
pub fn intercept_bin() -> PathBuf {
    let bin = PathBuf::from(env!("CARGO_BIN_EXE_intercept"));
    let shim = bin.with_file_name("libintercept.so");
    assert!(shim.is_file(), "{} is missing: build the shim first (`make test` does)", shim.display());
    bin
}

pub fn shim() -> PathBuf {
    intercept_bin().with_file_name("libintercept.so")
}

/// Fails the test loudly when a program it runs is not installed.
pub fn need(program: &str, debian_package: &str) {
    let found = std::env::var_os("PATH")
        .map(|paths| std::env::split_paths(&paths).any(|dir| dir.join(program).is_file()))
        .unwrap_or(false);
    assert!(found, "`{program}` is not installed: install the Debian package `{debian_package}` (scripts/install-deps.sh does)");
}

/// Fails loudly when a Python module is missing.
pub fn need_python_module(module: &str, pip_package: &str) {
    need("python3", "python3");
    let ok = Command::new("python3").args(["-c", &format!("import {module}")]).output().unwrap().status.success();
    assert!(ok, "python3 cannot import `{module}`: `pip install {pip_package}` (scripts/install-deps.sh does)");
}

/// A fresh directory for one test.
pub fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("intercept-it-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Writes `intercept.env` into `dir` and returns its path.
pub fn env_file(dir: &Path, text: &str) -> PathBuf {
    let path = dir.join("intercept.env");
    std::fs::write(&path, text).unwrap();
    path
}

/// `intercept ARGS…` with a clean INTERCEPT_* environment.
pub fn intercept(args: &[&str]) -> Output {
    let mut cmd = Command::new(intercept_bin());
    cmd.args(args);
    clean(&mut cmd);
    cmd.output().unwrap()
}

/// `intercept run --env-file FILE -- CMD…`.
pub fn run_with(env: &Path, cmd: &[&str]) -> Output {
    let mut args = vec!["run", "--env-file", env.to_str().unwrap(), "--"];
    args.extend_from_slice(cmd);
    intercept(&args)
}

/// Removes inherited shim settings so a test sees only its own.
pub fn clean(cmd: &mut Command) {
    for (key, _) in std::env::vars() {
        if key.starts_with("INTERCEPT_") || key == "LD_PRELOAD" {
            cmd.env_remove(key);
        }
    }
}

pub fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

pub fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// Asserts success and returns stdout.
pub fn ok(out: Output) -> String {
    assert!(out.status.success(), "status {:?}\nstdout:\n{}\nstderr:\n{}", out.status, stdout(&out), stderr(&out));
    stdout(&out)
}

/// Parses the echo app's JSON answer.
pub fn json(text: &str) -> serde_json::Value {
    serde_json::from_str(text).unwrap_or_else(|e| panic!("not JSON ({e}): {text}"))
}
