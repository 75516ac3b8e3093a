//! Where the lab is, and how scenario UEs become soft UEs.

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::str::FromStr;

use imslab_ipsec::{CipherSuite, EncryptionAlg, IntegrityAlg};
use imslab_store::{DigestSecret, OperatorKey as StoreOpKey, Store, SubscriberKey};
use imslab_types::{Impi, Impu, Imsi, K, Op, Opc, Realm, Sqn};

use crate::Error;
use crate::scenario::model::{AuthSpec, IpsecSpec, TransportSpec, UeSpec};
use crate::ue::{
    AuthHint, Credentials, IpsecSettings, OperatorKey, Profile, UeConfig, UePorts, UeTransport,
};

/// The lab's addresses, as the binary reads them from the configuration.
#[derive(Debug, Clone)]
pub struct Lab {
    /// `network.domain`.
    pub domain: Realm,
    /// `pcscf.listen`: the UEs' first hop.
    pub pcscf: SocketAddr,
    /// `hss.listen`: the HSS's Diameter address (for `cx` steps).
    pub hss: SocketAddr,
    /// `hss.origin_host`.
    pub hss_host: String,
    /// `web.listen`: the REST API (for `hss` steps).
    pub web: SocketAddr,
    /// `web.token`.
    pub web_token: Option<String>,
    /// Default UE address; must differ from the P-CSCF's for IPsec (default 127.0.0.2).
    pub ue_address: IpAddr,
    /// Whether the P-CSCF does sec-agree (`pcscf.ipsec.mode` is not `off`): `${ipsec}`.
    pub ipsec: bool,
}

impl Lab {
    /// The lab described by an imslab configuration.
    pub fn from_config(cfg: &imslab_config::Config) -> Self {
        let mut pcscf = cfg.pcscf.listen;
        if pcscf.ip().is_unspecified() {
            // A P-CSCF on every address is reached on loopback.
            pcscf.set_ip(IpAddr::V4(Ipv4Addr::LOCALHOST));
        }
        let mut web = cfg.web.listen;
        if web.ip().is_unspecified() {
            web.set_ip(IpAddr::V4(Ipv4Addr::LOCALHOST));
        }
        let mut hss = cfg.hss.listen;
        if hss.ip().is_unspecified() {
            hss.set_ip(IpAddr::V4(Ipv4Addr::LOCALHOST));
        }
        Self {
            domain: cfg.network.domain.clone(),
            pcscf,
            hss,
            hss_host: cfg.hss.origin_host.clone(),
            web,
            web_token: cfg.web.token.as_ref().map(String::from),
            ue_address: default_ue_address(pcscf.ip()),
            ipsec: cfg.pcscf.ipsec.mode != imslab_config::IpsecMode::Off,
        }
    }

    /// Variables every scenario can use: `${domain}`, `${pcscf}`, `${pcscf_ip}`, and
    /// `${ipsec}` (`true` or `false`: whether the P-CSCF does sec-agree, so one file runs
    /// against either kind of lab).
    pub fn variables(&self) -> BTreeMap<String, String> {
        BTreeMap::from([
            ("domain".to_owned(), self.domain.as_str().to_owned()),
            ("pcscf".to_owned(), self.pcscf.to_string()),
            ("pcscf_ip".to_owned(), self.pcscf.ip().to_string()),
            ("ipsec".to_owned(), self.ipsec.to_string()),
        ])
    }
}

/// 127.0.0.2 next to a P-CSCF on any other IPv4 address (127.0.0.3 next to one on 127.0.0.2);
/// an IPv6 P-CSCF gets its own address (IPsec then needs `address:` in the scenario).
pub fn default_ue_address(pcscf: IpAddr) -> IpAddr {
    match pcscf {
        IpAddr::V4(v4) if v4 == Ipv4Addr::new(127, 0, 0, 2) => {
            IpAddr::V4(Ipv4Addr::new(127, 0, 0, 3))
        }
        IpAddr::V4(_) => IpAddr::V4(Ipv4Addr::new(127, 0, 0, 2)),
        v6 => v6,
    }
}

fn bad(name: &str, message: String) -> Error {
    Error::Invalid {
        path: "<scenario>".into(),
        line: 0,
        message: format!("UE {name}: {message}"),
    }
}

fn suite(name: &str, alg: &str, ealg: &str) -> Result<CipherSuite, Error> {
    let i = IntegrityAlg::from_str(alg).map_err(|_| bad(name, format!("unknown alg {alg:?}")))?;
    let e =
        EncryptionAlg::from_str(ealg).map_err(|_| bad(name, format!("unknown ealg {ealg:?}")))?;
    Ok(CipherSuite::new(i, e))
}

/// Builds the soft UE's configuration for scenario UE `name`: keys and identities inline or
/// from the store. `ports` are its protected ports when it uses IPsec.
pub async fn ue_config(
    name: &str,
    spec: &UeSpec,
    lab: &Lab,
    store: Option<&Store>,
    ports: Option<(u16, u16, u16)>,
    serial: u32,
) -> Result<UeConfig, Error> {
    let imsi = spec
        .imsi
        .as_deref()
        .map(|s| Imsi::new(s).map_err(|e| bad(name, format!("bad IMSI: {e}"))))
        .transpose()?;
    let mut creds = Credentials::default();
    let mut impi = spec.impi.clone();
    let mut impu = spec.impu.clone();
    if let Some(k) = &spec.k {
        let k = K::from_hex(k).map_err(|e| bad(name, format!("bad K: {e}")))?;
        let op = match (&spec.opc, &spec.op) {
            (Some(o), _) => {
                OperatorKey::Opc(Opc::from_hex(o).map_err(|e| bad(name, format!("bad OPc: {e}")))?)
            }
            (None, Some(o)) => {
                OperatorKey::Op(Op::from_hex(o).map_err(|e| bad(name, format!("bad OP: {e}")))?)
            }
            (None, None) => return Err(bad(name, "k without opc or op".into())),
        };
        creds.aka = Some((k, op));
    } else if let Some(imsi) = &imsi {
        let store = store.ok_or_else(|| bad(name, "needs the store to look up its IMSI".into()))?;
        let sub = store
            .subscribers()
            .get(&SubscriberKey::Imsi(imsi.clone()))
            .await?
            .ok_or_else(|| Error::UnknownSubscriber {
                imsi: imsi.as_str().to_owned(),
            })?;
        creds.aka = Some((
            sub.k.clone(),
            match &sub.operator_key {
                StoreOpKey::Opc(o) => OperatorKey::Opc(o.clone()),
                StoreOpKey::Op(o) => OperatorKey::Op(o.clone()),
            },
        ));
        creds.amf = Some(sub.amf);
        if let Some(ahead) = spec.sqn_ms_ahead {
            let v = sub.sqn.value().saturating_add(ahead).min(Sqn::MAX);
            creds.sqn_ms = Some(Sqn::new(v).map_err(|e| bad(name, format!("bad sqn: {e}")))?);
        }
        if let Some(DigestSecret::Password(p)) = &sub.digest {
            creds.password = Some(p.clone());
        }
        impi.get_or_insert_with(|| sub.impi.as_str().to_owned());
        if impu.is_none() {
            impu = sub.impus.first().map(|p| p.impu.as_str().to_owned());
        }
    }
    if let Some(p) = &spec.password {
        creds.password = Some(p.clone());
    }
    if let Some(v) = spec.sqn_ms {
        creds.sqn_ms = Some(Sqn::new(v).map_err(|e| bad(name, format!("bad sqn_ms: {e}")))?);
    }
    let domain = lab.domain.as_str();
    let impi = match (impi, &imsi) {
        (Some(i), _) => i,
        (None, Some(imsi)) => format!("{}@{domain}", imsi.as_str()),
        (None, None) => return Err(bad(name, "no impi".into())),
    };
    let impu = match (impu, &imsi) {
        (Some(i), _) => i,
        (None, Some(imsi)) => format!("sip:{}@{domain}", imsi.as_str()),
        (None, None) => return Err(bad(name, "no impu".into())),
    };
    let profile = match &spec.profile {
        Some(p) => Profile::by_name(p).ok_or_else(|| bad(name, format!("unknown profile {p}")))?,
        None => Profile::generic(),
    };
    let offers = match &spec.ipsec {
        None | Some(IpsecSpec::Enabled(true)) => Some(Vec::new()),
        Some(IpsecSpec::Enabled(false)) => None,
        Some(IpsecSpec::One(s)) => Some(vec![suite(name, &s.alg, &s.ealg)?]),
        Some(IpsecSpec::Offers { offers }) => Some(
            offers
                .iter()
                .map(|s| suite(name, &s.alg, &s.ealg))
                .collect::<Result<_, _>>()?,
        ),
    };
    let ipsec = match (offers, ports) {
        (Some(offers), Some((c, alt, s))) => Some(IpsecSettings {
            offers,
            ports: UePorts {
                port_c: c,
                port_c_alt: alt,
                port_s: s,
            },
        }),
        (Some(_), None) => return Err(bad(name, "IPsec needs protected ports".into())),
        (None, _) => None,
    };
    Ok(UeConfig {
        name: name.to_owned(),
        imsi,
        impi: Impi::new(impi).map_err(|e| bad(name, format!("bad impi: {e}")))?,
        impu: Impu::new(impu).map_err(|e| bad(name, format!("bad impu: {e}")))?,
        domain: lab.domain.clone(),
        credentials: creds,
        profile,
        auth_hint: match spec.auth {
            None | Some(AuthSpec::None) => AuthHint::None,
            Some(AuthSpec::Akav1) => AuthHint::AkaV1,
            Some(AuthSpec::Akav2) => AuthHint::AkaV2,
            Some(AuthSpec::Md5) => AuthHint::Md5,
        },
        transport: match spec.transport {
            TransportSpec::Udp => UeTransport::Udp,
            TransportSpec::Tcp => UeTransport::Tcp,
        },
        ipsec,
        local_ip: spec.address.unwrap_or(lab.ue_address),
        local_port: 0,
        pcscf: lab.pcscf,
        expires: spec.expires,
        ignore_mac_failure: spec.ignore_mac_failure,
        auto_refresh: spec.auto_refresh,
        serial,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lab_from_the_default_config_puts_ues_on_127_0_0_2() {
        let lab = Lab::from_config(&imslab_config::Config::default());
        assert_eq!(lab.pcscf, "127.0.0.1:5060".parse::<SocketAddr>().unwrap());
        assert_eq!(lab.ue_address, "127.0.0.2".parse::<IpAddr>().unwrap());
        assert_eq!(lab.variables()["pcscf_ip"], "127.0.0.1");
    }

    #[test]
    fn wildcard_listen_addresses_are_reached_on_loopback() {
        let mut cfg = imslab_config::Config::default();
        cfg.pcscf.listen = "0.0.0.0:5060".parse().unwrap();
        cfg.web.listen = "0.0.0.0:8080".parse().unwrap();
        let lab = Lab::from_config(&cfg);
        assert_eq!(lab.pcscf.ip(), IpAddr::V4(Ipv4Addr::LOCALHOST));
        assert_eq!(lab.web.ip(), IpAddr::V4(Ipv4Addr::LOCALHOST));
        assert_eq!(
            default_ue_address("127.0.0.2".parse().unwrap()).to_string(),
            "127.0.0.3"
        );
    }
}
