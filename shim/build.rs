//! Links the unwinder (libgcc_eh) into libintercept.so instead of loading
//! libgcc_s.so.1 in every process: Rust's standard library asks for
//! `-lgcc_s`, and a linker script of that name found first on the search
//! path answers it with the static archive. libgcc_s's constructor runs
//! CPUID a dozen times, which in a virtual machine exits to the
//! hypervisor each time; with the library it is a measurable part of the
//! start-up of every process under the shim. It also hands the linker
//! the functions to place first (`hot-symbols.txt`).

use std::path::PathBuf;

fn main() {
    let out = PathBuf::from(std::env::var_os("OUT_DIR").expect("cargo sets OUT_DIR"));
    std::fs::write(out.join("libgcc_s.so"), "INPUT(-lgcc_eh)\n").expect("OUT_DIR is writable");
    println!("cargo:rustc-link-search=native={}", out.display());
    // Relative relocations packed (DT_RELR): a smaller table for ld.so to
    // read at every start.
    println!("cargo:rustc-cdylib-link-arg=-Wl,-z,pack-relative-relocs");
    // The functions a process runs at load and in its first request, first
    // in .text and together (scripts/hot-symbols.py says why): an option of
    // LLD, rustc's linker for this target since 1.90.
    let hot = PathBuf::from(std::env::var_os("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR")).join("hot-symbols.txt");
    if links_with_lld() && hot.exists() {
        println!("cargo:rustc-cdylib-link-arg=-Wl,--symbol-ordering-file={}", hot.display());
        // A name the build no longer has is skipped, not a warning.
        println!("cargo:rustc-cdylib-link-arg=-Wl,--no-warn-symbol-ordering");
    }
    println!("cargo:rerun-if-changed=hot-symbols.txt");
    println!("cargo:rerun-if-changed=build.rs");
}

/// Whether rustc links this target with its own LLD: x86_64 Linux from
/// 1.90 on, unless the build names a linker of its own.
fn links_with_lld() -> bool {
    let target = std::env::var("TARGET").unwrap_or_default();
    let rustc = std::env::var_os("RUSTC").unwrap_or_else(|| "rustc".into());
    let own_linker = std::env::var("CARGO_ENCODED_RUSTFLAGS").is_ok_and(|f| f.contains("linker"))
        || std::env::vars_os().any(|(k, _)| k.to_string_lossy().ends_with("_LINKER"));
    let minor = std::process::Command::new(rustc)
        .arg("-vV")
        .output()
        .ok()
        .and_then(|out| String::from_utf8(out.stdout).ok())
        .and_then(|v| v.lines().find_map(|l| l.strip_prefix("release: 1.").map(|r| r.split('.').next().unwrap_or("").to_string())))
        .and_then(|minor| minor.parse::<u32>().ok());
    target == "x86_64-unknown-linux-gnu" && !own_linker && minor.is_some_and(|m| m >= 90)
}
