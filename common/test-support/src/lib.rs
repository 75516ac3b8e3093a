//! Test helpers shared by imslab crates (dev-dependency only).
//!
//! - [`peer`]: finds a real third-party program (sipp, tshark, freeDiameterd...) or fails the
//!   test with the Debian package to install. Tests never skip because a peer is missing.
//! - [`tshark_check`]: decodes a pcap with tshark, with checksum validation on, and fails on any
//!   malformed packet or expert error; returns the decoded fields for further assertions.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

use std::path::{Path, PathBuf};
use std::process::Command;

/// tshark's expert severity for errors (PI_ERROR, epan/proto.h).
const PI_ERROR: u64 = 0x0080_0000;
/// tshark's expert group for malformed packets (PI_MALFORMED).
const PI_MALFORMED: u64 = 0x0700_0000;

/// Path of a required peer program. Panics, naming the package, when it is not installed.
pub fn peer(program: &str, package: &str) -> PathBuf {
    let path = std::env::var_os("PATH").unwrap_or_default();
    for dir in std::env::split_paths(&path).chain(["/usr/sbin".into(), "/sbin".into()]) {
        let candidate = dir.join(program);
        if candidate.is_file() {
            return candidate;
        }
    }
    panic!(
        "required peer `{program}` is not installed: apt-get install {package} \
         (./test.sh installs every peer)"
    );
}

/// One decoded packet: its number and the requested field values, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Packet {
    /// The frame number, from 1.
    pub number: u64,
    /// The values of the requested fields (empty when absent; several occurrences joined by ',').
    pub fields: Vec<String>,
}

/// Decodes `pcap` with tshark, with IP/UDP/TCP checksum validation enabled and the given extra
/// arguments (for example `["-d", "tcp.port==13868,diameter"]`), extracting `fields` for every
/// packet. Fails if tshark is missing or fails, or if any packet is malformed or carries an
/// expert error; the message lists the offending packets and tshark's expert messages.
pub fn tshark_check(pcap: &Path, extra: &[&str], fields: &[&str]) -> Vec<Packet> {
    let tshark = peer("tshark", "tshark");
    let mut cmd = Command::new(tshark);
    cmd.arg("-r").arg(pcap).args([
        "-o",
        "ip.check_checksum:TRUE",
        "-o",
        "udp.check_checksum:TRUE",
        "-o",
        "tcp.check_checksum:TRUE",
    ]);
    cmd.args(extra)
        .args(["-T", "fields", "-E", "separator=\t", "-E", "occurrence=a"]);
    cmd.args(["-E", "aggregator=,"]);
    for f in [
        "frame.number",
        "_ws.expert.group",
        "_ws.expert.severity",
        "_ws.expert.message",
    ]
    .iter()
    .chain(fields)
    {
        cmd.args(["-e", f]);
    }
    let out = cmd.output().expect("tshark runs");
    assert!(
        out.status.success(),
        "tshark failed on {}: {}",
        pcap.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    let mut packets = Vec::new();
    let mut problems = Vec::new();
    for line in text.lines() {
        let cols: Vec<&str> = line.split('\t').collect();
        let col = |i: usize| cols.get(i).copied().unwrap_or("");
        let number = col(0).parse().unwrap_or(0);
        let groups = parse_numbers(col(1));
        let severities = parse_numbers(col(2));
        if groups.contains(&PI_MALFORMED) || severities.iter().any(|s| *s >= PI_ERROR) {
            problems.push(format!("frame {number}: {}", col(3)));
        }
        let fields = (0..fields.len()).map(|i| col(4 + i).to_owned()).collect();
        packets.push(Packet { number, fields });
    }
    assert!(
        problems.is_empty(),
        "tshark found malformed packets or expert errors in {}:\n{}",
        pcap.display(),
        problems.join("\n")
    );
    packets
}

fn parse_numbers(s: &str) -> Vec<u64> {
    s.split(',')
        .filter_map(|v| {
            let v = v.trim();
            v.strip_prefix("0x")
                .map_or_else(|| v.parse().ok(), |h| u64::from_str_radix(h, 16).ok())
        })
        .collect()
}

/// Reading SIPp's output.
pub mod sipp {
    use std::path::Path;

    /// What an IMS AKA registration scenario for SIPp 3.6.1 holds besides its first
    /// registration (see [`aka_register_scenario`]).
    #[derive(Debug, Clone, Copy)]
    pub struct AkaRegister<'a> {
        /// The Contact expiry of the first registration, seconds.
        pub expires: u32,
        /// Header lines put into every REGISTER after the Contact (e.g. `Supported: path`).
        pub extra_headers: &'a [&'a str],
        /// One more answered REGISTER per entry, with that Contact expiry: a re-registration,
        /// or 0 for the de-registration.
        pub then: &'a [u32],
    }

    impl Default for AkaRegister<'_> {
        fn default() -> Self {
            Self {
                expires: 600,
                extra_headers: &[],
                then: &[],
            }
        }
    }

    /// An IMS AKA registration scenario for SIPp 3.6.1 in `domain`: the initial REGISTER with
    /// an empty AKAv1-MD5 Authorization, the 401, the answered REGISTER (`[field1]` carries the
    /// `[authentication ... aka_K=... aka_OP=... aka_AMF=...]` keyword from the injection file,
    /// `[field0]` the user) and the 200, then each REGISTER of `r.then` and its 200.
    pub fn aka_register_scenario(domain: &str, r: &AkaRegister<'_>) -> String {
        let register = |cseq: usize, expires: u32, auth: &str| {
            let mut lines = vec![
                "REGISTER sip:DOMAIN SIP/2.0".to_owned(),
                "Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch];rport".into(),
                "Max-Forwards: 70".into(),
                "From: <sip:[field0]@DOMAIN>;tag=[call_number]".into(),
                "To: <sip:[field0]@DOMAIN>".into(),
                "Call-ID: [call_id]".into(),
                format!("CSeq: {cseq} REGISTER"),
                format!("Contact: <sip:[field0]@[local_ip]:[local_port]>;expires={expires}"),
            ];
            lines.extend(r.extra_headers.iter().map(|h| (*h).to_owned()));
            lines.push(auth.to_owned());
            lines.push("Content-Length: 0".into());
            let body: String = lines.iter().map(|l| format!("      {l}\n")).collect();
            format!("  <send retrans=\"500\">\n    <![CDATA[\n{body}\n    ]]>\n  </send>\n")
        };
        let mut xml = String::from(
            "<?xml version=\"1.0\" encoding=\"ISO-8859-1\" ?>\n<scenario name=\"ims-aka-register\">\n",
        );
        xml += &register(
            1,
            r.expires,
            "Authorization: Digest username=\"[field0]@DOMAIN\", realm=\"DOMAIN\", nonce=\"\", \
             uri=\"sip:DOMAIN\", response=\"\", algorithm=AKAv1-MD5",
        );
        xml += "  <recv response=\"401\" auth=\"true\"/>\n";
        let answered = std::iter::once(r.expires).chain(r.then.iter().copied());
        for (i, expires) in answered.enumerate() {
            xml += &register(i + 2, expires, "[field1]");
            xml += "  <recv response=\"200\"/>\n";
        }
        xml += "</scenario>\n";
        xml.replace("DOMAIN", domain)
    }

    /// Hex as SIPp's `\xNN` escapes, the byte-for-byte form its `aka_K`/`aka_OP`/`aka_AMF`
    /// keywords take (peers.md).
    pub fn escaped(hex: &str) -> String {
        hex.as_bytes()
            .chunks(2)
            .map(|c| format!("\\x{}", String::from_utf8_lossy(c)))
            .collect()
    }

    /// A counter from SIPp's final statistics screen (`Successful call`, `Failed call`...):
    /// the cumulative column of the last occurrence.
    pub fn stat(stdout: &str, what: &str) -> usize {
        stdout
            .lines()
            .rev()
            .find(|l| l.contains(what))
            .and_then(|l| l.split('|').next_back())
            .and_then(|n| n.trim().parse().ok())
            .unwrap_or(0)
    }

    /// The nonces of the challenges SIPp answered with a non-empty digest response, from the
    /// `*_messages.log` files that `-trace_msg` writes in `dir`.
    pub fn answered_nonces(dir: &Path) -> Vec<String> {
        let mut out = Vec::new();
        let Ok(entries) = std::fs::read_dir(dir) else {
            return out;
        };
        for path in entries.flatten().map(|e| e.path()) {
            if !path.to_string_lossy().ends_with("_messages.log") {
                continue;
            }
            let log = std::fs::read_to_string(&path).unwrap_or_default();
            for block in log.split("message sent") {
                let Some(at) = block.find("Authorization: Digest") else {
                    continue;
                };
                let line = block[at..].lines().next().unwrap_or_default();
                let param = |name: &str| {
                    line.trim_start_matches("Authorization: Digest")
                        .split(',')
                        .map(str::trim)
                        .find_map(|p| p.strip_prefix(name))
                        .map(|v| v.trim_matches('"').to_owned())
                };
                let Some(nonce) = param("nonce=") else {
                    continue;
                };
                if !nonce.is_empty() && param("response=").is_some_and(|r| !r.is_empty()) {
                    out.push(nonce);
                }
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write_pcap(dir: &Path, ip_checksum: u16) -> PathBuf {
        let payload = b"OPTIONS sip:x SIP/2.0\r\nContent-Length: 0\r\n\r\n";
        let mut udp = Vec::new();
        udp.extend_from_slice(&5060u16.to_be_bytes());
        udp.extend_from_slice(&5060u16.to_be_bytes());
        udp.extend_from_slice(&(8 + payload.len() as u16).to_be_bytes());
        udp.extend_from_slice(&[0, 0]); // no UDP checksum: allowed over IPv4
        udp.extend_from_slice(payload);
        let mut ip = vec![0x45, 0];
        ip.extend_from_slice(&(20 + udp.len() as u16).to_be_bytes());
        ip.extend_from_slice(&[0, 0, 0x40, 0, 64, 17]);
        ip.extend_from_slice(&ip_checksum.to_be_bytes());
        ip.extend_from_slice(&[127, 0, 0, 1, 127, 0, 0, 2]);
        ip.extend_from_slice(&udp);
        let mut file = Vec::new();
        file.extend_from_slice(&0xa1b2_c3d4u32.to_le_bytes());
        file.extend_from_slice(&2u16.to_le_bytes());
        file.extend_from_slice(&4u16.to_le_bytes());
        for v in [0u32, 0, 65_535, 101, 0, 0, ip.len() as u32, ip.len() as u32] {
            file.extend_from_slice(&v.to_le_bytes());
        }
        file.extend_from_slice(&ip);
        let path = dir.join(format!("p{ip_checksum}.pcap"));
        std::fs::write(&path, file).unwrap();
        path
    }

    fn correct_checksum() -> u16 {
        let hdr = [
            0x45u8, 0, 0, 72, 0, 0, 0x40, 0, 64, 17, 0, 0, 127, 0, 0, 1, 127, 0, 0, 2,
        ];
        let mut acc: u32 = hdr
            .chunks(2)
            .map(|c| u32::from(u16::from_be_bytes([c[0], c[1]])))
            .sum();
        while acc > 0xffff {
            acc = (acc & 0xffff) + (acc >> 16);
        }
        !(acc as u16)
    }

    #[test]
    fn clean_capture_passes_and_yields_fields() {
        let dir = std::env::temp_dir().join(format!("imslab-ts-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let p = tshark_check(&write_pcap(&dir, correct_checksum()), &[], &["sip.Method"]);
        assert_eq!(p.len(), 1);
        assert_eq!(p[0].fields, vec!["OPTIONS".to_owned()]);
        std::fs::remove_dir_all(dir).ok();
    }

    #[test]
    #[should_panic(expected = "expert errors")]
    fn bad_ip_checksum_is_reported() {
        let dir = std::env::temp_dir().join(format!("imslab-tsb-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        tshark_check(&write_pcap(&dir, 0x1234), &[], &["sip.Method"]);
    }
}
