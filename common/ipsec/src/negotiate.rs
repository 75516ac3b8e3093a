//! The P-CSCF side of security agreement (RFC 3329 §2.3, TS 33.203 §7.2, TS 24.229 §5.2.2):
//! choosing an offer, building Security-Server, and the bid-down checks on Security-Verify
//! and on the repeated Security-Client.

use std::fmt;

use crate::alg::{CipherSuite, EncryptionAlg, IntegrityAlg};
use crate::header::{
    IpsecMechanism, IpsecMode, IpsecProtocol, OfferError, QValue, SecurityMechanism,
};
use crate::spi::{MIN_SPI, Spi};

/// The P-CSCF's algorithm preference: suites in the order it wants them.
///
/// Built from the configuration's two lists with [`Preference::from_lists`]; the first suite
/// the UE also offers wins.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Preference {
    suites: Vec<CipherSuite>,
}

impl Preference {
    /// Suites in explicit order. Duplicates are dropped.
    pub fn new(suites: impl IntoIterator<Item = CipherSuite>) -> Self {
        let mut out: Vec<CipherSuite> = Vec::new();
        for s in suites {
            if !out.contains(&s) {
                out.push(s);
            }
        }
        Self { suites: out }
    }

    /// Integrity-major: every `ealg` of the first `alg`, then of the second, and so on.
    /// This is how `pcscf.ipsec.algorithms` and `pcscf.ipsec.encryption` are read.
    pub fn from_lists(algs: &[IntegrityAlg], ealgs: &[EncryptionAlg]) -> Self {
        Self::new(
            algs.iter()
                .flat_map(|&i| ealgs.iter().map(move |&e| CipherSuite::new(i, e))),
        )
    }

    /// The suites, most preferred first.
    pub fn suites(&self) -> &[CipherSuite] {
        &self.suites
    }

    fn rank(&self, s: CipherSuite) -> Option<usize> {
        self.suites.iter().position(|&x| x == s)
    }
}

impl Default for Preference {
    /// `hmac-sha-1-96` before `hmac-md5-96`; `aes-cbc`, then `des-ede3-cbc`, then `null`.
    fn default() -> Self {
        Self::from_lists(&IntegrityAlg::ALL, &EncryptionAlg::ALL)
    }
}

/// What the P-CSCF chose from a Security-Client header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Chosen {
    /// Index of the chosen mechanism in the Security-Client list.
    pub index: usize,
    /// The chosen offer: the UE's SPIs and protected ports, and the suite.
    pub offer: IpsecMechanism,
}

impl Chosen {
    /// The agreed algorithms.
    pub fn suite(&self) -> CipherSuite {
        self.offer.suite
    }
}

/// Why one offered mechanism was not chosen.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Rejection {
    /// It is not a usable ipsec-3gpp mechanism.
    Unusable(OfferError),
    /// ipsec-3gpp, but not ESP in transport mode.
    NotTransportEsp {
        /// The offered protocol.
        protocol: IpsecProtocol,
        /// The offered mode.
        mode: IpsecMode,
    },
    /// Supported, but not in the P-CSCF's configured preference.
    NotAllowed(CipherSuite),
}

impl fmt::Display for Rejection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Unusable(e) => write!(f, "{e}"),
            Self::NotTransportEsp { protocol, mode } => {
                write!(f, "{protocol:?} in {mode:?} mode is not supported")
            }
            Self::NotAllowed(s) => write!(f, "{s} is not allowed by configuration"),
        }
    }
}

/// No offered mechanism is acceptable: the P-CSCF answers 494 Security Agreement Required
/// (RFC 3329 §2.3.1, TS 24.229 §5.2.2.1). Lists each offer and why it was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NoAcceptableMechanism {
    /// `(index in Security-Client, reason)` for every offered mechanism.
    pub rejected: Vec<(usize, Rejection)>,
}

impl NoAcceptableMechanism {
    /// The SIP status code the P-CSCF answers with.
    pub const STATUS: u16 = 494;
}

impl fmt::Display for NoAcceptableMechanism {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.rejected.is_empty() {
            return f.write_str("Security-Client offers no mechanism");
        }
        f.write_str("no acceptable mechanism:")?;
        for (i, r) in &self.rejected {
            write!(f, " [{i}] {r};")?;
        }
        Ok(())
    }
}

/// Why SAs towards this offer cannot be built, if they cannot: a reserved SPI or a port 0.
fn unsendable(offer: &IpsecMechanism) -> Option<OfferError> {
    let bad = |param, value: u32| OfferError::BadValue {
        param,
        value: value.to_string(),
    };
    [("spi-c", offer.spi_c.0), ("spi-s", offer.spi_s.0)]
        .into_iter()
        .find(|&(_, spi)| spi < MIN_SPI)
        .or_else(|| {
            [("port-c", offer.port_c), ("port-s", offer.port_s)]
                .into_iter()
                .find(|&(_, port)| port == 0)
                .map(|(p, v)| (p, u32::from(v)))
        })
        .map(|(p, v)| bad(p, v))
}

/// Chooses the most preferred usable `ipsec-3gpp` offer of a Security-Client list
/// (TS 33.203 §7.2: the P-CSCF selects from the algorithms the UE offered).
///
/// The UE's `q` values are not used: the P-CSCF's [`Preference`] decides. Among offers of the
/// same suite the first wins. An offer with an SPI below 256 (RFC 4303 §2.1: 0 is never sent,
/// 1..=255 are reserved; the P-CSCF sends to the UE's SPIs) or a port 0 is not chosen.
pub fn choose(
    client: &[SecurityMechanism],
    preference: &Preference,
) -> Result<Chosen, NoAcceptableMechanism> {
    let mut best: Option<(usize, Chosen)> = None;
    let mut rejected = Vec::new();
    for (index, m) in client.iter().enumerate() {
        let offer = match IpsecMechanism::from_mechanism(m) {
            Ok(o) => o,
            Err(e) => {
                rejected.push((index, Rejection::Unusable(e)));
                continue;
            }
        };
        if !offer.is_usable() {
            rejected.push((
                index,
                Rejection::NotTransportEsp {
                    protocol: offer.protocol,
                    mode: offer.mode,
                },
            ));
            continue;
        }
        if let Some(e) = unsendable(&offer) {
            rejected.push((index, Rejection::Unusable(e)));
            continue;
        }
        let Some(rank) = preference.rank(offer.suite) else {
            rejected.push((index, Rejection::NotAllowed(offer.suite)));
            continue;
        };
        if best.as_ref().is_none_or(|(r, _)| rank < *r) {
            best = Some((rank, Chosen { index, offer }));
        }
    }
    best.map(|(_, c)| c)
        .ok_or(NoAcceptableMechanism { rejected })
}

/// The P-CSCF's own protected ports (TS 33.203 §7.1: `port_pc`, `port_ps`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProtectedPorts {
    /// Protected client port: the P-CSCF sends requests to the UE from it.
    pub port_c: u16,
    /// Protected server port: the P-CSCF receives the UE's requests on it.
    pub port_s: u16,
}

impl Default for ProtectedPorts {
    /// port-c 5100, port-s 6100.
    fn default() -> Self {
        Self {
            port_c: 5100,
            port_s: 6100,
        }
    }
}

/// Which mechanisms the Security-Server header lists.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Advertise {
    /// Only the chosen suite (as Kamailio and open5gs do): the UE has nothing to choose.
    #[default]
    ChosenOnly,
    /// Every suite of the preference the UE offered, most preferred first with decreasing `q`
    /// (TS 33.203 §7.2: the UE uses the first one it supports, which is the chosen one).
    AllOffered,
}

/// The P-CSCF's side of the agreement, as sent in Security-Server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LocalParams {
    /// SPI of the P-CSCF's inbound SA at its port-c (`spi-c`).
    pub spi_c: Spi,
    /// SPI of the P-CSCF's inbound SA at its port-s (`spi-s`).
    pub spi_s: Spi,
    /// The protected ports.
    pub ports: ProtectedPorts,
}

/// Builds the Security-Server mechanisms for the 401 (TS 33.203 §7.2, TS 24.229 §5.2.2.1).
/// Keep the result: every later Security-Verify is checked against it.
pub fn security_server(
    chosen: &Chosen,
    local: &LocalParams,
    client: &[SecurityMechanism],
    preference: &Preference,
    advertise: Advertise,
) -> Vec<SecurityMechanism> {
    let suites: Vec<CipherSuite> = match advertise {
        Advertise::ChosenOnly => vec![chosen.suite()],
        Advertise::AllOffered => {
            let offered: Vec<CipherSuite> = client
                .iter()
                .filter_map(|m| IpsecMechanism::from_mechanism(m).ok())
                .filter(IpsecMechanism::is_usable)
                .map(|o| o.suite)
                .collect();
            preference
                .suites()
                .iter()
                .copied()
                .filter(|s| offered.contains(s))
                .collect()
        }
    };
    let n = suites.len();
    suites
        .into_iter()
        .enumerate()
        .map(|(i, suite)| {
            let q = if n == 1 {
                QValue::from_thousandths(100)
            } else {
                // 1, 0.9, 0.8 ... never below 0.001.
                QValue::from_thousandths(1000u16.saturating_sub(100 * i as u16).max(1))
            };
            IpsecMechanism {
                q,
                suite,
                protocol: IpsecProtocol::Esp,
                mode: IpsecMode::Transport,
                spi_c: local.spi_c,
                spi_s: local.spi_s,
                port_c: local.ports.port_c,
                port_s: local.ports.port_s,
            }
            .to_mechanism()
        })
        .collect()
}

/// How a received list differs from the expected one (bid-down protection).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ListMismatch {
    /// The header is absent or empty.
    #[error("header missing")]
    Missing,
    /// A different number of mechanisms.
    #[error("{expected} mechanisms expected, {received} received")]
    CountDiffers {
        /// How many were expected.
        expected: usize,
        /// How many arrived.
        received: usize,
    },
    /// The mechanism at `index` differs.
    #[error("mechanism {index} differs: expected {expected:?}, received {received:?}")]
    MechanismDiffers {
        /// Position in the list.
        index: usize,
        /// What was expected, printed.
        expected: String,
        /// What arrived, printed.
        received: String,
    },
}

/// Compares two mechanisms semantically: names and parameter names case-insensitively,
/// parameters in any order; `ipsec-3gpp` through the typed view (so `spi-c=007` equals
/// `spi-c=7`, an absent `prot` equals `prot=esp`).
pub fn same_mechanism(a: &SecurityMechanism, b: &SecurityMechanism) -> bool {
    if !a.name.eq_ignore_ascii_case(&b.name) {
        return false;
    }
    if let (Ok(x), Ok(y)) = (
        IpsecMechanism::from_mechanism(a),
        IpsecMechanism::from_mechanism(b),
    ) {
        return x == y;
    }
    let norm = |m: &SecurityMechanism| {
        let mut v: Vec<(String, Option<String>)> = m
            .params
            .iter()
            .map(|p| (p.name.to_ascii_lowercase(), p.value.clone()))
            .collect();
        v.sort();
        v
    };
    norm(a) == norm(b)
}

fn compare_lists(
    expected: &[SecurityMechanism],
    received: &[SecurityMechanism],
) -> Result<(), ListMismatch> {
    if received.is_empty() {
        return Err(ListMismatch::Missing);
    }
    if expected.len() != received.len() {
        return Err(ListMismatch::CountDiffers {
            expected: expected.len(),
            received: received.len(),
        });
    }
    for (index, (e, r)) in expected.iter().zip(received).enumerate() {
        if !same_mechanism(e, r) {
            return Err(ListMismatch::MechanismDiffers {
                index,
                expected: e.to_string(),
                received: r.to_string(),
            });
        }
    }
    Ok(())
}

/// Checks a protected request's Security-Verify against the Security-Server the P-CSCF sent
/// (RFC 3329 §2.3.1, TS 24.229 §5.2.2): any difference means a bid-down attempt, and the
/// request is rejected.
pub fn check_security_verify(
    sent_server: &[SecurityMechanism],
    verify: &[SecurityMechanism],
) -> Result<(), ListMismatch> {
    compare_lists(sent_server, verify)
}

/// Checks that the Security-Client of the protected REGISTER equals the one of the unprotected
/// REGISTER that started the agreement (TS 33.203 §7.2, TS 24.229 §5.2.2.1).
pub fn check_security_client_unchanged(
    first: &[SecurityMechanism],
    protected: &[SecurityMechanism],
) -> Result<(), ListMismatch> {
    compare_lists(first, protected)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::header::parse_value;

    fn client(lines: &[&str]) -> Vec<SecurityMechanism> {
        crate::header::parse_values(lines.iter().copied()).unwrap()
    }

    const SHA_AES: &str = "ipsec-3gpp;alg=hmac-sha-1-96;ealg=aes-cbc;prot=esp;mod=trans;spi-c=1111111;spi-s=2222222;port-c=5062;port-s=5064";
    const MD5_NULL: &str = "ipsec-3gpp;alg=hmac-md5-96;ealg=null;prot=esp;mod=trans;spi-c=1111111;spi-s=2222222;port-c=5062;port-s=5064";

    #[test]
    fn default_preference_chooses_sha1_aes_over_md5_null() {
        let c = client(&[MD5_NULL, SHA_AES]);
        let chosen = choose(&c, &Preference::default()).unwrap();
        assert_eq!(chosen.index, 1);
        assert_eq!(
            chosen.suite(),
            CipherSuite::new(IntegrityAlg::HmacSha1_96, EncryptionAlg::AesCbc)
        );
    }

    #[test]
    fn configured_preference_decides_not_the_ue_order() {
        let c = client(&[SHA_AES, MD5_NULL]);
        let pref = Preference::from_lists(&[IntegrityAlg::HmacMd5_96], &[EncryptionAlg::Null]);
        assert_eq!(choose(&c, &pref).unwrap().index, 1);
    }

    #[test]
    fn offer_outside_preference_yields_494_outcome_with_reasons() {
        let c = client(&[
            MD5_NULL,
            "ipsec-3gpp;alg=aes-gmac;ealg=aes-gcm;spi-c=1;spi-s=2;port-c=3;port-s=4",
            "ipsec-3gpp;alg=hmac-md5-96;mod=tun;spi-c=1;spi-s=2;port-c=3;port-s=4",
            "digest;d-alg=md5",
        ]);
        let pref = Preference::from_lists(&[IntegrityAlg::HmacSha1_96], &EncryptionAlg::ALL);
        let err = choose(&c, &pref).unwrap_err();
        assert_eq!(NoAcceptableMechanism::STATUS, 494);
        assert_eq!(err.rejected.len(), 4);
        assert!(matches!(err.rejected[0].1, Rejection::NotAllowed(_)));
        assert!(matches!(
            err.rejected[1].1,
            Rejection::Unusable(OfferError::UnsupportedAlg(_))
        ));
        assert!(matches!(
            err.rejected[2].1,
            Rejection::NotTransportEsp { .. }
        ));
        assert!(matches!(
            err.rejected[3].1,
            Rejection::Unusable(OfferError::OtherMechanism(_))
        ));
        assert!(err.to_string().contains("not allowed by configuration"));
    }

    #[test]
    fn offer_with_a_reserved_spi_or_port_zero_is_not_chosen() {
        // RFC 4303 §2.1: SPI 0 is never sent and 1..=255 are reserved; the P-CSCF's outbound
        // SAs use the UE's spi-c/spi-s. Port 0 is no port (an XFRM selector would read it as
        // "any port").
        let with = |spi_c: u32, spi_s: u32, port_c: u16, port_s: u16| {
            format!(
                "ipsec-3gpp;alg=hmac-sha-1-96;ealg=aes-cbc;spi-c={spi_c};spi-s={spi_s};\
                 port-c={port_c};port-s={port_s}"
            )
        };
        for (offer, param) in [
            (with(0, 2222222, 5062, 5064), "spi-c"),
            (with(1111111, 255, 5062, 5064), "spi-s"),
            (with(1111111, 2222222, 0, 5064), "port-c"),
            (with(1111111, 2222222, 5062, 0), "port-s"),
        ] {
            let err = choose(&client(&[&offer]), &Preference::default()).unwrap_err();
            assert!(
                matches!(
                    &err.rejected[0].1,
                    Rejection::Unusable(OfferError::BadValue { param: p, .. }) if *p == param
                ),
                "{offer}: {err}"
            );
        }
        assert!(choose(&client(&[&with(256, 257, 1, 2)]), &Preference::default()).is_ok());
    }

    #[test]
    fn empty_security_client_is_no_acceptable_mechanism() {
        let err = choose(&[], &Preference::default()).unwrap_err();
        assert!(err.rejected.is_empty());
    }

    fn local() -> LocalParams {
        LocalParams {
            spi_c: Spi(3333333),
            spi_s: Spi(4444444),
            ports: ProtectedPorts::default(),
        }
    }

    #[test]
    fn security_server_for_chosen_suite_uses_local_spis_and_ports() {
        let c = client(&[SHA_AES, MD5_NULL]);
        let chosen = choose(&c, &Preference::default()).unwrap();
        let server = security_server(
            &chosen,
            &local(),
            &c,
            &Preference::default(),
            Advertise::ChosenOnly,
        );
        assert_eq!(
            crate::header::print_list(&server),
            "ipsec-3gpp;q=0.1;prot=esp;mod=trans;spi-c=3333333;spi-s=4444444;port-c=5100;port-s=6100;alg=hmac-sha-1-96;ealg=aes-cbc"
        );
    }

    #[test]
    fn security_server_listing_all_offered_puts_chosen_first() {
        let c = client(&[MD5_NULL, SHA_AES]);
        let pref = Preference::default();
        let chosen = choose(&c, &pref).unwrap();
        let server = security_server(&chosen, &local(), &c, &pref, Advertise::AllOffered);
        assert_eq!(server.len(), 2);
        let first = IpsecMechanism::from_mechanism(&server[0]).unwrap();
        assert_eq!(first.suite, chosen.suite());
        assert!(first.q > IpsecMechanism::from_mechanism(&server[1]).unwrap().q);
    }

    #[test]
    fn security_verify_equal_to_server_passes_even_reordered_and_recased() {
        let sent = parse_value("ipsec-3gpp;q=0.1;prot=esp;mod=trans;spi-c=3333333;spi-s=4444444;port-c=5100;port-s=6100;alg=hmac-sha-1-96;ealg=aes-cbc").unwrap();
        let verify = parse_value("IPSEC-3GPP;alg=HMAC-SHA-1-96;ealg=aes-cbc;q=0.100;spi-c=3333333;spi-s=4444444;port-c=5100;port-s=6100").unwrap();
        assert_eq!(check_security_verify(&sent, &verify), Ok(()));
    }

    #[test]
    fn security_verify_with_weaker_algorithm_is_a_bid_down() {
        let sent = parse_value("ipsec-3gpp;q=0.1;prot=esp;mod=trans;spi-c=3333333;spi-s=4444444;port-c=5100;port-s=6100;alg=hmac-sha-1-96;ealg=aes-cbc").unwrap();
        let verify = parse_value("ipsec-3gpp;q=0.1;prot=esp;mod=trans;spi-c=3333333;spi-s=4444444;port-c=5100;port-s=6100;alg=hmac-sha-1-96;ealg=null").unwrap();
        assert!(matches!(
            check_security_verify(&sent, &verify),
            Err(ListMismatch::MechanismDiffers { index: 0, .. })
        ));
        assert_eq!(
            check_security_verify(&sent, &[]),
            Err(ListMismatch::Missing)
        );
        let two = [verify[0].clone(), verify[0].clone()];
        assert_eq!(
            check_security_verify(&sent, &two),
            Err(ListMismatch::CountDiffers {
                expected: 1,
                received: 2
            })
        );
    }

    #[test]
    fn changed_security_client_in_protected_register_is_detected() {
        let first = client(&[SHA_AES, MD5_NULL]);
        assert_eq!(
            check_security_client_unchanged(&first, &first.clone()),
            Ok(())
        );
        let dropped = client(&[MD5_NULL]);
        assert!(check_security_client_unchanged(&first, &dropped).is_err());
    }

    #[test]
    fn unknown_mechanisms_compare_by_parameter_set() {
        let a = parse_value("digest;d-alg=md5;d-qop=auth").unwrap();
        let b = parse_value("Digest;D-QOP=auth;d-alg=md5").unwrap();
        let c = parse_value("digest;d-alg=md5;d-qop=auth-int").unwrap();
        assert!(same_mechanism(&a[0], &b[0]));
        assert!(!same_mechanism(&a[0], &c[0]));
    }
}
