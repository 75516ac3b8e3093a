//! The P-CSCF's registrations: what it learnt from each 200 OK to a REGISTER
//! (TS 24.229 §5.2.2.1), indexed for the three lookups it makes: by the phone's flow (a request
//! from a phone), by contact URI (a request to a phone), and by expiry.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};
use std::time::Instant;

use imslab_sip::{Host, Uri};
use imslab_types::{Impi, Impu, UeRef};

use crate::flow::Flow;

/// A registration's identity: the registered public identity and the phone's contact, as in
/// the store.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RegKey {
    /// The IMPU of the REGISTER's To.
    pub impu: Impu,
    /// The Contact URI the phone registered.
    pub contact: String,
}

/// One registered phone contact.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Registration {
    /// Its identity.
    pub key: RegKey,
    /// The private identity (Authorization username), when the phone sent one.
    pub impi: Option<Impi>,
    /// How to reach the phone.
    pub flow: Flow,
    /// The contact as the P-CSCF forwarded it with a NAT alias (`;alias=ip~port~t`), if any.
    pub contact_alias: Option<String>,
    /// Service-Route of the 200 OK, in order (name-addr values).
    pub service_route: Vec<String>,
    /// P-Associated-URI of the 200 OK: the implicit registration set, default identity first.
    pub associated: Vec<String>,
    /// When it expires.
    pub expires: Instant,
    /// Registered over IPsec SAs: the phone's requests are only accepted on them.
    pub protected: bool,
    /// The REGISTER's Call-ID.
    pub call_id: Option<String>,
}

impl Registration {
    /// The identities an event about this phone names.
    pub fn ue_ref(&self) -> UeRef {
        UeRef {
            imsi: None,
            impi: self.impi.clone(),
            impu: Some(self.key.impu.clone()),
        }
    }

    /// The default public identity: the first P-Associated-URI, or the registered IMPU.
    pub fn default_identity(&self) -> &str {
        self.associated
            .first()
            .map_or(self.key.impu.as_str(), String::as_str)
    }

    /// Whether `uri` is in the implicit registration set (compared as URIs, see
    /// [`same_identity`]).
    pub fn owns_identity(&self, uri: &str) -> bool {
        same_identity(self.key.impu.as_str(), uri)
            || self.associated.iter().any(|a| same_identity(a, uri))
    }
}

/// Compares two identities as RFC 3261 §19.1.4 compares URIs for what matters here: scheme,
/// user and host (case-insensitive host), port when both give one; parameters ignored.
pub fn same_identity(a: &str, b: &str) -> bool {
    match (canonical_uri(a), canonical_uri(b)) {
        (Some(x), Some(y)) => x == y,
        _ => a.eq_ignore_ascii_case(b),
    }
}

/// A comparable form of a URI: `sip:user@host:port` (default port filled in) or the tel
/// number's digits. `None` when it does not parse.
pub fn canonical_uri(s: &str) -> Option<String> {
    let s = s.trim();
    let s = s
        .strip_prefix('<')
        .and_then(|x| x.split('>').next())
        .unwrap_or(s);
    match Uri::parse(s).ok()? {
        Uri::Sip(u) => {
            let host = match &u.host {
                Host::Name(n) => n.to_ascii_lowercase(),
                Host::Ip(ip) => ip.to_string(),
            };
            Some(format!(
                "{}:{}@{}:{}",
                if u.secure { "sips" } else { "sip" },
                u.user.as_deref().unwrap_or(""),
                host,
                u.port_or_default()
            ))
        }
        Uri::Tel(t) => Some(format!(
            "tel:{}",
            t.number
                .chars()
                .filter(|c| c.is_ascii_alphanumeric() || *c == '+')
                .collect::<String>()
        )),
        Uri::Other(o) => Some(format!("{}:{}", o.scheme.to_ascii_lowercase(), o.rest)),
    }
}

/// All registrations of one P-CSCF, with its indexes.
#[derive(Debug, Default)]
pub struct Registrations {
    by_key: HashMap<RegKey, Registration>,
    by_flow: HashMap<Flow, Vec<RegKey>>,
    by_contact: HashMap<String, RegKey>,
    expiry: BinaryHeap<Reverse<(Instant, RegKey)>>,
}

impl Registrations {
    /// An empty table.
    pub fn new() -> Self {
        Self::default()
    }

    /// Number of registrations.
    pub fn len(&self) -> usize {
        self.by_key.len()
    }

    /// True when nobody is registered.
    pub fn is_empty(&self) -> bool {
        self.by_key.is_empty()
    }

    /// A registration by key.
    pub fn get(&self, key: &RegKey) -> Option<&Registration> {
        self.by_key.get(key)
    }

    /// Every registration.
    pub fn iter(&self) -> impl Iterator<Item = &Registration> {
        self.by_key.values()
    }

    /// Adds or replaces a registration; returns the one it replaced.
    pub fn insert(&mut self, reg: Registration) -> Option<Registration> {
        let old = self.remove(&reg.key);
        let key = reg.key.clone();
        self.by_flow.entry(reg.flow).or_default().push(key.clone());
        if let Some(c) = canonical_uri(&key.contact) {
            self.by_contact.insert(c, key.clone());
        }
        if let Some(c) = reg.contact_alias.as_deref().and_then(canonical_uri) {
            self.by_contact.insert(c, key.clone());
        }
        self.expiry.push(Reverse((reg.expires, key.clone())));
        self.by_key.insert(key, reg);
        old
    }

    /// Removes a registration.
    pub fn remove(&mut self, key: &RegKey) -> Option<Registration> {
        let reg = self.by_key.remove(key)?;
        if let Some(keys) = self.by_flow.get_mut(&reg.flow) {
            keys.retain(|k| k != key);
            if keys.is_empty() {
                self.by_flow.remove(&reg.flow);
            }
        }
        for c in [Some(reg.key.contact.as_str()), reg.contact_alias.as_deref()]
            .into_iter()
            .flatten()
            .filter_map(canonical_uri)
        {
            if self.by_contact.get(&c) == Some(key) {
                self.by_contact.remove(&c);
            }
        }
        Some(reg)
    }

    /// The registrations made over `flow` (a request arriving unprotected from a phone).
    pub fn by_flow(&self, flow: &Flow) -> impl Iterator<Item = &Registration> {
        self.by_flow
            .get(flow)
            .into_iter()
            .flatten()
            .filter_map(|k| self.by_key.get(k))
    }

    /// The registration whose contact (or NAT-aliased contact) is `uri`.
    pub fn by_contact(&self, uri: &str) -> Option<&Registration> {
        let c = canonical_uri(uri)?;
        self.by_key.get(self.by_contact.get(&c)?)
    }

    /// Every registration of `impu`, or whose implicit set contains it.
    pub fn for_identity<'a>(&'a self, impu: &'a str) -> impl Iterator<Item = &'a Registration> {
        self.by_key.values().filter(move |r| r.owns_identity(impu))
    }

    /// The earliest expiry (possibly of an entry already renewed: a spurious wake-up).
    pub fn next_expiry(&self) -> Option<Instant> {
        self.expiry.peek().map(|Reverse((at, _))| *at)
    }

    /// Takes out every registration that expired at or before `now`.
    pub fn take_expired(&mut self, now: Instant) -> Vec<Registration> {
        let mut out = Vec::new();
        while let Some(Reverse((at, key))) = self.expiry.peek().cloned() {
            if at > now {
                break;
            }
            self.expiry.pop();
            let current = self.by_key.get(&key).map(|r| r.expires);
            if current == Some(at)
                && let Some(r) = self.remove(&key)
            {
                out.push(r);
            }
        }
        // Drop stale heap entries left by renewals so the heap stays as large as the table.
        if self.expiry.len() > 2 * self.by_key.len() + 64 {
            let live: Vec<_> = self
                .by_key
                .values()
                .map(|r| Reverse((r.expires, r.key.clone())))
                .collect();
            self.expiry = live.into();
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn reg(impu: &str, contact: &str, flow: Flow, at: Instant) -> Registration {
        Registration {
            key: RegKey {
                impu: Impu::new(impu).unwrap(),
                contact: contact.into(),
            },
            impi: None,
            flow,
            contact_alias: None,
            service_route: vec![],
            associated: vec![impu.into(), "tel:+15550100".into()],
            expires: at,
            protected: false,
            call_id: None,
        }
    }

    #[test]
    fn contact_lookup_ignores_parameters_and_host_case() {
        let t0 = Instant::now();
        let mut regs = Registrations::new();
        let flow = Flow::Udp {
            remote: "10.0.0.1:5060".parse().unwrap(),
        };
        regs.insert(reg(
            "sip:alice@ims.example",
            "sip:alice@UE.example:5060;transport=udp",
            flow,
            t0,
        ));
        assert!(regs.by_contact("sip:alice@ue.example;ob").is_some());
        assert!(regs.by_contact("sip:bob@ue.example").is_none());
        assert_eq!(regs.by_flow(&flow).count(), 1);
    }

    #[test]
    fn implicit_set_matches_tel_uri_with_visual_separators() {
        let r = reg(
            "sip:alice@ims.example",
            "sip:a@h",
            Flow::Udp {
                remote: "10.0.0.1:5060".parse().unwrap(),
            },
            Instant::now(),
        );
        assert!(r.owns_identity("tel:+1-555-0100"));
        assert!(!r.owns_identity("sip:bob@ims.example"));
    }

    #[test]
    fn renewed_registration_does_not_expire_at_its_old_time() {
        let t0 = Instant::now();
        let flow = Flow::Udp {
            remote: "10.0.0.1:5060".parse().unwrap(),
        };
        let mut regs = Registrations::new();
        regs.insert(reg(
            "sip:a@x",
            "sip:a@h",
            flow,
            t0 + Duration::from_secs(10),
        ));
        regs.insert(reg(
            "sip:a@x",
            "sip:a@h",
            flow,
            t0 + Duration::from_secs(100),
        ));
        assert!(regs.take_expired(t0 + Duration::from_secs(50)).is_empty());
        assert_eq!(regs.len(), 1);
        assert_eq!(regs.take_expired(t0 + Duration::from_secs(100)).len(), 1);
        assert!(regs.is_empty());
        assert!(regs.by_flow(&flow).next().is_none());
    }
}
