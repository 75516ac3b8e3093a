//! SMS over IP (TS 24.341): the RP layer (TS 24.011 §7.3) carrying TP-SUBMIT and TP-DELIVER
//! (TS 23.040 §9.2.2) in `application/vnd.3gpp.sms` MESSAGE bodies.
//!
//! Only what a phone needs to send a text and to read one: GSM 7-bit default alphabet for
//! plain ASCII text, UCS-2 for anything else; no concatenation, no status reports.

/// The content type of SMS over IP bodies.
pub const CONTENT_TYPE: &str = "application/vnd.3gpp.sms";

/// RP message types (TS 24.011 §8.2.2), as the MTI of the first octet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RpType {
    /// RP-DATA from the phone (0).
    DataMsToNetwork,
    /// RP-DATA to the phone (1).
    DataNetworkToMs,
    /// RP-ACK from the phone (2).
    AckMsToNetwork,
    /// RP-ACK to the phone (3).
    AckNetworkToMs,
    /// RP-ERROR from the phone (4).
    ErrorMsToNetwork,
    /// RP-ERROR to the phone (5).
    ErrorNetworkToMs,
    /// RP-SMMA (6).
    Smma,
    /// Anything else.
    Other(u8),
}

impl RpType {
    fn from_mti(b: u8) -> Self {
        match b & 0x07 {
            0 => Self::DataMsToNetwork,
            1 => Self::DataNetworkToMs,
            2 => Self::AckMsToNetwork,
            3 => Self::AckNetworkToMs,
            4 => Self::ErrorMsToNetwork,
            5 => Self::ErrorNetworkToMs,
            6 => Self::Smma,
            o => Self::Other(o),
        }
    }
}

/// A decoded RP message: type, reference and (for RP-DATA) the text of its TPDU.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RpMessage {
    /// The RP message type.
    pub kind: RpType,
    /// RP-Message Reference.
    pub reference: u8,
    /// The originator address digits (TP-OA of a TP-DELIVER), if any.
    pub originator: Option<String>,
    /// The text of a TP-DELIVER or TP-SUBMIT, if decodable.
    pub text: Option<String>,
}

fn is_gsm7_plain(c: char) -> bool {
    // Characters whose GSM 7-bit default-alphabet code equals their ASCII code.
    c.is_ascii_alphanumeric() || " !\"#%&'()*+,-./:;<=>?".contains(c) || c == '\n' || c == '\r'
}

fn bcd_address(digits: &str) -> Vec<u8> {
    let d: Vec<u8> = digits
        .bytes()
        .filter(u8::is_ascii_digit)
        .map(|b| b - b'0')
        .collect();
    let mut out = Vec::with_capacity(d.len() / 2 + 1);
    for pair in d.chunks(2) {
        let lo = pair.first().copied().unwrap_or(0xf);
        let hi = pair.get(1).copied().unwrap_or(0xf);
        out.push(lo | (hi << 4));
    }
    out
}

fn digits_of(bcd: &[u8], count: usize) -> String {
    let mut s = String::with_capacity(count);
    for b in bcd {
        for n in [b & 0xf, b >> 4] {
            if s.len() < count && n < 10 {
                s.push(char::from(b'0' + n));
            }
        }
    }
    s
}

fn pack7(text: &str) -> (u8, Vec<u8>) {
    let septets: Vec<u8> = text.bytes().map(|b| b & 0x7f).collect();
    let mut out = Vec::with_capacity(septets.len() * 7 / 8 + 1);
    let mut acc: u32 = 0;
    let mut bits = 0;
    for s in &septets {
        acc |= u32::from(*s) << bits;
        bits += 7;
        while bits >= 8 {
            out.push((acc & 0xff) as u8);
            acc >>= 8;
            bits -= 8;
        }
    }
    if bits > 0 {
        out.push((acc & 0xff) as u8);
    }
    (septets.len().min(255) as u8, out)
}

fn unpack7(data: &[u8], septets: usize) -> String {
    let mut s = String::with_capacity(septets);
    let mut acc: u32 = 0;
    let mut bits = 0;
    let mut it = data.iter();
    while s.len() < septets {
        if bits < 7 {
            match it.next() {
                Some(b) => {
                    acc |= u32::from(*b) << bits;
                    bits += 8;
                }
                None => break,
            }
        }
        s.push(char::from((acc & 0x7f) as u8));
        acc >>= 7;
        bits -= 7;
    }
    s
}

/// TP user data: (DCS, UDL, UD).
fn user_data(text: &str) -> (u8, u8, Vec<u8>) {
    if text.chars().all(is_gsm7_plain) && text.len() <= 160 {
        let (udl, ud) = pack7(text);
        (0x00, udl, ud)
    } else {
        let ud: Vec<u8> = text
            .encode_utf16()
            .take(70)
            .flat_map(u16::to_be_bytes)
            .collect();
        (0x08, ud.len() as u8, ud)
    }
}

/// An RP-DATA (MS → network) with a TP-SUBMIT of `text` to `destination` (digits), through the
/// service centre `smsc` (digits).
pub fn submit(reference: u8, smsc: &str, destination: &str, text: &str) -> Vec<u8> {
    let (dcs, udl, ud) = user_data(text);
    let mut tpdu = vec![0x01, reference];
    let da = bcd_address(destination);
    tpdu.push(destination.bytes().filter(u8::is_ascii_digit).count() as u8);
    tpdu.push(0x91);
    tpdu.extend_from_slice(&da);
    tpdu.extend_from_slice(&[0x00, dcs, udl]);
    tpdu.extend_from_slice(&ud);
    let sc = bcd_address(smsc);
    let mut rp = vec![0x00, reference, 0x00, (sc.len() + 1) as u8, 0x91];
    rp.extend_from_slice(&sc);
    rp.push(tpdu.len() as u8);
    rp.extend_from_slice(&tpdu);
    rp
}

/// An RP-DATA (network → MS) with a TP-DELIVER of `text` from `originator` (digits): what a
/// test network sends to a phone.
pub fn deliver(reference: u8, smsc: &str, originator: &str, text: &str) -> Vec<u8> {
    let (dcs, udl, ud) = user_data(text);
    let mut tpdu = vec![0x04];
    tpdu.push(originator.bytes().filter(u8::is_ascii_digit).count() as u8);
    tpdu.push(0x91);
    tpdu.extend_from_slice(&bcd_address(originator));
    tpdu.extend_from_slice(&[0x00, dcs]);
    tpdu.extend_from_slice(&[0x52, 0x10, 0x10, 0x21, 0x43, 0x65, 0x00]);
    tpdu.push(udl);
    tpdu.extend_from_slice(&ud);
    let sc = bcd_address(smsc);
    let mut rp = vec![0x01, reference, (sc.len() + 1) as u8, 0x91];
    rp.extend_from_slice(&sc);
    rp.push(0x00);
    rp.push(tpdu.len() as u8);
    rp.extend_from_slice(&tpdu);
    rp
}

/// An RP-ACK (MS → network) for `reference` (TS 24.011 §7.3.3), without user data.
pub fn ack(reference: u8) -> Vec<u8> {
    vec![0x02, reference]
}

struct Cursor<'a> {
    b: &'a [u8],
}

impl<'a> Cursor<'a> {
    fn u8(&mut self) -> Option<u8> {
        let (&f, rest) = self.b.split_first()?;
        self.b = rest;
        Some(f)
    }
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        if n > self.b.len() {
            return None;
        }
        let (h, t) = self.b.split_at(n);
        self.b = t;
        Some(h)
    }
}

fn decode_ud(dcs: u8, udl: u8, ud: &[u8]) -> Option<String> {
    match dcs & 0x0c {
        0x00 => Some(unpack7(ud, usize::from(udl))),
        0x08 => {
            let units: Vec<u16> = ud
                .chunks_exact(2)
                .map(|c| u16::from_be_bytes([c[0], c[1]]))
                .collect();
            String::from_utf16(&units).ok()
        }
        _ => None,
    }
}

/// Decodes an RP message; `None` when it is too short or malformed. Never panics.
pub fn decode(body: &[u8]) -> Option<RpMessage> {
    let mut c = Cursor { b: body };
    let kind = RpType::from_mti(c.u8()?);
    let reference = c.u8()?;
    let mut msg = RpMessage {
        kind,
        reference,
        originator: None,
        text: None,
    };
    if !matches!(kind, RpType::DataMsToNetwork | RpType::DataNetworkToMs) {
        return Some(msg);
    }
    let oa = usize::from(c.u8()?);
    c.take(oa)?;
    let da = usize::from(c.u8()?);
    c.take(da)?;
    let len = usize::from(c.u8()?);
    let tpdu = c.take(len)?;
    let mut t = Cursor { b: tpdu };
    let first = t.u8()?;
    match first & 0x03 {
        0x00 => {
            // TP-DELIVER
            let digits = usize::from(t.u8()?);
            let _ton = t.u8()?;
            let addr = t.take(digits.div_ceil(2))?;
            msg.originator = Some(digits_of(addr, digits));
            let _pid = t.u8()?;
            let dcs = t.u8()?;
            t.take(7)?;
            let udl = t.u8()?;
            msg.text = decode_ud(dcs, udl, t.b);
        }
        0x01 => {
            // TP-SUBMIT
            let _mr = t.u8()?;
            let digits = usize::from(t.u8()?);
            let _ton = t.u8()?;
            t.take(digits.div_ceil(2))?;
            let _pid = t.u8()?;
            let dcs = t.u8()?;
            let vp = match (first >> 3) & 0x03 {
                0 => 0,
                2 => 1,
                _ => 7,
            };
            t.take(vp)?;
            let udl = t.u8()?;
            msg.text = decode_ud(dcs, udl, t.b);
        }
        _ => {}
    }
    Some(msg)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn submit_of_ascii_text_decodes_back_as_gsm7() {
        let rp = submit(5, "491710000000", "4917612345678", "hello imslab");
        let m = decode(&rp).unwrap();
        assert_eq!(m.kind, RpType::DataMsToNetwork);
        assert_eq!(m.reference, 5);
        assert_eq!(m.text.as_deref(), Some("hello imslab"));
        // TP-DCS is the GSM default alphabet.
        assert!(rp.contains(&0x00));
    }

    #[test]
    fn deliver_with_non_ascii_text_uses_ucs2_and_names_the_originator() {
        let rp = deliver(9, "491710000000", "4917612345678", "grüße");
        let m = decode(&rp).unwrap();
        assert_eq!(m.kind, RpType::DataNetworkToMs);
        assert_eq!(m.originator.as_deref(), Some("4917612345678"));
        assert_eq!(m.text.as_deref(), Some("grüße"));
    }

    #[test]
    fn seven_bit_packing_matches_the_23_038_example() {
        // "hellohello" packs to e8329bfd4697d9ec37 (TS 23.038 §6.1.2.1.1 style example).
        let (n, b) = pack7("hellohello");
        assert_eq!(n, 10);
        assert_eq!(hex::encode(b), "e8329bfd4697d9ec37");
    }

    #[test]
    fn truncated_bodies_decode_to_none_without_panicking() {
        let rp = submit(1, "1234", "5678", "abc");
        for n in 0..rp.len() {
            let _ = decode(&rp[..n]);
        }
        assert!(decode(&[]).is_none());
        assert_eq!(decode(&ack(3)).unwrap().kind, RpType::AckMsToNetwork);
    }
}
