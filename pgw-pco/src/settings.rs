//! The P-GW's settings, checked and converted from the `pgw:` configuration section, and the
//! per-APN address pools.

use std::collections::{HashMap, HashSet};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::time::Duration;

use imslab_config::PgwConfig;
use imslab_types::Imsi;

use crate::gtpv2::ie::Ambr;
use crate::pco::PcoSettings;
use crate::{Error, Result};

/// Largest number of /64 prefixes an IPv6 pool offers (keeps allocation scans bounded).
pub const MAX_V6_PREFIXES: u64 = 1 << 24;

/// How a phone's P-CSCF list is ordered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Selection {
    /// Each new session starts at the next P-CSCF.
    RoundRobin,
    /// A phone always starts at the P-CSCF its IMSI hashes to.
    ImsiHash,
}

/// Settings of one APN.
#[derive(Debug, Clone, PartialEq)]
pub struct ApnSettings {
    /// The network identifier, lower case.
    pub name: String,
    /// IPv4 pool: network and prefix length.
    pub ipv4_pool: Option<(Ipv4Addr, u8)>,
    /// IPv6 pool: network and prefix length (at most 63).
    pub ipv6_pool: Option<(Ipv6Addr, u8)>,
    /// PCO answers.
    pub pco: PcoSettings,
    /// P-CSCF ordering.
    pub selection: Selection,
    /// Fixed APN-AMBR; `None` echoes the request.
    pub ambr: Option<Ambr>,
    /// Fixed addresses per IMSI.
    pub statics: HashMap<Imsi, (Option<Ipv4Addr>, Option<Ipv6Addr>)>,
}

/// Everything the pure P-GW core needs.
#[derive(Debug, Clone, PartialEq)]
pub struct Settings {
    /// Address in our S5/S8-C F-TEID.
    pub gtpc_address: IpAddr,
    /// Address in our S5/S8-U F-TEIDs.
    pub gtpu_address: IpAddr,
    /// The APNs.
    pub apns: Vec<ApnSettings>,
    /// Retransmission cache capacity.
    pub retransmit_cache_size: usize,
    /// Retransmission cache lifetime.
    pub retransmit_cache_ttl: Duration,
    /// T3-RESPONSE.
    pub t3: Duration,
    /// N3-REQUESTS.
    pub n3: u32,
}

fn parse_cidr(s: &str) -> Result<(IpAddr, u8)> {
    let (a, l) = s
        .split_once('/')
        .ok_or_else(|| Error::Config(format!("pool {s:?}: expected address/prefix-length")))?;
    let addr: IpAddr = a
        .trim()
        .parse()
        .map_err(|_| Error::Config(format!("pool {s:?}: bad address")))?;
    let len: u8 = l
        .trim()
        .parse()
        .map_err(|_| Error::Config(format!("pool {s:?}: bad prefix length")))?;
    Ok((addr, len))
}

fn advertise(explicit: Option<IpAddr>, listen: IpAddr, what: &str) -> Result<IpAddr> {
    match explicit {
        Some(a) if !a.is_unspecified() => Ok(a),
        Some(_) => Err(Error::Config(format!(
            "{what}_advertise must not be a wildcard address"
        ))),
        None if listen.is_unspecified() => Err(Error::Config(format!(
            "{what}_listen is a wildcard address: set {what}_advertise to the address the SGW reaches"
        ))),
        None => Ok(listen),
    }
}

impl Settings {
    /// Checks and converts the `pgw:` section.
    pub fn from_config(cfg: &PgwConfig) -> Result<Self> {
        let mut apns = Vec::new();
        let mut names = HashSet::new();
        for a in &cfg.apns {
            let name = a.name.trim().to_ascii_lowercase();
            if name.is_empty() {
                return Err(Error::Config("an APN has an empty name".into()));
            }
            if !names.insert(name.clone()) {
                return Err(Error::Config(format!("APN {name:?} is configured twice")));
            }
            let ipv4_pool = match a.ipv4_pool.as_deref().map(parse_cidr).transpose()? {
                Some((IpAddr::V4(n), l)) if (8..=30).contains(&l) => {
                    let mask = u32::MAX << (32 - l);
                    Some((Ipv4Addr::from(u32::from(n) & mask), l))
                }
                Some(_) => {
                    return Err(Error::Config(format!(
                        "APN {name}: ipv4_pool must be an IPv4 prefix of length 8 to 30"
                    )));
                }
                None => None,
            };
            let ipv6_pool = match a.ipv6_pool.as_deref().map(parse_cidr).transpose()? {
                Some((IpAddr::V6(n), l)) if (16..=63).contains(&l) => {
                    let mask = u128::MAX << (128 - l);
                    Some((Ipv6Addr::from(u128::from(n) & mask), l))
                }
                Some(_) => {
                    return Err(Error::Config(format!(
                        "APN {name}: ipv6_pool must be an IPv6 prefix of length 16 to 63"
                    )));
                }
                None => None,
            };
            if ipv4_pool.is_none() && ipv6_pool.is_none() {
                return Err(Error::Config(format!(
                    "APN {name} has neither ipv4_pool nor ipv6_pool"
                )));
            }
            let mut pco = PcoSettings {
                pcscf_per_answer: a.pcscf_per_answer,
                mtu: (a.mtu != 0).then_some(a.mtu),
                im_cn_signalling_flag: a.im_cn_signalling_flag,
                ..PcoSettings::default()
            };
            for ip in &a.pcscf {
                match ip {
                    IpAddr::V4(v) => pco.pcscf_v4.push(*v),
                    IpAddr::V6(v) => pco.pcscf_v6.push(*v),
                }
            }
            for ip in &a.dns {
                match ip {
                    IpAddr::V4(v) => pco.dns_v4.push(*v),
                    IpAddr::V6(v) => pco.dns_v6.push(*v),
                }
            }
            let ambr = (a.ambr_uplink_kbps != 0 || a.ambr_downlink_kbps != 0).then_some(Ambr {
                uplink_kbps: a.ambr_uplink_kbps,
                downlink_kbps: a.ambr_downlink_kbps,
            });
            let mut statics = HashMap::new();
            for s in &a.static_addresses {
                if statics
                    .insert(s.imsi.clone(), (s.ipv4, s.ipv6_prefix))
                    .is_some()
                {
                    return Err(Error::Config(format!(
                        "APN {name}: IMSI {} has two static addresses",
                        s.imsi
                    )));
                }
            }
            apns.push(ApnSettings {
                name,
                ipv4_pool,
                ipv6_pool,
                pco,
                selection: if a.pcscf_selection.is_imsi_hash() {
                    Selection::ImsiHash
                } else {
                    Selection::RoundRobin
                },
                ambr,
                statics,
            });
        }
        if cfg.tun_name.is_empty() || cfg.tun_name.len() > 15 {
            return Err(Error::Config("tun_name must be 1 to 15 characters".into()));
        }
        Ok(Self {
            gtpc_address: advertise(cfg.gtpc_advertise, cfg.gtpc_listen.ip(), "gtpc")?,
            gtpu_address: advertise(cfg.gtpu_advertise, cfg.gtpu_listen.ip(), "gtpu")?,
            apns,
            retransmit_cache_size: cfg.retransmit_cache_size.max(1),
            retransmit_cache_ttl: Duration::from_secs(cfg.retransmit_cache_secs),
            t3: Duration::from_millis(cfg.t3_response_ms.max(1)),
            n3: cfg.n3_requests.max(1),
        })
    }
}

impl ApnSettings {
    /// The gateway (first host) address of the IPv4 pool: the TUN's address.
    pub fn ipv4_gateway(&self) -> Option<(Ipv4Addr, u8)> {
        self.ipv4_pool
            .map(|(n, l)| (Ipv4Addr::from(u32::from(n) + 1), l))
    }

    /// The gateway address of the IPv6 pool (`<pool>::1`).
    pub fn ipv6_gateway(&self) -> Option<(Ipv6Addr, u8)> {
        self.ipv6_pool
            .map(|(n, l)| (Ipv6Addr::from(u128::from(n) + 1), l))
    }
}

/// Dynamic and static addresses of one APN.
#[derive(Debug, Clone)]
pub(crate) struct Pools {
    v4: Option<V4Pool>,
    v6: Option<V6Pool>,
}

#[derive(Debug, Clone)]
struct V4Pool {
    /// First and last host number usable by phones (gateway and broadcast excluded).
    first: u32,
    last: u32,
    used: HashSet<u32>,
    /// Static addresses of other phones: never handed out dynamically.
    reserved: HashSet<u32>,
    cursor: u32,
}

#[derive(Debug, Clone)]
struct V6Pool {
    base: u128,
    /// Number of /64s; index 0 is the gateway's.
    count: u64,
    used: HashSet<u64>,
    reserved: HashSet<u64>,
    cursor: u64,
}

impl V4Pool {
    fn alloc(&mut self) -> Option<Ipv4Addr> {
        let size = self.last - self.first + 1;
        for i in 0..size {
            let a = self.first + (self.cursor + i) % size;
            if !self.used.contains(&a) && !self.reserved.contains(&a) {
                self.used.insert(a);
                self.cursor = (self.cursor + i + 1) % size;
                return Some(Ipv4Addr::from(a));
            }
        }
        None
    }
}

impl V6Pool {
    fn prefix(&self, index: u64) -> Ipv6Addr {
        Ipv6Addr::from(self.base | (u128::from(index) << 64))
    }

    fn index_of(&self, a: Ipv6Addr) -> Option<u64> {
        let v = u128::from(a);
        let idx = (v ^ self.base) >> 64;
        let idx = u64::try_from(idx).ok()?;
        (idx < self.count && self.prefix(idx) == Ipv6Addr::from(v & (u128::MAX << 64)))
            .then_some(idx)
    }

    fn alloc(&mut self) -> Option<Ipv6Addr> {
        let size = self.count - 1;
        for i in 0..size {
            let idx = 1 + (self.cursor + i) % size;
            if !self.used.contains(&idx) && !self.reserved.contains(&idx) {
                self.used.insert(idx);
                self.cursor = (self.cursor + i + 1) % size;
                return Some(self.prefix(idx));
            }
        }
        None
    }
}

impl Pools {
    pub(crate) fn new(apn: &ApnSettings) -> Self {
        let v4 = apn.ipv4_pool.map(|(n, l)| {
            let net = u32::from(n);
            let bcast = net | (u32::MAX >> l);
            let mut p = V4Pool {
                first: net + 2,
                last: bcast - 1,
                used: HashSet::new(),
                reserved: HashSet::new(),
                cursor: 0,
            };
            for (v4, _) in apn.statics.values() {
                if let Some(a) = v4 {
                    p.reserved.insert(u32::from(*a));
                }
            }
            p
        });
        let v6 = apn.ipv6_pool.map(|(n, l)| {
            let count = (1u64 << (64 - u32::from(l))).min(MAX_V6_PREFIXES);
            let mut p = V6Pool {
                base: u128::from(n),
                count,
                used: HashSet::new(),
                reserved: HashSet::new(),
                cursor: 0,
            };
            let idx: Vec<u64> = apn
                .statics
                .values()
                .filter_map(|(_, v6)| v6.and_then(|a| p.index_of(a)))
                .collect();
            p.reserved.extend(idx);
            p
        });
        Self { v4, v6 }
    }

    pub(crate) fn has_v4(&self) -> bool {
        self.v4.is_some()
    }

    pub(crate) fn has_v6(&self) -> bool {
        self.v6.is_some()
    }

    /// A dynamic IPv4 address, or the static one when given (static addresses outside the pool
    /// are handed out as they are).
    pub(crate) fn take_v4(&mut self, fixed: Option<Ipv4Addr>) -> Option<Ipv4Addr> {
        let pool = self.v4.as_mut()?;
        match fixed {
            Some(a) => {
                pool.used.insert(u32::from(a));
                Some(a)
            }
            None => pool.alloc(),
        }
    }

    /// A dynamic /64, or the static prefix when given.
    pub(crate) fn take_v6(&mut self, fixed: Option<Ipv6Addr>) -> Option<Ipv6Addr> {
        let pool = self.v6.as_mut()?;
        match fixed {
            Some(a) => {
                let p = Ipv6Addr::from(u128::from(a) & (u128::MAX << 64));
                if let Some(i) = pool.index_of(p) {
                    pool.used.insert(i);
                }
                Some(p)
            }
            None => pool.alloc(),
        }
    }

    pub(crate) fn release(&mut self, v4: Option<Ipv4Addr>, v6: Option<Ipv6Addr>) {
        if let (Some(p), Some(a)) = (self.v4.as_mut(), v4) {
            p.used.remove(&u32::from(a));
        }
        if let (Some(p), Some(a)) = (self.v6.as_mut(), v6)
            && let Some(i) = p.index_of(a)
        {
            p.used.remove(&i);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_config_gives_ims_and_internet_with_pcscf_on_ims_only() {
        let s = Settings::from_config(&PgwConfig::default()).unwrap();
        assert_eq!(
            s.apns.iter().map(|a| a.name.as_str()).collect::<Vec<_>>(),
            ["ims", "internet"]
        );
        assert_eq!(s.apns[0].pco.pcscf_v4, [Ipv4Addr::new(10, 46, 0, 1)]);
        assert!(s.apns[1].pco.pcscf_v4.is_empty());
        assert_eq!(
            s.apns[0].ipv4_gateway(),
            Some((Ipv4Addr::new(10, 46, 0, 1), 16))
        );
        assert_eq!(s.gtpc_address, IpAddr::from([127, 0, 0, 1]));
    }

    #[test]
    fn wildcard_listen_without_advertise_is_refused() {
        let mut cfg = PgwConfig {
            gtpc_listen: "0.0.0.0:2123".parse().unwrap(),
            ..PgwConfig::default()
        };
        assert!(
            matches!(Settings::from_config(&cfg), Err(Error::Config(m)) if m.contains("gtpc_advertise"))
        );
        cfg.gtpc_advertise = Some(IpAddr::from([192, 0, 2, 1]));
        assert_eq!(
            Settings::from_config(&cfg).unwrap().gtpc_address,
            IpAddr::from([192, 0, 2, 1])
        );
    }

    #[test]
    fn duplicate_apn_and_bad_pool_are_refused() {
        let mut cfg = PgwConfig::default();
        cfg.apns[1].name = "IMS".into();
        assert!(Settings::from_config(&cfg).is_err());
        let mut cfg = PgwConfig::default();
        cfg.apns[0].ipv4_pool = Some("10.46.0.0".into());
        assert!(Settings::from_config(&cfg).is_err());
        cfg.apns[0].ipv4_pool = Some("2001:db8::/64".into());
        assert!(Settings::from_config(&cfg).is_err());
    }

    #[test]
    fn ipv6_pool_hands_out_distinct_64s_and_reuses_released_ones() {
        let mut cfg = PgwConfig::default();
        cfg.apns[0].ipv6_pool = Some("2001:db8:46::/62".into());
        let s = Settings::from_config(&cfg).unwrap();
        let mut pools = Pools::new(&s.apns[0]);
        let got: Vec<Ipv6Addr> = (0..3).filter_map(|_| pools.take_v6(None)).collect();
        assert_eq!(got.len(), 3);
        assert_eq!(got[0], "2001:db8:46:1::".parse::<Ipv6Addr>().unwrap());
        assert_eq!(pools.take_v6(None), None);
        pools.release(None, Some(got[1]));
        assert_eq!(pools.take_v6(None), Some(got[1]));
    }
}
