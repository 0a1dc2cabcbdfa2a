//! Deterministic names and hardware addresses, so DEL, CHECK and GC find
//! what ADD made from the attachment alone, without entering the sandbox.

use std::net::Ipv4Addr;

use crate::env::Attachment;

/// FNV-1a: stable across Rust versions, unlike `DefaultHasher`.
fn fnv1a(parts: &[&str]) -> u64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for part in parts {
        for byte in part.bytes().chain([0]) {
            hash ^= u64::from(byte);
            hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
        }
    }
    hash
}

/// The host end of the attachment's veth: `veth` and 11 hex digits of a
/// hash of container id and interface name (15 bytes, the kernel's limit).
pub fn host_veth_name(attachment: &Attachment) -> String {
    let hash = fnv1a(&[&attachment.container_id, &attachment.ifname]);
    format!("veth{:011x}", hash >> 20)
}

/// The host end's hardware address: locally administered, from the same hash.
pub fn host_veth_mac(attachment: &Attachment) -> [u8; 6] {
    let hash = fnv1a(&[&attachment.container_id, &attachment.ifname]).to_be_bytes();
    [0x02, hash[3], hash[4], hash[5], hash[6], hash[7]]
}

/// A hardware address derived from an IPv4 address (`0a:58:` + its four
/// bytes): pods and the bridge get one each, unique because their addresses are.
pub fn mac_for(ip: Ipv4Addr) -> [u8; 6] {
    let [a, b, c, d] = ip.octets();
    [0x0a, 0x58, a, b, c, d]
}

#[cfg(test)]
mod tests {
    use std::net::Ipv4Addr;

    use super::{host_veth_mac, host_veth_name, mac_for};
    use crate::env::Attachment;

    #[test]
    fn names_fit_the_kernel_and_differ_per_attachment() {
        let a = Attachment {
            container_id: "abc".into(),
            ifname: "eth0".into(),
        };
        let b = Attachment {
            container_id: "abc".into(),
            ifname: "eth1".into(),
        };
        assert_eq!(host_veth_name(&a).len(), 15);
        assert_eq!(host_veth_name(&a), host_veth_name(&a.clone()));
        assert_ne!(host_veth_name(&a), host_veth_name(&b));
        // Locally administered unicast.
        assert_eq!(host_veth_mac(&a)[0] & 0b11, 0b10);
        assert_eq!(
            mac_for(Ipv4Addr::new(10, 244, 1, 2)),
            [0x0a, 0x58, 10, 244, 1, 2]
        );
    }
}
