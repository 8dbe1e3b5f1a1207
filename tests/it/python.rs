//! The Python package as a user gets it: a fresh venv, `pip install
//! ./bindings/python` (the CLI and libintercept.so inside), then plain
//! `pytest` on examples/python-suite, with no `intercept run` in sight: the
//! package's pytest plugin starts pytest again under the shim.

use std::path::Path;

use crate::common::*;

#[test]
fn a_fresh_venv_with_the_package_runs_a_suite_with_plain_pytest() {
    need("python3", "python3");
    let repo = Path::new(env!("CARGO_MANIFEST_DIR"));
    let dir = temp_dir("fresh-venv");
    // A copy, so the package's build leaves nothing in the repository.
    copy_tree(&repo.join("bindings/python"), &dir.join("pkg"));
    let venv = dir.join("venv");
    ok(command("python3", &dir).args(["-m", "venv"]).arg(&venv).output().unwrap());
    let bin_dir = intercept_bin().parent().unwrap().to_path_buf();
    let install = command(venv.join("bin/pip"), &dir)
        .current_dir(&*dir)
        .args(["install", "--quiet", "--disable-pip-version-check", "./pkg", "pytest==8.3.4"])
        .env("PIP_CACHE_DIR", dir.join("pip-cache"))
        .env("INTERCEPT_BIN_DIR", &bin_dir)
        .output()
        .unwrap();
    ok(install);
    // The CLI came with the package.
    let version = ok(command(venv.join("bin/intercept"), &dir).arg("--version").output().unwrap());
    assert!(version.starts_with("intercept "), "{version}");
    let out = command(venv.join("bin/pytest"), &dir)
        .current_dir(&*dir)
        .args(["-q", "-p", "no:cacheprovider"])
        .arg(repo.join("examples/python-suite"))
        .env("PYTHONDONTWRITEBYTECODE", "1")
        .output()
        .unwrap();
    let (text, err) = (stdout(&out), stderr(&out));
    assert!(out.status.success(), "{text}\n{err}");
    assert!(text.lines().last().is_some_and(|l| l.starts_with("5 passed")), "{text}");
    assert_eq!(err.matches("intercept: pytest started without the shim; running it again under").count(), 1, "{err}");
}
