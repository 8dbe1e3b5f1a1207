//! The one line that says a program runs without supervision, and why.

use std::ffi::OsString;

/// The one line saying a program runs unsupervised.
pub fn notice_text(program: &OsString, why: &str) -> String {
    let mut text = String::new();
    let _ = intercept::supervision::handover::write_notice(&mut text, &program.to_string_lossy(), why);
    text
}
