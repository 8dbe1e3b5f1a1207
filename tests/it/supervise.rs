//! Programs that bypass the shim, intercepted by `intercept run`'s
//! supervisor: a static busybox, Go clients with and without cgo, a raw
//! `connect` system call, children of a Go program, the supervisor's own
//! `cgi:` and `wsgi:` apps. Each runs in a fresh
//! network namespace holding only a loopback that is down, so nothing
//! unintercepted can succeed (not even a DNS query).

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use crate::common::*;

const ROUTES: &str = "INTERCEPT_ROUTE_PLAIN=http://api.test -> echo
INTERCEPT_ROUTE_SECURE=https://secure.test -> echo
INTERCEPT_ROUTE_TEXT=http://text.test -> static:200 hello from a route
";

/// `intercept run` with `env`, inside a new network namespace.
fn isolated(env: &Path, cmd: &[&str]) -> Output {
    need("unshare", "util-linux");
    let dir = env.parent().unwrap();
    let mut command = command("unshare", dir);
    command.current_dir(dir);
    // Without root, a user namespace grants the right to make one.
    // SAFETY: getuid has no preconditions.
    if unsafe { libc::getuid() } != 0 {
        command.arg("-r");
    }
    command.args(["-n", "--"]).arg(intercept_bin()).args(["run", "--env-file", env.to_str().unwrap(), "--"]).args(cmd);
    command.output().unwrap()
}

/// The static busybox, which Debian's `busybox-static` installs.
fn static_busybox() -> &'static str {
    need("busybox", "busybox-static");
    let out = Command::new("file").arg("-L").arg("/bin/busybox").output();
    if let Ok(out) = out {
        let text = stdout(&out);
        assert!(!text.contains("dynamically linked"), "/bin/busybox is dynamically linked: install `busybox-static`");
    }
    "busybox"
}

/// Builds one of the Go programs in `tests/go` into `dir`, offline, with
/// the standard library only; the build cache stays in `target/`.
fn go_build(dir: &Path, package: &str, cgo: bool) -> PathBuf {
    need("go", "golang-go");
    let out_file = dir.join(format!("{package}-{}", if cgo { "cgo" } else { "static" }));
    let cache = intercept_bin().parent().unwrap().join("go-cache");
    let built = Command::new("go")
        .current_dir(Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/go"))
        .args(["build", "-o"])
        .arg(&out_file)
        .arg(format!("./{package}"))
        .env("CGO_ENABLED", if cgo { "1" } else { "0" })
        .env("GOCACHE", cache)
        .env("GOPATH", dir.join("gopath"))
        .env("GOPROXY", "off")
        .env("GOFLAGS", "-buildvcs=false -modcacherw")
        .env("GOTELEMETRY", "off")
        .env("HOME", dir.join("home"))
        .output()
        .unwrap();
    assert!(built.status.success(), "go build ./{package}: {}", stderr(&built));
    out_file
}

#[test]
fn static_busybox_wget_fetches_a_route_directly_and_from_a_shell() {
    let busybox = static_busybox();
    let dir = temp_dir("sup-busybox");
    let env = env_file(&dir, ROUTES);
    let out = isolated(&env, &[busybox, "wget", "-q", "-O", "-", "http://text.test/"]);
    assert_eq!((stdout(&out).as_str(), stderr(&out).as_str()), ("hello from a route", ""));
    // A dynamic shell starts it: no warning, and intercepted all the same.
    let out = isolated(
        &env,
        &[
            "sh",
            "-c",
            "busybox wget -q -O - http://text.test/a; echo; busybox wget -q -O - --post-data=posted http://api.test/b | grep body",
        ],
    );
    assert_eq!(stdout(&out), "hello from a route\n  \"body\": \"posted\"\n");
    assert_eq!(stderr(&out), "");
}

#[test]
fn go_clients_with_and_without_cgo_get_and_post_over_http_and_https() {
    static_busybox();
    let dir = temp_dir("sup-go");
    let env = env_file(&dir, ROUTES);
    for cgo in [false, true] {
        let client = go_build(&dir, "client", cgo);
        let client = client.to_str().unwrap();
        // The routed names' addresses, from /etc/hosts as a supervised
        // program reads it.
        let script = format!(
            "busybox grep -E '^198[.].* (api|secure)[.]test$' /etc/hosts; \
             {client} GET 'http://api.test/get?q=1' && {client} POST https://secure.test/post 'a posted body'"
        );
        let out = isolated(&env, &["sh", "-c", &script]);
        let text = ok(out);
        let lines: Vec<&str> = text.lines().collect();
        let address =
            |name: &str| lines.iter().find_map(|l| l.strip_suffix(&format!(" {name}"))).unwrap_or_else(|| panic!("{name} not in {text}"));
        let (plain, secure) = (address("api.test"), address("secure.test"));
        let got: Vec<&str> = lines.iter().copied().filter(|l| !l.starts_with("  \"headers\"")).collect();
        let text = got.join("\n");
        for expected in [
            format!("200\ntcp {plain}:80\n{{"),
            "\"method\": \"GET\"".to_string(),
            "\"query\": \"q=1\"".to_string(),
            format!("200\ntcp {secure}:443\n{{"),
            "\"method\": \"POST\"".to_string(),
            "\"scheme\": \"https\"".to_string(),
            "\"body\": \"a posted body\"".to_string(),
        ] {
            assert!(text.contains(&expected), "cgo={cgo}: `{expected}` not in:\n{text}");
        }
    }
}

#[test]
fn a_go_program_runs_curl_and_static_busybox_as_children() {
    need("curl", "curl");
    let busybox = static_busybox();
    let dir = temp_dir("sup-children");
    let env = env_file(&dir, ROUTES);
    let spawn = go_build(&dir, "spawn", false);
    let out = isolated(&env, &[spawn.to_str().unwrap(), "http://text.test/"]);
    assert_eq!(ok(out), format!("curl: hello from a route\n{busybox}: hello from a route\n"));
}

#[test]
fn a_raw_connect_system_call_is_intercepted_in_all_mode() {
    let dir = temp_dir("sup-raw");
    let program = build_c(&dir, "raw_connect", &[]);
    // By default a dynamic program is left to the shim, which a raw
    // system call bypasses.
    let env = env_file(&dir, ROUTES);
    let out = isolated(&env, &[program.to_str().unwrap(), "text.test", "80"]);
    assert!(!out.status.success() && stderr(&out).contains("connect: "), "{}", stdout(&out));
    let env = env_file(&dir, &format!("{ROUTES}INTERCEPT_SUPERVISE=all\n"));
    let out = ok(isolated(&env, &[program.to_str().unwrap(), "text.test", "80"]));
    assert!(out.starts_with("HTTP/1.1 200 OK\r\n"), "{out}");
    assert!(out.ends_with("\r\n\r\nhello from a route"), "{out}");
}

#[test]
fn deny_mode_refuses_a_supervised_programs_unrouted_connect() {
    let busybox = static_busybox();
    let dir = temp_dir("sup-deny");
    let env = env_file(&dir, &format!("{ROUTES}INTERCEPT_PASSTHROUGH=deny\nINTERCEPT_JOURNAL=journal.jsonl\n"));
    let out = isolated(&env, &[busybox, "wget", "-q", "-O", "-", "http://127.0.0.1:9/"]);
    assert!(!out.status.success());
    let err = stderr(&out);
    assert!(err.contains("intercept: refused connection to 127.0.0.1:9") && err.contains("INTERCEPT_PASSTHROUGH=deny"), "{err}");
    assert!(err.contains("Connection refused"), "{err}");
    let journal = std::fs::read_to_string(dir.join("journal.jsonl")).unwrap();
    assert!(journal.contains("\"blocked\"") && journal.contains("127.0.0.1:9"), "{journal}");
    // A routed host still answers. Journal lines name the supervised
    // process (the shell's pid, which `exec` keeps), not the supervisor.
    let out = isolated(&env, &["sh", "-c", "echo $$; exec busybox wget -q -O - http://text.test/"]);
    let text = ok(out);
    let (pid, body) = text.split_once('\n').unwrap();
    assert_eq!(body, "hello from a route");
    let journal = std::fs::read_to_string(dir.join("journal.jsonl")).unwrap();
    let request = journal.lines().map(json).find(|l| l["event"] == "request").expect("a request line");
    assert_eq!(request["pid"].to_string(), pid, "{journal}");
    // busybox names the port in its Host header.
    assert_eq!(request["url"], "http://text.test:80/");
}

#[test]
fn unsupervised_a_static_program_is_named_and_runs_unintercepted() {
    let busybox = static_busybox();
    let dir = temp_dir("sup-off");
    let env = env_file(&dir, ROUTES);
    let wget = [busybox, "wget", "-q", "-O", "-", "http://text.test/"];
    // Supervision unavailable: an outer `intercept run` (with no route,
    // filtering its whole tree) already listens, and Linux allows one
    // listener per process.
    let bin = intercept_bin();
    let outer = env_file(&temp_dir("sup-outer"), "INTERCEPT_SUPERVISE=all\n");
    let mut inner = vec![bin.to_str().unwrap(), "run", "--env-file", env.to_str().unwrap(), "--"];
    inner.extend(wget);
    let out = isolated(&outer, &inner);
    assert!(!out.status.success(), "{}", stdout(&out));
    assert_eq!(
        stderr(&out).lines().next().unwrap_or(""),
        "intercept: cannot supervise busybox: another supervisor already listens to its system calls; \
         only what loads libintercept.so is intercepted (static binaries and Go are not)"
    );
    // INTERCEPT_SUPERVISE=never: the warning of old, and no interception.
    let never = env_file(&temp_dir("sup-never"), &format!("{ROUTES}INTERCEPT_SUPERVISE=never\n"));
    let out = isolated(&never, &wget);
    assert!(!out.status.success());
    assert!(
        stderr(&out).starts_with("intercept: warning: ")
            && stderr(&out).contains("busybox is statically linked, so it does not load libintercept.so"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn intercept_run_passes_signals_on_and_exits_as_the_program_did() {
    use std::io::{BufRead, BufReader};
    use std::os::unix::process::ExitStatusExt;
    use std::process::Stdio;
    let dir = temp_dir("sup-signals");
    let env = env_file(&dir, ROUTES);
    let mut child = command(intercept_bin(), &dir)
        .args(["run", "--env-file", env.to_str().unwrap(), "--", "sh", "-c"])
        .arg("trap 'echo got TERM; exit 3' TERM; echo ready; sleep 10 & wait")
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    assert_eq!(lines.next().unwrap().unwrap(), "ready");
    // SAFETY: a signal to our own child.
    unsafe { libc::kill(child.id() as libc::pid_t, libc::SIGTERM) };
    assert_eq!(lines.next().unwrap().unwrap(), "got TERM");
    assert_eq!(child.wait().unwrap().code(), Some(3));
    // A program killed by a signal: intercept run ends by the same one.
    let out = run_with(&env, &["sh", "-c", "kill -TERM $$"]);
    assert_eq!(out.status.signal(), Some(libc::SIGTERM));
    assert_eq!(run_with(&env, &["sh", "-c", "exit 7"]).status.code(), Some(7));
}

/// Builds `tests/c/NAME.c` into `dir`, with `flags` (`-static` needs
/// libc6-dev's libc.a).
fn build_c(dir: &Path, name: &str, flags: &[&str]) -> PathBuf {
    need("cc", "gcc");
    let program = dir.join(name);
    let source = Path::new(env!("CARGO_MANIFEST_DIR")).join(format!("tests/c/{name}.c"));
    let built = Command::new("cc").arg("-O2").args(flags).arg("-o").arg(&program).arg(&source).output().unwrap();
    assert!(built.status.success(), "cc {flags:?}: {}", stderr(&built));
    program
}

#[test]
fn a_background_job_is_served_after_intercept_run_returned() {
    need("curl", "curl");
    let busybox = static_busybox();
    let dir = temp_dir("sup-background");
    let env = env_file(&dir, ROUTES);
    let out_file = dir.join("job.out");
    std::fs::create_dir_all(dir.join("listed/one")).unwrap();
    std::fs::write(dir.join("listed/two"), "").unwrap();
    // The job starts its programs two seconds after `intercept run` has
    // returned: a dynamic one, a routed curl, a supervised static wget.
    let job = format!(
        "(sleep 2; /bin/echo ok; curl -s http://text.test/a; echo; {busybox} wget -q -O - http://text.test/b; echo; ls {listed}; echo done) > {out} 2>&1 & exit 0",
        listed = dir.join("listed").display(),
        out = out_file.display()
    );
    intercept_bin();
    let started = std::time::Instant::now();
    // `output()` waits for stdout and stderr to close: none of ours may
    // hold them.
    let out = isolated(&env, &["sh", "-c", &job]);
    let took = started.elapsed();
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(took < std::time::Duration::from_secs(1), "intercept run took {took:?}");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    let text = loop {
        let text = std::fs::read_to_string(&out_file).unwrap_or_default();
        if text.ends_with("done\n") || std::time::Instant::now() > deadline {
            break text;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    };
    assert_eq!(text, "ok\nhello from a route\nhello from a route\none\ntwo\ndone\n");
}

#[test]
fn a_static_program_is_supervised_however_it_is_started() {
    let busybox = static_busybox();
    let dir = temp_dir("sup-started");
    let env = env_file(&dir, ROUTES);
    let start = build_c(&dir, "start", &[]);
    let url = "http://text.test/";
    for mode in [
        "posix_spawn",
        "posix_spawnp",
        "system",
        "popen",
        "execl",
        "execlp",
        "execle",
        "execv",
        "vfork-execv",
        "execvp",
        "fexecve",
        "execveat",
    ] {
        let out = isolated(&env, &[start.to_str().unwrap(), mode, url]);
        assert_eq!((stdout(&out).as_str(), stderr(&out).as_str()), ("hello from a route", ""), "{mode}");
    }
    // GNU make (posix_spawn for a simple command), Python's subprocess,
    // Node's child_process.
    std::fs::write(dir.join("Makefile"), format!("all:\n\t{busybox} wget -q -O - {url}\n")).unwrap();
    let out = isolated(&env, &["make", "-s", "-C", dir.to_str().unwrap()]);
    assert_eq!(ok(out), "hello from a route");
    need("python3", "python3");
    let python =
        format!("import subprocess; print(subprocess.run(['{busybox}', 'wget', '-q', '-O', '-', '{url}'], capture_output=True).stdout)");
    assert_eq!(ok(isolated(&env, &["python3", "-c", &python])), "b'hello from a route'\n");
    need("node", "nodejs");
    let node = format!("process.stdout.write(require('child_process').execFileSync('{busybox}', ['wget', '-q', '-O', '-', '{url}']))");
    assert_eq!(ok(isolated(&env, &["node", "-e", &node])), "hello from a route");
    // A cgo Go program's exec.Command (Go forks and execs with raw system
    // calls: the Go program itself is supervised, its children inherit).
    let spawn = go_build(&dir, "spawn", true);
    let out = isolated(&env, &[spawn.to_str().unwrap(), url]);
    assert_eq!(ok(out), format!("curl: hello from a route\n{busybox}: hello from a route\n"));
    // Unsupervised, the same program is not intercepted: the test can fail.
    let never = env_file(&dir, &format!("{ROUTES}INTERCEPT_SUPERVISE=never\n"));
    let out = isolated(&never, &[start.to_str().unwrap(), "posix_spawn", url]);
    assert!(!out.status.success() && stderr(&out).contains("is statically linked"), "{}", stderr(&out));
}

/// A user made for one test, with passwordless sudo as CI runners give
/// it; removed (with its sudoers file) when dropped.
struct SudoUser {
    name: String,
    sudoers: PathBuf,
}

impl SudoUser {
    fn make() -> SudoUser {
        // SAFETY: getuid has no preconditions.
        let uid = unsafe { libc::getuid() };
        assert_eq!(uid, 0, "this test makes a throwaway user with passwordless sudo: run it as root (CI does), or give it such a user");
        need("sudo", "sudo");
        need("useradd", "passwd");
        let name = format!("icsudo{}", std::process::id());
        let made = Command::new("useradd").args(["--no-create-home", "--shell", "/bin/sh", &name]).output().unwrap();
        assert!(made.status.success(), "useradd: {}", stderr(&made));
        let sudoers = PathBuf::from(format!("/etc/sudoers.d/{name}"));
        let user = SudoUser { name, sudoers };
        std::fs::write(&user.sudoers, format!("{} ALL=(ALL) NOPASSWD: ALL\n", user.name)).unwrap();
        std::fs::set_permissions(&user.sudoers, std::os::unix::fs::PermissionsExt::from_mode(0o440)).unwrap();
        user
    }
}

impl Drop for SudoUser {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.sudoers);
        let _ = Command::new("userdel").arg(&self.name).output();
    }
}

#[test]
fn sudo_keeps_its_privileges_under_intercept_run() {
    let user = SudoUser::make();
    let dir = temp_dir("sup-sudo");
    let home = dir.join("user");
    std::fs::create_dir_all(&home).unwrap();
    let chown = Command::new("chown").args([&user.name, home.to_str().unwrap()]).output().unwrap();
    assert!(chown.status.success(), "chown: {}", stderr(&chown));
    // The build may lie where only root can reach it (a checkout in a
    // `mktemp -d` directory): the user runs copies.
    let bin = dir.join("bin");
    std::fs::create_dir_all(&bin).unwrap();
    let intercept = bin.join("intercept");
    std::fs::copy(intercept_bin(), &intercept).unwrap();
    std::fs::copy(shim(), bin.join("libintercept.so")).unwrap();
    let as_user = |mode: &str| {
        let mut cmd = command("runuser", &dir);
        cmd.args(["-u", &user.name, "--", "env"])
            .arg(format!("HOME={}", home.display()))
            .arg(format!("TMPDIR={}", home.display()))
            .arg(format!("INTERCEPT_CA_DIR={}", home.join("ca").display()))
            .arg(format!("INTERCEPT_SUPERVISE={mode}"))
            .arg(&intercept)
            .args(["run", "--route", "http://text.test -> static:200 hello", "--", "sh", "-c", "sudo -n id -u"]);
        cmd.output().unwrap()
    };
    let out = as_user("auto");
    assert_eq!(stdout(&out), "0\n", "{}", stderr(&out));
    // Filtering the whole tree takes the privileges: the test can fail.
    let out = as_user("all");
    assert!(stderr(&out).contains("no new privileges"), "{}", stderr(&out));
}

#[test]
fn deny_holds_for_an_i386_connect_and_a_fast_open_send() {
    let dir = temp_dir("sup-hostile");
    let program = build_c(&dir, "hostile_connect", &["-static"]);
    let deny = env_file(&dir, &format!("{ROUTES}INTERCEPT_PASSTHROUGH=deny\n"));
    let never = env_file(&temp_dir("sup-hostile-never"), &format!("{ROUTES}INTERCEPT_PASSTHROUGH=deny\nINTERCEPT_SUPERVISE=never\n"));
    for how in ["int80", "fastopen"] {
        let out = isolated(&deny, &[program.to_str().unwrap(), how]);
        assert_eq!(stdout(&out), "refused: Connection refused\n", "{how}: {}", stderr(&out));
        assert!(stderr(&out).contains("INTERCEPT_PASSTHROUGH=deny"), "{how}: {}", stderr(&out));
        // Unsupervised, the same program gets through: the test can fail.
        let out = isolated(&never, &[program.to_str().unwrap(), how]);
        assert_eq!(stdout(&out), "connected\n", "{how} unsupervised: {}", stderr(&out));
    }
}

#[test]
fn a_terminal_interrupt_reaches_the_program_once() {
    use std::io::{BufRead, BufReader};
    use std::os::unix::process::CommandExt;
    use std::process::Stdio;
    need("python3", "python3");
    let dir = temp_dir("sup-sigint");
    let env = env_file(&dir, ROUTES);
    // A clean-up that takes a while, as a test suite's does.
    let script = "import signal, sys, time\n\
                  got = []\n\
                  signal.signal(signal.SIGINT, lambda *a: got.append(1))\n\
                  print('ready', flush=True)\n\
                  while not got: time.sleep(0.01)\n\
                  time.sleep(0.3)\n\
                  print(len(got), flush=True)\n";
    for round in 0..20 {
        let mut child = command(intercept_bin(), &dir);
        child.args(["run", "--env-file", env.to_str().unwrap(), "--", "python3", "-c", script]).stdout(Stdio::piped());
        // A session and group of its own, with no terminal, as in CI.
        // SAFETY: setsid in the child before exec.
        unsafe { child.pre_exec(|| (libc::setsid() >= 0).then_some(()).ok_or_else(std::io::Error::last_os_error)) };
        let mut child = child.spawn().unwrap();
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        assert_eq!(lines.next().unwrap().unwrap(), "ready");
        // What a CI runner's cancel does: the signal to the whole group.
        // SAFETY: a signal to our own child's process group.
        unsafe { libc::kill(-(child.id() as libc::pid_t), libc::SIGINT) };
        assert_eq!(lines.next().unwrap().unwrap(), "1", "round {round}");
        assert!(child.wait().unwrap().success());
    }
}

/// The supervisor's apps start processes of their own: a `cgi:` program
/// per request and a `wsgi:` worker kept for its route. A static program
/// is answered by both, and the run still ends when it does, leaving no
/// worker behind (the supervisor is not the keeper, which reaps every
/// child of the run and would take these from it).
#[test]
fn a_static_program_is_answered_by_cgi_and_wsgi_routes() {
    use std::os::unix::fs::PermissionsExt;
    let busybox = static_busybox();
    need("python3", "python3");
    let dir = temp_dir("sup-apps");
    let cgi = dir.join("hello.cgi");
    std::fs::write(&cgi, "#!/bin/sh\nprintf 'Content-Type: text/plain\\r\\n\\r\\ncgi says %s' \"$QUERY_STRING\"\n").unwrap();
    std::fs::set_permissions(&cgi, std::fs::Permissions::from_mode(0o755)).unwrap();
    // A module name no other process has, to find its worker by.
    let module = format!("supervised_app_{}", std::process::id());
    std::fs::write(
        dir.join(format!("{module}.py")),
        "def app(environ, start_response):\n    start_response('200 OK', [('Content-Type', 'text/plain')])\n    return [b'wsgi says ' + environ['PATH_INFO'].encode()]\n",
    )
    .unwrap();
    let env = env_file(
        &dir,
        &format!("INTERCEPT_ROUTE_CGI=http://cgi.test -> cgi:./hello.cgi\nINTERCEPT_ROUTE_WSGI=http://wsgi.test -> wsgi:{module}:app\n"),
    );
    let fetch = format!("{busybox} wget -q -O - 'http://cgi.test/?a=1'; echo; {busybox} wget -q -O - http://wsgi.test/w");
    let out = isolated(&env, &["sh", "-c", &fetch]);
    assert_eq!((stdout(&out).as_str(), stderr(&out).as_str()), ("cgi says a=1\nwsgi says /w", ""));
    let workers = || {
        std::fs::read_dir("/proc")
            .unwrap()
            .filter_map(|e| std::fs::read(e.ok()?.path().join("cmdline")).ok())
            .filter(|cmdline| String::from_utf8_lossy(cmdline).contains(&module))
            .count()
    };
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while workers() > 0 && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    assert_eq!(workers(), 0, "the WSGI worker outlived the run");
}
