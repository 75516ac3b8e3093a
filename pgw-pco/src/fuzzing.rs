//! Fuzz entry points (cargo-fuzz target `gtpv2_message`); the unit tests replay the committed
//! seed corpus through the same function.

use std::net::SocketAddr;
use std::time::Instant;

use crate::gtpv2::msg::{
    CreateSessionRequest, CreateSessionResponse, DeleteBearerResponse, DeleteSessionRequest,
    ModifyBearerRequest,
};
use crate::gtpv2::{IeType, Message, find};
use crate::pco::{Direction, Pco};
use crate::session::Pgw;
use crate::settings::Settings;

/// Decodes `data` as a GTPv2-C datagram. Every decoded message must re-encode to exactly the
/// octets it came from and decode again to the same value; every PCO/APCO/ePCO in it must
/// round-trip the same way in both directions. The typed views and the whole P-GW core then
/// run on it. Panics only when one of those properties fails.
pub fn gtpv2_message(data: &[u8]) {
    if let Ok(messages) = Message::decode_datagram(data) {
        let mut rest = data;
        for m in &messages {
            let bytes = m.to_bytes().expect("a decoded message re-encodes");
            let (again, tail) = Message::decode(rest).expect("decoded once, decodes again");
            assert_eq!(&again, m);
            assert_eq!(
                bytes.as_slice(),
                &rest[..rest.len() - tail.len()],
                "re-encoding is byte-exact"
            );
            assert_eq!(
                Message::decode(&bytes)
                    .expect("re-encoded message decodes")
                    .0,
                *m
            );
            rest = tail;
            for t in [IeType::PCO, IeType::APCO, IeType::EPCO] {
                if let Some(v) = find(&m.ies, t, 0).and_then(|ie| ie.raw_value()) {
                    for dir in [Direction::MsToNetwork, Direction::NetworkToMs] {
                        if let Ok(p) = Pco::decode(v, dir) {
                            assert_eq!(
                                p.to_bytes(dir).expect("PCO re-encodes"),
                                v,
                                "PCO byte-exact"
                            );
                        }
                    }
                }
            }
            let _ = CreateSessionRequest::from_message(m);
            let _ = CreateSessionResponse::from_message(m);
            let _ = ModifyBearerRequest::from_message(m);
            let _ = DeleteSessionRequest::from_message(m);
            let _ = DeleteBearerResponse::from_message(m);
        }
    }
    let settings =
        Settings::from_config(&imslab_config::PgwConfig::default()).expect("default settings");
    let mut pgw = Pgw::new(settings, 1);
    let peer = SocketAddr::from(([127, 0, 0, 2], 2123));
    let now = Instant::now();
    let first = pgw.handle_datagram(now, peer, data);
    // A retransmission gets the same answer and changes nothing.
    let sessions = pgw.session_count();
    let second = pgw.handle_datagram(now, peer, data);
    assert_eq!(pgw.session_count(), sessions);
    if first.transmit.len() == 1 && first.events.iter().all(|e| e.step != "gtp") {
        assert_eq!(
            first.transmit, second.transmit,
            "retransmission answered from the cache"
        );
    }
    let _ = pgw.shutdown(now);
}
