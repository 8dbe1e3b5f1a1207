//! The documentation, run: every shell example of README.md,
//! docs/guide.md and docs/architecture.md is executed and its output
//! compared with what the page shows, and every relative link must lead
//! to a file.
//!
//! How a page is read (docs/architecture.md says the same to writers):
//!
//! - A ```` ```console ```` block is a shell session. A line starting
//!   `$ ` is a command (a line ending in `\` goes on to the next); the
//!   lines after it, up to the next command, are its output, stdout and
//!   stderr together. `…` in a line matches any text; a line that is only
//!   `…` matches any number of lines. Every command must exit 0 (a page
//!   shows a failure with `; echo "exit $?"`).
//! - A block whose info string holds `file=PATH` is written to PATH before
//!   the commands after it run.
//! - Any other `sh`, `bash` or `shell` block fails the test: a shell
//!   example that is not run is not allowed.
//!
//! Each page runs in a scratch directory of its own, in order, with `HOME`
//! and `TMPDIR` inside it, the built `intercept` first on `PATH`, the
//! repository's `examples/` linked in and `bindings/python` copied in (a
//! `pip install` of it takes the built binaries, `INTERCEPT_BIN_DIR`).

use std::io::Read;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::common::*;

/// The programs the pages' examples run, and the Debian package of each:
/// a missing one fails the page at once, naming it.
const PROGRAMS: [(&str, &str); 9] = [
    ("curl", "curl"),
    ("wget", "wget"),
    ("python3", "python3"),
    ("busybox", "busybox-static"),
    ("go", "golang-go"),
    ("node", "nodejs"),
    ("java", "default-jdk-headless"),
    ("git", "git"),
    ("php", "php-cli"),
];

/// How long one command of a page may take.
const COMMAND_TIMEOUT: Duration = Duration::from_secs(60);

/// One fenced block of a page.
struct Block {
    /// The line of its opening fence, from 1.
    line: usize,
    lang: String,
    file: Option<String>,
    body: String,
}

/// The fenced blocks of a Markdown page, in order.
fn blocks(text: &str) -> Vec<Block> {
    let mut out = Vec::new();
    let mut open: Option<Block> = None;
    for (n, line) in text.lines().enumerate() {
        let fence = line.trim_start().strip_prefix("```");
        match (&mut open, fence) {
            (None, Some(info)) => {
                let mut words = info.split_whitespace();
                let lang = words.next().unwrap_or("").to_string();
                let file = words.find_map(|w| w.strip_prefix("file=")).map(str::to_string);
                open = Some(Block { line: n + 1, lang, file, body: String::new() });
            }
            (Some(_), Some(rest)) if rest.trim().is_empty() => out.extend(open.take()),
            (Some(block), _) => {
                block.body.push_str(line);
                block.body.push('\n');
            }
            (None, None) => {}
        }
    }
    assert!(open.is_none(), "a fenced block is never closed");
    out
}

/// One command of a console block and the output the page shows for it.
struct Step {
    line: usize,
    command: String,
    expected: Vec<String>,
}

/// The commands of a console block.
fn steps(block: &Block) -> Vec<Step> {
    let mut out: Vec<Step> = Vec::new();
    let mut continued = false;
    for (n, line) in block.body.lines().enumerate() {
        if continued {
            let step = out.last_mut().unwrap();
            step.command.push('\n');
            step.command.push_str(line);
            continued = line.ends_with('\\');
        } else if let Some(command) = line.strip_prefix("$ ") {
            out.push(Step { line: block.line + n + 1, command: command.to_string(), expected: Vec::new() });
            continued = command.ends_with('\\');
        } else {
            let step = out.last_mut().unwrap_or_else(|| panic!("line {}: output before any `$ ` command", block.line + n + 1));
            step.expected.push(line.to_string());
        }
    }
    out
}

/// Whether `line` matches `pattern`, where `…` stands for any text.
fn line_matches(pattern: &str, line: &str) -> bool {
    let mut parts = pattern.split('…');
    let first = parts.next().unwrap_or("");
    let Some(mut rest) = line.strip_prefix(first) else { return false };
    let parts: Vec<&str> = parts.collect();
    for (i, part) in parts.iter().enumerate() {
        if i + 1 == parts.len() {
            return rest.ends_with(part);
        }
        match rest.find(part) {
            Some(at) => rest = &rest[at + part.len()..],
            None => return false,
        }
    }
    rest.is_empty()
}

/// Whether the output lines match the page's, where a line `…` stands for
/// any number of lines.
fn output_matches(expected: &[String], actual: &[&str]) -> bool {
    match expected.split_first() {
        None => actual.is_empty(),
        Some((first, rest)) if first == "…" => (0..=actual.len()).any(|skip| output_matches(rest, &actual[skip..])),
        Some((first, rest)) => actual.split_first().is_some_and(|(line, more)| line_matches(first, line) && output_matches(rest, more)),
    }
}

fn repo() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// Runs one command in the page's directory; returns its output or why it
/// failed.
fn run_step(dir: &Path, step: &Step, groups: &mut Vec<i32>) -> Result<String, String> {
    let bin_dir = intercept_bin().parent().unwrap().to_path_buf();
    let path = std::env::var_os("PATH").unwrap_or_default();
    let path = std::env::join_paths(std::iter::once(bin_dir.clone()).chain(std::env::split_paths(&path))).unwrap();
    let (mut reader, writer) = std::io::pipe().unwrap();
    let mut cmd = Command::new("bash");
    clean(&mut cmd);
    cmd.arg("-c")
        .arg(&step.command)
        .current_dir(dir)
        .env("HOME", dir)
        .env("TMPDIR", dir.join(".tmp"))
        .env("PATH", path)
        .env("INTERCEPT_BIN_DIR", &bin_dir)
        .env("PIP_DISABLE_PIP_VERSION_CHECK", "1")
        .env("PYTHONDONTWRITEBYTECODE", "1")
        // Go builds offline, with the build cache the Go tests share.
        .env("GOCACHE", bin_dir.join("go-cache"))
        .env("GOPROXY", "off")
        .env("GOFLAGS", "-buildvcs=false")
        .env("GOTELEMETRY", "off")
        .stdin(Stdio::null())
        .stdout(writer.try_clone().unwrap())
        .stderr(writer)
        .process_group(0);
    let mut child = cmd.spawn().map_err(|e| format!("cannot start bash: {e}"))?;
    groups.push(child.id() as i32);
    // The command's own handles went with it; read until every writer is gone.
    drop(cmd);
    let reading = std::thread::spawn(move || {
        let mut out = Vec::new();
        let _ = reader.read_to_end(&mut out);
        out
    });
    let started = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if started.elapsed() > COMMAND_TIMEOUT {
            let _ = child.kill();
            return Err(format!("did not end within {COMMAND_TIMEOUT:?}"));
        }
        std::thread::sleep(Duration::from_millis(5));
    };
    let waited = Instant::now();
    while !reading.is_finished() {
        if waited.elapsed() > Duration::from_secs(5) {
            return Err("ended, but something it started still holds its output (send a background job's output elsewhere)".into());
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    let out = String::from_utf8_lossy(&reading.join().unwrap()).into_owned();
    if !status.success() {
        return Err(format!("exited with {status}; its output:\n{out}"));
    }
    Ok(out)
}

/// Runs every example of the page at `rel` (from the repository's root).
fn run_page(rel: &str) {
    for (program, package) in PROGRAMS {
        need(program, package);
    }
    let page = repo().join(rel);
    let text = std::fs::read_to_string(&page).unwrap_or_else(|e| panic!("{rel}: {e}"));
    let dir = temp_dir("docs");
    std::fs::create_dir_all(dir.join(".tmp")).unwrap();
    std::os::unix::fs::symlink(repo().join("examples"), dir.join("examples")).unwrap();
    copy_tree(&repo().join("bindings/python"), &dir.join("bindings/python"));
    let mut groups = Vec::new();
    let mut failures = Vec::new();
    let mut ran = 0;
    for block in blocks(&text) {
        if let Some(file) = &block.file {
            let path = dir.join(file);
            assert!(!file.starts_with('/') && !file.contains(".."), "{rel}:{}: file={file} must stay in the page's directory", block.line);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(&path, &block.body).unwrap();
            continue;
        }
        match block.lang.as_str() {
            "console" => {}
            "sh" | "bash" | "shell" | "zsh" => {
                failures.push(format!("{rel}:{}: a `{}` block is neither a `console` session nor a `file=`", block.line, block.lang));
                continue;
            }
            _ => continue,
        }
        for step in steps(&block) {
            ran += 1;
            match run_step(&dir, &step, &mut groups) {
                Ok(out) => {
                    let actual: Vec<&str> = out.lines().map(str::trim_end).collect();
                    let expected: Vec<String> = step.expected.iter().map(|l| l.trim_end().to_string()).collect();
                    if !output_matches(&expected, &actual) {
                        failures.push(format!(
                            "{rel}:{}: `{}` printed\n{}\nwhere the page shows\n{}",
                            step.line,
                            step.command,
                            actual.join("\n"),
                            expected.join("\n")
                        ));
                    }
                }
                Err(why) => failures.push(format!("{rel}:{}: `{}` {why}", step.line, step.command)),
            }
        }
    }
    for group in groups {
        // SAFETY: kill(2) with a negative pid signals that process group;
        // one already gone is ESRCH, which is fine.
        unsafe { libc::kill(-group, libc::SIGKILL) };
    }
    assert!(failures.is_empty(), "{} of {ran} commands failed:\n\n{}", failures.len(), failures.join("\n\n"));
}

/// Every relative link of the page names a file or directory that exists.
fn links_lead_somewhere(rel: &str) {
    let page = repo().join(rel);
    let text = std::fs::read_to_string(&page).unwrap();
    let mut missing = Vec::new();
    for (at, _) in text.match_indices("](") {
        let target = text[at + 2..].split(')').next().unwrap_or("");
        let target = target.split('#').next().unwrap_or("");
        if target.is_empty() || target.contains("://") || target.starts_with("mailto:") {
            continue;
        }
        if !page.parent().unwrap().join(target).exists() {
            missing.push(target.to_string());
        }
    }
    assert!(missing.is_empty(), "{rel} links to files that do not exist: {missing:?}");
}

#[test]
fn the_readme_runs_as_written() {
    run_page("README.md");
    links_lead_somewhere("README.md");
    let lines = std::fs::read_to_string(repo().join("README.md")).unwrap().lines().count();
    assert!(lines <= 200, "README.md has {lines} lines: the details belong in docs/guide.md");
}

#[test]
fn the_guide_runs_as_written() {
    run_page("docs/guide.md");
    links_lead_somewhere("docs/guide.md");
}

#[test]
fn the_architecture_page_runs_as_written() {
    run_page("docs/architecture.md");
    links_lead_somewhere("docs/architecture.md");
}

#[test]
fn output_patterns_match_as_the_pages_say() {
    assert!(line_matches("a…c", "abbbc"));
    assert!(line_matches("…", ""));
    assert!(line_matches("curl/…", "curl/7.88.1"));
    assert!(!line_matches("a…c", "abd"));
    assert!(!line_matches("abc", "abcd"));
    let lines = |s: &[&str]| s.iter().map(|l| l.to_string()).collect::<Vec<_>>();
    assert!(output_matches(&lines(&["x", "…", "y"]), &["x", "1", "2", "y"]));
    assert!(output_matches(&lines(&["x", "…", "y"]), &["x", "y"]));
    assert!(!output_matches(&lines(&["x", "y"]), &["x", "1", "y"]));
    let block = Block { line: 1, lang: "console".into(), file: None, body: "$ echo a \\\n  b\na b\n$ true\n".into() };
    let steps = steps(&block);
    assert_eq!(steps.len(), 2);
    assert_eq!(steps[0].command, "echo a \\\n  b");
    assert_eq!(steps[0].expected, ["a b"]);
    assert_eq!(steps[1].line, 5);
}
