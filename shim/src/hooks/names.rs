//! Name resolution: routed names get their synthetic addresses.

use std::ffi::{CStr, CString};
use std::mem::size_of;
use std::net::IpAddr;

use core_lib::routing::Lookup;
use core_lib::{log_debug, log_error};
use libc::{addrinfo, c_char, c_int};

use crate::{real, sockaddr, state};

pub(super) unsafe fn getaddrinfo_impl(
    node: *const c_char,
    service: *const c_char,
    hints: *const addrinfo,
    res: *mut *mut addrinfo,
) -> c_int {
    if !state::active() || node.is_null() || res.is_null() {
        // SAFETY: the caller's arguments, passed on.
        return unsafe { real::getaddrinfo(node, service, hints, res) };
    }
    // SAFETY: as above.
    unsafe { lookup(node, service, hints, res) }
}

unsafe fn lookup(node: *const c_char, service: *const c_char, hints: *const addrinfo, res: *mut *mut addrinfo) -> c_int {
    // SAFETY: a non-null C string from the caller.
    let (Some(router), Ok(name)) = (state::router(), unsafe { CStr::from_ptr(node) }.to_str()) else {
        // SAFETY: the caller's arguments, passed on.
        return unsafe { real::getaddrinfo(node, service, hints, res) };
    };
    match router.lookup(name) {
        // SAFETY: the caller's arguments, passed on.
        Lookup::Pass => unsafe { real::getaddrinfo(node, service, hints, res) },
        Lookup::Refuse => {
            log_error!("refused lookup of {name}: INTERCEPT_PASSTHROUGH=deny");
            if let Some(journal) = &router.journal {
                journal.blocked(name, router.passthrough.as_str());
            }
            libc::EAI_NONAME
        }
        Lookup::Synthetic(v4, v6) => {
            // SAFETY: hints, when given, is a valid addrinfo; zero is "no hints".
            let mut h: addrinfo = if hints.is_null() { unsafe { std::mem::zeroed() } } else { unsafe { *hints } };
            let want_canonical = h.ai_flags & libc::AI_CANONNAME != 0;
            h.ai_flags = (h.ai_flags | libc::AI_NUMERICHOST) & !libc::AI_CANONNAME;
            h.ai_canonname = std::ptr::null_mut();
            h.ai_addr = std::ptr::null_mut();
            h.ai_next = std::ptr::null_mut();
            let addresses: &[IpAddr] = match h.ai_family {
                libc::AF_INET => &[IpAddr::V4(v4)],
                libc::AF_INET6 => &[IpAddr::V6(v6)],
                libc::AF_UNSPEC => &[IpAddr::V4(v4), IpAddr::V6(v6)],
                _ => return libc::EAI_FAMILY,
            };
            let mut head: *mut addrinfo = std::ptr::null_mut();
            let mut tail: *mut *mut addrinfo = &mut head;
            let mut first_error = None;
            for ip in addresses {
                h.ai_family = if ip.is_ipv4() { libc::AF_INET } else { libc::AF_INET6 };
                let text = CString::new(ip.to_string()).expect("addresses have no NUL");
                let mut list: *mut addrinfo = std::ptr::null_mut();
                // SAFETY: a numeric host, the caller's service and our hints.
                match unsafe { real::getaddrinfo(text.as_ptr(), service, &h, &mut list) } {
                    // SAFETY: walking to the end of the list just returned.
                    0 => unsafe {
                        *tail = list;
                        while !(*tail).is_null() {
                            tail = &mut (**tail).ai_next;
                        }
                    },
                    code => {
                        first_error.get_or_insert(code);
                    }
                }
            }
            if head.is_null() {
                return first_error.unwrap_or(libc::EAI_NONAME);
            }
            if want_canonical {
                let canonical = CString::new(name).expect("came from a C string");
                // SAFETY: strdup's copy is freed by libc's freeaddrinfo.
                unsafe { (*head).ai_canonname = libc::strdup(canonical.as_ptr()) };
            }
            log_debug!("resolved {name} to {v4} and {v6}");
            // SAFETY: res is the caller's non-null out-pointer.
            unsafe { *res = head };
            0
        }
    }
}

// ---- gethostbyname and friends ----------------------------------------------

const HOST_NOT_FOUND: c_int = 1;
const NETDB_INTERNAL: c_int = -1;

unsafe extern "C" {
    fn __h_errno_location() -> *mut c_int;
}

fn set_h_errno(code: c_int) {
    // SAFETY: glibc's per-thread h_errno slot.
    unsafe { *__h_errno_location() = code };
}

/// What the `gethostbyname*` hooks do with a name.
enum HostLookup {
    /// Not ours: the real function answers.
    Real,
    /// Refused by `deny`: HOST_NOT_FOUND.
    Refused,
    /// A synthetic address of the family asked for.
    Address(IpAddr),
}

fn host_lookup(name: *const c_char, family: c_int) -> HostLookup {
    if !state::active() || name.is_null() {
        return HostLookup::Real;
    }
    // SAFETY: a non-null C string from the caller.
    let (Some(router), Ok(text)) = (state::router(), unsafe { CStr::from_ptr(name) }.to_str()) else {
        return HostLookup::Real;
    };
    match router.lookup(text) {
        Lookup::Pass => HostLookup::Real,
        Lookup::Refuse => {
            log_error!("refused lookup of {text}: INTERCEPT_PASSTHROUGH=deny");
            if let Some(journal) = &router.journal {
                journal.blocked(text, router.passthrough.as_str());
            }
            HostLookup::Refused
        }
        Lookup::Synthetic(v4, v6) => match family {
            libc::AF_INET6 => HostLookup::Address(IpAddr::V6(v6)),
            _ => HostLookup::Address(IpAddr::V4(v4)),
        },
    }
}

/// Lays a one-address `hostent` out in the caller's buffer, as glibc does:
/// address bytes, the address list, the (empty) alias list, then the name.
/// Returns ERANGE when the buffer is too small.
unsafe fn fill_hostent(name: *const c_char, ip: IpAddr, ret: *mut libc::hostent, buf: *mut c_char, buflen: libc::size_t) -> c_int {
    let octets: Vec<u8> = match ip {
        IpAddr::V4(v4) => v4.octets().to_vec(),
        IpAddr::V6(v6) => v6.octets().to_vec(),
    };
    // SAFETY: name is a C string; every write below is bounds-checked
    // against buflen first.
    unsafe {
        let name_bytes = CStr::from_ptr(name).to_bytes_with_nul();
        let ptr = size_of::<*mut c_char>();
        let pad = buf.align_offset(ptr);
        let need = pad + 3 * ptr + 16 + name_bytes.len();
        if buf.is_null() || buflen < need {
            return libc::ERANGE;
        }
        let base = buf.add(pad);
        let addr_list = base.cast::<*mut c_char>();
        let aliases = addr_list.add(2);
        let addr = base.add(3 * ptr);
        let host_name = addr.add(16);
        std::ptr::copy_nonoverlapping(octets.as_ptr(), addr.cast::<u8>(), octets.len());
        std::ptr::copy_nonoverlapping(name_bytes.as_ptr(), host_name.cast::<u8>(), name_bytes.len());
        *addr_list = addr;
        *addr_list.add(1) = std::ptr::null_mut();
        *aliases = std::ptr::null_mut();
        *ret = libc::hostent {
            h_name: host_name,
            h_aliases: aliases,
            h_addrtype: if ip.is_ipv4() { libc::AF_INET } else { libc::AF_INET6 },
            h_length: octets.len() as c_int,
            h_addr_list: addr_list,
        };
    }
    0
}

type HostentR =
    unsafe extern "C" fn(*const c_char, c_int, *mut libc::hostent, *mut c_char, libc::size_t, *mut *mut libc::hostent, *mut c_int) -> c_int;

/// The reentrant forms: fill the caller's hostent and buffer.
#[allow(clippy::too_many_arguments)] // glibc's signature
pub(super) unsafe fn hostent_r(
    name: *const c_char,
    family: c_int,
    ret: *mut libc::hostent,
    buf: *mut c_char,
    buflen: libc::size_t,
    result: *mut *mut libc::hostent,
    h_errnop: *mut c_int,
    real: HostentR,
) -> c_int {
    let lookup = host_lookup(name, family);
    // SAFETY: result and h_errnop are the caller's out-pointers, checked for null.
    let set = |found: *mut libc::hostent, h: c_int| unsafe {
        if !result.is_null() {
            *result = found;
        }
        if !h_errnop.is_null() {
            *h_errnop = h;
        }
    };
    match lookup {
        // SAFETY: the caller's arguments, passed on.
        HostLookup::Real => unsafe { real(name, family, ret, buf, buflen, result, h_errnop) },
        HostLookup::Refused => {
            set(std::ptr::null_mut(), HOST_NOT_FOUND);
            0
        }
        // SAFETY: the caller's hostent and buffer of buflen bytes.
        HostLookup::Address(ip) => match unsafe { fill_hostent(name, ip, ret, buf, buflen) } {
            0 => {
                set(ret, 0);
                0
            }
            code => {
                set(std::ptr::null_mut(), NETDB_INTERNAL);
                code
            }
        },
    }
}

/// glibc's gethostbyname2_r with the family argument; gethostbyname_r is the
/// same with AF_INET.
pub(super) unsafe extern "C" fn real_gethostbyname2_r(
    name: *const c_char,
    family: c_int,
    ret: *mut libc::hostent,
    buf: *mut c_char,
    buflen: libc::size_t,
    result: *mut *mut libc::hostent,
    h_errnop: *mut c_int,
) -> c_int {
    // SAFETY: the caller's arguments, passed on.
    unsafe { real::gethostbyname2_r(name, family, ret, buf, buflen, result, h_errnop) }
}

/// `gethostbyname_r` in `gethostbyname2_r`'s shape, for [`hostent_r`].
pub(super) unsafe extern "C" fn real_v4(
    name: *const c_char,
    _family: c_int,
    ret: *mut libc::hostent,
    buf: *mut c_char,
    buflen: libc::size_t,
    result: *mut *mut libc::hostent,
    h_errnop: *mut c_int,
) -> c_int {
    // SAFETY: the caller's arguments, passed on.
    unsafe { real::gethostbyname_r(name, ret, buf, buflen, result, h_errnop) }
}

/// Per-thread storage for the non-reentrant forms (glibc uses one static
/// buffer; one per thread is at least as safe).
struct HostentSlot {
    hostent: libc::hostent,
    buf: [c_char; 1024],
}

thread_local! {
    static SLOT: std::cell::UnsafeCell<HostentSlot> = const {
        std::cell::UnsafeCell::new(HostentSlot {
            hostent: libc::hostent {
                h_name: std::ptr::null_mut(),
                h_aliases: std::ptr::null_mut(),
                h_addrtype: 0,
                h_length: 0,
                h_addr_list: std::ptr::null_mut(),
            },
            buf: [0; 1024],
        })
    };
}

unsafe fn hostent_static(name: *const c_char, family: c_int) -> Option<*mut libc::hostent> {
    match host_lookup(name, family) {
        HostLookup::Real => None,
        HostLookup::Refused => {
            set_h_errno(HOST_NOT_FOUND);
            Some(std::ptr::null_mut())
        }
        HostLookup::Address(ip) => Some(SLOT.with(|slot| {
            let slot = slot.get();
            // SAFETY: this thread's own slot, valid until its next call.
            unsafe {
                let buf = (*slot).buf.as_mut_ptr();
                if fill_hostent(name, ip, &raw mut (*slot).hostent, buf, 1024) == 0 {
                    &raw mut (*slot).hostent
                } else {
                    set_h_errno(NETDB_INTERNAL);
                    std::ptr::null_mut()
                }
            }
        })),
    }
}

/// What the `gethostbyname` hook does.
///
/// # Safety
/// As for libc's `gethostbyname`.
pub(super) unsafe fn gethostbyname_impl(name: *const c_char) -> *mut libc::hostent {
    // SAFETY: the caller's arguments, passed on.
    unsafe { hostent_static(name, libc::AF_INET).unwrap_or_else(|| real::gethostbyname(name)) }
}

/// What the `gethostbyname2` hook does.
///
/// # Safety
/// As for libc's `gethostbyname2`.
pub(super) unsafe fn gethostbyname2_impl(name: *const c_char, family: c_int) -> *mut libc::hostent {
    // SAFETY: the caller's arguments, passed on.
    unsafe { hostent_static(name, family).unwrap_or_else(|| real::gethostbyname2(name, family)) }
}

/// What a failing non-reentrant lookup returns.
pub(super) fn no_host() -> *mut libc::hostent {
    set_h_errno(NETDB_INTERNAL);
    std::ptr::null_mut()
}

pub(super) unsafe fn getnameinfo_impl(
    addr: *const libc::sockaddr,
    alen: libc::socklen_t,
    host: *mut c_char,
    hostlen: libc::socklen_t,
    serv: *mut c_char,
    servlen: libc::socklen_t,
    flags: c_int,
) -> c_int {
    let name = if state::active() && !host.is_null() && flags & libc::NI_NUMERICHOST == 0 {
        // SAFETY: the caller vouches for `alen` bytes at `addr`.
        unsafe { sockaddr::read(addr, alen) }.and_then(|to| state::router()?.names().name_of(to.ip()))
    } else {
        None
    };
    let Some(name) = name else {
        // SAFETY: the caller's arguments, passed on.
        return unsafe { real::getnameinfo(addr, alen, host, hostlen, serv, servlen, flags) };
    };
    // The service part (and validation of the address) from libc itself.
    // SAFETY: the caller's arguments, passed on with a numeric host.
    let rc = unsafe { real::getnameinfo(addr, alen, host, hostlen, serv, servlen, flags | libc::NI_NUMERICHOST) };
    if rc != 0 {
        return rc;
    }
    if name.len() + 1 > hostlen as usize {
        return libc::EAI_OVERFLOW;
    }
    // SAFETY: host holds hostlen bytes, checked above.
    unsafe {
        std::ptr::copy_nonoverlapping(name.as_ptr(), host.cast::<u8>(), name.len());
        *host.add(name.len()) = 0;
    }
    0
}
