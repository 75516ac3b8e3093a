//! What one soft UE is: identities, credentials, handset profile, transport and addresses.

use std::net::{IpAddr, SocketAddr};

use imslab_ipsec::CipherSuite;
use imslab_types::{Amf, Impi, Impu, Imsi, K, Op, Opc, Realm, Sqn};

use super::profile::Profile;

/// The subscriber's secrets as the card (or the phone's digest client) holds them.
#[derive(Clone)]
pub enum OperatorKey {
    /// OPc on the card.
    Opc(Opc),
    /// OP; the card derives OPc.
    Op(Op),
}

/// The credentials of a UE. `Debug` never shows a secret.
#[derive(Clone, Default)]
pub struct Credentials {
    /// K and OP/OPc for IMS AKA.
    pub aka: Option<(K, OperatorKey)>,
    /// The AMF the card accepts (informational; the USIM checks the separation bit only).
    pub amf: Option<Amf>,
    /// The highest SQN the card has already accepted (a card that saw a newer SQN forces a
    /// resynchronisation, TS 33.102 §6.3.5).
    pub sqn_ms: Option<Sqn>,
    /// The SIP digest password.
    pub password: Option<String>,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credentials")
            .field("aka", &self.aka.as_ref().map(|_| ".."))
            .field("sqn_ms", &self.sqn_ms)
            .field("password", &self.password.as_ref().map(|_| ".."))
            .finish()
    }
}

/// The algorithm a UE names in its first Authorization (TS 24.229 §5.1.1.2.1 leaves it out;
/// phones that know their scheme often send it).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthHint {
    /// No `algorithm` parameter: the network decides.
    None,
    /// `algorithm=AKAv1-MD5`.
    AkaV1,
    /// `algorithm=AKAv2-MD5`.
    AkaV2,
    /// `algorithm=MD5`.
    Md5,
}

/// The SIP transport toward the P-CSCF.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UeTransport {
    /// UDP.
    Udp,
    /// TCP.
    Tcp,
}

/// The UE's protected ports (TS 33.203 §7.1): `port_c` for the first SA set, `port_c_alt` for
/// the set negotiated at the next re-registration (§7.4: a new port-c each time), `port_s`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UePorts {
    /// Protected client port.
    pub port_c: u16,
    /// The other protected client port, used by every second SA set.
    pub port_c_alt: u16,
    /// Protected server port.
    pub port_s: u16,
}

/// Security agreement settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IpsecSettings {
    /// Offers for Security-Client; empty: the profile's.
    pub offers: Vec<CipherSuite>,
    /// The protected ports.
    pub ports: UePorts,
}

/// Everything the UE core needs to know about itself and the network.
#[derive(Debug, Clone)]
pub struct UeConfig {
    /// A short name for logs (the scenario's UE name).
    pub name: String,
    /// IMSI, when the UE has a card.
    pub imsi: Option<Imsi>,
    /// The private identity (username).
    pub impi: Impi,
    /// The public identity it registers.
    pub impu: Impu,
    /// The home domain: Request-URI of REGISTER and the digest realm asked for.
    pub domain: Realm,
    /// Secrets.
    pub credentials: Credentials,
    /// The handset.
    pub profile: Profile,
    /// `algorithm` in the first Authorization.
    pub auth_hint: AuthHint,
    /// Transport toward the P-CSCF.
    pub transport: UeTransport,
    /// Security agreement and IPsec, or `None` for a UE that does not ask for sec-agree.
    pub ipsec: Option<IpsecSettings>,
    /// The UE's IP address.
    pub local_ip: IpAddr,
    /// The UE's unprotected SIP port (set by the driver once its socket is bound).
    pub local_port: u16,
    /// The P-CSCF's unprotected SIP address.
    pub pcscf: SocketAddr,
    /// Registration expiry asked for; `None`: the profile's.
    pub expires: Option<u32>,
    /// Compute RES and answer even when AUTN's MAC is wrong (to test the network's RES check,
    /// as a card with a wrong K would if it skipped the MAC check).
    pub ignore_mac_failure: bool,
    /// Re-register on its own before the registration expires (TS 24.229 §5.1.1.4.1).
    pub auto_refresh: bool,
    /// The 6-digit serial in the IMEI of `+sip.instance`.
    pub serial: u32,
}

impl UeConfig {
    /// The registration expiry to ask for.
    pub fn expires(&self) -> u32 {
        self.expires.unwrap_or(self.profile.register_expires)
    }

    /// The Security-Client offers.
    pub fn offers(&self) -> Vec<CipherSuite> {
        match &self.ipsec {
            Some(s) if !s.offers.is_empty() => s.offers.clone(),
            Some(_) => self.profile.security_offers.clone(),
            None => Vec::new(),
        }
    }
}
