//! The seccomp filter a supervised program runs under: which system calls
//! stop for the supervisor, and installing it just before the program
//! starts.
//!
//! A call stops unless it carries the shim's mark ([`SHIM_CALL`]): the
//! shim's own calls are already decided, so a dynamically linked program
//! under the filter pays one short filter run per system call and nothing
//! more. TCP options stop only at level `IPPROTO_TCP`; opens stop only
//! when they could be a read of `/etc/hosts` (read-only, not
//! `O_DIRECTORY`, not `O_PATH`): a directory walk or a written file never
//! waits for us.
//!
//! The program is built on the stack and installed with plain system
//! calls, so the shim can install it in a `vfork` child.

use libc::{c_int, sock_filter};

use crate::program::SHIM_CALL;

#[cfg(target_arch = "x86_64")]
const AUDIT_ARCH: u32 = 0xc000_003e;
#[cfg(target_arch = "aarch64")]
const AUDIT_ARCH: u32 = 0xc000_00b7;
const LD_ABS: u16 = (libc::BPF_LD | libc::BPF_W | libc::BPF_ABS) as u16;
const JEQ: u16 = (libc::BPF_JMP | libc::BPF_JEQ | libc::BPF_K) as u16;
const JSET: u16 = (libc::BPF_JMP | libc::BPF_JSET | libc::BPF_K) as u16;
const RET: u16 = (libc::BPF_RET | libc::BPF_K) as u16;
/// Where `seccomp_data` keeps the call's number, its architecture and
/// its arguments.
const NR: u32 = 0;
const ARCH: u32 = 4;
const ARGS: u32 = 16;

/// What lets a call through before its mark is looked at.
#[derive(Clone, Copy)]
enum Gate {
    /// Nothing: the mark decides.
    None,
    /// Only this level stops (socket options).
    Level(u32),
    /// Any of these flag bits in this slot lets the call through (opens).
    Flags(u32, u32),
    /// Only with this flag bit in this slot does the call stop (a send
    /// that connects: `MSG_FASTOPEN`).
    Only(u32, u32),
}

/// An open that cannot be a read we answer: written, a directory, a path.
const NOT_OURS: u32 = (libc::O_ACCMODE | libc::O_DIRECTORY | libc::O_PATH) as u32;

/// The calls that stop: number, the argument slot that carries the mark,
/// and what lets them through first.
const STOPPED: &[(libc::c_long, u32, Gate)] = &[
    (libc::SYS_connect, 3, Gate::None),
    (libc::SYS_getpeername, 3, Gate::None),
    (libc::SYS_getsockname, 3, Gate::None),
    #[cfg(target_arch = "x86_64")]
    (libc::SYS_open, 3, Gate::Flags(1, NOT_OURS)),
    (libc::SYS_openat, 4, Gate::Flags(2, NOT_OURS)),
    (libc::SYS_setsockopt, 5, Gate::Level(libc::IPPROTO_TCP as u32)),
    (libc::SYS_getsockopt, 5, Gate::Level(libc::IPPROTO_TCP as u32)),
    (libc::SYS_sendto, 6, Gate::Only(3, libc::MSG_FASTOPEN as u32)),
    (libc::SYS_sendmsg, 3, Gate::Only(2, libc::MSG_FASTOPEN as u32)),
];

/// A 64-bit x86 process may also make i386 system calls (`int 0x80`),
/// and x32 ones (the number with this bit): those that connect stop
/// whatever their arguments, so `deny` holds for them too.
#[cfg(target_arch = "x86_64")]
pub const X32_BIT: u32 = 0x4000_0000;
/// The `arch` seccomp reports for an i386 system call.
#[cfg(target_arch = "x86_64")]
pub const AUDIT_ARCH_I386: u32 = 0x4000_0003;
/// i386's `socketcall`, `connect`, `sendto` and `sendmsg`.
#[cfg(target_arch = "x86_64")]
pub const I386_STOPPED: [u32; 4] = [102, 362, 369, 370];

/// The numbers of the calls that stop.
pub fn stopped() -> impl Iterator<Item = libc::c_long> {
    STOPPED.iter().map(|&(nr, _, _)| nr)
}

const MAX: usize = 96;

/// The filter's program, in a fixed buffer.
#[derive(Clone, Copy)]
pub struct Program {
    code: [sock_filter; MAX],
    len: usize,
}

impl Program {
    /// The program's instructions, as `seccomp` installs them.
    pub fn instructions(&self) -> &[sock_filter] {
        &self.code[..self.len]
    }
}

/// Where a jump goes: the instruction after it, or a verdict.
#[derive(Clone, Copy)]
enum To {
    Next,
    /// The tests for another architecture's calls.
    #[cfg(target_arch = "x86_64")]
    Foreign,
    Block(usize),
    Test(usize),
    Allow,
    Notify,
}

/// Builds the program. Layout: the architecture check, one test per
/// call, a block per call, then the two verdicts; jumps only go forward.
pub fn program() -> Program {
    let zero = sock_filter { code: 0, jt: 0, jf: 0, k: 0 };
    let mut out = Program { code: [zero; MAX], len: 0 };
    // First pass: where each block starts.
    let gate_len = |g: Gate| if matches!(g, Gate::None) { 0 } else { 2 };
    // A call with no free slot for a mark (sendto) stops whenever its gate
    // lets it: a block of the gate and one jump.
    let mark_len = |slot: u32| if slot < 6 { 4 } else { 1 };
    // arch load and check, number load (and on x86-64 the x32 check)
    let tests_at = if cfg!(target_arch = "x86_64") { 4 } else { 3 };
    let mut blocks_at = [0usize; 16];
    let mut at = tests_at + STOPPED.len();
    for (i, &(_, slot, gate)) in STOPPED.iter().enumerate() {
        blocks_at[i] = at;
        at += gate_len(gate) + mark_len(slot);
    }
    #[cfg(target_arch = "x86_64")]
    let foreign_at = {
        let foreign = at;
        // arch check, number load, one test per call
        at += 2 + I386_STOPPED.len();
        foreign
    };
    let (allow, notify) = (at, at + 1);
    let mut push = |code: u16, k: u32, jt: To, jf: To| {
        let here = out.len;
        let target = |to: To| -> u8 {
            let abs = match to {
                To::Next => here + 1,
                To::Block(i) => blocks_at[i],
                To::Test(i) => tests_at + i,
                #[cfg(target_arch = "x86_64")]
                To::Foreign => foreign_at,
                To::Allow => allow,
                To::Notify => notify,
            };
            if code == JEQ || code == JSET { u8::try_from(abs - here - 1).expect("a short filter") } else { 0 }
        };
        out.code[here] = sock_filter { code, jt: target(jt), jf: target(jf), k };
        out.len += 1;
    };
    push(LD_ABS, ARCH, To::Next, To::Next);
    #[cfg(target_arch = "x86_64")]
    push(JEQ, AUDIT_ARCH, To::Next, To::Foreign);
    #[cfg(not(target_arch = "x86_64"))]
    push(JEQ, AUDIT_ARCH, To::Next, To::Allow);
    push(LD_ABS, NR, To::Next, To::Next);
    #[cfg(target_arch = "x86_64")]
    push(JSET, X32_BIT, To::Notify, To::Next);
    for (i, &(nr, _, _)) in STOPPED.iter().enumerate() {
        let otherwise = if i + 1 < STOPPED.len() { To::Test(i + 1) } else { To::Allow };
        push(JEQ, nr as u32, To::Block(i), otherwise);
    }
    for &(_, slot, gate) in STOPPED {
        match gate {
            Gate::None => {}
            Gate::Level(level) => {
                push(LD_ABS, ARGS + 8, To::Next, To::Next);
                push(JEQ, level, To::Next, To::Allow);
            }
            Gate::Flags(flags_slot, bits) => {
                push(LD_ABS, ARGS + 8 * flags_slot, To::Next, To::Next);
                push(JSET, bits, To::Allow, To::Next);
            }
            Gate::Only(flags_slot, bits) => {
                push(LD_ABS, ARGS + 8 * flags_slot, To::Next, To::Next);
                push(JSET, bits, To::Next, To::Allow);
            }
        }
        if slot >= 6 {
            push(JEQ, 0, To::Notify, To::Notify);
            continue;
        }
        let (low, high) = (ARGS + 8 * slot, ARGS + 8 * slot + 4);
        push(LD_ABS, low, To::Next, To::Next);
        push(JEQ, SHIM_CALL as u32, To::Next, To::Notify);
        push(LD_ABS, high, To::Next, To::Next);
        push(JEQ, (SHIM_CALL >> 32) as u32, To::Allow, To::Notify);
    }
    #[cfg(target_arch = "x86_64")]
    {
        push(JEQ, AUDIT_ARCH_I386, To::Next, To::Allow);
        push(LD_ABS, NR, To::Next, To::Next);
        for (i, nr) in I386_STOPPED.into_iter().enumerate() {
            let otherwise = if i + 1 < I386_STOPPED.len() { To::Next } else { To::Allow };
            push(JEQ, nr, To::Notify, otherwise);
        }
    }
    push(RET, libc::SECCOMP_RET_ALLOW, To::Next, To::Next);
    push(RET, libc::SECCOMP_RET_USER_NOTIF, To::Next, To::Next);
    out
}

/// Installs `program` on the calling thread and returns the listener, or
/// the errno of the failure. Without the right to install a filter
/// otherwise (`CAP_SYS_ADMIN`), it first sets "no new privileges", which
/// setuid programs started later then lose. No allocation, no lock.
///
/// # Safety
/// The calling thread's process must be about to exec, or be a child
/// made for that (a `vfork` child included).
pub unsafe fn install(program: &Program) -> Result<c_int, c_int> {
    let prog = libc::sock_fprog { len: program.len as u16, filter: program.code.as_ptr().cast_mut() };
    let base = libc::SECCOMP_FILTER_FLAG_NEW_LISTENER;
    // Once the supervisor holds a call, only a fatal signal ends the wait
    // (Linux 5.19): a handled signal does not restart the call and stop it
    // a second time.
    let killable = 1 << 5;
    // SAFETY: plain prctl and seccomp calls on a valid program.
    unsafe {
        let seccomp = |flags: libc::c_ulong| libc::syscall(libc::SYS_seccomp, libc::SECCOMP_SET_MODE_FILTER, flags, &prog);
        let errno = || *libc::__errno_location();
        let mut fd = seccomp(base | killable);
        if fd < 0 && errno() == libc::EINVAL {
            fd = seccomp(base);
        }
        if fd < 0 && errno() == libc::EACCES {
            if libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0 {
                return Err(errno());
            }
            fd = seccomp(base | killable);
            if fd < 0 && errno() == libc::EINVAL {
                fd = seccomp(base);
            }
        }
        if fd < 0 { Err(errno()) } else { Ok(fd as c_int) }
    }
}

/// Whether the calling thread already runs under a seccomp filter (ours,
/// inherited from a supervised parent, or another's): Linux lets a process
/// have one notifying filter, and a child of a supervised program is
/// supervised already.
pub fn filtered() -> bool {
    // SAFETY: a prctl with no pointer arguments.
    unsafe { libc::prctl(libc::PR_GET_SECCOMP, 0, 0, 0, 0) == 2 }
}

/// The TCP option a process asks for on fd -1 to learn whether the filter
/// it runs under is ours ([`ours`]): the kernel says `EBADF`, our
/// supervisor [`PROBE_ANSWER`].
pub const PROBE_OPTION: i32 = 0x1e7e;
/// What our supervisor returns for the [`PROBE_OPTION`] probe.
pub const PROBE_ANSWER: i64 = 0x5eed;

/// Whether the calling thread runs under our filter (a supervised parent's,
/// inherited): asked of the supervisor itself, since another filter (a
/// container's) looks the same from here. One system call when there is
/// no filter at all.
pub fn ours() -> bool {
    // SAFETY: getsockopt on fd -1 with null pointers touches no memory.
    filtered()
        && unsafe { libc::syscall(libc::SYS_getsockopt, -1, libc::IPPROTO_TCP, PROBE_OPTION, 0usize, 0usize, 0usize) } == PROBE_ANSWER
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Runs the program over one call as the kernel would.
    fn verdict(program: &Program, nr: libc::c_long, args: [u64; 6]) -> u32 {
        verdict_as(program, AUDIT_ARCH, nr as u32, args)
    }

    fn verdict_as(program: &Program, arch: u32, nr: u32, args: [u64; 6]) -> u32 {
        let mut data = [0u8; 64];
        data[0..4].copy_from_slice(&nr.to_le_bytes());
        data[4..8].copy_from_slice(&arch.to_le_bytes());
        for (i, a) in args.iter().enumerate() {
            data[16 + 8 * i..24 + 8 * i].copy_from_slice(&a.to_le_bytes());
        }
        let code = program.instructions();
        let (mut pc, mut acc) = (0usize, 0u32);
        loop {
            let ins = &code[pc];
            match ins.code {
                LD_ABS => acc = u32::from_le_bytes(data[ins.k as usize..ins.k as usize + 4].try_into().unwrap()),
                JEQ => pc += usize::from(if acc == ins.k { ins.jt } else { ins.jf }),
                JSET => pc += usize::from(if acc & ins.k != 0 { ins.jt } else { ins.jf }),
                RET => return ins.k,
                other => panic!("unexpected instruction {other}"),
            }
            pc += 1;
        }
    }

    const STOP: u32 = libc::SECCOMP_RET_USER_NOTIF;
    const ALLOW: u32 = libc::SECCOMP_RET_ALLOW;

    #[test]
    fn calls_stop_unless_marked_and_tcp_options_only_at_tcp_level() {
        let p = program();
        assert_eq!(verdict(&p, libc::SYS_connect, [3, 0, 16, 0xdead, 0, 0]), STOP);
        assert_eq!(verdict(&p, libc::SYS_connect, [3, 0, 16, SHIM_CALL, 0, 0]), ALLOW);
        // Half a mark is no mark.
        assert_eq!(verdict(&p, libc::SYS_connect, [3, 0, 16, SHIM_CALL & 0xffff_ffff, 0, 0]), STOP);
        assert_eq!(verdict(&p, libc::SYS_openat, [0, 0, 0, 0, SHIM_CALL, 0]), ALLOW);
        assert_eq!(verdict(&p, libc::SYS_openat, [0, 0, 0, SHIM_CALL, 0, 0]), STOP);
        assert_eq!(verdict(&p, libc::SYS_getsockname, [0, 0, 0, 0, 0, 0]), STOP);
        assert_eq!(verdict(&p, libc::SYS_read, [0, 0, 0, 0, 0, 0]), ALLOW);
        let tcp = libc::IPPROTO_TCP as u64;
        assert_eq!(verdict(&p, libc::SYS_setsockopt, [3, tcp, 1, 0, 4, 0]), STOP);
        assert_eq!(verdict(&p, libc::SYS_setsockopt, [3, tcp, 1, 0, 4, SHIM_CALL]), ALLOW);
        assert_eq!(verdict(&p, libc::SYS_setsockopt, [3, libc::SOL_SOCKET as u64, 1, 0, 4, 0]), ALLOW);
        assert_eq!(verdict(&p, libc::SYS_getsockopt, [3, tcp, 1, 0, 4, 0]), STOP);
    }

    #[test]
    fn sends_stop_only_when_they_connect_and_other_architectures_only_to_connect() {
        let p = program();
        let fast = libc::MSG_FASTOPEN as u64;
        assert_eq!(verdict(&p, libc::SYS_sendto, [3, 0, 5, fast, 0x1000, 16]), STOP);
        assert_eq!(verdict(&p, libc::SYS_sendto, [3, 0, 5, 0, 0x1000, 16]), ALLOW);
        assert_eq!(verdict(&p, libc::SYS_sendmsg, [3, 0, fast, 0, 0, 0]), STOP);
        assert_eq!(verdict(&p, libc::SYS_sendmsg, [3, 0, 0, 0, 0, 0]), ALLOW);
        #[cfg(target_arch = "x86_64")]
        {
            let i386 = |nr: u32| verdict_as(&p, AUDIT_ARCH_I386, nr, [0; 6]);
            assert_eq!(i386(102), STOP);
            assert_eq!(i386(362), STOP);
            assert_eq!(i386(3), ALLOW, "read");
            assert_eq!(verdict(&p, (libc::SYS_connect as u32 | X32_BIT) as libc::c_long, [0; 6]), STOP);
        }
    }

    #[test]
    fn only_opens_that_could_read_the_hosts_file_stop() {
        let p = program();
        let at = libc::AT_FDCWD as u32 as u64;
        let read = (libc::O_RDONLY | libc::O_CLOEXEC) as u64;
        assert_eq!(verdict(&p, libc::SYS_openat, [at, 0, read, 0, 0, 0]), STOP);
        for flags in [libc::O_WRONLY | libc::O_CREAT, libc::O_RDWR, libc::O_RDONLY | libc::O_DIRECTORY, libc::O_PATH] {
            assert_eq!(verdict(&p, libc::SYS_openat, [at, 0, flags as u64, 0, 0, 0]), ALLOW, "flags {flags:#x}");
        }
        #[cfg(target_arch = "x86_64")]
        {
            assert_eq!(verdict(&p, libc::SYS_open, [0, read, 0, 0, 0, 0]), STOP);
            assert_eq!(verdict(&p, libc::SYS_open, [0, libc::O_DIRECTORY as u64, 0, 0, 0, 0]), ALLOW);
        }
    }
}
