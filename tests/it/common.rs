//! Helpers for the integration tests: build what they run (once per run),
//! find the built binaries, require the real client programs, give each
//! test a directory of its own (removed when the test is done), and run
//! commands with `HOME`, `TMPDIR` and `INTERCEPT_CA_DIR` inside it, so no
//! test writes to the user's home or leaves files behind.

use std::io::{BufRead, BufReader};
use std::ops::Deref;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::OnceLock;

// Shared with the core's unit tests, which use parts these tests do not.
#[allow(dead_code)]
#[path = "../../src/testing.rs"]
mod testing;
pub use testing::{TempDir, temp_dir};

/// target/<profile>/intercept, with the shim, the example Rust app and the
/// test helpers built beside it in the same profile.
pub fn intercept_bin() -> PathBuf {
    let bin = PathBuf::from(env!("CARGO_BIN_EXE_intercept"));
    static BUILT: OnceLock<()> = OnceLock::new();
    BUILT.get_or_init(|| build_beside(&bin));
    bin
}

/// `cargo build` of the workspace members the tests run but cargo does not
/// build for an integration test (a cdylib, an example, a helper), in this
/// test binary's profile and target directory. A no-op when up to date, so
/// a shim left over from an older build is never what runs. The shim is
/// built on its own, as `make build` builds it: built with the helpers,
/// its dependencies would get features only they ask for (tokio's
/// multi-threaded runtime, and libm.so.6 with it), and the tests would run
/// a library other than the one shipped.
fn build_beside(bin: &Path) {
    let profile_dir = bin.parent().expect("target/<profile>");
    let target_dir = profile_dir.parent().expect("target");
    let profile = match profile_dir.file_name().and_then(|n| n.to_str()) {
        Some("debug") => "dev",
        Some(other) => other,
        None => panic!("cannot tell the profile of {}", bin.display()),
    };
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    for packages in [&["intercept-shim"][..], &["rust-hello-app", "tokio-client"]] {
        let mut build = Command::new(&cargo);
        // Without the variables cargo set for this test binary: ring's build
        // script reruns when CARGO_MANIFEST_DIR changes, and a build seeing
        // it would differ from `make build`'s, rebuilding ring, rustls and
        // rcgen on every run, then again for the next `cargo test`.
        for (key, _) in std::env::vars_os() {
            let key = key.to_string_lossy();
            if key == "CARGO_MANIFEST_DIR"
                || key.starts_with("CARGO_PKG_")
                || key.starts_with("CARGO_BIN_")
                || key == "CARGO_CRATE_NAME"
                || key == "CARGO_PRIMARY_PACKAGE"
            {
                build.env_remove(&*key);
            }
        }
        let out = build
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .args(["build", "--quiet", "--profile", profile, "--target-dir"])
            .arg(target_dir)
            .args(packages.iter().flat_map(|p| ["-p", p]))
            .output()
            .expect("cargo runs");
        assert!(out.status.success(), "building {packages:?} failed:\n{}", String::from_utf8_lossy(&out.stderr));
    }
}

pub fn shim() -> PathBuf {
    intercept_bin().with_file_name("libintercept.so")
}

/// Fails the test loudly when a program it runs is not installed.
pub fn need(program: &str, debian_package: &str) {
    let found = std::env::var_os("PATH").map(|paths| std::env::split_paths(&paths).any(|dir| dir.join(program).is_file())).unwrap_or(false);
    assert!(found, "`{program}` is not installed: install the Debian package `{debian_package}` (`make test` does)");
}

/// Fails loudly when a Python module is missing.
pub fn need_python_module(module: &str, pip_package: &str) {
    need("python3", "python3");
    let ok = Command::new("python3").args(["-c", &format!("import {module}")]).output().unwrap().status.success();
    assert!(ok, "python3 cannot import `{module}`: `pip install {pip_package}` (`make test` does)");
}

/// An env file, holding on to the directory it is in. Derefs to its path.
pub struct Env {
    path: PathBuf,
    _dir: TempDir,
}

impl Deref for Env {
    type Target = Path;
    fn deref(&self) -> &Path {
        &self.path
    }
}

impl AsRef<Path> for Env {
    fn as_ref(&self) -> &Path {
        &self.path
    }
}

/// Writes `intercept.env` into `dir`.
pub fn env_file(dir: &TempDir, text: &str) -> Env {
    let path = dir.join("intercept.env");
    std::fs::write(&path, text).unwrap();
    Env { path, _dir: dir.clone() }
}

/// `intercept ARGS…` with a clean environment, in the directory of the
/// `--env-file` given (else one of its own).
pub fn intercept(args: &[&str]) -> Output {
    let env_dir =
        args.iter().position(|a| *a == "--env-file").and_then(|i| args.get(i + 1)).map(|f| Path::new(f).parent().unwrap().to_path_buf());
    let own = env_dir.is_none().then(|| temp_dir("cmd"));
    let dir = env_dir.unwrap_or_else(|| own.as_deref().unwrap().to_path_buf());
    let mut cmd = command(intercept_bin(), &dir);
    cmd.args(args).output().unwrap()
}

/// Asserts that `intercept check` refuses `env` with exit status 2 and
/// `FILE:LINE: …` naming `what`.
pub fn check_refuses(env: &Env, line: usize, what: &str) {
    let out = intercept(&["check", "--env-file", env.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).starts_with(&format!("{}:{line}: ", env.display())) && stderr(&out).contains(what), "{}", stderr(&out));
}

/// `intercept run --env-file FILE -- CMD…`.
pub fn run_with(env: &Path, cmd: &[&str]) -> Output {
    let mut args = vec!["run", "--env-file", env.to_str().unwrap(), "--"];
    args.extend_from_slice(cmd);
    intercept(&args)
}

/// A command with a clean environment (see [`clean`]) whose `HOME`,
/// `TMPDIR` and CA directory are inside `dir`.
pub fn command(program: impl AsRef<std::ffi::OsStr>, dir: &Path) -> Command {
    let mut cmd = Command::new(program);
    clean(&mut cmd);
    for sub in ["home", "tmp"] {
        std::fs::create_dir_all(dir.join(sub)).unwrap();
    }
    cmd.env("HOME", dir.join("home")).env("TMPDIR", dir.join("tmp")).env("INTERCEPT_CA_DIR", dir.join("ca"));
    cmd
}

/// Removes inherited shim settings so a test sees only its own, and the
/// variables that would reach the user's own cache.
pub fn clean(cmd: &mut Command) {
    for (key, _) in std::env::vars() {
        if key.starts_with("INTERCEPT_") || key == "LD_PRELOAD" || key == "XDG_CACHE_HOME" {
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

/// A local server from tests/fixtures, stopped when dropped.
pub struct Server {
    child: Child,
    pub port: u16,
}

impl Server {
    /// The API of tests/fixtures/har_server.py, over https with a
    /// certificate and key.
    pub fn start(tls: Option<&(PathBuf, PathBuf)>) -> Server {
        let args: Vec<&Path> = tls.map(|(cert, key)| vec![cert.as_path(), key.as_path()]).unwrap_or_default();
        Server::fixture("har_server.py", &args)
    }

    /// A Python server from tests/fixtures that prints its port first.
    pub fn fixture(script: &str, args: &[&Path]) -> Server {
        need("python3", "python3");
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures").join(script);
        let mut child = Command::new("python3").arg(script).args(args).stdout(Stdio::piped()).spawn().unwrap();
        let mut line = String::new();
        BufReader::new(child.stdout.as_mut().unwrap()).read_line(&mut line).unwrap();
        let port = line.trim().parse().unwrap_or_else(|_| panic!("the test server said `{line}`"));
        Server { child, port }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A CA file (the test's own, for SSL_CERT_FILE) and a certificate and key
/// for `localhost` that it signed.
pub fn certificates(dir: &Path) -> (PathBuf, (PathBuf, PathBuf)) {
    use rcgen::{BasicConstraints, CertificateParams, IsCa, Issuer, KeyPair};
    let ca_key = KeyPair::generate().unwrap();
    let mut ca = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    // Names of their own: a leaf whose issuer name equals its subject
    // looks self-signed to OpenSSL.
    ca.distinguished_name.push(rcgen::DnType::CommonName, "intercept test CA");
    let ca_cert = ca.self_signed(&ca_key).unwrap();
    let issuer = Issuer::new(ca, ca_key);
    let key = KeyPair::generate().unwrap();
    let mut leaf = CertificateParams::new(vec!["localhost".to_string()]).unwrap();
    leaf.distinguished_name.push(rcgen::DnType::CommonName, "localhost");
    let leaf = leaf.signed_by(&key, &issuer).unwrap();
    let paths = (dir.join("test-ca.pem"), dir.join("localhost.pem"), dir.join("localhost-key.pem"));
    std::fs::write(&paths.0, ca_cert.pem()).unwrap();
    std::fs::write(&paths.1, leaf.pem()).unwrap();
    std::fs::write(&paths.2, key.serialize_pem()).unwrap();
    (paths.0, (paths.1, paths.2))
}

/// Copies a directory tree, leaving out what a build or a run left there.
pub fn copy_tree(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let name = entry.file_name().to_string_lossy().into_owned();
        if name == "__pycache__" || name == "build" || name.ends_with(".egg-info") {
            continue;
        }
        if entry.file_type().unwrap().is_dir() {
            copy_tree(&entry.path(), &to.join(&name));
        } else {
            std::fs::copy(entry.path(), to.join(&name)).unwrap();
        }
    }
}
