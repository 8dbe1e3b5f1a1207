//! `intercept verify`: what a test asserts after the program ran — reads a
//! journal and checks that the expected requests were made (`--expect
//! 'METHOD URL[ xCOUNT]'`, URL exact or a pattern over the path and query,
//! or over the whole URL when it starts with a scheme), that every request
//! was answered by a route and a stub (`--no-unmatched`), and that every
//! stub of a directory was used (`--unused-stubs DIR`). Exit 0, or 1 with a
//! report; 2 when the journal or a flag cannot be read.

use std::path::Path;

use intercept::apps::stubs;
use regex::bytes::Regex;
use serde_json::Value;

/// One `--expect`.
pub struct Expect {
    method: Option<String>,
    url: String,
    pattern: Option<Regex>,
    count: Option<usize>,
}

impl Expect {
    pub fn parse(text: &str) -> Result<Expect, String> {
        let words: Vec<&str> = text.split_whitespace().collect();
        let (method, url, count) = match words.as_slice() {
            [method, url] => (method, url, None),
            [method, url, count] => {
                let n = count
                    .strip_prefix('x')
                    .and_then(|n| n.parse().ok())
                    .ok_or_else(|| format!("--expect '{text}': the count is `xN`, as in x2"))?;
                (method, url, Some(n))
            }
            _ => return Err(format!("--expect '{text}': expected 'METHOD URL[ xCOUNT]'")),
        };
        let method = (*method != "ANY").then(|| method.to_ascii_uppercase());
        let pattern = stubs::pattern_of(url).ok();
        Ok(Expect { method, url: url.to_string(), pattern, count })
    }

    fn matches(&self, r: &Seen) -> bool {
        let target = if self.url.contains("://") { &r.url } else { &r.target };
        self.method.as_ref().is_none_or(|m| *m == r.method)
            && (*target == self.url || self.pattern.as_ref().is_some_and(|p| p.is_match(target.as_bytes())))
    }
}

/// A request line of the journal.
struct Seen {
    method: String,
    url: String,
    /// Path and query.
    target: String,
    route: String,
    /// Some(None): a stubs route answered with no stub (or a har route
    /// with no recorded entry).
    stub: Option<Option<String>>,
    status: u64,
}

fn read(journal: &Path) -> Result<Vec<Seen>, String> {
    let text = std::fs::read_to_string(journal).map_err(|e| format!("cannot read the journal {}: {e}", journal.display()))?;
    let mut seen = Vec::new();
    for (i, line) in text.lines().enumerate().filter(|(_, l)| !l.trim().is_empty()) {
        let v: Value = serde_json::from_str(line).map_err(|e| format!("{}:{}: not a journal line: {e}", journal.display(), i + 1))?;
        if v["event"] != "request" {
            continue;
        }
        let url = v["url"].as_str().unwrap_or_default().to_string();
        let target = intercept::url::origin_form(&url).into_owned();
        seen.push(Seen {
            method: v["method"].as_str().unwrap_or_default().to_string(),
            target,
            url,
            route: v["route"].as_str().unwrap_or_default().to_string(),
            stub: v.get("stub").or(v.get("entry")).map(|s| s.as_str().map(str::to_string)),
            status: v["status"].as_u64().unwrap_or(0),
        });
    }
    Ok(seen)
}

/// Checks the journal; Ok(report) with an empty report when all holds.
pub fn verify(journal: &Path, expects: &[Expect], no_unmatched: bool, unused_stubs: Option<&Path>) -> Result<String, String> {
    let seen = read(journal)?;
    let mut report = String::new();
    for e in expects {
        let count = seen.iter().filter(|r| e.matches(r)).count();
        let holds = e.count.map_or(count > 0, |n| n == count);
        if holds {
            continue;
        }
        let wanted = e.count.map_or("at least once".to_string(), |n| format!("{n} time(s)"));
        report.push_str(&format!("expected {} {} {wanted}, seen {count} time(s)\n", e.method.as_deref().unwrap_or("ANY"), e.url));
        let mut near: Vec<(f64, &Seen)> = seen
            .iter()
            .map(|r| {
                (
                    stubs::text_distance(
                        &format!("{} {}", e.method.as_deref().unwrap_or(&r.method), e.url),
                        &format!("{} {}", r.method, r.target),
                    ),
                    r,
                )
            })
            .collect();
        near.sort_by(|a, b| a.0.total_cmp(&b.0));
        for (_, r) in near.iter().take(3) {
            report.push_str(&format!("  nearest: {} {} -> {}\n", r.method, r.url, r.status));
        }
        if seen.is_empty() {
            report.push_str("  (the journal has no requests)\n");
        }
    }
    if no_unmatched {
        for r in seen.iter().filter(|r| r.route == "-" || matches!(r.stub, Some(None))) {
            let what = if r.route == "-" { "no route" } else { "no stub" };
            report.push_str(&format!("unmatched ({what}): {} {} -> {}\n", r.method, r.url, r.status));
        }
    }
    if let Some(dir) = unused_stubs {
        let used: Vec<&str> = seen.iter().filter_map(|r| r.stub.as_ref()?.as_deref()).collect();
        for label in stubs::labels(dir)? {
            if !used.contains(&label.as_str()) {
                report.push_str(&format!("unused stub: {label}\n"));
            }
        }
    }
    Ok(report)
}
