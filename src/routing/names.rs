//! Synthetic addresses: each routed host name gets one stable IPv4 address
//! in 198.18.0.0/15 (RFC 2544, benchmarking) and the IPv6 address in
//! 2001:2::/48 (RFC 5180, its IPv6 twin) that carries the same low 32 bits.
//!
//! An address is a hash of the name, probed past collisions, so the same
//! configuration gives the same addresses in every process: routed names are
//! registered in configuration order before any lookup.

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use crate::fork_lock::ForkLock;

const V4_BASE: u32 = u32::from_be_bytes([198, 18, 0, 0]);
const V4_BITS: u32 = 17;
const V6_PREFIX: [u16; 6] = [0x2001, 0x0002, 0, 0, 0, 0];

/// Whether an address lies in either synthetic range (IPv4-mapped IPv6
/// counts as its IPv4 address).
pub fn is_synthetic(ip: IpAddr) -> bool {
    slot_of(ip).is_some()
}

fn slot_of(ip: IpAddr) -> Option<u32> {
    let v4 = match ip.to_canonical() {
        IpAddr::V4(v4) => u32::from(v4),
        IpAddr::V6(v6) => {
            let s = v6.segments();
            if s[..6] != V6_PREFIX {
                return None;
            }
            (u32::from(s[6]) << 16) | u32::from(s[7])
        }
    };
    (v4 >> V4_BITS == V4_BASE >> V4_BITS).then(|| v4 - V4_BASE)
}

/// The synthetic IPv4 address of `slot`, in 198.18.0.0/15.
pub fn v4(slot: u32) -> Ipv4Addr {
    Ipv4Addr::from(V4_BASE + slot)
}

/// The synthetic IPv6 address of `slot`, in 2001:2::/48, with the IPv4 one's low 32 bits.
pub fn v6(slot: u32) -> Ipv6Addr {
    let low = V4_BASE + slot;
    let s = V6_PREFIX;
    Ipv6Addr::new(s[0], s[1], s[2], s[3], s[4], s[5], (low >> 16) as u16, low as u16)
}

/// The two-way table between names and their slots in the ranges.
#[derive(Default)]
pub struct Names {
    inner: ForkLock<Table>,
}

/// Ordered maps: a hashed one would draw its keys (a `getrandom`) in every
/// process at load, where the router makes this table.
#[derive(Default)]
struct Table {
    by_name: BTreeMap<String, u32>,
    by_slot: BTreeMap<u32, String>,
}

impl Names {
    /// The slot of a (normalised) name, assigned on first use.
    pub fn slot(&self, name: &str) -> u32 {
        let mut t = self.inner.lock();
        if let Some(&slot) = t.by_name.get(name) {
            return slot;
        }
        // Skip the first and last address of the range (network, broadcast).
        let usable = (1u32 << V4_BITS) - 2;
        let mut slot = (crate::run::fnv(name.as_bytes()) % u64::from(usable)) as u32 + 1;
        while t.by_slot.contains_key(&slot) {
            slot = slot % usable + 1;
        }
        t.by_name.insert(name.to_string(), slot);
        t.by_slot.insert(slot, name.to_string());
        slot
    }

    /// Takes the table's lock until `release_after_fork`: the shim calls it
    /// before `fork` so a child never inherits the lock held.
    pub fn hold_for_fork(&self) {
        self.inner.hold_for_fork();
    }

    /// Gives back the lock taken by `hold_for_fork`.
    ///
    /// # Safety
    /// Only after `hold_for_fork`, once, in each process after the fork.
    pub unsafe fn release_after_fork(&self) {
        // SAFETY: our caller's promise, passed on.
        unsafe { self.inner.release_after_fork() };
    }

    /// The name a synthetic address was given to, if any.
    pub fn name_of(&self, ip: IpAddr) -> Option<String> {
        let slot = slot_of(ip)?;
        self.inner.lock().by_slot.get(&slot).cloned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stable_and_reversible() {
        let a = Names::default();
        let b = Names::default();
        let s = a.slot("api.test");
        assert_eq!(s, b.slot("api.test"));
        assert_eq!(s, a.slot("api.test"));
        assert_eq!(a.name_of(IpAddr::V4(v4(s))).as_deref(), Some("api.test"));
        assert_eq!(a.name_of(IpAddr::V6(v6(s))).as_deref(), Some("api.test"));
        let mapped = v4(s).to_ipv6_mapped();
        assert_eq!(a.name_of(IpAddr::V6(mapped)).as_deref(), Some("api.test"));
        assert!(v4(s).octets()[0] == 198 && (v4(s).octets()[1] & 0xfe) == 18);
        assert_eq!(v6(s).segments()[..2], [0x2001, 2]);
    }

    #[test]
    fn collisions_get_distinct_addresses() {
        let n = Names::default();
        let mut seen = std::collections::HashSet::new();
        for i in 0..5000 {
            assert!(seen.insert(n.slot(&format!("h{i}.test"))));
        }
    }

    #[test]
    fn ranges() {
        assert!(is_synthetic("198.19.255.1".parse().unwrap()));
        assert!(!is_synthetic("198.20.0.1".parse().unwrap()));
        assert!(!is_synthetic("127.0.0.1".parse().unwrap()));
        assert!(is_synthetic("2001:2::c612:1".parse().unwrap()));
        assert!(!is_synthetic("2001:3::c612:1".parse().unwrap()));
        assert!(!is_synthetic("2001:2::1:1".parse().unwrap()));
    }
}
