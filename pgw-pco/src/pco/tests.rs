use super::*;

const PCO_JSON: &str = include_str!("../../testdata/pco.json");

fn example(id: &str) -> (Vec<u8>, serde_json::Value) {
    let v: serde_json::Value = serde_json::from_str(PCO_JSON).unwrap();
    let ex = v["examples"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["id"] == id)
        .unwrap()
        .clone();
    (hex::decode(ex["hex"].as_str().unwrap()).unwrap(), ex)
}

fn containers_of(ex: &serde_json::Value) -> Vec<(u16, Vec<u8>)> {
    ex["decoded"]["containers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            let id = u16::from_str_radix(c["id"].as_str().unwrap().trim_start_matches("0x"), 16);
            (
                id.unwrap(),
                hex::decode(c["content_hex"].as_str().unwrap()).unwrap(),
            )
        })
        .collect()
}

fn example_settings() -> PcoSettings {
    PcoSettings {
        pcscf_v4: vec![Ipv4Addr::new(192, 0, 2, 10)],
        pcscf_v6: vec!["2001:db8::10".parse().unwrap()],
        pcscf_per_answer: 0,
        dns_v4: vec![Ipv4Addr::new(192, 0, 2, 53), Ipv4Addr::new(192, 0, 2, 54)],
        dns_v6: vec!["2001:db8::53".parse().unwrap()],
        mtu: Some(1400),
        im_cn_signalling_flag: false,
    }
}

#[test]
fn pco_json_examples_decode_to_their_containers_and_reencode_byte_exact() {
    for (id, dir) in [
        ("pco-ue-request", Direction::MsToNetwork),
        ("pco-nw-response", Direction::NetworkToMs),
    ] {
        let (wire, ex) = example(id);
        let pco = Pco::decode(&wire, dir).unwrap();
        assert_eq!(pco.header, 0x80);
        let got: Vec<(u16, Vec<u8>)> = pco
            .containers
            .iter()
            .map(|c| (c.id.0, c.contents.clone()))
            .collect();
        assert_eq!(got, containers_of(&ex), "{id}");
        assert_eq!(pco.to_bytes(dir).unwrap(), wire, "{id}");
    }
}

#[test]
fn answer_to_the_example_request_carries_the_example_values() {
    let (req_wire, _) = example("pco-ue-request");
    let (_, resp) = example("pco-nw-response");
    let req = Pco::decode(&req_wire, Direction::MsToNetwork).unwrap();
    let a = answer(&req, &example_settings(), 0, true);
    let mut got: Vec<(u16, Vec<u8>)> = a
        .pco
        .containers
        .iter()
        .map(|c| (c.id.0, c.contents.clone()))
        .collect();
    // The example also answers 0x0005 (bearer control mode), which this stub leaves out.
    let mut want: Vec<(u16, Vec<u8>)> = containers_of(&resp)
        .into_iter()
        .filter(|(id, _)| *id != 0x0005)
        .collect();
    got.sort();
    want.sort();
    assert_eq!(got, want);
    assert!(a.requests.pcscf_v4 && a.requests.pcscf_v6 && a.requests.ip_alloc_via_nas);
    assert!(a.requests.pcscf_reselection && a.requests.mtu && a.requests.ipcp);
    assert_eq!(
        a.pcscf,
        vec![
            IpAddr::from([192, 0, 2, 10]),
            "2001:db8::10".parse::<IpAddr>().unwrap()
        ]
    );
    assert_eq!(a.dropped, 0);
}

#[test]
fn pcscf_lists_rotate_from_the_start_index() {
    let mut s = example_settings();
    s.pcscf_v4 = vec![
        Ipv4Addr::new(10, 0, 0, 1),
        Ipv4Addr::new(10, 0, 0, 2),
        Ipv4Addr::new(10, 0, 0, 3),
    ];
    s.pcscf_per_answer = 2;
    let req = Pco {
        header: 0x80,
        containers: vec![Container::new(ContainerId::PCSCF_IPV4, vec![])],
    };
    let a = answer(&req, &s, 2, true);
    assert_eq!(
        a.pcscf,
        vec![IpAddr::from([10, 0, 0, 3]), IpAddr::from([10, 0, 0, 1])]
    );
}

#[test]
fn no_pcscf_request_gets_no_pcscf() {
    let req = Pco {
        header: 0x80,
        containers: vec![Container::new(ContainerId::DNS_IPV4, vec![])],
    };
    let a = answer(&req, &example_settings(), 0, true);
    assert!(a.pcscf.is_empty());
    assert!(!a.pco.has(ContainerId::PCSCF_IPV4));
    assert_eq!(a.pco.all(ContainerId::DNS_IPV4).count(), 2);
}

#[test]
fn pap_request_is_acknowledged_with_its_identifier() {
    // Authenticate-Request id 7: peer-id "u", password "p".
    let req = Pco {
        header: 0x80,
        containers: vec![Container::new(
            ContainerId::PAP,
            vec![1, 7, 0, 8, 1, b'u', 1, b'p'],
        )],
    };
    let a = answer(&req, &example_settings(), 0, true);
    assert_eq!(a.pco.all(ContainerId::PAP).next().unwrap(), [2, 7, 0, 5, 0]);
    assert!(a.requests.pap);
}

#[test]
fn chap_response_gets_success_with_the_response_identifier() {
    let req = Pco {
        header: 0x80,
        containers: vec![
            Container::new(ContainerId::CHAP, vec![1, 1, 0, 6, 1, 0xaa]),
            Container::new(ContainerId::CHAP, vec![2, 9, 0, 7, 1, 0xbb, b'u']),
        ],
    };
    let a = answer(&req, &example_settings(), 0, true);
    assert_eq!(a.pco.all(ContainerId::CHAP).next().unwrap(), [3, 9, 0, 4]);
}

#[test]
fn ipcp_with_our_dns_already_is_acknowledged() {
    let req = vec![1, 4, 0, 16, 129, 6, 192, 0, 2, 53, 131, 6, 192, 0, 2, 54];
    assert_eq!(answer_ipcp(&req, &example_settings().dns_v4).unwrap()[0], 2);
    assert_eq!(
        answer_ipcp(&[1, 4, 0, 9, 129, 0, 0, 0, 0], &example_settings().dns_v4),
        None
    );
}

#[test]
fn ipcp_dns_options_without_a_configured_server_are_rejected_verbatim() {
    let req = vec![1, 4, 0, 16, 129, 6, 0, 0, 0, 0, 131, 6, 0, 0, 0, 0];
    let reject = answer_ipcp(&req, &[]).unwrap();
    // RFC 1661 §5.4: Configure-Reject, same identifier, the options as received.
    assert_eq!(
        reject,
        vec![4, 4, 0, 16, 129, 6, 0, 0, 0, 0, 131, 6, 0, 0, 0, 0]
    );
}

#[test]
fn pap_contents_never_appear_in_debug_output() {
    let c = Container::new(ContainerId::PAP, b"\x01\x07\x00\x0b\x01u\x04s3cr".to_vec());
    let shown = format!("{c:?}");
    assert!(shown.contains("11 octets"), "{shown}");
    assert!(
        !shown.contains("73, 33") && !shown.contains("33, 63"),
        "{shown}"
    );
}

#[test]
fn two_octet_length_containers_depend_on_direction() {
    let mut wire = vec![0x80, 0x00, 0x23, 0x00, 0x02, 0xaa, 0xbb];
    let nw = Pco::decode(&wire, Direction::NetworkToMs).unwrap();
    assert_eq!(nw.containers[0].contents, [0xaa, 0xbb]);
    assert_eq!(nw.to_bytes(Direction::NetworkToMs).unwrap(), wire);
    wire.truncate(4);
    wire[3] = 0;
    let ms = Pco::decode(&wire, Direction::MsToNetwork).unwrap();
    assert_eq!(ms.containers[0].contents, Vec::<u8>::new());
}

#[test]
fn answer_that_exceeds_the_nas_limit_keeps_pcscfs_first() {
    let mut s = example_settings();
    s.pcscf_v6 = (1..=20u16)
        .map(|i| Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, i))
        .collect();
    let req = Pco {
        header: 0x80,
        containers: vec![
            Container::new(ContainerId::PCSCF_IPV4, vec![]),
            Container::new(ContainerId::PCSCF_IPV6, vec![]),
            Container::new(ContainerId::DNS_IPV4, vec![]),
        ],
    };
    let a = answer(&req, &s, 0, true);
    assert!(a.dropped > 0);
    assert!(a.pco.to_bytes(Direction::NetworkToMs).unwrap().len() <= MAX_NAS_PCO_LEN);
    assert_eq!(a.pco.containers[0].id, ContainerId::PCSCF_IPV4);
    let unlimited = answer(&req, &s, 0, false);
    assert_eq!(unlimited.dropped, 0);
    assert_eq!(unlimited.pcscf.len(), 21);
}

#[test]
fn truncated_container_is_an_error() {
    assert!(Pco::decode(&[0x80, 0x00, 0x0c, 0x04, 1, 2], Direction::NetworkToMs).is_err());
    assert!(Pco::decode(&[], Direction::MsToNetwork).is_err());
    assert_eq!(
        Pco::decode(&[0x80], Direction::MsToNetwork)
            .unwrap()
            .containers
            .len(),
        0
    );
}
