//! The SDP a VoLTE phone offers and answers (GSMA IR.92 §3.2: AMR-WB, AMR, telephone-event),
//! with the QoS precondition lines of RFC 3312 / TS 24.229 §6.1.2 when preconditions are used.

use std::fmt::Write as _;
use std::net::IpAddr;

/// The state of the QoS precondition (RFC 3312 §5): which directions have resources.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum QosState {
    /// `none`: nothing reserved yet.
    None,
    /// `sendrecv`: reserved both ways.
    SendRecv,
}

impl QosState {
    fn as_str(self) -> &'static str {
        match self {
            Self::None => "none",
            Self::SendRecv => "sendrecv",
        }
    }
}

/// Inputs of one SDP body.
#[derive(Debug, Clone, Copy)]
pub struct SdpParams {
    /// Media address.
    pub ip: IpAddr,
    /// RTP port.
    pub port: u16,
    /// `o=` session id.
    pub session_id: u64,
    /// `o=` version, incremented on every new offer or answer.
    pub version: u32,
    /// Precondition state (local, remote), or `None` without preconditions.
    pub qos: Option<(QosState, QosState)>,
}

/// The SDP body.
pub fn body(p: &SdpParams) -> String {
    let family = if p.ip.is_ipv4() { "IP4" } else { "IP6" };
    let mut s = String::with_capacity(512);
    let _ = write!(
        s,
        "v=0\r\no=- {sid} {ver} IN {family} {ip}\r\ns=-\r\nc=IN {family} {ip}\r\nb=AS:41\r\n\
         t=0 0\r\nm=audio {port} RTP/AVP 116 118 0 101\r\nb=AS:41\r\n\
         a=rtpmap:116 AMR-WB/16000/1\r\na=fmtp:116 mode-change-capability=2;max-red=0\r\n\
         a=rtpmap:118 AMR/8000/1\r\na=fmtp:118 mode-change-capability=2;max-red=0\r\n\
         a=rtpmap:0 PCMU/8000\r\na=rtpmap:101 telephone-event/16000\r\na=fmtp:101 0-15\r\n\
         a=ptime:20\r\na=maxptime:240\r\n",
        sid = p.session_id,
        ver = p.version,
        ip = p.ip,
        port = p.port,
    );
    if let Some((local, remote)) = p.qos {
        let _ = write!(
            s,
            "a=curr:qos local {}\r\na=curr:qos remote {}\r\n\
             a=des:qos mandatory local sendrecv\r\na=des:qos mandatory remote sendrecv\r\n",
            local.as_str(),
            remote.as_str()
        );
    }
    s.push_str("a=sendrecv\r\n");
    s
}

/// True when an SDP body carries precondition lines.
pub fn has_preconditions(sdp: &[u8]) -> bool {
    String::from_utf8_lossy(sdp).contains("a=des:qos")
}

/// The media address and port of the first audio stream, if any.
pub fn audio_endpoint(sdp: &[u8]) -> Option<(String, u16)> {
    let text = String::from_utf8_lossy(sdp);
    let mut addr = None;
    let mut port = None;
    for line in text.lines() {
        if let Some(c) = line.strip_prefix("c=IN ") {
            addr = c.split_whitespace().nth(1).map(str::to_owned);
        }
        if let Some(m) = line.strip_prefix("m=audio ") {
            port = m.split_whitespace().next().and_then(|p| p.parse().ok());
        }
    }
    Some((addr?, port?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn offer_with_preconditions_has_curr_and_des_lines_and_parses_back() {
        let b = body(&SdpParams {
            ip: "127.0.0.2".parse().unwrap(),
            port: 40000,
            session_id: 7,
            version: 1,
            qos: Some((QosState::None, QosState::None)),
        });
        assert!(b.contains("a=curr:qos local none\r\n"));
        assert!(b.contains("a=des:qos mandatory local sendrecv\r\n"));
        assert!(has_preconditions(b.as_bytes()));
        assert_eq!(
            audio_endpoint(b.as_bytes()),
            Some(("127.0.0.2".to_owned(), 40000))
        );
    }

    #[test]
    fn plain_offer_has_no_precondition_lines() {
        let b = body(&SdpParams {
            ip: "::1".parse().unwrap(),
            port: 5004,
            session_id: 1,
            version: 2,
            qos: None,
        });
        assert!(!has_preconditions(b.as_bytes()));
        assert!(b.contains("c=IN IP6 ::1"));
    }
}
