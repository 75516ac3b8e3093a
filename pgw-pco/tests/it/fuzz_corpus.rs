//! Replays the committed cargo-fuzz seed corpus and random inputs through the fuzz entry point,
//! so CI exercises `gtpv2_message` without a nightly toolchain; and round-trips generated
//! Create Session Requests.

use std::net::Ipv4Addr;

use imslab_pgw::fuzzing::gtpv2_message;
use imslab_pgw::gtpv2::Message;
use imslab_pgw::gtpv2::ie::*;
use imslab_pgw::gtpv2::msg::{BearerContextToCreate, CreateSessionRequest};
use imslab_types::Imsi;
use proptest::prelude::*;

#[test]
fn seed_corpus_replays_without_failure() {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../fuzz/corpus/gtpv2_message");
    let mut n = 0;
    for entry in std::fs::read_dir(dir).expect("seed corpus directory") {
        let data = std::fs::read(entry.unwrap().path()).unwrap();
        gtpv2_message(&data);
        // Every prefix too: truncated datagrams must be handled, not panic.
        for cut in 0..data.len() {
            gtpv2_message(&data[..cut]);
        }
        n += 1;
    }
    assert!(n >= 8, "seed corpus has only {n} files");
}

#[test]
fn seed_corpus_holds_the_pco_json_examples() {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../fuzz/corpus/gtpv2_message");
    let v: serde_json::Value =
        serde_json::from_str(include_str!("../../testdata/pco.json")).unwrap();
    for ex in v["examples"].as_array().unwrap() {
        for key in [
            "gtpv2_create_session_request_minimal_hex",
            "gtpv2_create_session_response_minimal_hex",
        ] {
            if let Some(h) = ex[key].as_str() {
                let want = hex::decode(h).unwrap();
                let found = std::fs::read_dir(dir)
                    .unwrap()
                    .any(|e| std::fs::read(e.unwrap().path()).unwrap() == want);
                assert!(found, "{key} of {} is not in the seed corpus", ex["id"]);
            }
        }
    }
}

fn arb_csr() -> impl Strategy<Value = (CreateSessionRequest, u32)> {
    (
        "[0-9]{6,15}",
        "[a-z][a-z0-9-]{0,10}(\\.[a-z0-9]{1,8}){0,2}",
        1u8..=3,
        proptest::collection::vec(any::<u8>(), 0..60),
        1u8..=15,
        any::<u32>(),
        any::<[u8; 4]>(),
        0u32..0x0100_0000,
    )
        .prop_map(|(imsi, apn, pdn, pco_tail, ebi, teid, ip, seq)| {
            let mut pco = vec![0x80];
            pco.extend(pco_tail);
            let csr = CreateSessionRequest {
                imsi: Imsi::new(imsi).unwrap(),
                msisdn: None,
                mei: Some(Mei("356938035643809".into())),
                serving_network: Some(ServingNetwork {
                    mcc: "001".into(),
                    mnc: "01".into(),
                }),
                rat_type: RatType(6),
                sender_fteid: Fteid {
                    interface_type: 6,
                    teid,
                    ipv4: Some(Ipv4Addr::from(ip)),
                    ipv6: None,
                },
                apn: Apn(apn),
                selection_mode: Some(SelectionMode(0)),
                pdn_type: Some(PdnType(pdn)),
                paa: None,
                apn_ambr: Some(Ambr {
                    uplink_kbps: teid,
                    downlink_kbps: !teid,
                }),
                indication: Some(Indication(vec![0, 8])),
                pco: Some(pco),
                apco: None,
                epco: None,
                bearer_contexts: vec![BearerContextToCreate {
                    ebi: Ebi(ebi),
                    qos: BearerQos {
                        arp: 0x24,
                        qci: 9,
                        mbr_ul: 1,
                        mbr_dl: 2,
                        gbr_ul: 3,
                        gbr_dl: 4,
                    },
                    sgw_u: Some(Fteid {
                        interface_type: 4,
                        teid: !teid,
                        ipv4: Some(Ipv4Addr::from(ip)),
                        ipv6: None,
                    }),
                }],
                recovery: None,
            };
            (csr, seq)
        })
}

proptest! {
    #[test]
    fn random_bytes_never_break_the_codec_or_the_core(data in proptest::collection::vec(any::<u8>(), 0..300)) {
        gtpv2_message(&data);
    }

    #[test]
    fn random_ies_after_a_valid_header_never_break_anything(body in proptest::collection::vec(any::<u8>(), 0..200), t in any::<u8>()) {
        let mut data = vec![0x48, t, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0];
        data.extend_from_slice(&body);
        let len = (data.len() - 4) as u16;
        data[2..4].copy_from_slice(&len.to_be_bytes());
        gtpv2_message(&data);
    }

    #[test]
    fn create_session_request_round_trips((csr, seq) in arb_csr()) {
        let wire = csr.to_message(seq).to_bytes().unwrap();
        let (m, rest) = Message::decode(&wire).unwrap();
        prop_assert!(rest.is_empty());
        prop_assert_eq!(m.to_bytes().unwrap(), wire.clone());
        prop_assert_eq!(CreateSessionRequest::from_message(&m).unwrap(), csr);
        gtpv2_message(&wire);
    }
}
