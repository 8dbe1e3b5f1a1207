//! The house rules the compiler does not check: no module over 600 lines,
//! imports that flow one way in the core and in the shim (between
//! top-level modules by layer, and between any two files: no circle), and
//! a Layout table in docs/architecture.md that matches the tree.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// Every `.rs` file below `dir`.
fn rust_files(dir: &Path) -> Vec<PathBuf> {
    let mut found = Vec::new();
    let mut todo = vec![dir.to_path_buf()];
    while let Some(d) = todo.pop() {
        for entry in std::fs::read_dir(&d).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                todo.push(path);
            } else if path.extension().is_some_and(|e| e == "rs") {
                found.push(path);
            }
        }
    }
    found.sort();
    found
}

#[test]
fn no_module_is_over_600_lines() {
    let long: Vec<String> = ["src", "shim/src"]
        .iter()
        .flat_map(|d| rust_files(&root().join(d)))
        .filter_map(|f| {
            let lines = std::fs::read_to_string(&f).unwrap().lines().count();
            (lines > 600).then(|| format!("{} ({lines} lines)", f.display()))
        })
        .collect();
    assert!(long.is_empty(), "split these: {long:?}");
}

/// The top-level modules a file refers to through `prefix` (`crate::` or
/// `core_lib::`), comments left out: `prefix::name` and each first name in
/// `prefix::{a, b::c}`.
fn referenced(text: &str, prefix: &str) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    let ident = |s: &str| s.chars().take_while(|c| c.is_alphanumeric() || *c == '_').collect::<String>();
    for line in text.lines().map(|l| l.split("//").next().unwrap_or("")) {
        for (at, _) in line.match_indices(prefix) {
            let before = line[..at].chars().last();
            if before.is_some_and(|c| c.is_alphanumeric() || c == '_') {
                continue;
            }
            let rest = &line[at + prefix.len()..];
            if let Some(group) = rest.strip_prefix('{') {
                let mut depth = 0;
                let mut start = true;
                for (i, c) in group.char_indices() {
                    match c {
                        '{' => depth += 1,
                        '}' if depth == 0 => break,
                        '}' => depth -= 1,
                        ',' if depth == 0 => start = true,
                        c if start && !c.is_whitespace() => {
                            start = false;
                            names.insert(ident(&group[i..]));
                        }
                        _ => {}
                    }
                }
            } else {
                names.insert(ident(rest));
            }
        }
    }
    names.retain(|n| !n.is_empty() && n.chars().next().unwrap().is_lowercase());
    names
}

/// The top-level module a file belongs to: `src/serve/http/head.rs` is
/// `serve`, `shim/src/peer.rs` is `peer`.
fn module_of(base: &Path, file: &Path) -> String {
    let rel = file.strip_prefix(base).unwrap();
    let first = rel.components().next().unwrap().as_os_str().to_string_lossy().into_owned();
    first.trim_end_matches(".rs").to_string()
}

/// Checks that each module refers only to modules before it in `order`
/// (which also rules out cycles); `macros` are names exported at the crate
/// root by a module (`log_error!` is `crate::log_error`).
fn check_layers(base: &Path, prefix: &str, order: &[&str], macros: &[(&str, &str)], skip: &[&str]) {
    let mut wrong = Vec::new();
    let known: BTreeSet<&str> = order.iter().copied().collect();
    for file in rust_files(base) {
        let module = module_of(base, &file);
        if skip.contains(&module.as_str()) {
            continue;
        }
        let rank = order.iter().position(|m| *m == module).unwrap_or_else(|| panic!("{} is in no layer", file.display()));
        let text = std::fs::read_to_string(&file).unwrap();
        for name in referenced(&text, prefix) {
            let target = macros.iter().find(|(m, _)| *m == name).map_or(name.as_str(), |(_, owner)| owner);
            if skip.contains(&target) {
                continue;
            }
            assert!(known.contains(target), "{}: `{prefix}{name}` is no module of {}", file.display(), base.display());
            let target_rank = order.iter().position(|m| *m == target).unwrap();
            if target != module && target_rank > rank {
                wrong.push(format!("{} ({module}) uses {target}", file.display()));
            }
        }
    }
    assert!(wrong.is_empty(), "imports against the layers {order:?}:\n{}", wrong.join("\n"));
}

const LOG_MACROS: [(&str, &str); 3] = [("log_error", "log"), ("log_info", "log"), ("log_debug", "log")];

#[test]
fn the_core_imports_flow_one_way() {
    let order = ["log", "fork_lock", "run", "url", "program", "supervision", "journal", "apps", "config", "routing", "serve"];
    check_layers(&root().join("src"), "crate::", &order, &LOG_MACROS, &["lib", "main", "cli", "testing"]);
}

#[test]
fn the_shim_imports_flow_one_way() {
    let order = [
        "lib", "arena", "real", "sockaddr", "fdtable", "state", "spawn", "upstream", "peer", "slots", "reactor", "dispatch", "hooks",
        "api", "init",
    ];
    check_layers(&root().join("shim/src"), "crate::", &order, &[], &[]);
}

/// The first column of the Layout table of docs/architecture.md.
fn layout_rows() -> Vec<(String, String)> {
    let page = std::fs::read_to_string(root().join("docs/architecture.md")).unwrap();
    let table = page.split("\n## Layout\n").nth(1).expect("docs/architecture.md has a Layout section");
    let table = table.split("\n## ").next().unwrap();
    table
        .lines()
        .filter(|l| l.starts_with("| `"))
        .map(|l| {
            let mut cells = l.trim_matches('|').splitn(2, '|');
            (cells.next().unwrap().trim().to_string(), cells.next().unwrap_or("").to_string())
        })
        .collect()
}

#[test]
fn the_layout_table_matches_the_tree() {
    let rows = layout_rows();
    let paths: Vec<String> =
        rows.iter().flat_map(|(first, _)| first.split(',').map(|p| p.trim().trim_matches('`').to_string()).collect::<Vec<_>>()).collect();
    for path in &paths {
        assert!(root().join(path).exists(), "the Layout table names `{path}`, which is not in the tree");
    }
    // Every entry of src/ has a row of its own.
    for entry in std::fs::read_dir(root().join("src")).unwrap() {
        let entry = entry.unwrap();
        let name = entry.file_name().to_string_lossy().into_owned();
        let path = if entry.path().is_dir() { format!("src/{name}/") } else { format!("src/{name}") };
        if name.ends_with(".py") {
            continue;
        }
        assert!(paths.contains(&path), "`{path}` is missing from the Layout table of docs/architecture.md");
    }
    // Every module of the shim is named in its row.
    let shim_row = &rows.iter().find(|(first, _)| first == "`shim/src/`").expect("a `shim/src/` row").1;
    for entry in std::fs::read_dir(root().join("shim/src")).unwrap() {
        let name = entry.unwrap().file_name().to_string_lossy().into_owned();
        let module = name.trim_end_matches(".rs");
        let named = shim_row.contains(&format!("`{module}`"))
            || shim_row.contains(&format!("`{name}`"))
            || shim_row.contains(&format!("`{module}/`"));
        assert!(named, "the `shim/src/` row of docs/architecture.md does not name `{module}`");
    }
}

#[test]
fn the_import_scan_sees_groups_and_paths() {
    let text = "use crate::{apps::{self, App}, config::route, log_error};\nlet x = crate::routing::names::v4(1); // crate::serve\n";
    let names: Vec<String> = referenced(text, "crate::").into_iter().collect();
    assert_eq!(names, ["apps", "config", "log_error", "routing"]);
}

/// A crate's files by module path: `src/serve/http/head.rs` is
/// `["serve", "http", "head"]`, its root `[]`. Test modules (`tests`,
/// `testing`) are left out: they may use what they test.
fn module_files(base: &Path, root_file: &str, only: &[&str]) -> Vec<(Vec<String>, PathBuf)> {
    let mut files = Vec::new();
    for file in rust_files(base) {
        let rel = file.strip_prefix(base).unwrap();
        let mut path: Vec<String> = rel.components().map(|c| c.as_os_str().to_string_lossy().trim_end_matches(".rs").to_string()).collect();
        if path.last().is_some_and(|l| l == "mod") {
            path.pop();
        }
        if path == [root_file] {
            path.clear();
        } else if !only.is_empty() && !only.contains(&path[0].as_str()) || only.is_empty() && ["main", "cli"].contains(&path[0].as_str()) {
            continue;
        }
        if path.iter().any(|p| p == "tests" || p == "testing") {
            continue;
        }
        files.push((path, file));
    }
    files
}

/// Whether a token is an identifier.
fn is_ident(t: &str) -> bool {
    t.chars().next().is_some_and(|c| c.is_alphabetic() || c == '_')
}

/// The module paths a Rust file names, comments left out: every path
/// that starts with `crate::`, `super::` or `self::`, every path of a
/// `use` tree, and `child::…` for each child module in `children`. Paths
/// are returned as written, `super` and `self` included.
fn paths_named(text: &str, children: &[String]) -> Vec<Vec<String>> {
    // Tokens: identifiers, `::`, and single punctuation characters.
    let mut tokens: Vec<String> = Vec::new();
    for line in text.lines() {
        let code = line.split("//").next().unwrap_or("");
        let mut chars = code.chars().peekable();
        while let Some(c) = chars.next() {
            if c.is_alphanumeric() || c == '_' {
                let mut word = c.to_string();
                while let Some(&n) = chars.peek().filter(|n| n.is_alphanumeric() || **n == '_') {
                    word.push(n);
                    chars.next();
                }
                tokens.push(word);
            } else if c == ':' && chars.peek() == Some(&':') {
                chars.next();
                tokens.push("::".into());
            } else if c == '"' {
                // A string literal: skipped to its end on this line.
                let mut escaped = false;
                for n in chars.by_ref() {
                    if n == '"' && !escaped {
                        break;
                    }
                    escaped = n == '\\' && !escaped;
                }
                tokens.push("\"\"".into());
            } else if !c.is_whitespace() {
                tokens.push(c.to_string());
            }
        }
    }
    // One use tree at `at`: its paths, and where it ends.
    fn tree(tokens: &[String], mut at: usize, prefix: Vec<String>, out: &mut Vec<Vec<String>>) -> usize {
        let mut path = prefix;
        loop {
            match tokens.get(at).map(String::as_str) {
                Some("{") => {
                    at += 1;
                    loop {
                        at = tree(tokens, at, path.clone(), out);
                        match tokens.get(at).map(String::as_str) {
                            Some(",") => at += 1,
                            Some("}") => return at + 1,
                            _ => return at,
                        }
                        if tokens.get(at).map(String::as_str) == Some("}") {
                            return at + 1;
                        }
                    }
                }
                Some(t) if is_ident(t) => {
                    path.push(t.to_string());
                    at += 1;
                    if tokens.get(at).map(String::as_str) == Some("::") {
                        at += 1;
                        continue;
                    }
                    out.push(path);
                    return at;
                }
                _ => {
                    if !path.is_empty() {
                        out.push(path);
                    }
                    return at;
                }
            }
        }
    }
    let mut out = Vec::new();
    let mut i = 0;
    while i < tokens.len() {
        let t = tokens[i].as_str();
        let after_path = i > 0 && tokens[i - 1] == "::";
        if t == "use" {
            i = tree(&tokens, i + 1, Vec::new(), &mut out);
            continue;
        }
        let starts = ["crate", "super", "self"].contains(&t) || children.iter().any(|c| c == t);
        if !after_path && starts && tokens.get(i + 1).map(String::as_str) == Some("::") {
            i = tree(&tokens, i, Vec::new(), &mut out);
            continue;
        }
        i += 1;
    }
    out
}

/// The file a path written in module `at` leads to: the longest prefix
/// of it that is a module of the crate.
fn resolve<'a>(at: &[String], path: &[String], modules: &'a [(Vec<String>, PathBuf)]) -> Option<&'a PathBuf> {
    // `crate::` starts at the root; `self::`, `super::` and a child's name
    // where the file is.
    let mut full: Vec<String> = if path.first().is_some_and(|s| s == "crate") { Vec::new() } else { at.to_vec() };
    let mut rest = path;
    if rest.first().is_some_and(|s| s == "crate" || s == "self") {
        rest = &rest[1..];
    }
    while rest.first().is_some_and(|s| s == "super") {
        full.pop()?;
        rest = &rest[1..];
    }
    let relative_to_child = !path.first().is_some_and(|s| ["crate", "self", "super"].contains(&s.as_str()));
    if relative_to_child && !modules.iter().any(|(m, _)| m.len() == at.len() + 1 && m.starts_with(at) && Some(&m[at.len()]) == rest.first())
    {
        return None;
    }
    full.extend(rest.iter().cloned());
    (0..=full.len()).rev().find_map(|n| modules.iter().find(|(m, _)| *m == full[..n]).map(|(_, f)| f))
}

/// A file's text up to its inline test module (`#[cfg(test)] mod tests {`),
/// whose `super` is the file itself.
fn without_inline_tests(text: &str) -> &str {
    let mut at = 0;
    for line in text.split_inclusive('\n') {
        let rest = &text[at + line.len()..];
        let next = rest.lines().next().unwrap_or("").trim();
        if line.trim() == "#[cfg(test)]" && next.starts_with("mod ") && next.ends_with('{') {
            return &text[..at];
        }
        at += line.len();
    }
    text
}

/// Every import circle between the files of a crate, each as the imports
/// that make it.
fn file_cycles(base: &Path, root_file: &str, only: &[&str]) -> Vec<Vec<String>> {
    let modules = module_files(base, root_file, only);
    let name = |f: &PathBuf| f.strip_prefix(root()).unwrap().display().to_string();
    let mut edges: Vec<BTreeSet<usize>> = vec![BTreeSet::new(); modules.len()];
    for (i, (at, file)) in modules.iter().enumerate() {
        let children: Vec<String> =
            modules.iter().filter(|(m, _)| m.len() == at.len() + 1 && m.starts_with(at)).map(|(m, _)| m[at.len()].clone()).collect();
        let text = std::fs::read_to_string(file).unwrap();
        for path in paths_named(without_inline_tests(&text), &children) {
            if let Some(to) = resolve(at, &path, &modules) {
                let j = modules.iter().position(|(_, f)| f == to).unwrap();
                if j != i {
                    edges[i].insert(j);
                }
            }
        }
    }
    // Tarjan's strongly connected components; each of more than one file
    // is a circle.
    struct Walk<'a> {
        edges: &'a [BTreeSet<usize>],
        index: Vec<Option<usize>>,
        low: Vec<usize>,
        on_stack: Vec<bool>,
        stack: Vec<usize>,
        next: usize,
        found: Vec<Vec<usize>>,
    }
    fn visit(w: &mut Walk, v: usize) {
        w.index[v] = Some(w.next);
        w.low[v] = w.next;
        w.next += 1;
        w.stack.push(v);
        w.on_stack[v] = true;
        for &to in w.edges[v].clone().iter() {
            match w.index[to] {
                None => {
                    visit(w, to);
                    w.low[v] = w.low[v].min(w.low[to]);
                }
                Some(index) if w.on_stack[to] => w.low[v] = w.low[v].min(index),
                Some(_) => {}
            }
        }
        if Some(w.low[v]) == w.index[v] {
            let mut component = Vec::new();
            while let Some(top) = w.stack.pop() {
                w.on_stack[top] = false;
                component.push(top);
                if top == v {
                    break;
                }
            }
            if component.len() > 1 {
                w.found.push(component);
            }
        }
    }
    let n = modules.len();
    let mut walk = Walk {
        edges: &edges,
        index: vec![None; n],
        low: vec![0; n],
        on_stack: vec![false; n],
        stack: Vec::new(),
        next: 0,
        found: Vec::new(),
    };
    for v in 0..n {
        if walk.index[v].is_none() {
            visit(&mut walk, v);
        }
    }
    walk.found
        .iter()
        .map(|c| {
            let mut shown = Vec::new();
            for &v in c {
                for &to in edges[v].iter().filter(|to| c.contains(to)) {
                    shown.push(format!("{} → {}", name(&modules[v].1), name(&modules[to].1)));
                }
            }
            shown
        })
        .collect()
}

#[test]
fn no_two_files_import_each_other() {
    let mut circles = file_cycles(&root().join("src"), "lib", &[]);
    circles.extend(file_cycles(&root().join("src"), "main", &["cli"]));
    circles.extend(file_cycles(&root().join("shim/src"), "lib", &[]));
    let shown: Vec<String> = circles.iter().map(|c| c.join("\n  ")).collect();
    assert!(shown.is_empty(), "files that import each other, in circles of these imports:\n  {}", shown.join("\n\n  "));
}

#[test]
fn the_file_scan_follows_super_self_and_children() {
    let text = "use super::{exchange, head::Head};\nuse body::Reader; // crate::x\nlet s = stream::serve(\"crate::no\");\nuse std::io;\n";
    let paths = paths_named(text, &["stream".to_string(), "body".to_string()]);
    let shown: Vec<String> = paths.iter().map(|p| p.join("::")).collect();
    assert_eq!(shown, ["super::exchange", "super::head::Head", "body::Reader", "stream::serve", "std::io"]);
}
