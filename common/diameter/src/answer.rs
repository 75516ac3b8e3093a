//! From a received request to its answer when something is wrong: the one place where errors
//! become Result-Codes (RFC 6733 §7).
//!
//! A node handles every received request the same way:
//!
//! 1. [`receive_request`] decodes the frame and checks it against the dictionary: header bits
//!    (3008), supported application (3007) and command (3001), AVP flag bits (3009), unknown AVPs
//!    with the M bit (5001), AVP lengths (5014) and values (5004), message length (5015).
//! 2. The application decodes its typed command, which adds missing AVPs (5005), repeated AVPs
//!    (5009) and invalid values (5004).
//! 3. On any error, [`error_answer`] (or [`error_answer_for_frame`] when even decoding failed)
//!    builds the answer: same command, application and identifiers, Session-Id copied, E bit
//!    for 3xxx protocol errors, Result-Code, Error-Message and Failed-AVP.

use bytes::Bytes;
use imslab_types::{DiameterIdentity, Realm};

use crate::avp::{Avp, AvpData, Limits};
use crate::codes::{ApplicationId, CommandCode, ResultCode};
use crate::dict::{self, AvpType, FlagRule};
use crate::error::Error;
use crate::header::{CommandFlags, Header};
use crate::message::Message;

/// Who answers: the Origin-Host and Origin-Realm this node puts in what it sends.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Origin {
    /// Origin-Host.
    pub host: DiameterIdentity,
    /// Origin-Realm.
    pub realm: Realm,
}

/// Decodes a received request frame and validates it against the base and Cx dictionary.
pub fn receive_request(frame: Bytes, limits: &Limits) -> Result<Message, Error> {
    let msg = Message::decode_with(frame, limits)?;
    validate_request(&msg)?;
    Ok(msg)
}

/// Checks a decoded request against what this crate supports.
///
/// - Header: the E bit in a request is an invalid combination, and the P bit must match the
///   command's definition (clear for CER/DWR/DPR, set for Cx): 3008 (RFC 6733 §7.1.3). A set
///   reserved bit is 5013 (§7.1.5).
/// - Application 0 carries CER, DWR and DPR; application 16777216 carries Cx 300-305. Another
///   application is 3007, another command 3001.
/// - AVPs, nested ones included: an unknown AVP with the M bit is 5001 (§4.1); a known AVP whose
///   definition says "M must be set" arriving without it is 3009; a fixed-size type of the wrong
///   size or a malformed Address is 5014; text that is not UTF-8 is 5004. An M bit on an AVP whose
///   definition says "must not" is tolerated, because common peers set it on several 3GPP AVPs.
pub fn validate_request(msg: &Message) -> Result<(), Error> {
    let h = &msg.header;
    if !h.flags.request() {
        return Err(Error::InvalidHeaderBits {
            code: h.code,
            flags: h.flags.0,
            reason: "R bit clear: not a request",
        });
    }
    if h.flags.error() {
        return Err(Error::InvalidHeaderBits {
            code: h.code,
            flags: h.flags.0,
            reason: "E bit set in a request",
        });
    }
    if h.flags.0 & CommandFlags::RESERVED != 0 {
        return Err(Error::InvalidBitInHeader {
            code: h.code,
            flags: h.flags.0,
        });
    }
    let proxiable = match (h.application_id, h.code) {
        (
            ApplicationId::COMMON,
            CommandCode::CAPABILITIES_EXCHANGE
            | CommandCode::DEVICE_WATCHDOG
            | CommandCode::DISCONNECT_PEER,
        ) => false,
        (ApplicationId::CX, c) if (300..=305).contains(&c.0) => true,
        (app @ (ApplicationId::COMMON | ApplicationId::CX), code) => {
            return Err(Error::UnsupportedCommand { code, app });
        }
        (app, _) => return Err(Error::UnsupportedApplication(app)),
    };
    if h.flags.proxiable() != proxiable {
        return Err(Error::InvalidHeaderBits {
            code: h.code,
            flags: h.flags.0,
            reason: if proxiable {
                "P bit clear on a proxiable command"
            } else {
                "P bit set on a command that must not be proxied"
            },
        });
    }
    validate_avps(&msg.avps)
}

fn validate_avps(avps: &[Avp]) -> Result<(), Error> {
    for a in avps {
        let Some(def) = a.def() else {
            if a.is_mandatory() {
                return Err(Error::UnsupportedAvp {
                    failed: Box::new(a.clone()),
                });
            }
            continue;
        };
        if def.m == FlagRule::Must && !a.is_mandatory() {
            return Err(Error::InvalidAvpBits {
                failed: Box::new(a.clone()),
                reason: "M bit clear on an AVP that must have it",
            });
        }
        match a.data() {
            AvpData::Grouped(children) => validate_avps(children)?,
            AvpData::Octets(b) => {
                if let Some(n) = def.ty.fixed_len()
                    && b.len() != n
                {
                    return Err(Error::InvalidAvpLength {
                        failed: Box::new(a.clone()),
                        reason: "wrong size for a fixed-size type",
                    });
                }
                match def.ty {
                    AvpType::Address => {
                        a.as_address()?;
                    }
                    AvpType::Utf8String | AvpType::DiameterIdentity | AvpType::DiameterUri => {
                        a.as_utf8()?;
                    }
                    _ => {}
                }
            }
        }
    }
    Ok(())
}

/// Builds the answer to a request that failed with `err` (RFC 6733 §7.2, §7.5).
///
/// `request_avps` may be partial (see [`Message::decode_partial`]). The answer has the request's
/// command, application, P bit and identifiers; the E bit for 3xxx codes; Session-Id copied;
/// Origin-Host/Realm from `origin`; Result-Code; Error-Message (the error text, which names AVPs
/// but never carries their values); Failed-AVP when the error names one; Proxy-Info copied in
/// order (§6.2). Permanent failures (5xxx) follow the command's own answer format, so for Cx the
/// Vendor-Specific-Application-Id and Auth-Session-State of the request are copied too.
pub fn error_answer(
    request: &Header,
    request_avps: &[Avp],
    err: &Error,
    origin: &Origin,
) -> Message {
    result_answer(
        request,
        request_avps,
        err.result_code(),
        Some(&err.to_string()),
        err.failed_avp(),
        origin,
    )
}

/// Like [`error_answer`], from the raw frame of a request that could not be decoded. `None` when
/// the frame has no readable header or is not a request.
pub fn error_answer_for_frame(frame: &[u8], err: &Error, origin: &Origin) -> Option<Message> {
    let (header, avps) = Message::decode_partial(frame)?;
    header
        .is_request()
        .then(|| error_answer(&header, &avps, err, origin))
}

/// An answer carrying only a Result-Code (and optionally Error-Message and Failed-AVP), built as
/// [`error_answer`] describes. Used for protocol-level answers such as 3002 UNABLE_TO_DELIVER.
pub fn result_answer(
    request: &Header,
    request_avps: &[Avp],
    code: ResultCode,
    error_message: Option<&str>,
    failed_avp: Option<Avp>,
    origin: &Origin,
) -> Message {
    let mut header = request.answer();
    let protocol_error = code.is_protocol_error();
    header.flags = header.flags.with(CommandFlags::ERROR, protocol_error);
    let mut m = Message {
        header,
        avps: Vec::with_capacity(8),
    };
    let find = |def| request_avps.iter().find(|a| a.is(def));
    if let Some(sid) = find(&dict::SESSION_ID) {
        m.push(sid.clone());
    }
    if !protocol_error {
        for def in [
            &dict::VENDOR_SPECIFIC_APPLICATION_ID,
            &dict::AUTH_SESSION_STATE,
        ] {
            if let Some(a) = find(def) {
                m.push(a.clone());
            }
        }
    }
    m.push(Avp::utf8(&dict::ORIGIN_HOST, origin.host.as_str()));
    m.push(Avp::utf8(&dict::ORIGIN_REALM, origin.realm.as_str()));
    m.push(Avp::u32(&dict::RESULT_CODE, code.0));
    if let Some(text) = error_message {
        m.push(Avp::utf8(&dict::ERROR_MESSAGE, text));
    }
    if let Some(f) = failed_avp {
        m.push(Avp::grouped(&dict::FAILED_AVP, vec![f]));
    }
    for p in request_avps.iter().filter(|a| a.is(&dict::PROXY_INFO)) {
        m.push(p.clone());
    }
    m
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::avp::AvpFlags;
    use crate::codes::VendorId;
    use crate::dict::AvpCode;

    fn origin() -> Origin {
        Origin {
            host: DiameterIdentity::new("hss.ims.example").expect("valid"),
            realm: Realm::new("ims.example").expect("valid"),
        }
    }

    fn cx_request() -> Message {
        let mut m = Message::request(CommandCode::MULTIMEDIA_AUTH, ApplicationId::CX, true);
        m.header.hop_by_hop = 0xabcd;
        m.header.end_to_end = 0x1234;
        m.push(Avp::utf8(&dict::SESSION_ID, "scscf.ims.example;1;2"));
        m.push(Avp::grouped(
            &dict::VENDOR_SPECIFIC_APPLICATION_ID,
            vec![
                Avp::u32(&dict::VENDOR_ID, 10415),
                Avp::u32(&dict::AUTH_APPLICATION_ID, 16_777_216),
            ],
        ));
        m.push(Avp::i32(&dict::AUTH_SESSION_STATE, 1));
        m.push(Avp::utf8(&dict::ORIGIN_HOST, "scscf.ims.example"));
        m.push(Avp::utf8(&dict::ORIGIN_REALM, "ims.example"));
        m
    }

    fn result_of(m: &Message) -> Option<u32> {
        m.find(&dict::RESULT_CODE).and_then(|a| a.as_u32().ok())
    }

    fn failed_of(m: &Message) -> Option<&Avp> {
        m.find(&dict::FAILED_AVP)
            .and_then(|f| f.children().ok())
            .and_then(|c| c.first())
    }

    fn answer_for(req: &Message, err: &Error) -> Message {
        error_answer(&req.header, &req.avps, err, &origin())
    }

    #[test]
    fn valid_cx_request_passes_validation() {
        assert_eq!(validate_request(&cx_request()), Ok(()));
    }

    #[test]
    fn missing_avp_is_answered_5005_with_a_zero_filled_example() {
        let req = cx_request();
        let err = Error::MissingAvp {
            def: &dict::SIP_NUMBER_AUTH_ITEMS,
        };
        let ans = answer_for(&req, &err);
        assert_eq!(result_of(&ans), Some(5005));
        assert!(!ans.header.flags.error(), "5xxx has no E bit");
        let failed = failed_of(&ans).expect("Failed-AVP");
        assert!(failed.is(&dict::SIP_NUMBER_AUTH_ITEMS));
        assert_eq!(failed.as_u32(), Ok(0));
        assert_eq!(failed.vendor(), Some(VendorId::TGPP));
        assert!(ans.find(&dict::VENDOR_SPECIFIC_APPLICATION_ID).is_some());
        assert!(ans.find(&dict::AUTH_SESSION_STATE).is_some());
    }

    #[test]
    fn unknown_mandatory_avp_is_answered_5001_with_the_avp() {
        let mut req = cx_request();
        let odd = Avp::new(
            AvpCode(9999),
            Some(VendorId(4242)),
            AvpFlags::M,
            AvpData::Octets(b"x".into()),
        );
        req.push(odd.clone());
        let err = validate_request(&req).expect_err("M-bit unknown AVP");
        let ans = answer_for(&req, &err);
        assert_eq!(result_of(&ans), Some(5001));
        assert_eq!(failed_of(&ans), Some(&odd));
    }

    #[test]
    fn unknown_avp_without_m_bit_is_ignored() {
        let mut req = cx_request();
        req.push(Avp::new(
            AvpCode(9999),
            None,
            AvpFlags::NONE,
            AvpData::Octets(b"".into()),
        ));
        assert_eq!(validate_request(&req), Ok(()));
    }

    #[test]
    fn invalid_utf8_is_answered_5004() {
        let mut req = cx_request();
        req.push(Avp::octets(&dict::PUBLIC_IDENTITY, vec![0xff, 0xfe]));
        let err = validate_request(&req).expect_err("bad UTF-8");
        assert_eq!(
            answer_for(&req, &err)
                .find(&dict::RESULT_CODE)
                .and_then(|a| a.as_u32().ok()),
            Some(5004)
        );
    }

    #[test]
    fn e_bit_in_request_is_answered_3008_with_e_bit() {
        let mut req = cx_request();
        req.header.flags = req.header.flags.with(CommandFlags::ERROR, true);
        let err = validate_request(&req).expect_err("E bit");
        let ans = answer_for(&req, &err);
        assert_eq!(result_of(&ans), Some(3008));
        assert!(ans.header.flags.error());
        assert!(!ans.header.flags.request());
        assert_eq!(
            (ans.header.hop_by_hop, ans.header.end_to_end),
            (0xabcd, 0x1234)
        );
        assert_eq!(ans.session_id(), Some("scscf.ims.example;1;2"));
        assert_eq!(
            ans.find(&dict::ORIGIN_HOST).and_then(|a| a.as_utf8().ok()),
            Some("hss.ims.example")
        );
    }

    #[test]
    fn p_bit_mismatch_is_3008() {
        let mut req = cx_request();
        req.header.flags = req.header.flags.with(CommandFlags::PROXIABLE, false);
        assert_eq!(
            validate_request(&req).map_err(|e| e.result_code()),
            Err(ResultCode::DIAMETER_INVALID_HDR_BITS)
        );
    }

    #[test]
    fn reserved_header_bit_is_5013() {
        let mut req = cx_request();
        req.header.flags = CommandFlags(req.header.flags.0 | 0x01);
        assert_eq!(
            validate_request(&req).map_err(|e| e.result_code()),
            Err(ResultCode::DIAMETER_INVALID_BIT_IN_HEADER)
        );
    }

    #[test]
    fn missing_m_bit_on_a_must_avp_is_3009() {
        let mut req = cx_request();
        let mut a = Avp::utf8(&dict::PUBLIC_IDENTITY, "sip:alice@ims.example");
        a.set_mandatory(false);
        req.push(a.clone());
        let err = validate_request(&req).expect_err("M bit missing");
        let ans = answer_for(&req, &err);
        assert_eq!(result_of(&ans), Some(3009));
        assert!(ans.header.flags.error());
        assert_eq!(failed_of(&ans), Some(&a));
    }

    #[test]
    fn wrong_size_unsigned32_is_5014() {
        let mut req = cx_request();
        req.push(Avp::octets(&dict::SIP_NUMBER_AUTH_ITEMS, vec![0, 1]));
        let err = validate_request(&req).expect_err("bad length");
        assert_eq!(result_of(&answer_for(&req, &err)), Some(5014));
    }

    #[test]
    fn unknown_application_is_3007_and_unknown_command_is_3001() {
        let mut req = cx_request();
        req.header.application_id = ApplicationId(16_777_251);
        assert_eq!(
            validate_request(&req).map_err(|e| e.result_code()),
            Err(ResultCode::DIAMETER_APPLICATION_UNSUPPORTED)
        );
        let mut req = cx_request();
        req.header.code = CommandCode(306);
        let err = validate_request(&req).expect_err("unknown command");
        let ans = answer_for(&req, &err);
        assert_eq!(result_of(&ans), Some(3001));
        assert!(ans.header.flags.error());
    }

    #[test]
    fn bad_avp_length_in_a_frame_is_answered_5014_from_the_partial_decode() {
        let mut wire = cx_request().encode().expect("encodes").to_vec();
        wire.extend_from_slice(&[0, 0, 0, 1, 0x40, 0, 0, 200]);
        let n = wire.len() as u32;
        wire[1..4].copy_from_slice(&n.to_be_bytes()[1..]);
        let err =
            receive_request(Bytes::from(wire.clone()), &Limits::default()).expect_err("bad AVP");
        let ans = error_answer_for_frame(&wire, &err, &origin()).expect("answerable");
        assert_eq!(result_of(&ans), Some(5014));
        assert_eq!(ans.session_id(), Some("scscf.ims.example;1;2"));
        assert_eq!(failed_of(&ans).map(Avp::code), Some(AvpCode::USER_NAME));
    }

    #[test]
    fn bad_message_length_is_answered_5015() {
        let wire = cx_request().encode().expect("encodes");
        // A datagram-style frame whose length field disagrees with its size.
        let mut longer = wire.to_vec();
        longer.extend_from_slice(&[0, 0, 0, 0]);
        let err =
            receive_request(Bytes::from(longer.clone()), &Limits::default()).expect_err("length");
        let ans = error_answer_for_frame(&longer, &err, &origin()).expect("answerable");
        assert_eq!(result_of(&ans), Some(5015));
    }

    #[test]
    fn unsupported_version_is_answered_5011() {
        let mut wire = cx_request().encode().expect("encodes").to_vec();
        wire[0] = 2;
        let err =
            receive_request(Bytes::from(wire.clone()), &Limits::default()).expect_err("version");
        let ans = error_answer_for_frame(&wire, &err, &origin()).expect("answerable");
        assert_eq!(result_of(&ans), Some(5011));
        assert_eq!(
            ans.encode().map(|b| b[0]),
            Ok(1),
            "answers are always version 1"
        );
    }

    #[test]
    fn proxy_info_is_copied_in_order() {
        let mut req = cx_request();
        for host in ["p1.example", "p2.example"] {
            req.push(Avp::grouped(
                &dict::PROXY_INFO,
                vec![
                    Avp::utf8(&dict::PROXY_HOST, host),
                    Avp::octets(&dict::PROXY_STATE, Bytes::from_static(b"st")),
                ],
            ));
        }
        let ans = answer_for(
            &req,
            &Error::MissingAvp {
                def: &dict::USER_NAME,
            },
        );
        let hosts: Vec<_> = ans
            .find_all(&dict::PROXY_INFO)
            .filter_map(|p| p.child(&dict::PROXY_HOST).ok().flatten())
            .filter_map(|h| h.as_utf8().ok())
            .collect();
        assert_eq!(hosts, ["p1.example", "p2.example"]);
    }

    #[test]
    fn error_answers_are_not_built_for_answers() {
        let mut ans = cx_request();
        ans.header.flags = CommandFlags(CommandFlags::PROXIABLE);
        let wire = ans.encode().expect("encodes");
        assert_eq!(
            error_answer_for_frame(&wire, &Error::UnsupportedVersion(2), &origin()),
            None
        );
    }
}
