//! tshark (the wire-format oracle) decrypts our ESP with the SA table we write, verifies our
//! ICVs and finds the inner UDP and SIP: an independent check of the ESP codec, the Annex I
//! keys and the `esp_sa` writer.

use std::net::IpAddr;
use std::process::Command;

use imslab_ipsec::esp::{OutboundSa, next_header};
use imslab_ipsec::inner::{build_ip_header, build_udp};
use imslab_ipsec::wireshark::{esp_sa_file, esp_sa_line};
use imslab_ipsec::{CipherSuite, SaBundle, SaRole};

use crate::support::pcscf_bundle;

/// A classic pcap with LINKTYPE_RAW (101): every record is an IP packet.
fn pcap(packets: &[Vec<u8>]) -> Vec<u8> {
    let mut out = Vec::new();
    out.extend_from_slice(&0xa1b2_c3d4u32.to_le_bytes());
    out.extend_from_slice(&2u16.to_le_bytes());
    out.extend_from_slice(&4u16.to_le_bytes());
    out.extend_from_slice(&[0; 8]);
    out.extend_from_slice(&65535u32.to_le_bytes());
    out.extend_from_slice(&101u32.to_le_bytes());
    for (i, p) in packets.iter().enumerate() {
        out.extend_from_slice(&(1_700_000_000u32 + i as u32).to_le_bytes());
        out.extend_from_slice(&0u32.to_le_bytes());
        out.extend_from_slice(&(p.len() as u32).to_le_bytes());
        out.extend_from_slice(&(p.len() as u32).to_le_bytes());
        out.extend_from_slice(p);
    }
    out
}

/// One SIP message per SA of `b`, each protected on that SA and wrapped in its IP header.
fn esp_packets(b: &SaBundle) -> Vec<(SaRole, Vec<u8>)> {
    b.sas()
        .into_iter()
        .map(|sa| {
            let mut tx = OutboundSa::new(sa.spi, &b.keys).unwrap();
            let sip = format!(
                "OPTIONS sip:{} SIP/2.0\r\nCall-ID: {:?}@imslab\r\nContent-Length: 0\r\n\r\n",
                sa.dst, sa.role
            );
            let mut udp = Vec::new();
            build_udp(sa.src, sa.dst, sip.as_bytes(), &mut udp);
            let mut esp = Vec::new();
            let mut n = 0u8;
            tx.protect(
                next_header::UDP,
                &udp,
                |iv| {
                    iv.iter_mut().for_each(|x| {
                        n = n.wrapping_add(37);
                        *x = n
                    })
                },
                &mut esp,
            )
            .unwrap();
            let mut ip = Vec::new();
            build_ip_header(sa.src.ip(), sa.dst.ip(), 50, esp.len(), &mut ip);
            ip.extend_from_slice(&esp);
            (sa.role, ip)
        })
        .collect()
}

fn tshark(args: &[String], env: Option<(&str, &std::path::Path)>) -> String {
    let mut cmd = Command::new("tshark");
    cmd.args(args);
    if let Some((k, v)) = env {
        cmd.env(k, v);
    }
    let out = cmd
        .output()
        .expect("tshark failed to start: this test needs the tshark package");
    assert!(
        out.status.success(),
        "tshark {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn fields(pcap: &std::path::Path) -> Vec<String> {
    [
        "-r",
        pcap.to_str().unwrap(),
        "-o",
        "esp.enable_encryption_decode:TRUE",
        "-o",
        "esp.enable_authentication_check:TRUE",
        "-d",
        "udp.port==6100,sip",
        "-d",
        "udp.port==5064,sip",
        "-d",
        "udp.port==5062,sip",
        "-d",
        "udp.port==5100,sip",
        "-T",
        "fields",
        "-E",
        "separator=|",
        "-e",
        "esp.spi",
        "-e",
        "esp.icv_good",
        "-e",
        "udp.srcport",
        "-e",
        "udp.dstport",
        "-e",
        "udp.checksum.status",
        "-e",
        "sip.Method",
        "-e",
        "sip.Call-ID",
        "-o",
        "udp.check_checksum:TRUE",
    ]
    .map(str::to_owned)
    .to_vec()
}

fn check_decoded(output: &str, b: &SaBundle, suite: CipherSuite) {
    let rows: Vec<Vec<&str>> = output.lines().map(|l| l.split('|').collect()).collect();
    assert_eq!(rows.len(), 4, "{suite}: {output}");
    for (row, sa) in rows.iter().zip(b.sas()) {
        let spi = format!("{:#010x}", sa.spi.0);
        assert_eq!(row[0], spi, "{suite}: {output}");
        assert_eq!(row[1], "1", "{suite}: ICV not verified by tshark: {output}");
        assert_eq!(
            (row[2], row[3]),
            (
                sa.src.port().to_string().as_str(),
                sa.dst.port().to_string().as_str()
            ),
            "{suite}: {output}"
        );
        assert_eq!(
            row[4], "1",
            "{suite}: inner UDP checksum not good (1 = Good): {output}"
        );
        assert_eq!(row[5], "OPTIONS", "{suite}: {output}");
        assert_eq!(row[6], format!("{:?}@imslab", sa.role), "{suite}: {output}");
    }
}

#[test]
fn tshark_decrypts_our_esp_with_the_sa_table_on_the_command_line_for_every_suite() {
    let dir = tempfile::tempdir().unwrap();
    let (p, u): (IpAddr, IpAddr) = ("127.0.0.1".parse().unwrap(), "127.0.0.2".parse().unwrap());
    for suite in CipherSuite::all() {
        let b = pcscf_bundle(p, u, suite);
        let path = dir
            .path()
            .join(format!("{}.pcap", suite.to_string().replace('/', "_")));
        let packets: Vec<Vec<u8>> = esp_packets(&b).into_iter().map(|(_, p)| p).collect();
        std::fs::write(&path, pcap(&packets)).unwrap();
        let mut args = fields(&path);
        for sa in b.sas() {
            args.push("-o".into());
            args.push(format!("uat:esp_sa:{}", esp_sa_line(&sa, &b)));
        }
        check_decoded(&tshark(&args, None), &b, suite);
    }
}

#[test]
fn tshark_reads_the_esp_sa_file_from_a_config_directory() {
    let dir = tempfile::tempdir().unwrap();
    let (p, u): (IpAddr, IpAddr) = ("127.0.0.1".parse().unwrap(), "127.0.0.2".parse().unwrap());
    let bundles: Vec<SaBundle> = CipherSuite::all()
        .enumerate()
        .map(|(i, suite)| {
            let mut b = pcscf_bundle(p, u, suite);
            for spi in [
                &mut b.local.spi_c,
                &mut b.local.spi_s,
                &mut b.remote.spi_c,
                &mut b.remote.spi_s,
            ] {
                spi.0 += 16 * i as u32;
            }
            b
        })
        .collect();
    let config = dir.path().join("config");
    std::fs::create_dir_all(&config).unwrap();
    std::fs::write(config.join("esp_sa"), esp_sa_file(&bundles)).unwrap();
    let mut all = Vec::new();
    for b in &bundles {
        all.extend(esp_packets(b).into_iter().map(|(_, p)| p));
    }
    let path = dir.path().join("all.pcap");
    std::fs::write(&path, pcap(&all)).unwrap();
    let out = tshark(&fields(&path), Some(("WIRESHARK_CONFIG_DIR", &config)));
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 24, "{out}");
    for (chunk, (b, suite)) in lines.chunks(4).zip(bundles.iter().zip(CipherSuite::all())) {
        check_decoded(&chunk.join("\n"), b, suite);
    }
}

#[test]
fn tshark_flags_a_wrong_integrity_key_and_a_corrupted_inner_checksum() {
    // Negative controls for the assertions above: they must be able to fail.
    let dir = tempfile::tempdir().unwrap();
    let (p, u): (IpAddr, IpAddr) = ("127.0.0.1".parse().unwrap(), "127.0.0.2".parse().unwrap());
    let suite = CipherSuite::all().next().unwrap();
    let b = pcscf_bundle(p, u, suite);
    let sa = b.sa(SaRole::InboundToServer);
    let mut udp = Vec::new();
    build_udp(
        sa.src,
        sa.dst,
        b"OPTIONS sip:x SIP/2.0\r\nCall-ID: c@imslab\r\n\r\n",
        &mut udp,
    );
    udp[7] ^= 0xff; // corrupt the UDP checksum before protecting
    let mut tx = OutboundSa::new(sa.spi, &b.keys).unwrap();
    let mut esp = Vec::new();
    tx.protect(next_header::UDP, &udp, |iv| iv.fill(9), &mut esp)
        .unwrap();
    let mut ip = Vec::new();
    build_ip_header(sa.src.ip(), sa.dst.ip(), 50, esp.len(), &mut ip);
    ip.extend_from_slice(&esp);
    let path = dir.path().join("bad.pcap");
    std::fs::write(&path, pcap(&[ip])).unwrap();

    let mut args = fields(&path);
    args.extend(["-o".into(), format!("uat:esp_sa:{}", esp_sa_line(&sa, &b))]);
    let row = tshark(&args, None);
    let cols: Vec<&str> = row.trim_end().split('|').collect();
    assert_eq!(cols[1], "1", "{row}");
    assert_eq!(
        cols[4], "0",
        "corrupted inner checksum must show as Bad (0): {row}"
    );

    let wrong = esp_sa_line(&sa, &b).replace("0xf769", "0x0769");
    let mut args = fields(&path);
    args.extend(["-o".into(), format!("uat:esp_sa:{wrong}")]);
    args.extend(["-e".into(), "esp.icv_bad".into()]);
    let row = tshark(&args, None);
    let cols: Vec<&str> = row.trim_end().split('|').collect();
    assert_eq!(
        (cols[1], cols[7]),
        ("0", "1"),
        "wrong key must fail tshark's ICV check: {row}"
    );
}
