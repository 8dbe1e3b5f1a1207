//! The seccomp filter a supervised program runs under: which system calls
//! stop for the supervisor, and installing it in the child just before it
//! starts the program.
//!
//! A call stops unless it carries the shim's mark ([`SHIM_CALL`]): the
//! shim's own calls are already decided, so a dynamically linked program
//! pays one short filter run per system call and nothing more. TCP
//! options stop only at level `IPPROTO_TCP`.

use std::os::fd::RawFd;

use intercept::program::SHIM_CALL;
use libc::{c_int, sock_filter};

const AUDIT_ARCH_X86_64: u32 = 0xc000_003e;
const LD_ABS: u16 = (libc::BPF_LD | libc::BPF_W | libc::BPF_ABS) as u16;
const JEQ: u16 = (libc::BPF_JMP | libc::BPF_JEQ | libc::BPF_K) as u16;
const RET: u16 = (libc::BPF_RET | libc::BPF_K) as u16;
/// Where `seccomp_data` keeps the call's number, its architecture and
/// its arguments.
const NR: u32 = 0;
const ARCH: u32 = 4;
const ARGS: u32 = 16;

/// The calls that stop, with the argument slot that carries the mark.
pub const STOPPED: [(libc::c_long, u32); 7] = [
    (libc::SYS_connect, 3),
    (libc::SYS_getpeername, 3),
    (libc::SYS_getsockname, 3),
    (libc::SYS_open, 3),
    (libc::SYS_openat, 4),
    (libc::SYS_setsockopt, 5),
    (libc::SYS_getsockopt, 5),
];

/// One instruction, its jumps still absolute.
struct Ins {
    code: u16,
    k: u32,
    jt: usize,
    jf: usize,
}

/// The filter's program.
pub fn program() -> Vec<sock_filter> {
    let ld = |k| Ins { code: LD_ABS, k, jt: 0, jf: 0 };
    let ret = |k| Ins { code: RET, k, jt: 0, jf: 0 };
    let options = |nr| nr == libc::SYS_setsockopt || nr == libc::SYS_getsockopt;
    let calls = STOPPED.len();
    // 0: arch; 1: not x86-64 -> allow; 2: number; then one test per call,
    // a block per call (jumps only go forward), and the two verdicts.
    let first_block = 3 + calls;
    let blocks_len: usize = STOPPED.iter().map(|&(nr, _)| if options(nr) { 6 } else { 4 }).sum();
    let allow = first_block + blocks_len;
    let notify = allow + 1;
    let mut code = vec![ld(ARCH), Ins { code: JEQ, k: AUDIT_ARCH_X86_64, jt: 2, jf: allow }, ld(NR)];
    let mut blocks = Vec::new();
    for (i, &(nr, slot)) in STOPPED.iter().enumerate() {
        let mut at = first_block + blocks.len();
        code.push(Ins { code: JEQ, k: nr as u32, jt: at, jf: if i + 1 < calls { 3 + i + 1 } else { allow } });
        if options(nr) {
            blocks.push(ld(ARGS + 8));
            blocks.push(Ins { code: JEQ, k: libc::IPPROTO_TCP as u32, jt: at + 2, jf: allow });
            at += 2;
        }
        let (low, high) = (ARGS + 8 * slot, ARGS + 8 * slot + 4);
        blocks.push(ld(low));
        blocks.push(Ins { code: JEQ, k: SHIM_CALL as u32, jt: at + 2, jf: notify });
        blocks.push(ld(high));
        blocks.push(Ins { code: JEQ, k: (SHIM_CALL >> 32) as u32, jt: allow, jf: notify });
    }
    code.extend(blocks);
    code.push(ret(libc::SECCOMP_RET_ALLOW));
    code.push(ret(libc::SECCOMP_RET_USER_NOTIF));
    code.iter()
        .enumerate()
        .map(|(i, ins)| {
            let rel = |to: usize| if ins.code == JEQ { u8::try_from(to - i - 1).expect("a short filter") } else { 0 };
            sock_filter { code: ins.code, jt: rel(ins.jt), jf: rel(ins.jf), k: ins.k }
        })
        .collect()
}

/// Installs `program` on the calling thread's process and returns the
/// listener, or the errno of the failure. Runs in the forked child before
/// exec: no allocation, no lock.
///
/// # Safety
/// Only in a single-threaded child after fork.
pub unsafe fn install(program: &[sock_filter]) -> Result<RawFd, c_int> {
    let prog = libc::sock_fprog { len: program.len() as u16, filter: program.as_ptr().cast_mut() };
    // SAFETY: plain prctl and seccomp calls on a valid program.
    unsafe {
        if libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0 {
            return Err(*libc::__errno_location());
        }
        let base = libc::SECCOMP_FILTER_FLAG_NEW_LISTENER;
        // Once the supervisor holds a call, only a fatal signal ends the
        // wait (Linux 5.19): a handled signal does not restart the call
        // and stop it a second time.
        let killable = 1 << 5;
        let mut fd = libc::syscall(libc::SYS_seccomp, libc::SECCOMP_SET_MODE_FILTER, base | killable, &prog);
        if fd < 0 && *libc::__errno_location() == libc::EINVAL {
            fd = libc::syscall(libc::SYS_seccomp, libc::SECCOMP_SET_MODE_FILTER, base, &prog);
        }
        if fd < 0 { Err(*libc::__errno_location()) } else { Ok(fd as RawFd) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Runs the program over one call as the kernel would.
    fn verdict(program: &[sock_filter], nr: libc::c_long, args: [u64; 6]) -> u32 {
        let mut data = [0u8; 64];
        data[0..4].copy_from_slice(&(nr as u32).to_le_bytes());
        data[4..8].copy_from_slice(&AUDIT_ARCH_X86_64.to_le_bytes());
        for (i, a) in args.iter().enumerate() {
            data[16 + 8 * i..24 + 8 * i].copy_from_slice(&a.to_le_bytes());
        }
        let (mut pc, mut acc) = (0usize, 0u32);
        loop {
            let ins = &program[pc];
            match ins.code {
                LD_ABS => acc = u32::from_le_bytes(data[ins.k as usize..ins.k as usize + 4].try_into().unwrap()),
                JEQ => {
                    pc += usize::from(if acc == ins.k { ins.jt } else { ins.jf });
                }
                RET => return ins.k,
                other => panic!("unexpected instruction {other}"),
            }
            pc += 1;
        }
    }

    #[test]
    fn calls_stop_unless_marked_and_tcp_options_only_at_tcp_level() {
        let p = program();
        let stop = libc::SECCOMP_RET_USER_NOTIF;
        let allow = libc::SECCOMP_RET_ALLOW;
        assert_eq!(verdict(&p, libc::SYS_connect, [3, 0, 16, 0xdead, 0, 0]), stop);
        assert_eq!(verdict(&p, libc::SYS_connect, [3, 0, 16, SHIM_CALL, 0, 0]), allow);
        // Half a mark is no mark.
        assert_eq!(verdict(&p, libc::SYS_connect, [3, 0, 16, SHIM_CALL & 0xffff_ffff, 0, 0]), stop);
        assert_eq!(verdict(&p, libc::SYS_openat, [0, 0, 0, 0, SHIM_CALL, 0]), allow);
        assert_eq!(verdict(&p, libc::SYS_openat, [0, 0, 0, SHIM_CALL, 0, 0]), stop);
        assert_eq!(verdict(&p, libc::SYS_open, [0, 0, 0, 0, 0, 0]), stop);
        assert_eq!(verdict(&p, libc::SYS_getsockname, [0, 0, 0, 0, 0, 0]), stop);
        assert_eq!(verdict(&p, libc::SYS_read, [0, 0, 0, 0, 0, 0]), allow);
        let tcp = libc::IPPROTO_TCP as u64;
        assert_eq!(verdict(&p, libc::SYS_setsockopt, [3, tcp, 1, 0, 4, 0]), stop);
        assert_eq!(verdict(&p, libc::SYS_setsockopt, [3, tcp, 1, 0, 4, SHIM_CALL]), allow);
        assert_eq!(verdict(&p, libc::SYS_setsockopt, [3, libc::SOL_SOCKET as u64, 1, 0, 4, 0]), allow);
        assert_eq!(verdict(&p, libc::SYS_getsockopt, [3, tcp, 1, 0, 4, 0]), stop);
    }
}
