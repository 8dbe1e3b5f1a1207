//! `execl`, `execlp` and `execle`. glibc's own gather their arguments and
//! call its internal `execve`, which no hook sees; these gather them the
//! same way and call the `execv`, `execvp` and `execve` hooks.
//!
//! They are variadic, which Rust cannot define, so each export is a naked
//! function: it stores the argument registers beside each other, then
//! hands [`gather`] where those and the arguments on the stack are. On
//! both ABIs we build for, a variadic call passes pointers exactly as a
//! plain call does (registers first, then the stack, eight bytes each).

use std::ffi::c_char;

use libc::c_int;

/// How many arguments after the first arrive in registers.
#[cfg(target_arch = "x86_64")]
const IN_REGISTERS: usize = 5;
#[cfg(target_arch = "aarch64")]
const IN_REGISTERS: usize = 7;

const EXECL: c_int = 0;
const EXECLP: c_int = 1;
const EXECLE: c_int = 2;

/// Makes the export `$name`, which calls [`gather`] with `$which`.
macro_rules! variadic_exec {
    ($name:ident, $which:expr) => {
        #[cfg(target_arch = "x86_64")]
        #[unsafe(no_mangle)]
        #[unsafe(naked)]
        pub unsafe extern "C" fn $name() {
            // rdi: the path; rsi, rdx, rcx, r8, r9: the first arguments,
            // stored at rsp; the rest start above the return address.
            std::arch::naked_asm!(
                "sub rsp, 40",
                "mov [rsp], rsi",
                "mov [rsp + 8], rdx",
                "mov [rsp + 16], rcx",
                "mov [rsp + 24], r8",
                "mov [rsp + 32], r9",
                "mov rsi, rsp",
                "lea rdx, [rsp + 48]",
                "mov ecx, {which}",
                "call {gather}",
                "add rsp, 40",
                "ret",
                which = const $which,
                gather = sym gather,
            )
        }

        #[cfg(target_arch = "aarch64")]
        #[unsafe(no_mangle)]
        #[unsafe(naked)]
        pub unsafe extern "C" fn $name() {
            // x0: the path; x1 to x7: the first arguments, stored at sp;
            // the rest start at the caller's sp.
            std::arch::naked_asm!(
                "sub sp, sp, #80",
                "stp x29, x30, [sp, #64]",
                "stp x1, x2, [sp]",
                "stp x3, x4, [sp, #16]",
                "stp x5, x6, [sp, #32]",
                "str x7, [sp, #48]",
                "mov x1, sp",
                "add x2, sp, #80",
                "mov w3, #{which}",
                "bl {gather}",
                "ldp x29, x30, [sp, #64]",
                "add sp, sp, #80",
                "ret",
                which = const $which,
                gather = sym gather,
            )
        }
    };
}

variadic_exec!(execl, EXECL);
variadic_exec!(execlp, EXECLP);
variadic_exec!(execle, EXECLE);

/// The arguments gathered into an argv (on the stack when they fit: this
/// may run in a `vfork` child), then the hook for `which`.
///
/// # Safety
/// `registers` holds the arguments that came in registers and `stack` the
/// rest, as the naked exports store them; the list ends with a null
/// pointer (then, for `execle`, the environment).
unsafe extern "C" fn gather(path: *const c_char, registers: *const *const c_char, stack: *const *const c_char, which: c_int) -> c_int {
    // SAFETY: the caller's arguments, read up to the end the caller marked.
    unsafe {
        let at = |i: usize| if i < IN_REGISTERS { *registers.add(i) } else { *stack.add(i - IN_REGISTERS) };
        let mut n = 0;
        while !at(n).is_null() {
            n += 1;
        }
        let mut small = [std::ptr::null::<c_char>(); 256];
        let mut large = Vec::new();
        let argv: &mut [*const c_char] = if n < small.len() {
            &mut small[..=n]
        } else {
            large.resize(n + 1, std::ptr::null());
            &mut large
        };
        for (i, slot) in argv.iter_mut().enumerate().take(n) {
            *slot = at(i);
        }
        argv[n] = std::ptr::null();
        match which {
            EXECL => super::table::execv(path, argv.as_ptr()),
            EXECLP => super::table::execvp(path, argv.as_ptr()),
            _ => super::table::execve(path, argv.as_ptr(), at(n + 1).cast()),
        }
    }
}
