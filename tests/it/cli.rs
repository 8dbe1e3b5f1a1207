//! The `intercept` command as a user drives it: check, run, env, exit
//! statuses, children and grandchildren, and bad configuration.

use crate::common::*;

#[test]
fn check_prints_the_route_table() {
    let dir = temp_dir("check");
    let env = env_file(&dir, "INTERCEPT_ROUTE_API=http://api.example.test/v1 -> echo\nINTERCEPT_PASSTHROUGH=deny\n");
    let out = ok(intercept(&["check", "--env-file", env.to_str().unwrap()]));
    assert!(out.contains("passthrough: deny"), "{out}");
    assert!(out.contains("http://api.example.test:80/v1  -> echo"), "{out}");
    assert!(out.contains(&format!("API ({}:1)", env.display())), "{out}");
}

#[test]
fn run_passes_the_exit_status_through() {
    let dir = temp_dir("status");
    let env = env_file(&dir, "INTERCEPT_ROUTE_A=http://a.example.test -> static:404 gone\n");
    assert_eq!(run_with(&env, &["sh", "-c", "exit 7"]).status.code(), Some(7));
    need("curl", "curl");
    let out = run_with(&env, &["curl", "-sSf", "http://a.example.test/"]);
    assert_eq!(out.status.code(), Some(22), "{}", stderr(&out));
    let out = run_with(&env, &["no-such-program-anywhere"]);
    assert_eq!(out.status.code(), Some(127));
    assert!(stderr(&out).contains("cannot run no-such-program-anywhere"));
}

#[test]
fn a_grandchild_is_intercepted() {
    need("curl", "curl");
    let dir = temp_dir("grandchild");
    let env = env_file(&dir, "INTERCEPT_ROUTE_A=http://deep.example.test -> static:200 deep\n");
    // sh forks curl (it is not the last command, so sh cannot exec it).
    let out =
        ok(run_with(&env, &["sh", "-c", "curl -sS http://deep.example.test/; echo; sh -c 'curl -sS http://deep.example.test/'; echo"]));
    assert_eq!(out, "deep\ndeep\n");
}

#[test]
fn route_and_passthrough_flags() {
    need("curl", "curl");
    let out = ok(intercept(&[
        "run",
        "--route",
        "http://flag.example.test -> static:200 from a flag",
        "--passthrough",
        "deny",
        "--",
        "curl",
        "-sS",
        "http://flag.example.test/",
    ]));
    assert_eq!(out, "from a flag");
    let out = intercept(&["run", "--route", "http://flag.example.test -> static:2000", "--", "true"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("--route 'http://flag.example.test -> static:2000': bad status code"), "{}", stderr(&out));
}

#[test]
fn env_output_works_as_the_environment() {
    need("curl", "curl");
    let dir = temp_dir("env");
    let env = env_file(&dir, "INTERCEPT_ROUTE_A=http://ci.example.test -> static:200 via intercept env\n");
    let printed = ok(intercept(&["env", "--env-file", env.to_str().unwrap()]));
    assert!(printed.lines().any(|l| l == format!("LD_PRELOAD={}", shim().display())), "{printed}");
    assert!(printed.lines().any(|l| l == format!("INTERCEPT_ENV_FILE={}", env.display())), "{printed}");
    // What a CI step does with `intercept env >> "$GITHUB_ENV"`: later steps
    // start with these variables and no intercept command in sight.
    let mut curl = command("curl", &dir);
    for line in printed.lines() {
        let (k, v) = line.split_once('=').unwrap();
        curl.env(k, v);
    }
    let out = ok(curl.args(["-sS", "http://ci.example.test/"]).output().unwrap());
    assert_eq!(out, "via intercept env");
}

#[test]
fn the_default_env_file_is_read_from_the_current_directory() {
    need("curl", "curl");
    let dir = temp_dir("default-env");
    env_file(&dir, "INTERCEPT_ROUTE_A=http://cwd.example.test -> static:200 found ./intercept.env\n");
    let mut cmd = command(intercept_bin(), &dir);
    let out = ok(cmd.current_dir(&dir).args(["run", "--", "curl", "-sS", "http://cwd.example.test/"]).output().unwrap());
    assert_eq!(out, "found ./intercept.env");
}

#[test]
fn help_and_version() {
    let out = ok(intercept(&["--version"]));
    assert_eq!(out, format!("intercept {}\n", env!("CARGO_PKG_VERSION")));
    let out = ok(intercept(&["--help"]));
    for word in ["run", "check", "env", "--help"] {
        assert!(out.contains(word), "{out}");
    }
    assert_eq!(intercept(&["run"]).status.code(), Some(2));
}

/// Each bad configuration is reported as FILE:LINE with exit status 2 by
/// `check`, by `run` (before the program starts) and by the bare shim.
#[test]
fn bad_configuration_is_reported_with_file_and_line() {
    let cases = [
        ("kind", "# c\nINTERCEPT_ROUTE_A=http://a.example.test -> teapot\n", 2, "unknown app kind `teapot`"),
        ("url", "INTERCEPT_ROUTE_A=a.example.test -> echo\n", 1, "bad URL"),
        ("port", "\n\nINTERCEPT_ROUTE_A=http://a.example.test:65536 -> echo\n", 3, "bad port `65536`"),
        ("status", "INTERCEPT_ROUTE_A=http://a.example.test -> static:700 x\n", 1, "bad status code `700`"),
        ("file", "INTERCEPT_LOG=info\nINTERCEPT_ROUTE_A=http://a.example.test -> static:200 @nope.json\n", 2, "@nope.json: cannot open"),
        ("pass", "INTERCEPT_PASSTHROUGH=sometimes\n", 1, "expected allow, loopback or deny"),
        ("quote", "INTERCEPT_LOG=info\n\nINTERCEPT_ROUTE_A=\"http://a.example.test -> echo\n", 3, "unterminated double quote"),
        (
            "twice",
            "INTERCEPT_ROUTE_A=http://a.example.test -> echo\n#\nINTERCEPT_ROUTE_A=http://b.example.test -> echo\n",
            3,
            "INTERCEPT_ROUTE_A is defined twice, on lines 1 and 3",
        ),
        ("latin1", "INTERCEPT_LOG=info\n# caf\u{e9}\n", 2, "not UTF-8"),
        ("fifo", "INTERCEPT_JOURNAL=journal.fifo\n", 1, "a FIFO or socket"),
        ("dir", "\nINTERCEPT_JOURNAL=.\n", 2, "a directory, not a file"),
        ("nodir", "INTERCEPT_JOURNAL=no/such/dir/journal.jsonl\n", 1, "its directory does not exist"),
    ];
    for (name, text, line, what) in cases {
        let dir = temp_dir(&format!("bad-{name}"));
        let env = env_file(&dir, text);
        if name == "latin1" {
            // The same text in ISO-8859-1: é is one byte, not UTF-8.
            let latin1: Vec<u8> = text.replace('\u{e9}', "\u{1}").bytes().map(|b| if b == 1 { 0xe9 } else { b }).collect();
            std::fs::write(&*env, latin1).unwrap();
        }
        if name == "fifo" {
            let fifo = std::ffi::CString::new(dir.join("journal.fifo").into_os_string().into_encoded_bytes()).unwrap();
            // SAFETY: a valid path.
            assert_eq!(unsafe { libc::mkfifo(fifo.as_ptr(), 0o600) }, 0);
        }
        let expected = format!("{}:{line}: ", env.display());
        let check = |how: &str, out: std::process::Output| {
            let err = stderr(&out);
            assert_eq!(out.status.code(), Some(2), "{name} via {how}: {err}");
            assert!(err.starts_with(&expected) && err.contains(what), "{name} via {how}: {err}");
            assert_eq!(stdout(&out), "", "{name} via {how}: nothing may run");
        };
        check("check", intercept(&["check", "--env-file", env.to_str().unwrap()]));
        check("run", run_with(&env, &["echo", "ran anyway"]));
        let mut bare = command("echo", &dir);
        bare.arg("ran anyway").env("LD_PRELOAD", shim()).env("INTERCEPT_ENV_FILE", &*env);
        check("the bare shim", bare.output().unwrap());
    }
}

/// What a Windows editor writes: a byte-order mark and CRLF line ends.
#[test]
fn an_env_file_with_a_bom_and_crlf_works() {
    need("curl", "curl");
    let dir = temp_dir("bom-crlf");
    let env = env_file(
        &dir,
        "\u{feff}# made on Windows\r\nINTERCEPT_ROUTE_A=http://bom.example.test -> static:200 crlf ok\r\nINTERCEPT_LOG=error\r\n",
    );
    assert_eq!(ok(run_with(&env, &["curl", "-sS", "http://bom.example.test/"])), "crlf ok");
}

#[test]
fn log_lines_start_with_intercept() {
    need("curl", "curl");
    let dir = temp_dir("log");
    let env = env_file(&dir, "INTERCEPT_ROUTE_A=http://log.example.test -> static:200 ok\nINTERCEPT_LOG=info\n");
    let out = run_with(&env, &["curl", "-sS", "http://log.example.test/x"]);
    let err = stderr(&out);
    assert!(err.lines().any(|l| l.starts_with("intercept: GET http://log.example.test:80/x -> 200 (route A")), "{err}");
    let env = env_file(&dir, "INTERCEPT_ROUTE_A=http://log.example.test -> static:200 ok\nINTERCEPT_LOG=off\n");
    assert_eq!(stderr(&run_with(&env, &["curl", "-sS", "http://log.example.test/x"])), "");
}
