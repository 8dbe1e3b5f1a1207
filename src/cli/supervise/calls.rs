//! The supervisor's answers to the calls its filter stops, made with the
//! same router, apps and journal as the shim: a routed `connect` gets a
//! socketpair in place of the program's socket, served here; the names
//! and TCP options of such a socket are answered as a TCP socket's; an
//! open of `/etc/hosts` gets the file with the routed names added, which
//! is how Go's resolver, musl and busybox find them. Anything else runs
//! as the program made it.

use std::collections::HashMap;
use std::io::{self, Write};
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr, TcpStream};
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::net::UnixStream;
use std::sync::{Arc, Mutex};

use intercept::apps::forward;
use intercept::config::Config;
use intercept::config::route::{HostPattern, Scheme};
use intercept::log::Level;
use intercept::routing::{Connect, Destination, Lookup, Router};
use intercept::serve;
use intercept::supervision::filter;
use libc::c_int;

use super::target::{Call, Reply};

/// What the supervisor knows.
pub struct Supervisor {
    router: Router,
    /// `/etc/hosts` as supervised programs read it.
    hosts: Vec<u8>,
    /// The sockets put in place of routed connects, by inode: what their
    /// names are, and the TCP options set on them.
    swapped: Mutex<HashMap<u64, Swapped>>,
}

struct Swapped {
    peer: SocketAddr,
    local: SocketAddr,
    options: HashMap<c_int, c_int>,
}

impl Supervisor {
    pub fn new(config: &Config) -> Supervisor {
        let router = Router::new(config);
        let mut hosts = std::fs::read("/etc/hosts").unwrap_or_default();
        if !hosts.is_empty() && !hosts.ends_with(b"\n") {
            hosts.push(b'\n');
        }
        hosts.extend_from_slice(b"# routed by intercept\n");
        for route in &config.routes {
            if let HostPattern::Name(name) = &route.url.host
                && let Lookup::Synthetic(v4, v6) = router.lookup(name)
            {
                hosts.extend_from_slice(format!("{v4} {name}\n{v6} {name}\n").as_bytes());
            }
        }
        Supervisor { router, hosts, swapped: Mutex::default() }
    }

    /// The answer to one stopped call.
    pub fn answer(self: &Arc<Self>, call: &Call) -> Reply {
        #[cfg(target_arch = "x86_64")]
        if call.notif.data.arch == filter::AUDIT_ARCH_I386 || call.notif.data.nr as u32 & filter::X32_BIT != 0 {
            return self.foreign(call);
        }
        match call.notif.data.nr as libc::c_long {
            libc::SYS_connect => self.connect(call),
            libc::SYS_getpeername => self.name(call, true),
            libc::SYS_getsockname => self.name(call, false),
            libc::SYS_setsockopt => self.option(call, true),
            libc::SYS_getsockopt => self.option(call, false),
            libc::SYS_open => self.open(call, 0),
            libc::SYS_openat => self.open(call, 1),
            libc::SYS_sendto | libc::SYS_sendmsg => self.fast_open(call),
            _ => Reply::Continue,
        }
    }

    /// Refuses a connection the passthrough mode does not allow: said on
    /// the process's stderr and journaled (a datagram socket's connect,
    /// which sends nothing, only at debug level).
    fn refuse(&self, call: &Call, fd: c_int, to: SocketAddr) -> Reply {
        let mode = self.router.passthrough.as_str();
        let datagram = call.copy_fd(fd).ok().and_then(|f| socket_type(&f)) == Some(libc::SOCK_DGRAM);
        if datagram {
            call.tell_at(
                Level::Debug,
                format_args!("refused a datagram connect to {to} (pid {}): INTERCEPT_PASSTHROUGH={mode}", call.pid()),
            );
            return Reply::Error(libc::ECONNREFUSED);
        }
        call.tell(format_args!("refused connection to {to} (pid {}): INTERCEPT_PASSTHROUGH={mode}", call.pid()));
        if let Some(journal) = &self.router.journal {
            intercept::journal::write_for_pid(call.pid() as u32);
            journal.blocked(&to.to_string(), mode);
            intercept::journal::write_for_pid(0);
        }
        Reply::Error(libc::ECONNREFUSED)
    }

    /// `sendto` or `sendmsg` with `MSG_FASTOPEN`: a connect and its first
    /// bytes. A routed address gets the socketpair with those bytes already
    /// in it; the mode decides for the rest.
    fn fast_open(self: &Arc<Self>, call: &Call) -> Reply {
        let fd = call.arg(0) as c_int;
        let message = call.notif.data.nr as libc::c_long == libc::SYS_sendmsg;
        const MOST: usize = 64 * 1024;
        let (name, name_len, data) = if message {
            // struct msghdr: name, namelen, iov, iovlen, ...
            let Some(head) = call.read(call.arg(1), 32) else { return Reply::Error(libc::EFAULT) };
            let word = |at: usize| u64::from_ne_bytes(head[at..at + 8].try_into().unwrap_or_default());
            let (iov, count) = (word(16), word(24).min(64) as usize);
            let mut data = Vec::new();
            for i in 0..count {
                let Some(v) = call.read(iov + 16 * i as u64, 16) else { return Reply::Error(libc::EFAULT) };
                let (base, len) =
                    (u64::from_ne_bytes(v[..8].try_into().unwrap_or_default()), u64::from_ne_bytes(v[8..].try_into().unwrap_or_default()));
                let len = (len as usize).min(MOST - data.len());
                data.extend(call.read(base, len).unwrap_or_default());
            }
            (word(0), word(8) & 0xffff_ffff, data)
        } else {
            (call.arg(4), call.arg(5), call.read(call.arg(1), (call.arg(2) as usize).min(MOST)).unwrap_or_default())
        };
        if name == 0 {
            return Reply::Continue;
        }
        let Some(to) = call.read(name, (name_len as usize).min(128)).and_then(|b| sockaddr_from(&b)) else { return Reply::Continue };
        if !call.still_waiting() {
            return Reply::Continue;
        }
        match self.router.connect(to) {
            Connect::Pass => Reply::Continue,
            Connect::Refuse => self.refuse(call, fd, to),
            Connect::Resolve { .. } => Reply::Error(libc::EOPNOTSUPP),
            Connect::Intercept(dest) => match self.intercept(call, fd, to, dest, &data) {
                Reply::Value(0) => Reply::Value(data.len() as i64),
                other => other,
            },
        }
    }

    /// A call of another ABI (i386's `int 0x80`, x32): never intercepted,
    /// but a connect (or a send that connects) to an address the mode
    /// refuses is refused, so `deny` and `loopback` hold for it too.
    #[cfg(target_arch = "x86_64")]
    fn foreign(&self, call: &Call) -> Reply {
        let nr = call.notif.data.nr as u32 & !filter::X32_BIT;
        let x32 = call.notif.data.arch != filter::AUDIT_ARCH_I386;
        let u32_at = |addr: u64, i: u64| call.read_u32(addr + 4 * i).map(u64::from);
        // The address and its length, when the call names one; pointers
        // and lengths are 32 bits in both ABIs.
        let named = match (x32, nr) {
            // socketcall(call, args): CONNECT 3, SENDTO 11, SENDMSG 16.
            (false, 102) => match call.arg(0) {
                3 => u32_at(call.arg(1), 1).zip(u32_at(call.arg(1), 2)),
                11 => u32_at(call.arg(1), 4).zip(u32_at(call.arg(1), 5)),
                16 => u32_at(call.arg(1), 1).and_then(|msg| u32_at(msg, 0).zip(u32_at(msg, 1))),
                _ => return Reply::Continue,
            },
            (false, 362) | (true, 42) => Some((call.arg(1), call.arg(2))),
            (false, 369) | (true, 44) => Some((call.arg(4), call.arg(5))),
            (false, 370) | (true, 46) => u32_at(call.arg(1), 0).zip(u32_at(call.arg(1), 1)),
            _ => return Reply::Continue,
        };
        let Some((addr, len)) = named.filter(|(addr, _)| *addr != 0) else { return Reply::Continue };
        let Some(to) = call.read(addr & 0xffff_ffff, (len as usize).min(128)).and_then(|b| sockaddr_from(&b)) else {
            return Reply::Continue;
        };
        match self.router.connect(to) {
            Connect::Pass => Reply::Continue,
            Connect::Refuse => {
                let fd = if nr == 102 { u32_at(call.arg(1), 0).unwrap_or(0) as c_int } else { call.arg(0) as c_int };
                self.refuse(call, fd, to)
            }
            _ => {
                call.tell(format_args!("refused connection to {to} (pid {}): a 32-bit system call is not intercepted", call.pid()));
                Reply::Error(libc::ECONNREFUSED)
            }
        }
    }

    fn connect(self: &Arc<Self>, call: &Call) -> Reply {
        let fd = call.arg(0) as c_int;
        let len = (call.arg(2) as usize).min(128);
        let Some(to) = call.read(call.arg(1), len).and_then(|b| sockaddr_from(&b)) else { return Reply::Continue };
        if !call.still_waiting() {
            return Reply::Continue;
        }
        match self.router.connect(to) {
            Connect::Pass => Reply::Continue,
            Connect::Refuse => self.refuse(call, fd, to),
            // A routed name on a port no route serves: connected for real,
            // on a thread of its own, so a slow host holds up no other call.
            Connect::Resolve { name, port } => {
                let (supervisor, call) = (self.clone(), *call);
                let started = std::thread::Builder::new().name("intercept".into()).spawn(move || {
                    let reply = match (call.copy_fd(fd), TcpStream::connect((name.as_str(), port))) {
                        (Ok(original), Ok(stream)) => match supervisor.put_in_place(&call, fd, &original, OwnedFd::from(stream)) {
                            Ok(()) => Reply::Value(0),
                            Err(_) => Reply::Error(libc::ECONNREFUSED),
                        },
                        (Err(_), _) => Reply::Error(libc::EBADF),
                        (_, Err(e)) => Reply::Error(e.raw_os_error().unwrap_or(libc::ECONNREFUSED)),
                    };
                    call.answer(reply);
                });
                if started.is_ok() { Reply::Sent } else { Reply::Error(libc::EAGAIN) }
            }
            Connect::Intercept(dest) => self.intercept(call, fd, to, dest, &[]),
        }
    }

    /// Puts a socketpair served here in place of the process's fd, with
    /// `first` (a fast-open send's bytes) already sent on it.
    fn intercept(self: &Arc<Self>, call: &Call, fd: c_int, to: SocketAddr, dest: Destination, first: &[u8]) -> Reply {
        // Only streams are ours; a datagram "connect" to a routed address
        // goes on as it came.
        let original = match call.copy_fd(fd) {
            Ok(original) => original,
            Err(e) => {
                call.tell(format_args!("cannot intercept a connect of pid {} to {to}: {e}", call.pid()));
                return Reply::Error(libc::ECONNREFUSED);
            }
        };
        if socket_type(&original) != Some(libc::SOCK_STREAM) {
            return Reply::Continue;
        }
        let (ours, theirs) = match UnixStream::pair() {
            Ok(pair) => pair,
            Err(e) => {
                call.tell(format_args!("cannot make a socketpair: {e}"));
                return Reply::Error(libc::ENOBUFS);
            }
        };
        if !first.is_empty() && (&theirs).write_all(first).is_err() {
            return Reply::Error(libc::ENOBUFS);
        }
        let theirs = OwnedFd::from(theirs);
        let Some(inode) = inode_of(&theirs) else { return Reply::Error(libc::ENOBUFS) };
        let local = local_name(to, inode);
        self.swapped.lock().unwrap().insert(inode, Swapped { peer: to, local, options: HashMap::new() });
        if let Err(e) = self.put_in_place(call, fd, &original, theirs) {
            self.swapped.lock().unwrap().remove(&inode);
            call.tell_at(Level::Debug, format_args!("cannot put a socket in place of fd {fd} of pid {}: {e}", call.pid()));
            return Reply::Error(libc::ECONNREFUSED);
        }
        call.tell_at(
            Level::Debug,
            format_args!("intercepted connection to {to} ({}:{}) on fd {fd} of supervised pid {}", dest.host, dest.port, call.pid()),
        );
        let (supervisor, pid) = (self.clone(), call.pid() as u32);
        // What serving the connection has to say goes where the process's
        // own errors go.
        let stderr = call.copy_fd(2).ok();
        let started = std::thread::Builder::new().name("intercept".into()).spawn(move || {
            intercept::journal::write_for_pid(pid);
            if let Some(fd) = &stderr {
                intercept::log::set_thread_sink(fd.as_raw_fd());
            }
            supervisor.serve(ours, dest);
            supervisor.swapped.lock().unwrap().remove(&inode);
            drop(stderr);
        });
        if let Err(e) = started {
            call.tell(format_args!("cannot start a thread for a supervised connection: {e}"));
        }
        Reply::Value(0)
    }

    /// Puts `socket` over the process's fd `fd` (`original` is our copy
    /// of what it held), with its blocking mode and close-on-exec flag.
    fn put_in_place(&self, call: &Call, fd: c_int, original: &OwnedFd, socket: OwnedFd) -> io::Result<()> {
        // SAFETY: fcntl on fds we hold.
        unsafe {
            let status = libc::fcntl(original.as_raw_fd(), libc::F_GETFL);
            if status >= 0 && status & libc::O_NONBLOCK != 0 {
                libc::fcntl(socket.as_raw_fd(), libc::F_SETFL, libc::O_NONBLOCK);
            }
        }
        call.add_fd(&socket, Some(fd), call.cloexec(fd)).map(drop)
    }

    fn serve(&self, ours: UnixStream, dest: Destination) {
        match &dest.site.forward {
            Some((_, relay)) if relay.tunnel || dest.site.scheme == Scheme::Http => forward::serve(&ours, &relay.to, &forward::connect_std),
            _ => {
                // A client quiet for the idle timeout, or that stops
                // reading an answer for as long, is hung up on.
                let idle = self.router.idle_timeout;
                if dest.site.forward.is_none() && !idle.is_zero() {
                    let _ = ours.set_read_timeout(Some(idle));
                    let _ = ours.set_write_timeout(Some(idle));
                }
                serve::serve(ours, &dest, self.router.ca_dir())
            }
        }
    }

    /// `getpeername`/`getsockname` on a socket put in place: a TCP name.
    fn name(&self, call: &Call, peer: bool) -> Reply {
        let fd = call.arg(0) as c_int;
        let Some(inode) = call.socket_inode(fd) else { return Reply::Continue };
        let name = match self.swapped.lock().unwrap().get(&inode) {
            Some(s) if peer => s.peer,
            Some(s) => s.local,
            None => return Reply::Continue,
        };
        let (addr, len_at) = (call.arg(1), call.arg(2));
        let Some(room) = call.read_u32(len_at).map(|n| n as usize) else {
            return Reply::Error(libc::EFAULT);
        };
        let bytes = sockaddr_bytes(name);
        let shown = room.min(bytes.len());
        if !call.write(addr, &bytes[..shown]) || !call.write(len_at, &(bytes.len() as u32).to_ne_bytes()) {
            return Reply::Error(libc::EFAULT);
        }
        Reply::Value(0)
    }

    /// TCP options on a socket put in place: kept, and read back.
    fn option(&self, call: &Call, set: bool) -> Reply {
        let (fd, name) = (call.arg(0) as c_int, call.arg(2) as c_int);
        if fd == -1 && name == filter::PROBE_OPTION && !set {
            return Reply::Value(filter::PROBE_ANSWER);
        }
        let Some(inode) = call.socket_inode(fd) else { return Reply::Continue };
        let mut swapped = self.swapped.lock().unwrap();
        let Some(socket) = swapped.get_mut(&inode) else { return Reply::Continue };
        let (value_at, len) = (call.arg(3), call.arg(4));
        if set {
            if let Some(v) = call.read_u32(value_at).filter(|_| len >= 4) {
                socket.options.insert(name, v as c_int);
            }
            return Reply::Value(0);
        }
        let value = socket.options.get(&name).copied().unwrap_or(0);
        let Some(room) = call.read_u32(len) else {
            return Reply::Error(libc::EFAULT);
        };
        if room < 4 {
            return Reply::Error(libc::EINVAL);
        }
        if !call.write(value_at, &value.to_ne_bytes()) || !call.write(len, &4u32.to_ne_bytes()) {
            return Reply::Error(libc::EFAULT);
        }
        Reply::Value(0)
    }

    /// An open of `/etc/hosts` for reading gets the routed names too.
    fn open(&self, call: &Call, path_slot: usize) -> Reply {
        let flags = call.arg(path_slot + 1) as c_int;
        if flags & libc::O_ACCMODE != libc::O_RDONLY {
            return Reply::Continue;
        }
        match call.read_str(call.arg(path_slot), 64) {
            Some(path) if path == b"/etc/hosts" => {}
            _ => return Reply::Continue,
        }
        let Ok(file) = hosts_file(&self.hosts) else { return Reply::Continue };
        if !call.still_waiting() {
            return Reply::Continue;
        }
        match call.add_fd(&file, None, flags & libc::O_CLOEXEC != 0) {
            Ok(_) => Reply::Sent,
            Err(_) => Reply::Continue,
        }
    }
}

/// A memory file holding `text`, at offset 0.
fn hosts_file(text: &[u8]) -> io::Result<OwnedFd> {
    use std::io::{Seek, Write};
    // SAFETY: memfd_create with a NUL-terminated name returns a new fd or -1.
    let fd = unsafe { libc::memfd_create(c"hosts".as_ptr(), libc::MFD_CLOEXEC) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: a new fd of ours.
    let mut file = std::fs::File::from(unsafe { <OwnedFd as std::os::fd::FromRawFd>::from_raw_fd(fd) });
    file.write_all(text)?;
    file.rewind()?;
    Ok(OwnedFd::from(file))
}

fn socket_type(fd: &OwnedFd) -> Option<c_int> {
    let mut value: c_int = 0;
    let mut len = size_of::<c_int>() as libc::socklen_t;
    // SAFETY: value and len are valid for the call.
    let rc = unsafe { libc::getsockopt(fd.as_raw_fd(), libc::SOL_SOCKET, libc::SO_TYPE, (&raw mut value).cast(), &mut len) };
    (rc == 0).then_some(value)
}

fn inode_of(fd: &OwnedFd) -> Option<u64> {
    // SAFETY: fstat into a zeroed struct of ours.
    unsafe {
        let mut st: libc::stat = std::mem::zeroed();
        (libc::fstat(fd.as_raw_fd(), &mut st) == 0).then_some(st.st_ino)
    }
}

/// A plausible local end: loopback in the peer's family, with a port from
/// the ephemeral range that stays the same for the socket.
fn local_name(peer: SocketAddr, inode: u64) -> SocketAddr {
    let port = 32768 + (inode % 28000) as u16;
    match peer {
        SocketAddr::V4(_) => SocketAddr::from((Ipv4Addr::LOCALHOST, port)),
        SocketAddr::V6(p) if p.ip().to_ipv4_mapped().is_some() => SocketAddr::from((Ipv4Addr::LOCALHOST.to_ipv6_mapped(), port)),
        SocketAddr::V6(_) => SocketAddr::from((Ipv6Addr::LOCALHOST, port)),
    }
}

/// An `AF_INET`/`AF_INET6` address from its C bytes.
fn sockaddr_from(b: &[u8]) -> Option<SocketAddr> {
    let family = c_int::from(u16::from_ne_bytes([*b.first()?, *b.get(1)?]));
    let port = u16::from_be_bytes([*b.get(2)?, *b.get(3)?]);
    match family {
        libc::AF_INET if b.len() >= 16 => Some(SocketAddr::from((Ipv4Addr::new(b[4], b[5], b[6], b[7]), port))),
        libc::AF_INET6 if b.len() >= 28 => {
            let ip: [u8; 16] = b[8..24].try_into().ok()?;
            let scope = u32::from_ne_bytes(b[24..28].try_into().ok()?);
            Some(SocketAddr::V6(std::net::SocketAddrV6::new(Ipv6Addr::from(ip), port, 0, scope)))
        }
        _ => None,
    }
}

/// The C bytes of an address.
fn sockaddr_bytes(addr: SocketAddr) -> Vec<u8> {
    let mut b = Vec::with_capacity(28);
    match addr {
        SocketAddr::V4(a) => {
            b.extend_from_slice(&(libc::AF_INET as u16).to_ne_bytes());
            b.extend_from_slice(&a.port().to_be_bytes());
            b.extend_from_slice(&a.ip().octets());
            b.extend_from_slice(&[0; 8]);
        }
        SocketAddr::V6(a) => {
            b.extend_from_slice(&(libc::AF_INET6 as u16).to_ne_bytes());
            b.extend_from_slice(&a.port().to_be_bytes());
            b.extend_from_slice(&a.flowinfo().to_ne_bytes());
            b.extend_from_slice(&a.ip().octets());
            b.extend_from_slice(&a.scope_id().to_ne_bytes());
        }
    }
    b
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_round_trip_through_their_c_bytes() {
        for addr in ["198.18.1.2:443", "[2001:2::c612:102]:8080", "[::ffff:127.0.0.1]:80"] {
            let addr: SocketAddr = addr.parse().unwrap();
            assert_eq!(sockaddr_from(&sockaddr_bytes(addr)), Some(addr));
        }
        assert_eq!(sockaddr_bytes("1.2.3.4:5".parse().unwrap()).len(), 16);
        assert_eq!(sockaddr_from(&[1, 0, b'/', 0]), None);
    }

    #[test]
    fn the_hosts_file_adds_routed_names_after_the_real_ones() {
        let vars = vec![("INTERCEPT_ROUTE_A".to_string(), "http://api.test -> echo".to_string())];
        let supervisor = Supervisor::new(&intercept::config::load(&vars).unwrap());
        let text = String::from_utf8(supervisor.hosts.clone()).unwrap();
        let Lookup::Synthetic(v4, _) = supervisor.router.lookup("api.test") else { panic!("not routed") };
        assert!(text.contains(&format!("{v4} api.test\n")), "{text}");
        assert!(text.starts_with(&String::from_utf8(std::fs::read("/etc/hosts").unwrap()).unwrap()));
    }
}
