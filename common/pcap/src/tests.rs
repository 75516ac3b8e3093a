use super::*;

fn addr(s: &str) -> SocketAddr {
    s.parse().unwrap()
}

#[test]
fn global_header_declares_raw_ip() {
    let w = PcapWriter::new(Vec::new()).unwrap().into_inner();
    assert_eq!(w.len(), 24);
    assert_eq!(&w[0..4], &0xa1b2_c3d4u32.to_le_bytes());
    assert_eq!(&w[20..24], &101u32.to_le_bytes());
}

#[test]
fn udp_checksum_verifies_to_zero() {
    let mut w = PcapWriter::new(Vec::new()).unwrap();
    w.udp(
        UNIX_EPOCH,
        addr("127.0.0.1:5060"),
        addr("127.0.0.2:5060"),
        b"OPTIONS",
    )
    .unwrap();
    let bytes = w.into_inner();
    let packet = &bytes[40..];
    assert_eq!(
        fold(sum16(0, &packet[..20])),
        0xffff,
        "IPv4 header checksum"
    );
    let seg = &packet[20..];
    let src: IpAddr = "127.0.0.1".parse().unwrap();
    let dst: IpAddr = "127.0.0.2".parse().unwrap();
    assert_eq!(transport_checksum(src, dst, 17, seg).unwrap(), 0);
}

#[test]
fn first_tcp_message_of_a_flow_gets_a_handshake() {
    let mut w = PcapWriter::new(Vec::new()).unwrap();
    let (a, b) = (addr("127.0.0.1:40000"), addr("127.0.0.1:3868"));
    w.tcp(UNIX_EPOCH, a, b, b"hello").unwrap();
    w.tcp(UNIX_EPOCH, b, a, b"world").unwrap();
    let bytes = w.into_inner();
    // 3 handshake segments + 2 data segments, each 16 + 20 + 20 (+ payload) bytes.
    assert_eq!(bytes.len(), 24 + 3 * 56 + 2 * (56 + 5));
}

#[test]
fn mixed_address_families_are_refused() {
    let mut w = PcapWriter::new(Vec::new()).unwrap();
    assert!(
        w.udp(UNIX_EPOCH, addr("127.0.0.1:1"), addr("[::1]:1"), b"x")
            .is_err()
    );
}

/// tshark (package tshark) reads our records as SIP over UDP and TCP, IPv4 and IPv6, with valid
/// checksums and no expert errors.
#[test]
fn tshark_decodes_synthesized_sip_without_errors() {
    let sip = b"OPTIONS sip:pcscf.ims.example SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:5070;branch=z9hG4bK1\r\nFrom: <sip:a@ims.example>;tag=1\r\nTo: <sip:pcscf.ims.example>\r\nCall-ID: c1\r\nCSeq: 1 OPTIONS\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n";
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("t.pcap");
    let mut w = PcapWriter::new(std::fs::File::create(&path).unwrap()).unwrap();
    w.udp(
        SystemTime::now(),
        addr("127.0.0.1:5070"),
        addr("127.0.0.1:5060"),
        sip,
    )
    .unwrap();
    w.tcp(
        SystemTime::now(),
        addr("[::1]:5070"),
        addr("[::1]:5060"),
        sip,
    )
    .unwrap();
    w.flush().unwrap();
    drop(w);
    let packets = imslab_test_support::tshark_check(&path, &[], &["sip.Method"]);
    let methods: Vec<_> = packets
        .iter()
        .filter(|p| p.fields[0] == "OPTIONS")
        .collect();
    assert_eq!(methods.len(), 2, "{packets:?}");
}
