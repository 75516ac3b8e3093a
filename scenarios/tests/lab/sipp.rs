//! SIPp 3.6.1 (package sip-tester) as phones of the lab: each SIPp user registers through the
//! P-CSCF (`pcscf.ipsec.mode: off`) with SIPp's own IMS AKA, then a SIPp UAS answers calls
//! on the registered port and a SIPp UAC places them from its registered port
//! (INVITE, 100, 180, 200, ACK, BYE, 200). Shared by the `lab` test and the `calls` bench.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};

use imslab_test_support::sipp::{aka_register_scenario, escaped, stat};

/// TS 35.208 test set 1 K and OP, and an AMF without 0x00 bytes (SIPp takes them as text).
pub(crate) const K_HEX: &str = "465b5ce8b199b49faa5f0a2ee238a6bc";
pub(crate) const OP_HEX: &str = "cdc202d5123e20f62b6d676ac72cb318";
pub(crate) const AMF_HEX: &str = "b9b9";

/// The IMSI of SIPp user `n`.
pub(crate) fn imsi(n: u32) -> String {
    format!("00101{:010}", 7_000_000 + n)
}

/// `imslab subscriber import` CSV for SIPp users `range` (OP, not OPc: SIPp computes OPc).
pub(crate) fn subscribers(range: std::ops::Range<u32>, domain: &str) -> String {
    let mut s = String::from("imsi,k,op,amf,impus\n");
    for n in range {
        let i = imsi(n);
        s.push_str(&format!(
            "{i},{K_HEX},{OP_HEX},{AMF_HEX},sip:{i}@{domain}\n"
        ));
    }
    s
}

/// The call a SIPp UAC places: caller `[field0]` to callee `[field1]`, held 100 ms.
pub(crate) const UAC_SCENARIO: &str = r#"<?xml version="1.0" encoding="ISO-8859-1" ?>
<scenario name="ims-call-uac">
  <send retrans="500">
    <![CDATA[
      INVITE sip:[field1]@DOMAIN SIP/2.0
      Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch];rport
      Max-Forwards: 70
      From: <sip:[field0]@DOMAIN>;tag=[call_number]
      To: <sip:[field1]@DOMAIN>
      Call-ID: [call_id]
      CSeq: 1 INVITE
      Contact: <sip:[field0]@[local_ip]:[local_port]>
      P-Preferred-Identity: <sip:[field0]@DOMAIN>
      Content-Type: application/sdp
      Content-Length: [len]

      v=0
      o=- 1 1 IN IP4 [local_ip]
      s=-
      c=IN IP4 [local_ip]
      t=0 0
      m=audio [media_port] RTP/AVP 0
      a=rtpmap:0 PCMU/8000

    ]]>
  </send>
  <recv response="100" optional="true"/>
  <recv response="180" optional="true"/>
  <recv response="200" rrs="true"/>
  <send>
    <![CDATA[
      ACK [next_url] SIP/2.0
      Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch];rport
      [routes]
      Max-Forwards: 70
      From: <sip:[field0]@DOMAIN>;tag=[call_number]
      To: <sip:[field1]@DOMAIN>[peer_tag_param]
      Call-ID: [call_id]
      CSeq: 1 ACK
      Content-Length: 0

    ]]>
  </send>
  <!-- A short hold: the ACK (stateless through the proxies) and the BYE (a new transaction)
       take different paths, so a BYE sent at once can overtake the ACK at the callee. -->
  <pause milliseconds="100"/>
  <send retrans="500">
    <![CDATA[
      BYE [next_url] SIP/2.0
      Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch];rport
      [routes]
      Max-Forwards: 70
      From: <sip:[field0]@DOMAIN>;tag=[call_number]
      To: <sip:[field1]@DOMAIN>[peer_tag_param]
      Call-ID: [call_id]
      CSeq: 2 BYE
      Content-Length: 0

    ]]>
  </send>
  <recv response="200" crlf="true"/>
</scenario>
"#;

/// The callee side: 180, 200 with SDP, ACK, BYE, 200.
pub(crate) const UAS_SCENARIO: &str = r#"<?xml version="1.0" encoding="ISO-8859-1" ?>
<scenario name="ims-call-uas">
  <recv request="INVITE" crlf="true"/>
  <send>
    <![CDATA[
      SIP/2.0 180 Ringing
      [last_Via:]
      [last_From:]
      [last_To:];tag=[pid]uas[call_number]
      [last_Call-ID:]
      [last_CSeq:]
      [last_Record-Route:]
      Contact: <sip:[local_ip]:[local_port];transport=[transport]>
      Content-Length: 0

    ]]>
  </send>
  <send retrans="500">
    <![CDATA[
      SIP/2.0 200 OK
      [last_Via:]
      [last_From:]
      [last_To:];tag=[pid]uas[call_number]
      [last_Call-ID:]
      [last_CSeq:]
      [last_Record-Route:]
      Contact: <sip:[local_ip]:[local_port];transport=[transport]>
      Content-Type: application/sdp
      Content-Length: [len]

      v=0
      o=- 2 2 IN IP4 [local_ip]
      s=-
      c=IN IP4 [local_ip]
      t=0 0
      m=audio [media_port] RTP/AVP 0
      a=rtpmap:0 PCMU/8000

    ]]>
  </send>
  <recv request="ACK" crlf="true"/>
  <recv request="BYE"/>
  <send>
    <![CDATA[
      SIP/2.0 200 OK
      [last_Via:]
      [last_From:]
      [last_To:]
      [last_Call-ID:]
      [last_CSeq:]
      Content-Length: 0

    ]]>
  </send>
</scenario>
"#;

/// A directory with SIPp's scenario and injection files.
pub(crate) struct SippFiles {
    pub(crate) dir: PathBuf,
    domain: String,
}

impl SippFiles {
    pub(crate) fn new(dir: &Path, domain: &str) -> Self {
        let reg = aka_register_scenario(domain, &Default::default());
        for (name, xml) in [
            ("reg.xml", reg.as_str()),
            ("uac.xml", UAC_SCENARIO),
            ("uas.xml", UAS_SCENARIO),
        ] {
            std::fs::write(dir.join(name), xml.replace("DOMAIN", domain)).unwrap();
        }
        std::fs::write(dir.join("domain"), domain).unwrap();
        Self {
            dir: dir.to_owned(),
            domain: domain.to_owned(),
        }
    }

    /// The files already written in `dir`.
    pub(crate) fn reuse(dir: &Path) -> Self {
        let domain = std::fs::read_to_string(dir.join("domain")).unwrap_or_default();
        Self {
            dir: dir.to_owned(),
            domain,
        }
    }

    /// Writes `name`: one line per user, `IMSI;[authentication ...]`.
    pub(crate) fn users(&self, name: &str, users: &[u32]) {
        let mut csv = String::from("SEQUENTIAL\n");
        for &n in users {
            let i = imsi(n);
            csv.push_str(&format!(
                "{i};[authentication username={i}@{} aka_K={} aka_OP={} aka_AMF={}]\n",
                self.domain,
                escaped(K_HEX),
                escaped(OP_HEX),
                escaped(AMF_HEX)
            ));
        }
        std::fs::write(self.dir.join(name), csv).unwrap();
    }

    /// Writes `name`: caller;callee pairs.
    pub(crate) fn pairs(&self, name: &str, pairs: &[(u32, u32)]) {
        let mut csv = String::from("SEQUENTIAL\n");
        for &(a, b) in pairs {
            csv.push_str(&format!("{};{}\n", imsi(a), imsi(b)));
        }
        std::fs::write(self.dir.join(name), csv).unwrap();
    }

    fn command(
        &self,
        sipp: &Path,
        scenario: &str,
        ip: &str,
        port: u16,
        target: Option<&str>,
    ) -> Command {
        let mut c = Command::new(sipp);
        c.current_dir(&self.dir)
            .args(["-sf", scenario, "-t", "u1", "-i", ip])
            .args(["-p", &port.to_string(), "-mp", &(port + 2).to_string()])
            .args(["-buff_size", "8388608", "-nostdin"])
            .args(target)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        c
    }

    /// Registers every user of `users` (`-m` of them, `rate`/s) from `ip:port`; returns
    /// (successful, failed). SIPp 3.6.1 cuts RES at a 0x00 byte (peers.md): about 3 % fail.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn register(
        &self,
        sipp: &Path,
        users: &str,
        count: usize,
        rate: u32,
        ip: &str,
        port: u16,
        pcscf: &str,
    ) -> (usize, usize, Output) {
        let out = self
            .command(sipp, "reg.xml", ip, port, Some(pcscf))
            .args(["-inf", users, "-m", &count.to_string()])
            .args(["-r", &rate.to_string(), "-l", "200"])
            .args(["-timeout", "60s", "-timeout_error"])
            .output()
            .expect("sipp runs");
        let stdout = String::from_utf8_lossy(&out.stdout);
        (
            stat(&stdout, "Successful call"),
            stat(&stdout, "Failed call"),
            out,
        )
    }

    /// Starts a UAS answering `calls` calls on `ip:port`.
    pub(crate) fn uas(&self, sipp: &Path, calls: usize, ip: &str, port: u16) -> Child {
        self.command(sipp, "uas.xml", ip, port, None)
            .args(["-m", &calls.to_string(), "-timeout", "120s"])
            .spawn()
            .expect("sipp UAS starts")
    }

    /// Places `calls` calls from `ip:port` at `rate`/s (at most `limit` at once); returns
    /// SIPp's output.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn uac(
        &self,
        sipp: &Path,
        pairs: &str,
        calls: usize,
        rate: u32,
        limit: u32,
        ip: &str,
        port: u16,
        pcscf: &str,
    ) -> Output {
        self.command(sipp, "uac.xml", ip, port, Some(pcscf))
            .args(["-inf", pairs, "-m", &calls.to_string()])
            .args(["-r", &rate.to_string(), "-l", &limit.to_string()])
            // A call whose next message does not come within 5 s fails (no 32 s Timer B).
            .args(["-recv_timeout", "5000"])
            .args(["-timeout", "120s", "-timeout_error"])
            .output()
            .expect("sipp UAC runs")
    }
}
