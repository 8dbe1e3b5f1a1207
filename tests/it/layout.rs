//! The house rules the compiler does not check: no module over 600 lines,
//! imports that flow one way in the core and in the shim, and a README
//! Layout table that matches the tree.

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

/// The first column of the README's Layout table.
fn layout_rows() -> Vec<(String, String)> {
    let readme = std::fs::read_to_string(root().join("README.md")).unwrap();
    let table = readme.split("\n## Layout\n").nth(1).expect("README has a Layout section");
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
fn the_readme_layout_table_matches_the_tree() {
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
        assert!(paths.contains(&path), "`{path}` is missing from the README's Layout table");
    }
    // Every module of the shim is named in its row.
    let shim_row = &rows.iter().find(|(first, _)| first == "`shim/src/`").expect("a `shim/src/` row").1;
    for entry in std::fs::read_dir(root().join("shim/src")).unwrap() {
        let name = entry.unwrap().file_name().to_string_lossy().into_owned();
        let module = name.trim_end_matches(".rs");
        let named = shim_row.contains(&format!("`{module}`"))
            || shim_row.contains(&format!("`{name}`"))
            || shim_row.contains(&format!("`{module}/`"));
        assert!(named, "the README's `shim/src/` row does not name `{module}`");
    }
}

#[test]
fn the_import_scan_sees_groups_and_paths() {
    let text = "use crate::{apps::{self, App}, config::route, log_error};\nlet x = crate::routing::names::v4(1); // crate::serve\n";
    let names: Vec<String> = referenced(text, "crate::").into_iter().collect();
    assert_eq!(names, ["apps", "config", "log_error", "routing"]);
}
