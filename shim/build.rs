//! Links the unwinder (libgcc_eh) into libintercept.so instead of loading
//! libgcc_s.so.1 in every process: Rust's standard library asks for
//! `-lgcc_s`, and a linker script of that name found first on the search
//! path answers it with the static archive. libgcc_s's constructor runs
//! CPUID a dozen times, which in a virtual machine exits to the
//! hypervisor each time; with the library it is a measurable part of the
//! start-up of every process under the shim.

use std::path::PathBuf;

fn main() {
    let out = PathBuf::from(std::env::var_os("OUT_DIR").expect("cargo sets OUT_DIR"));
    std::fs::write(out.join("libgcc_s.so"), "INPUT(-lgcc_eh)\n").expect("OUT_DIR is writable");
    println!("cargo:rustc-link-search=native={}", out.display());
    // Relative relocations packed (DT_RELR): a smaller table for ld.so to
    // read at every start.
    println!("cargo:rustc-cdylib-link-arg=-Wl,-z,pack-relative-relocs");
    println!("cargo:rerun-if-changed=build.rs");
}
