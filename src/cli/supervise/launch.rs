//! `intercept __supervise SOCKET PATH ARGV0 [ARG]...`: the launcher the
//! shim's `posix_spawn` hooks start in place of a program that bypasses
//! the shim (the child `posix_spawn` makes runs none of our code). It puts
//! itself under the filter, hands the listener to the supervisor at
//! SOCKET, and becomes PATH with the caller's arguments and environment.

use std::ffi::{CString, OsString};
use std::os::unix::ffi::OsStringExt;
use std::process::ExitCode;

use intercept::supervision::handover;

use super::notice::notice_text;

/// The hidden subcommand's name.
pub const SUBCOMMAND: &str = "__supervise";

/// Runs the launcher with the arguments after [`SUBCOMMAND`]; returns
/// only when the program cannot start.
pub fn launch(args: Vec<OsString>) -> ExitCode {
    let mut args = args.into_iter().map(|a| CString::new(a.into_vec()));
    let (Some(Ok(socket)), Some(Ok(path))) = (args.next(), args.next()) else {
        eprintln!("intercept: usage: intercept {SUBCOMMAND} SOCKET PATH ARGV0 [ARG]...");
        return ExitCode::from(2);
    };
    let Ok(argv) = args.collect::<Result<Vec<CString>, _>>() else {
        eprintln!("intercept: an argument holds a NUL byte");
        return ExitCode::from(2);
    };
    let program = OsString::from_vec(path.as_bytes().to_vec());
    // SAFETY: this process execs right after.
    if let Err(refused) = unsafe { handover::supervise_self(&socket) } {
        eprint!("{}", notice_text(&program, refused.why()));
    }
    let mut pointers: Vec<*const libc::c_char> = argv.iter().map(|a| a.as_ptr()).collect();
    pointers.push(std::ptr::null());
    // SAFETY: NUL-terminated strings and a null-terminated argv that live
    // across the call; the environment is this process's, which is the
    // caller's. The system call itself: the shim's hook has nothing left
    // to decide.
    unsafe {
        unsafe extern "C" {
            static environ: *const *const libc::c_char;
        }
        libc::syscall(libc::SYS_execve, path.as_ptr(), pointers.as_ptr(), environ);
    }
    super::program::cannot_run(&program, &std::io::Error::last_os_error())
}
