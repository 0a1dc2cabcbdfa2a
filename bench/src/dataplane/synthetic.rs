//! The services the benchmark installs: `count` ClusterIP services of one
//! TCP port with three endpoints each. One of them, the service under
//! test, can be given real backend pods; the others get placeholder
//! addresses nothing answers on (they are installed, never reached). Both
//! rudder's `ServiceState`s and the kube-proxy-style ruleset are made from
//! this one description.
//!
//! The service under test keeps its name and ClusterIP whatever the count:
//! a client reusing a source port then meets the server's TIME_WAIT of an
//! earlier connection with the same timestamp offset (Linux derives it from
//! the address the client connected to), which the server accepts.

use std::net::Ipv4Addr;

use rudder_agent::dataplane::services::{
    Endpoint, EndpointPort, LoadBalancing, Protocol, ServiceName, ServicePort, ServiceState,
};

/// The port every service listens on.
pub const SERVICE_PORT: u16 = 80;
/// The port its endpoints listen on.
pub const TARGET_PORT: u16 = 8080;
/// Endpoints per service.
pub const ENDPOINTS_PER_SERVICE: usize = 3;
/// Namespace of every service.
pub const NAMESPACE: &str = "bench";
/// The cluster's pod CIDR (kube-proxy masquerades traffic from outside it).
pub const POD_CIDR: &str = "10.244.0.0/16";

/// ClusterIP of the service under test (outside the generated range).
pub const UNDER_TEST_IP: Ipv4Addr = Ipv4Addr::new(10, 100, 0, 10);
/// Name of the service under test.
const UNDER_TEST_NAME: &str = "svc-under-test";

/// First placeholder endpoint address: 10.128.0.0/13, outside the pod and
/// service CIDRs, room for 512 Ki endpoints.
const PLACEHOLDER_BASE: u32 = u32::from_be_bytes([10, 128, 0, 0]);
const PLACEHOLDER_SPACE: u32 = 1 << 19;
/// ClusterIPs come from 10.96.0.0/12, from 10.96.0.1 on.
const CLUSTER_IP_BASE: u32 = u32::from_be_bytes([10, 96, 0, 1]);

/// One ClusterIP service of the benchmark.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BenchService {
    /// Its name.
    pub name: String,
    /// Its ClusterIP.
    pub cluster_ip: Ipv4Addr,
    /// Its endpoints (all ready, all listening on [`TARGET_PORT`]).
    pub endpoints: Vec<Ipv4Addr>,
}

impl BenchService {
    /// The service as `ServiceDataplane` takes it.
    pub fn state(&self) -> ServiceState {
        ServiceState {
            name: ServiceName::new(NAMESPACE, &self.name),
            cluster_ip: Some(self.cluster_ip),
            ports: vec![ServicePort {
                name: "http".into(),
                protocol: Protocol::Tcp,
                port: SERVICE_PORT,
                node_port: None,
            }],
            affinity_timeout_s: None,
            external_traffic_local: false,
            load_balancing: LoadBalancing::Random,
            endpoints: self
                .endpoints
                .iter()
                .map(|addr| Endpoint {
                    addr: *addr,
                    ports: vec![EndpointPort {
                        name: "http".into(),
                        protocol: Protocol::Tcp,
                        port: TARGET_PORT,
                    }],
                    ready: true,
                    terminating: false,
                    local: false,
                })
                .collect(),
        }
    }
}

/// The ClusterIP of service `index`.
pub fn cluster_ip(index: usize) -> Ipv4Addr {
    Ipv4Addr::from(CLUSTER_IP_BASE + u32::try_from(index).unwrap_or(u32::MAX))
}

/// Placeholder endpoint number `n` (wraps after 512 Ki).
pub fn placeholder_endpoint(n: usize) -> Ipv4Addr {
    let n = u32::try_from(n).unwrap_or(u32::MAX) % PLACEHOLDER_SPACE;
    Ipv4Addr::from(PLACEHOLDER_BASE + n)
}

/// Whether `addr` is a placeholder endpoint.
pub fn is_placeholder(addr: Ipv4Addr) -> bool {
    u32::from(addr).wrapping_sub(PLACEHOLDER_BASE) < PLACEHOLDER_SPACE
}

/// `count` services (`svc-000042` at 10.96.0.43); with `real`, the service
/// at position `real.0` is the service under test instead, with the
/// endpoints `real.1`.
pub fn services(count: usize, real: Option<(usize, &[Ipv4Addr])>) -> Vec<BenchService> {
    (0..count)
        .map(|index| match real {
            Some((at, endpoints)) if at == index => BenchService {
                name: UNDER_TEST_NAME.into(),
                cluster_ip: UNDER_TEST_IP,
                endpoints: endpoints.to_vec(),
            },
            _ => BenchService {
                name: format!("svc-{index:06}"),
                cluster_ip: cluster_ip(index),
                endpoints: (0..ENDPOINTS_PER_SERVICE)
                    .map(|j| placeholder_endpoint(index * ENDPOINTS_PER_SERVICE + j))
                    .collect(),
            },
        })
        .collect()
}

/// A small deterministic generator (SplitMix64): the benchmark picks
/// services and flows pseudo-randomly, the same way on every run.
#[derive(Clone, Debug)]
pub struct Picker(u64);

impl Picker {
    /// A generator seeded with `seed`.
    pub fn new(seed: u64) -> Self {
        Self(seed)
    }

    /// A number in `0..bound` (`bound` > 0).
    pub fn below(&mut self, bound: usize) -> usize {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^= z >> 31;
        (z % bound.max(1) as u64) as usize
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_stay_in_their_ranges_and_the_real_service_gets_its_pods() {
        let pods = [Ipv4Addr::new(10, 244, 2, 2)];
        let list = services(10_000, Some((5_000, &pods)));
        assert_eq!(list.len(), 10_000);
        assert_eq!(list[0].cluster_ip, Ipv4Addr::new(10, 96, 0, 1));
        assert_eq!(list[9_999].cluster_ip, Ipv4Addr::new(10, 96, 39, 16));
        assert_eq!(list[5_000].endpoints, pods);
        assert_eq!(list[5_000].cluster_ip, UNDER_TEST_IP);
        assert!(
            list.iter()
                .filter(|s| s.cluster_ip == UNDER_TEST_IP)
                .count()
                == 1
        );
        assert!(list[1].endpoints.iter().all(|a| is_placeholder(*a)));
        assert_eq!(
            placeholder_endpoint(300_000),
            Ipv4Addr::new(10, 132, 147, 224)
        );
        assert!(!is_placeholder(Ipv4Addr::new(10, 244, 2, 2)));
        let state = list[7].state();
        assert_eq!(state.endpoints.len(), ENDPOINTS_PER_SERVICE);
        assert_eq!(state.name.name, "svc-000007");
    }

    #[test]
    fn the_picker_stays_below_its_bound() {
        let mut p = Picker::new(1);
        assert!((0..1000).all(|_| p.below(7) < 7));
    }
}
