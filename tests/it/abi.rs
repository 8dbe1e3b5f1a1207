//! The C ABI is written down three times — `include/intercept.h`, the Rust
//! SDK's `abi` module and the ctypes of the Python package — and the three
//! must agree on every struct's size and every field's name and offset.

use std::collections::BTreeMap;
use std::mem::{offset_of, size_of};
use std::path::Path;
use std::process::Command;

use intercept_app::abi;

use crate::common::*;

/// "struct" -> size and "struct.field" -> offset, in the header's order.
type Layout = BTreeMap<String, usize>;

/// Each struct of the ABI with its fields, in declaration order.
const STRUCTS: [(&str, &[&str]); 4] = [
    ("intercept_header", &["name", "value"]),
    (
        "intercept_request",
        &[
            "method",
            "scheme",
            "host",
            "port",
            "target",
            "script_name",
            "path_info",
            "query",
            "headers",
            "header_count",
            "read_body",
            "body",
        ],
    ),
    ("intercept_response", &["ctx", "set_status", "add_header", "write"]),
    ("intercept_app", &["abi_version", "state", "handle", "destroy"]),
];

fn parse(text: &str) -> Layout {
    text.lines()
        .map(|l| {
            let (key, value) = l.split_once(' ').unwrap_or_else(|| panic!("bad line `{l}`"));
            (key.to_string(), value.trim().parse().unwrap())
        })
        .collect()
}

/// What a C compiler makes of the header.
fn from_c(dir: &Path) -> Layout {
    need("cc", "gcc");
    let mut source = String::from("#include <stddef.h>\n#include <stdio.h>\n#include \"intercept.h\"\nint main(void) {\n");
    for (name, fields) in STRUCTS {
        source += &format!("    printf(\"{name} %zu\\n\", sizeof({name}));\n");
        for field in fields {
            source += &format!("    printf(\"{name}.{field} %zu\\n\", offsetof({name}, {field}));\n");
        }
    }
    source += "    return 0;\n}\n";
    let (c, program) = (dir.join("layout.c"), dir.join("layout"));
    std::fs::write(&c, source).unwrap();
    let include = Path::new(env!("CARGO_MANIFEST_DIR")).join("include");
    ok(Command::new("cc").arg("-Wall").arg("-Werror").arg("-I").arg(include).arg("-o").arg(&program).arg(&c).output().unwrap());
    parse(&ok(Command::new(&program).output().unwrap()))
}

/// What the Rust SDK declares.
fn from_rust() -> Layout {
    macro_rules! layout {
        ($($ty:ident { $($field:ident),* })*) => {{
            let mut l = Layout::new();
            $(
                l.insert(stringify!($ty).to_string(), size_of::<abi::$ty>());
                $(l.insert(concat!(stringify!($ty), ".", stringify!($field)).to_string(), offset_of!(abi::$ty, $field));)*
            )*
            l
        }};
    }
    layout! {
        intercept_header { name, value }
        intercept_request { method, scheme, host, port, target, script_name, path_info, query, headers, header_count, read_body, body }
        intercept_response { ctx, set_status, add_header, write }
        intercept_app { abi_version, state, handle, destroy }
    }
}

/// What the Python package's ctypes classes lay out, with their field names.
fn from_python(dir: &Path) -> Layout {
    need("python3", "python3");
    let script = r#"
import ctypes, intercept_wsgi as m
for name, cls in [("intercept_header", m._Header), ("intercept_request", m._Request), ("intercept_response", m._Response), ("intercept_app", m._App)]:
    print(name, ctypes.sizeof(cls))
    for field, _ in cls._fields_:
        print(f"{name}.{field}", getattr(cls, field).offset)
"#;
    let package = Path::new(env!("CARGO_MANIFEST_DIR")).join("bindings/python");
    parse(&ok(command("python3", dir).env("PYTHONPATH", package).args(["-c", script]).output().unwrap()))
}

#[test]
fn the_header_the_rust_sdk_and_the_python_ctypes_agree() {
    let dir = temp_dir("abi");
    let c = from_c(&dir);
    assert_eq!(c.len(), STRUCTS.iter().map(|(_, f)| f.len() + 1).sum::<usize>());
    assert_eq!(from_rust(), c, "the Rust SDK (left) against include/intercept.h (right)");
    assert_eq!(from_python(&dir), c, "the Python ctypes (left) against include/intercept.h (right)");
}
