//! A native intercept app in Rust: `make build` leaves
//! `target/release/librust_hello_app.so`; route it with
//! `INTERCEPT_ROUTE_HELLO=http://hello.example.test -> dylib:target/release/librust_hello_app.so`.

use std::io::Read;

use intercept_app::{Request, Response, intercept_app};

fn hello(req: &mut Request<'_>) -> Response {
    if req.path_info() == "/panic" {
        panic!("a bug in the app");
    }
    let mut body = String::new();
    let _ = req.read_to_string(&mut body);
    let mut r = Response::text(200, format!("hello from Rust: {} {}{} body={body}\n", req.method(), req.script_name(), req.path_info()));
    r.headers.push(("X-App".into(), "rust-hello".into()));
    r
}

intercept_app!(hello);
