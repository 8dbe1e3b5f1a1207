//! The C ABI of `include/intercept.h`, field for field.
#![allow(non_camel_case_types)]

use std::ffi::{c_char, c_int, c_void};

pub const ABI_VERSION: u32 = 1;

#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct intercept_header {
    pub name: *const c_char,
    pub value: *const c_char,
}

pub type ReadBodyFn = unsafe extern "C" fn(body: *mut c_void, buf: *mut u8, len: usize) -> isize;

#[repr(C)]
pub struct intercept_request {
    pub method: *const c_char,
    pub scheme: *const c_char,
    pub host: *const c_char,
    pub port: u16,
    pub target: *const c_char,
    pub script_name: *const c_char,
    pub path_info: *const c_char,
    pub query: *const c_char,
    pub headers: *const intercept_header,
    pub header_count: usize,
    pub read_body: ReadBodyFn,
    pub body: *mut c_void,
}

#[repr(C)]
pub struct intercept_response {
    pub ctx: *mut c_void,
    pub set_status: unsafe extern "C" fn(ctx: *mut c_void, status: u16) -> c_int,
    pub add_header: unsafe extern "C" fn(ctx: *mut c_void, name: *const c_char, value: *const c_char) -> c_int,
    pub write: unsafe extern "C" fn(ctx: *mut c_void, buf: *const u8, len: usize) -> c_int,
}

pub type HandleFn = unsafe extern "C" fn(state: *mut c_void, req: *const intercept_request, resp: *const intercept_response) -> c_int;

#[repr(C)]
pub struct intercept_app {
    pub abi_version: u32,
    pub state: *mut c_void,
    pub handle: Option<HandleFn>,
    pub destroy: Option<unsafe extern "C" fn(state: *mut c_void)>,
}

pub type CreateFn = unsafe extern "C" fn(app: *mut intercept_app) -> c_int;
