//! RFC 3263 server location over real DNS: the pure [`Locator`] of `imslab-sip` driven by a
//! hickory resolver that asks the configured name servers (and nothing else: no
//! `/etc/resolv.conf`, no hosts file).

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use hickory_resolver::TokioResolver;
use hickory_resolver::config::{NameServerConfigGroup, ResolverConfig, ResolverOpts};
use hickory_resolver::name_server::TokioConnectionProvider;
use hickory_resolver::proto::rr::{RData, RecordType};
use imslab_sip::header::Transport;
use imslab_sip::locate::{Answer, Located, Locator, Naptr, Query, Srv};
use imslab_sip::{SipUri, Uri};

/// Where and how to ask DNS.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DnsConfig {
    /// Name servers, asked over UDP (TCP on truncation), for example `127.0.0.53:53`.
    pub servers: Vec<SocketAddr>,
    /// Time allowed for one query. Default 2 s.
    pub timeout: Duration,
    /// Transports this element can use, in order of preference (RFC 3263 §4.1 SRV fallback).
    /// Default UDP, TCP, TLS.
    pub transports: Vec<Transport>,
}

impl DnsConfig {
    /// Defaults around these name servers.
    pub fn new(servers: impl IntoIterator<Item = SocketAddr>) -> Self {
        Self {
            servers: servers.into_iter().collect(),
            timeout: Duration::from_secs(2),
            transports: vec![Transport::Udp, Transport::Tcp, Transport::Tls],
        }
    }
}

/// A DNS client for RFC 3263 lookups. Cheap to clone (the cache is shared).
#[derive(Clone)]
pub struct DnsResolver {
    resolver: TokioResolver,
    transports: Vec<Transport>,
}

impl std::fmt::Debug for DnsResolver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DnsResolver")
            .field("transports", &self.transports)
            .finish_non_exhaustive()
    }
}

impl DnsResolver {
    /// A resolver asking only `cfg.servers`.
    pub fn new(cfg: &DnsConfig) -> Self {
        let mut group = NameServerConfigGroup::new();
        for s in &cfg.servers {
            let one = NameServerConfigGroup::from_ips_clear(&[s.ip()], s.port(), true);
            group.merge(one);
        }
        let config = ResolverConfig::from_parts(None, Vec::new(), group);
        let mut opts = ResolverOpts::default();
        opts.timeout = cfg.timeout;
        opts.attempts = 1;
        opts.ndots = 0;
        let resolver =
            TokioResolver::builder_with_config(config, TokioConnectionProvider::default())
                .with_options(opts)
                .build();
        Self {
            resolver,
            transports: cfg.transports.clone(),
        }
    }

    /// RFC 3263 §4 for `uri`: the targets in failover order (empty when nothing resolves).
    /// `seed` drives the SRV weight choice.
    pub async fn locate(&self, uri: &SipUri<'_>, seed: u64) -> Vec<Located> {
        let mut locator = Locator::new(uri, &self.transports, seed);
        while let Some(q) = locator.next_query() {
            let answer = self.lookup(&q).await;
            locator.answer(answer);
        }
        locator.targets().to_vec()
    }

    /// [`DnsResolver::locate`] for a URI in text (angle brackets allowed); empty when it is
    /// not a SIP URI.
    pub async fn locate_text(&self, uri: &str, seed: u64) -> Vec<Located> {
        let text = uri
            .trim()
            .trim_start_matches('<')
            .split('>')
            .next()
            .unwrap_or_default();
        match Uri::parse(text) {
            Ok(Uri::Sip(sip)) => self.locate(&sip, seed).await,
            _ => Vec::new(),
        }
    }

    /// One lookup; failures and NXDOMAIN are empty answers (the procedure moves on).
    pub async fn lookup(&self, q: &Query) -> Answer {
        match q {
            Query::Naptr(name) => Answer::Naptr(self.naptr(name).await),
            Query::Srv(name) => Answer::Srv(self.srv(name).await),
            Query::Addresses(name) => Answer::Addresses(self.addresses(name).await),
        }
    }

    async fn naptr(&self, name: &str) -> Vec<Naptr> {
        let Ok(lookup) = self.resolver.lookup(fqdn(name), RecordType::NAPTR).await else {
            return Vec::new();
        };
        lookup
            .iter()
            .filter_map(|r| match r {
                RData::NAPTR(n) => Some(Naptr {
                    order: n.order(),
                    preference: n.preference(),
                    flags: String::from_utf8_lossy(n.flags()).into_owned(),
                    service: String::from_utf8_lossy(n.services()).into_owned(),
                    replacement: n.replacement().to_ascii(),
                }),
                _ => None,
            })
            .collect()
    }

    async fn srv(&self, name: &str) -> Vec<Srv> {
        let Ok(lookup) = self.resolver.srv_lookup(fqdn(name)).await else {
            return Vec::new();
        };
        lookup
            .iter()
            .map(|s| Srv {
                priority: s.priority(),
                weight: s.weight(),
                port: s.port(),
                target: s.target().to_ascii(),
            })
            .collect()
    }

    async fn addresses(&self, name: &str) -> Vec<IpAddr> {
        match self.resolver.lookup_ip(fqdn(name)).await {
            Ok(l) => l.iter().collect(),
            Err(_) => Vec::new(),
        }
    }
}

/// Names from URIs and records are absolute: no search list.
fn fqdn(name: &str) -> String {
    if name.ends_with('.') {
        name.to_owned()
    } else {
        format!("{name}.")
    }
}
