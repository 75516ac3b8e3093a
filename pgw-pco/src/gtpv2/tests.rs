use std::net::Ipv4Addr;

use imslab_types::Imsi;

use super::ie::*;
use super::msg::*;
use super::*;
use crate::Error;

const PCO_JSON: &str = include_str!("../../testdata/pco.json");

fn vector(id: &str, key: &str) -> Vec<u8> {
    let v: serde_json::Value = serde_json::from_str(PCO_JSON).unwrap();
    let ex = v["examples"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["id"] == id)
        .unwrap();
    hex::decode(ex[key].as_str().unwrap()).unwrap()
}

fn sample_csr() -> CreateSessionRequest {
    CreateSessionRequest {
        imsi: Imsi::new("001010123456789").unwrap(),
        msisdn: Some(imslab_types::Msisdn::new("15551234").unwrap()),
        mei: Some(Mei("3569380356438091".into())),
        serving_network: Some(ServingNetwork {
            mcc: "001".into(),
            mnc: "01".into(),
        }),
        rat_type: RatType(6),
        sender_fteid: Fteid {
            interface_type: interface::S5S8_SGW_GTPC,
            teid: 0x1234,
            ipv4: Some(Ipv4Addr::LOCALHOST),
            ipv6: None,
        },
        apn: Apn("ims".into()),
        selection_mode: Some(SelectionMode(0)),
        pdn_type: Some(PdnType::IPV4V6),
        paa: None,
        apn_ambr: Some(Ambr {
            uplink_kbps: 1000,
            downlink_kbps: 2000,
        }),
        indication: None,
        pco: Some(vector("pco-ue-request", "hex")),
        apco: None,
        epco: None,
        bearer_contexts: vec![BearerContextToCreate {
            ebi: Ebi(5),
            qos: BearerQos {
                arp: 0x49,
                qci: 5,
                mbr_ul: 0,
                mbr_dl: 0,
                gbr_ul: 0,
                gbr_dl: 0,
            },
            sgw_u: Some(Fteid {
                interface_type: interface::S5S8_SGW_GTPU,
                teid: 0x5678,
                ipv4: Some(Ipv4Addr::LOCALHOST),
                ipv6: None,
            }),
        }],
        recovery: Some(Recovery(3)),
    }
}

#[test]
fn pco_json_create_session_wrapper_decodes_and_reencodes_byte_exact() {
    for (id, key, t) in [
        (
            "pco-ue-request",
            "gtpv2_create_session_request_minimal_hex",
            MessageType(32),
        ),
        (
            "pco-nw-response",
            "gtpv2_create_session_response_minimal_hex",
            MessageType(33),
        ),
    ] {
        let wire = vector(id, key);
        let (m, rest) = Message::decode(&wire).unwrap();
        assert!(rest.is_empty());
        assert_eq!(m.header.message_type, t);
        assert_eq!(m.header.teid, Some(0));
        assert_eq!(m.header.sequence, 1);
        assert_eq!(
            m.ie(IeType::PCO, 0).unwrap().raw_value().unwrap(),
            vector(id, "hex")
        );
        assert_eq!(m.to_bytes().unwrap(), wire);
    }
}

#[test]
fn header_without_teid_has_four_octets_after_length() {
    let m = echo(MessageType::ECHO_REQUEST, 0x00ab_cdef, Recovery(7));
    let wire = m.to_bytes().unwrap();
    assert_eq!(wire, [0x40, 1, 0, 9, 0xab, 0xcd, 0xef, 0, 3, 0, 1, 0, 7]);
    assert_eq!(Message::decode(&wire).unwrap().0, m);
}

#[test]
fn sequence_number_is_truncated_to_24_bits() {
    assert_eq!(
        Header::new(MessageType(1), None, 0x1234_5678).sequence,
        0x0034_5678
    );
}

#[test]
fn unknown_ie_and_spare_bits_are_carried_byte_exact() {
    // Echo Request with Recovery plus an unknown IE 250, instance 3, CR bits 0b1010.
    let wire = [
        0x40, 1, 0, 0x10, 0, 0, 9, 0, 3, 0, 1, 0, 7, 250, 0, 3, 0xa3, 1, 2, 3,
    ];
    let (m, _) = Message::decode(&wire).unwrap();
    let unknown = m.ie(IeType(250), 3).unwrap();
    assert_eq!(unknown.spare, 0x0a);
    assert_eq!(unknown.raw_value().unwrap(), [1, 2, 3]);
    assert_eq!(m.to_bytes().unwrap(), wire);
}

#[test]
fn imsi_is_tbcd_with_filler() {
    let imsi = Imsi::new("001010123456789").unwrap();
    let ie = imsi.to_ie(0);
    assert_eq!(
        ie.raw_value().unwrap(),
        [0x00, 0x01, 0x01, 0x21, 0x43, 0x65, 0x87, 0xf9]
    );
    assert_eq!(Imsi::from_ie(&ie).unwrap(), imsi);
    assert!(Imsi::decode_value(&[0x00, 0x1a]).is_err());
}

#[test]
fn fteid_carries_flags_interface_and_address() {
    let f = Fteid {
        interface_type: 7,
        teid: 0x0102_0304,
        ipv4: Some(Ipv4Addr::LOCALHOST),
        ipv6: None,
    };
    let ie = f.to_ie(1);
    assert_eq!(ie.raw_value().unwrap(), [0x87, 1, 2, 3, 4, 127, 0, 0, 1]);
    assert_eq!(Fteid::from_ie(&ie).unwrap(), f);
    assert!(
        Fteid::decode_value(&[0x07, 1, 2, 3, 4]).is_err(),
        "no address"
    );
}

#[test]
fn serving_network_with_two_digit_mnc_uses_filler() {
    let sn = ServingNetwork {
        mcc: "001".into(),
        mnc: "01".into(),
    };
    let ie = sn.to_ie(0);
    assert_eq!(ie.raw_value().unwrap(), [0x00, 0xf1, 0x10]);
    assert_eq!(ServingNetwork::from_ie(&ie).unwrap(), sn);
}

#[test]
fn apn_uses_dns_labels_and_strips_operator_identifier() {
    let apn = Apn("ims.mnc001.mcc001.gprs".into());
    let ie = apn.to_ie(0);
    assert_eq!(&ie.raw_value().unwrap()[..4], b"\x03ims");
    assert_eq!(Apn::from_ie(&ie).unwrap(), apn);
    assert_eq!(apn.network_identifier(), "ims");
    assert_eq!(Apn("IMS".into()).network_identifier(), "IMS");
    assert_eq!(Apn("corp.gprs".into()).network_identifier(), "corp.gprs");
    assert!(Apn::decode_value(&[5, b'i', b'm']).is_err());
}

#[test]
fn cause_with_offending_ie_is_six_octets() {
    let c = Cause {
        value: CauseValue::MANDATORY_IE_MISSING,
        flags: 0,
        offending: Some(OffendingIe {
            ie_type: IeType::IMSI,
            instance: 0,
        }),
    };
    let ie = c.to_ie(0);
    assert_eq!(ie.raw_value().unwrap(), [70, 0, 1, 0, 0, 0]);
    assert_eq!(Cause::from_ie(&ie).unwrap(), c);
}

#[test]
fn paa_ipv4v6_is_prefix_then_v6_then_v4() {
    let p = Paa {
        pdn_type: PdnType::IPV4V6,
        ipv4: Some(Ipv4Addr::new(10, 46, 0, 2)),
        ipv6: Some((64, "2001:db8:46:1::1".parse().unwrap())),
    };
    let v = p.to_ie(0).raw_value().unwrap().to_vec();
    assert_eq!(v.len(), 22);
    assert_eq!((v[0], v[1]), (3, 64));
    assert_eq!(&v[18..], [10, 46, 0, 2]);
    assert_eq!(Paa::decode_value(&v).unwrap(), p);
}

#[test]
fn create_session_request_round_trips_through_typed_view() {
    let csr = sample_csr();
    let wire = csr.to_message(42).to_bytes().unwrap();
    let (m, _) = Message::decode(&wire).unwrap();
    assert_eq!(m.header.sequence, 42);
    assert!(
        m.ie(IeType::BEARER_CONTEXT, 0)
            .unwrap()
            .children()
            .is_some()
    );
    assert_eq!(CreateSessionRequest::from_message(&m).unwrap(), csr);
}

#[test]
fn missing_imsi_names_the_offending_ie() {
    let mut m = sample_csr().to_message(1);
    m.ies.retain(|ie| ie.ie_type != IeType::IMSI);
    match CreateSessionRequest::from_message(&m) {
        Err(Error::MandatoryIeMissing {
            ie_type,
            instance: 0,
            ..
        }) => {
            assert_eq!(ie_type, IeType::IMSI)
        }
        other => panic!("expected missing IMSI, got {other:?}"),
    }
}

#[test]
fn bearer_context_without_ebi_is_reported_against_the_bearer_context() {
    let mut m = sample_csr().to_message(1);
    for ie in &mut m.ies {
        if let IeValue::Grouped(c) = &mut ie.value {
            c.retain(|i| i.ie_type != IeType::EBI);
        }
    }
    match CreateSessionRequest::from_message(&m) {
        Err(Error::MandatoryIeMissing { ie_type, .. }) => {
            assert_eq!(ie_type, IeType::BEARER_CONTEXT)
        }
        other => panic!("expected missing bearer context IE, got {other:?}"),
    }
}

#[test]
fn malformed_grouped_ie_stays_raw_and_reencodes_exactly() {
    // Bearer Context whose inner IE claims 9 octets but has 1.
    let wire = [
        0x48, 32, 0, 17, 0, 0, 0, 0, 0, 0, 1, 0, 93, 0, 5, 0, 73, 0, 9, 0, 5,
    ];
    let (m, _) = Message::decode(&wire).unwrap();
    assert!(m.ies[0].raw_value().is_some());
    assert_eq!(m.to_bytes().unwrap(), wire);
    assert!(matches!(
        CreateSessionRequest::from_message(&m),
        Err(Error::MandatoryIeIncorrect { .. })
    ));
}

#[test]
fn every_truncation_of_a_valid_message_is_an_error_not_a_panic() {
    let wire = sample_csr().to_message(9).to_bytes().unwrap();
    for n in 0..wire.len() {
        assert!(
            Message::decode(&wire[..n]).is_err(),
            "prefix of {n} octets decoded"
        );
    }
}

#[test]
fn version_one_is_refused_with_its_version() {
    assert!(matches!(
        Message::decode(&[0x32, 1, 0, 4, 0, 0, 0, 0]),
        Err(Error::UnsupportedVersion(1))
    ));
    assert_eq!(Message::frame_len(&[0x40, 1]).unwrap(), None);
    assert_eq!(Message::frame_len(&[0x40, 1, 0, 9]).unwrap(), Some(13));
}

#[test]
fn length_shorter_than_header_is_invalid_length() {
    assert!(matches!(
        Message::decode(&[0x48, 1, 0, 4, 0, 0, 0, 0]),
        Err(Error::InvalidLength { .. })
    ));
}

#[test]
fn piggybacked_message_is_decoded_after_the_first() {
    let mut first = echo(MessageType::ECHO_REQUEST, 1, Recovery(1));
    first.header.piggybacked = true;
    let second = echo(MessageType::ECHO_REQUEST, 2, Recovery(1));
    let mut wire = first.to_bytes().unwrap();
    second.encode(&mut wire).unwrap();
    assert_eq!(
        Message::decode_datagram(&wire).unwrap(),
        vec![first, second]
    );
}

#[test]
fn too_many_ies_hit_the_limit() {
    let mut m = echo(MessageType::ECHO_REQUEST, 1, Recovery(1));
    m.ies = vec![Recovery(1).to_ie(0); MAX_IES + 1];
    let wire = m.to_bytes().unwrap();
    assert!(matches!(Message::decode(&wire), Err(Error::Limit { .. })));
}
