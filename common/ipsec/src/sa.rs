//! The four security associations between a UE and the P-CSCF (TS 33.203 §7.1).
//!
//! Each side chooses the SPIs of its own inbound SAs, so an SA towards port X of a peer uses the
//! SPI that peer announced for port X:
//!
//! | # | from                | to                  | SPI                | carries                          |
//! |---|---------------------|---------------------|--------------------|----------------------------------|
//! | 1 | UE port-c           | P-CSCF port-s       | P-CSCF `spi-s`     | UE requests, inbound at P-CSCF   |
//! | 2 | P-CSCF port-s       | UE port-c           | UE `spi-c`         | responses to them                |
//! | 3 | P-CSCF port-c       | UE port-s           | UE `spi-s`         | P-CSCF requests to the UE        |
//! | 4 | UE port-s           | P-CSCF port-c       | P-CSCF `spi-c`     | responses to them, inbound       |
//!
//! The rule is symmetric, so [`SaBundle`] works from either side: `local` is whoever holds it
//! (the P-CSCF, or the soft UE). Each SA carries UDP and TCP alike: the selectors are addresses
//! and ports, for both transport protocols (§7.1 "transport protocol: UDP and TCP").

use std::net::{IpAddr, SocketAddr};

use crate::alg::CipherSuite;
use crate::keys::EspKeys;
use crate::negotiate::{Chosen, LocalParams};
use crate::spi::Spi;

/// One side's protected endpoint: address, inbound SPIs and protected ports.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Endpoint {
    /// The IP address.
    pub ip: IpAddr,
    /// SPI of this side's inbound SA at its port-c.
    pub spi_c: Spi,
    /// SPI of this side's inbound SA at its port-s.
    pub spi_s: Spi,
    /// Protected client port.
    pub port_c: u16,
    /// Protected server port.
    pub port_s: u16,
}

impl Endpoint {
    /// The P-CSCF's endpoint from what it put in Security-Server.
    pub fn local(ip: IpAddr, params: &LocalParams) -> Self {
        Self {
            ip,
            spi_c: params.spi_c,
            spi_s: params.spi_s,
            port_c: params.ports.port_c,
            port_s: params.ports.port_s,
        }
    }

    /// The UE's endpoint from its chosen Security-Client offer.
    pub fn from_offer(ip: IpAddr, chosen: &Chosen) -> Self {
        Self {
            ip,
            spi_c: chosen.offer.spi_c,
            spi_s: chosen.offer.spi_s,
            port_c: chosen.offer.port_c,
            port_s: chosen.offer.port_s,
        }
    }
}

/// Inbound or outbound, seen from the bundle's holder.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Direction {
    /// Received and unprotected here.
    Inbound,
    /// Protected and sent from here.
    Outbound,
}

/// Which of the four SAs (the rows of the table in this module's docs).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SaRole {
    /// Remote port-c → local port-s: the peer's requests (row 1 for the P-CSCF).
    InboundToServer,
    /// Local port-s → remote port-c: responses to the peer's requests.
    OutboundFromServer,
    /// Local port-c → remote port-s: requests to the peer.
    OutboundFromClient,
    /// Remote port-s → local port-c: the peer's responses to our requests.
    InboundToClient,
}

impl SaRole {
    /// All four, in table order.
    pub const ALL: [Self; 4] = [
        Self::InboundToServer,
        Self::OutboundFromServer,
        Self::OutboundFromClient,
        Self::InboundToClient,
    ];

    /// The direction of this SA.
    pub fn direction(self) -> Direction {
        match self {
            Self::InboundToServer | Self::InboundToClient => Direction::Inbound,
            Self::OutboundFromServer | Self::OutboundFromClient => Direction::Outbound,
        }
    }

    /// The SA carrying the other direction of the same port pair.
    pub fn reverse(self) -> Self {
        match self {
            Self::InboundToServer => Self::OutboundFromServer,
            Self::OutboundFromServer => Self::InboundToServer,
            Self::OutboundFromClient => Self::InboundToClient,
            Self::InboundToClient => Self::OutboundFromClient,
        }
    }
}

/// One unidirectional ESP SA in transport mode, with its selectors.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct SecurityAssociation {
    /// Which of the four.
    pub role: SaRole,
    /// The SPI in the ESP header (chosen by the receiver).
    pub spi: Spi,
    /// Source address and protected port.
    pub src: SocketAddr,
    /// Destination address and protected port.
    pub dst: SocketAddr,
}

impl SecurityAssociation {
    /// Inbound or outbound.
    pub fn direction(&self) -> Direction {
        self.role.direction()
    }
}

/// Everything one SA set needs: both endpoints, the suite, the keys. Yields the four SAs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SaBundle {
    /// This side (the holder).
    pub local: Endpoint,
    /// The peer.
    pub remote: Endpoint,
    /// IK_ESP / CK_ESP and the suite they are for.
    pub keys: EspKeys,
}

impl SaBundle {
    /// A bundle; the suite is the keys' suite.
    pub fn new(local: Endpoint, remote: Endpoint, keys: EspKeys) -> Self {
        Self {
            local,
            remote,
            keys,
        }
    }

    /// The agreed suite.
    pub fn suite(&self) -> CipherSuite {
        self.keys.suite()
    }

    /// The SA with `role`.
    pub fn sa(&self, role: SaRole) -> SecurityAssociation {
        let (l, r) = (&self.local, &self.remote);
        let at = |ip, port| SocketAddr::new(ip, port);
        let (spi, src, dst) = match role {
            SaRole::InboundToServer => (l.spi_s, at(r.ip, r.port_c), at(l.ip, l.port_s)),
            SaRole::OutboundFromServer => (r.spi_c, at(l.ip, l.port_s), at(r.ip, r.port_c)),
            SaRole::OutboundFromClient => (r.spi_s, at(l.ip, l.port_c), at(r.ip, r.port_s)),
            SaRole::InboundToClient => (l.spi_c, at(r.ip, r.port_s), at(l.ip, l.port_c)),
        };
        SecurityAssociation {
            role,
            spi,
            src,
            dst,
        }
    }

    /// The four SAs in table order.
    pub fn sas(&self) -> [SecurityAssociation; 4] {
        SaRole::ALL.map(|r| self.sa(r))
    }

    /// The same set seen from the peer: what the other side installs.
    pub fn mirrored(&self) -> Self {
        Self {
            local: self.remote,
            remote: self.local,
            keys: self.keys.clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::alg::{EncryptionAlg, IntegrityAlg};

    fn bundle() -> SaBundle {
        let pcscf = Endpoint {
            ip: "127.0.0.1".parse().unwrap(),
            spi_c: Spi(3333333),
            spi_s: Spi(4444444),
            port_c: 5066,
            port_s: 5068,
        };
        let ue = Endpoint {
            ip: "127.0.0.2".parse().unwrap(),
            spi_c: Spi(1111111),
            spi_s: Spi(2222222),
            port_c: 5062,
            port_s: 5064,
        };
        let suite = CipherSuite::new(IntegrityAlg::HmacSha1_96, EncryptionAlg::AesCbc);
        SaBundle::new(
            pcscf,
            ue,
            EspKeys::from_raw(suite, &[1; 20], &[2; 16]).unwrap(),
        )
    }

    #[test]
    fn four_sas_match_the_p_cscf_view_in_the_vectors_file() {
        // ims_aka_ipsec.json "security_associations_p_cscf_view".
        let sas = bundle().sas();
        let row = |i: usize| {
            let s = sas[i];
            (s.src.port(), s.dst.port(), s.spi.0, s.direction())
        };
        assert_eq!(row(0), (5062, 5068, 4444444, Direction::Inbound));
        assert_eq!(row(1), (5068, 5062, 1111111, Direction::Outbound));
        assert_eq!(row(2), (5066, 5064, 2222222, Direction::Outbound));
        assert_eq!(row(3), (5064, 5066, 3333333, Direction::Inbound));
        assert_eq!(sas[0].src.ip(), "127.0.0.2".parse::<IpAddr>().unwrap());
    }

    #[test]
    fn mirrored_bundle_turns_each_inbound_sa_into_the_peers_outbound() {
        let b = bundle();
        let m = b.mirrored();
        for sa in b.sas() {
            let peer: Vec<_> = m.sas().into_iter().filter(|p| p.spi == sa.spi).collect();
            assert_eq!(peer.len(), 1);
            assert_eq!((peer[0].src, peer[0].dst), (sa.src, sa.dst));
            assert_ne!(peer[0].direction(), sa.direction());
        }
    }

    #[test]
    fn reverse_role_pairs_the_same_ports() {
        let b = bundle();
        for r in SaRole::ALL {
            let (a, z) = (b.sa(r), b.sa(r.reverse()));
            assert_eq!((a.src, a.dst), (z.dst, z.src));
        }
    }
}
