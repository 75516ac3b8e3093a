//! Locating SIP servers (RFC 3263 §4): NAPTR → SRV → A/AAAA, transport selection, and the
//! failover order of the targets, as a pure procedure with the DNS lookups injected.
//!
//! [`Locator`] asks for one DNS lookup at a time ([`Locator::next_query`]) and is fed the
//! answer ([`Locator::answer`]); when no query is left, [`Locator::targets`] is the ordered
//! list to try (§4.3: on a transport error or 503, move to the next). A driver runs the
//! lookups against a real resolver; [`Locator::run`] does it with a plain closure (a static
//! table, a cache, or a test). SRV weights (RFC 2782) need randomness: it comes in as a seed.

use std::net::{IpAddr, SocketAddr};

use crate::header::Transport;
use crate::uri::{Host, SipUri};

/// A NAPTR record (RFC 3403) as far as RFC 3263 reads it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Naptr {
    /// Order: lower first.
    pub order: u16,
    /// Preference among records of equal order: lower first.
    pub preference: u16,
    /// Flags; RFC 3263 uses `S` (the replacement is an SRV name).
    pub flags: String,
    /// Service, e.g. `SIP+D2U`, `SIPS+D2T` (RFC 3263 §4.1), `SIP+D2W` (RFC 7118 §7).
    pub service: String,
    /// The replacement domain name (the SRV name).
    pub replacement: String,
}

/// An SRV record (RFC 2782).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Srv {
    /// Priority: lower first.
    pub priority: u16,
    /// Relative weight among records of equal priority.
    pub weight: u16,
    /// Port.
    pub port: u16,
    /// Target host name; `.` means the service is not offered.
    pub target: String,
}

/// One DNS lookup the procedure needs.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Query {
    /// NAPTR records of a domain.
    Naptr(String),
    /// SRV records of a name such as `_sip._udp.example.com`.
    Srv(String),
    /// A and AAAA records of a host.
    Addresses(String),
}

/// The answer to a [`Query`]; an empty list for NXDOMAIN, no data or a failed lookup.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Answer {
    /// For [`Query::Naptr`].
    Naptr(Vec<Naptr>),
    /// For [`Query::Srv`].
    Srv(Vec<Srv>),
    /// For [`Query::Addresses`].
    Addresses(Vec<IpAddr>),
}

/// One place to send a request: transport and address, in failover order.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Located {
    /// The transport.
    pub transport: Transport,
    /// The address and port.
    pub addr: SocketAddr,
}

/// The RFC 3263 §4 procedure for one URI.
#[derive(Debug)]
pub struct Locator {
    host: String,
    secure: bool,
    supported: Vec<Transport>,
    seed: u64,
    /// What is still to be looked up, in order, and what each lookup is for.
    pending: Vec<Step>,
    /// SRV records collected per transport, in transport preference order.
    found: Vec<Located>,
    done: bool,
}

#[derive(Clone, Debug)]
enum Step {
    /// NAPTR of the host (§4.1).
    Naptr,
    /// An SRV lookup for one transport; the ones from NAPTR come in order/preference order,
    /// the others in the client's transport preference. Every answer adds failover targets.
    Srv { name: String, transport: Transport },
    /// A/AAAA of a host, with the port and transport to use.
    Addresses {
        name: String,
        port: u16,
        transport: Transport,
    },
}

impl Locator {
    /// Starts locating the server for `uri` (the next hop: top Route or Request-URI, §4), using
    /// only `supported` transports (in the client's order of preference, which orders the SRV
    /// fallback when there is no NAPTR). `seed` drives the RFC 2782 weighted choice.
    pub fn new(uri: &SipUri<'_>, supported: &[Transport], seed: u64) -> Self {
        let secure = uri.secure;
        let supported: Vec<Transport> = supported
            .iter()
            .filter(|t| !secure || t.is_secure())
            .cloned()
            .collect();
        let mut me = Self {
            host: String::new(),
            secure,
            supported,
            seed,
            pending: Vec::new(),
            found: Vec::new(),
            done: false,
        };
        let explicit = uri.transport().map(|t| {
            let t = Transport::from_token(t);
            // `sips:` with transport=tcp means TLS (RFC 3261 §26.2.2).
            if secure && t == Transport::Tcp {
                Transport::Tls
            } else {
                t
            }
        });
        let host = uri.maddr().map_or_else(
            || uri.host.clone().into_owned(),
            |m| match m.parse::<IpAddr>() {
                Ok(ip) => Host::Ip(ip),
                Err(_) => Host::Name(m.to_owned().into()),
            },
        );
        let default_transport = || {
            if secure {
                Transport::Tls
            } else {
                Transport::Udp
            }
        };
        match host {
            // §4.1, §4.2: a numeric address needs no lookup.
            Host::Ip(ip) => {
                let transport = explicit.unwrap_or_else(default_transport);
                let port = uri.port.unwrap_or_else(|| transport.default_port());
                me.found.push(Located {
                    transport,
                    addr: SocketAddr::new(ip, port),
                });
                me.done = true;
            }
            Host::Name(name) => {
                let name = name.trim_end_matches('.').to_ascii_lowercase();
                me.host.clone_from(&name);
                match (explicit, uri.port) {
                    // §4.2: a port means A/AAAA only.
                    (t, Some(port)) => me.pending.push(Step::Addresses {
                        name,
                        port,
                        transport: t.unwrap_or_else(default_transport),
                    }),
                    // §4.2: a transport but no port: SRV for that transport.
                    (Some(t), None) => me.pending.push(Step::Srv {
                        name: srv_name(&t, secure, &name),
                        transport: t,
                    }),
                    (None, None) => me.pending.push(Step::Naptr),
                }
            }
        }
        me
    }

    /// Runs the procedure with a synchronous lookup function.
    pub fn run(mut self, mut lookup: impl FnMut(&Query) -> Answer) -> Vec<Located> {
        while let Some(q) = self.next_query() {
            let a = lookup(&q);
            self.answer(a);
        }
        self.targets().to_vec()
    }

    /// The next lookup to make, or `None` when [`Locator::targets`] is final.
    pub fn next_query(&self) -> Option<Query> {
        if self.done {
            return None;
        }
        self.pending.first().map(|s| match s {
            Step::Naptr => Query::Naptr(self.host.clone()),
            Step::Srv { name, .. } => Query::Srv(name.clone()),
            Step::Addresses { name, .. } => Query::Addresses(name.clone()),
        })
    }

    /// Feeds the answer to the query [`Locator::next_query`] returned. An answer of the wrong
    /// kind counts as empty.
    pub fn answer(&mut self, answer: Answer) {
        if self.done || self.pending.is_empty() {
            return;
        }
        let step = self.pending.remove(0);
        match step {
            Step::Naptr => self.on_naptr(answer),
            Step::Srv { name: _, transport } => self.on_srv(answer, transport),
            Step::Addresses {
                port, transport, ..
            } => {
                if let Answer::Addresses(ips) = answer {
                    self.found.extend(ips.into_iter().map(|ip| Located {
                        transport: transport.clone(),
                        addr: SocketAddr::new(ip, port),
                    }));
                }
            }
        }
        if self.pending.is_empty() {
            self.done = true;
        }
    }

    /// The targets found so far, in the order to try them.
    pub fn targets(&self) -> &[Located] {
        &self.found
    }

    /// Whether every lookup is done.
    pub fn is_done(&self) -> bool {
        self.done
    }

    /// §4.1: keep NAPTR records whose service this client supports, in order/preference
    /// order; each gives an SRV lookup. With none, SRV lookups for every supported transport.
    fn on_naptr(&mut self, answer: Answer) {
        let mut records = match answer {
            Answer::Naptr(r) => r,
            _ => Vec::new(),
        };
        records.sort_by_key(|r| (r.order, r.preference));
        let from_naptr: Vec<Step> = records
            .into_iter()
            .filter(|r| r.flags.eq_ignore_ascii_case("s"))
            .filter_map(|r| {
                let (secure, t) = service_transport(&r.service)?;
                (secure || !self.secure).then_some(())?;
                self.supported.contains(&t).then_some(())?;
                Some(Step::Srv {
                    name: r.replacement.trim_end_matches('.').to_ascii_lowercase(),
                    transport: t,
                })
            })
            .collect();
        if !from_naptr.is_empty() {
            self.pending = from_naptr;
            return;
        }
        let host = self.host.clone();
        self.pending = self
            .supported
            .iter()
            .map(|t| Step::Srv {
                name: srv_name(t, self.secure, &host),
                transport: t.clone(),
            })
            .collect();
        if self.pending.is_empty() {
            self.fallback_addresses();
        }
    }

    /// §4.2: SRV records give host and port, ordered per RFC 2782; the hosts' addresses are
    /// looked up next. When no SRV lookup answered at all, A/AAAA of the host itself.
    fn on_srv(&mut self, answer: Answer, transport: Transport) {
        let records = match answer {
            Answer::Srv(r) => r,
            _ => Vec::new(),
        };
        let records: Vec<Srv> = records.into_iter().filter(|r| r.target != ".").collect();
        if !records.is_empty() {
            let ordered = order_srv(records, self.seed);
            self.seed = self
                .seed
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1);
            // Addresses of these hosts come before any further SRV lookup.
            let steps: Vec<Step> = ordered
                .into_iter()
                .map(|r| Step::Addresses {
                    name: r.target.trim_end_matches('.').to_ascii_lowercase(),
                    port: r.port,
                    transport: transport.clone(),
                })
                .collect();
            self.pending.splice(0..0, steps);
            return;
        }
        let any_srv_left = self.pending.iter().any(|s| matches!(s, Step::Srv { .. }));
        if !any_srv_left && self.found.is_empty() && !self.pending_addresses() {
            self.fallback_addresses();
        }
    }

    fn pending_addresses(&self) -> bool {
        self.pending
            .iter()
            .any(|s| matches!(s, Step::Addresses { .. }))
    }

    /// §4.2: no SRV records: the host's A/AAAA records with the transport's default port;
    /// UDP for `sip:`, TLS for `sips:` (§4.1, last paragraph).
    fn fallback_addresses(&mut self) {
        let transport = if self.secure {
            Transport::Tls
        } else if self.supported.contains(&Transport::Udp) || self.supported.is_empty() {
            Transport::Udp
        } else {
            self.supported.first().cloned().unwrap_or(Transport::Udp)
        };
        self.pending.push(Step::Addresses {
            name: self.host.clone(),
            port: transport.default_port(),
            transport,
        });
    }
}

/// `_sip._udp.host`, `_sips._tcp.host`... (RFC 3263 §4.1, RFC 7118 §7 for WebSocket).
fn srv_name(t: &Transport, secure: bool, host: &str) -> String {
    let (service, proto) = match t {
        Transport::Udp => ("sip", "udp"),
        Transport::Tls => ("sips", "tcp"),
        Transport::Sctp if secure => ("sips", "sctp"),
        Transport::Sctp => ("sip", "sctp"),
        Transport::Ws => ("sip", "ws"),
        Transport::Wss => ("sips", "ws"),
        _ => ("sip", "tcp"),
    };
    format!("_{service}._{proto}.{host}")
}

/// NAPTR service field to (secure, transport): RFC 3263 §4.1 and RFC 7118 §7.
fn service_transport(service: &str) -> Option<(bool, Transport)> {
    Some(match service.to_ascii_uppercase().as_str() {
        "SIP+D2U" => (false, Transport::Udp),
        "SIP+D2T" => (false, Transport::Tcp),
        "SIPS+D2T" => (true, Transport::Tls),
        "SIP+D2S" => (false, Transport::Sctp),
        "SIPS+D2S" => (true, Transport::Sctp),
        "SIP+D2W" => (false, Transport::Ws),
        "SIPS+D2W" => (true, Transport::Wss),
        _ => return None,
    })
}

/// RFC 2782 ordering: by priority; within a priority, repeatedly pick a record with
/// probability proportional to its weight (zero weights first get a small chance), using a
/// deterministic generator seeded by `seed`.
pub fn order_srv(mut records: Vec<Srv>, seed: u64) -> Vec<Srv> {
    records.sort_by_key(|r| (r.priority, r.weight != 0));
    let mut rng = seed ^ 0x9e37_79b9_7f4a_7c15;
    let mut out = Vec::with_capacity(records.len());
    while let Some(first) = records.first() {
        let prio = first.priority;
        let n = records.iter().take_while(|r| r.priority == prio).count();
        let mut group: Vec<Srv> = records.drain(..n).collect();
        while !group.is_empty() {
            let total: u64 = group.iter().map(|r| u64::from(r.weight)).sum();
            rng = splitmix(rng);
            let pick = if total == 0 { 0 } else { rng % (total + 1) };
            let mut running = 0u64;
            let idx = group
                .iter()
                .position(|r| {
                    running += u64::from(r.weight);
                    running >= pick
                })
                .unwrap_or(0);
            out.push(group.remove(idx));
        }
    }
    out
}

fn splitmix(x: u64) -> u64 {
    let mut z = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    const ALL: [Transport; 3] = [Transport::Udp, Transport::Tcp, Transport::Tls];

    fn uri(s: &str) -> SipUri<'_> {
        SipUri::parse(s).unwrap()
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    fn at(t: Transport, s: &str) -> Located {
        Located {
            transport: t,
            addr: s.parse().unwrap(),
        }
    }

    fn srv(priority: u16, weight: u16, port: u16, target: &str) -> Srv {
        Srv {
            priority,
            weight,
            port,
            target: target.into(),
        }
    }

    fn naptr(order: u16, pref: u16, service: &str, replacement: &str) -> Naptr {
        Naptr {
            order,
            preference: pref,
            flags: "s".into(),
            service: service.into(),
            replacement: replacement.into(),
        }
    }

    /// A zone: answers by query, empty for anything else; records every query asked.
    #[derive(Default)]
    struct Zone {
        answers: HashMap<Query, Answer>,
        asked: Vec<Query>,
    }

    impl Zone {
        fn with(mut self, q: Query, a: Answer) -> Self {
            self.answers.insert(q, a);
            self
        }

        fn lookup(&mut self, q: &Query) -> Answer {
            self.asked.push(q.clone());
            self.answers.get(q).cloned().unwrap_or(match q {
                Query::Naptr(_) => Answer::Naptr(Vec::new()),
                Query::Srv(_) => Answer::Srv(Vec::new()),
                Query::Addresses(_) => Answer::Addresses(Vec::new()),
            })
        }
    }

    #[test]
    fn numeric_host_needs_no_lookup_and_takes_the_uri_transport_and_port() {
        let l = Locator::new(&uri("sip:192.0.2.4:5070;transport=tcp"), &ALL, 0);
        assert_eq!(l.next_query(), None);
        assert_eq!(l.targets(), [at(Transport::Tcp, "192.0.2.4:5070")]);
        let l = Locator::new(&uri("sips:[2001:db8::1]"), &ALL, 0);
        assert_eq!(l.targets(), [at(Transport::Tls, "[2001:db8::1]:5061")]);
        let l = Locator::new(&uri("sip:bob@example.com;maddr=192.0.2.9"), &ALL, 0);
        assert_eq!(l.targets(), [at(Transport::Udp, "192.0.2.9:5060")]);
    }

    #[test]
    fn explicit_port_means_address_records_only() {
        let mut zone = Zone::default().with(
            Query::Addresses("pcscf.example.com".into()),
            Answer::Addresses(vec![ip("192.0.2.1"), ip("2001:db8::1")]),
        );
        let got = Locator::new(&uri("sip:PCSCF.example.com:5080"), &ALL, 0).run(|q| zone.lookup(q));
        assert_eq!(zone.asked, [Query::Addresses("pcscf.example.com".into())]);
        assert_eq!(
            got,
            [
                at(Transport::Udp, "192.0.2.1:5080"),
                at(Transport::Udp, "[2001:db8::1]:5080")
            ]
        );
    }

    #[test]
    fn naptr_picks_the_supported_service_of_lowest_order_then_srv_then_addresses() {
        // RFC 3263 §4.1's example zone: TLS first, then TCP, then UDP.
        let mut zone = Zone::default()
            .with(
                Query::Naptr("example.com".into()),
                Answer::Naptr(vec![
                    naptr(100, 50, "SIP+D2U", "_sip._udp.example.com"),
                    naptr(50, 50, "SIPS+D2T", "_sips._tcp.example.com"),
                    naptr(90, 50, "SIP+D2T", "_sip._tcp.example.com"),
                ]),
            )
            .with(
                Query::Srv("_sip._tcp.example.com".into()),
                Answer::Srv(vec![srv(0, 0, 5060, "server1.example.com")]),
            )
            .with(
                Query::Srv("_sip._udp.example.com".into()),
                Answer::Srv(vec![srv(0, 0, 5060, "server2.example.com")]),
            )
            .with(
                Query::Addresses("server1.example.com".into()),
                Answer::Addresses(vec![ip("192.0.2.11")]),
            )
            .with(
                Query::Addresses("server2.example.com".into()),
                Answer::Addresses(vec![ip("192.0.2.12")]),
            );
        // A client without TLS skips SIPS+D2T; TCP (order 90) before UDP (order 100).
        let got = Locator::new(
            &uri("sip:bob@example.com"),
            &[Transport::Udp, Transport::Tcp],
            7,
        )
        .run(|q| zone.lookup(q));
        assert_eq!(
            got,
            [
                at(Transport::Tcp, "192.0.2.11:5060"),
                at(Transport::Udp, "192.0.2.12:5060")
            ]
        );
        assert!(
            !zone
                .asked
                .contains(&Query::Srv("_sips._tcp.example.com".into()))
        );
    }

    #[test]
    fn sips_uri_only_uses_secure_naptr_services() {
        let mut zone = Zone::default()
            .with(
                Query::Naptr("example.com".into()),
                Answer::Naptr(vec![
                    naptr(10, 10, "SIP+D2U", "_sip._udp.example.com"),
                    naptr(20, 10, "SIPS+D2T", "_sips._tcp.example.com"),
                ]),
            )
            .with(
                Query::Srv("_sips._tcp.example.com".into()),
                Answer::Srv(vec![srv(1, 0, 5061, "tls.example.com")]),
            )
            .with(
                Query::Addresses("tls.example.com".into()),
                Answer::Addresses(vec![ip("192.0.2.20")]),
            );
        let got = Locator::new(&uri("sips:bob@example.com"), &ALL, 0).run(|q| zone.lookup(q));
        assert_eq!(got, [at(Transport::Tls, "192.0.2.20:5061")]);
    }

    #[test]
    fn without_naptr_srv_is_tried_per_supported_transport() {
        let mut zone = Zone::default()
            .with(
                Query::Srv("_sip._tcp.example.com".into()),
                Answer::Srv(vec![srv(0, 0, 5070, "tcp.example.com")]),
            )
            .with(
                Query::Addresses("tcp.example.com".into()),
                Answer::Addresses(vec![ip("192.0.2.30")]),
            );
        let got = Locator::new(
            &uri("sip:example.com"),
            &[Transport::Udp, Transport::Tcp],
            0,
        )
        .run(|q| zone.lookup(q));
        assert_eq!(got, [at(Transport::Tcp, "192.0.2.30:5070")]);
        assert_eq!(
            zone.asked[..3],
            [
                Query::Naptr("example.com".into()),
                Query::Srv("_sip._udp.example.com".into()),
                Query::Srv("_sip._tcp.example.com".into()),
            ]
        );
    }

    #[test]
    fn without_naptr_or_srv_the_host_address_with_udp_5060_is_used() {
        let mut zone = Zone::default().with(
            Query::Addresses("example.com".into()),
            Answer::Addresses(vec![ip("192.0.2.40")]),
        );
        let got = Locator::new(&uri("sip:example.com"), &ALL, 0).run(|q| zone.lookup(q));
        assert_eq!(got, [at(Transport::Udp, "192.0.2.40:5060")]);
        let mut zone = Zone::default().with(
            Query::Addresses("example.com".into()),
            Answer::Addresses(vec![ip("192.0.2.40")]),
        );
        let got = Locator::new(&uri("sips:example.com"), &ALL, 0).run(|q| zone.lookup(q));
        assert_eq!(got, [at(Transport::Tls, "192.0.2.40:5061")]);
    }

    #[test]
    fn uri_transport_without_port_goes_straight_to_srv() {
        let mut zone = Zone::default()
            .with(
                Query::Srv("_sip._tcp.example.com".into()),
                Answer::Srv(vec![srv(0, 0, 5090, "a.example.com")]),
            )
            .with(
                Query::Addresses("a.example.com".into()),
                Answer::Addresses(vec![ip("192.0.2.50")]),
            );
        let got =
            Locator::new(&uri("sip:example.com;transport=TCP"), &ALL, 0).run(|q| zone.lookup(q));
        assert_eq!(got, [at(Transport::Tcp, "192.0.2.50:5090")]);
        assert_eq!(zone.asked[0], Query::Srv("_sip._tcp.example.com".into()));
    }

    #[test]
    fn srv_failover_order_is_by_priority_then_weight() {
        let records = vec![
            srv(20, 0, 1, "backup"),
            srv(10, 60, 2, "heavy"),
            srv(10, 0, 3, "zero"),
            srv(10, 40, 4, "light"),
        ];
        let mut first_heavy = 0;
        for seed in 0..1000 {
            let o = order_srv(records.clone(), seed);
            assert_eq!(o.len(), 4);
            assert_eq!(o[3].target, "backup", "priority 20 always last");
            if o[0].target == "heavy" {
                first_heavy += 1;
            }
        }
        // Weight 60 of 100 (RFC 2782): about 60 % first.
        assert!((500..700).contains(&first_heavy), "{first_heavy}");
        assert_eq!(
            order_srv(records.clone(), 5),
            order_srv(records, 5),
            "same seed, same order"
        );
    }

    #[test]
    fn srv_target_dot_means_no_service_and_falls_back_to_addresses() {
        let mut zone = Zone::default()
            .with(
                Query::Srv("_sip._udp.example.com".into()),
                Answer::Srv(vec![srv(0, 0, 0, ".")]),
            )
            .with(
                Query::Addresses("example.com".into()),
                Answer::Addresses(vec![ip("192.0.2.60")]),
            );
        let got =
            Locator::new(&uri("sip:example.com"), &[Transport::Udp], 0).run(|q| zone.lookup(q));
        assert_eq!(got, [at(Transport::Udp, "192.0.2.60:5060")]);
    }
}
