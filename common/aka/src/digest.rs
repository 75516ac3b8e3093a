//! HTTP digest for SIP: AKAv1-MD5 (RFC 3310), AKAv2-MD5 (RFC 4169) and MD5 (RFC 2617, RFC 7616
//! §3.4), with qop `auth` and `auth-int`, and the `integrity-protected` parameter (TS 24.229
//! §7.2A.2).
//!
//! Both sides use the same two steps: derive [`Ha1`] once per challenge (or load it from the
//! store for MD5), then compute or verify each request's response with [`response`] /
//! [`verify`]. The S-CSCF keeps the `Ha1` of the vector it sent; it never needs RES itself.

use std::fmt;
use std::str::FromStr;

use base64::Engine as _;
use hmac::{Hmac, KeyInit as _, Mac as _};
use imslab_types::{Ck, Ik};
use md5::{Digest as _, Md5};
use zeroize::{Zeroize, ZeroizeOnDrop};

use crate::values::{BASE64, Res};
use crate::vector::AuthVector;
use crate::{Error, ct_eq};

/// The `algorithm` directive values this crate computes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DigestAlgorithm {
    /// `MD5` (RFC 2617 §3.2.2.2): the password is the subscriber's, stored as HA1.
    Md5,
    /// `AKAv1-MD5` (RFC 3310 §3.1): the password is RES, as raw bytes.
    AkaV1Md5,
    /// `AKAv2-MD5` (RFC 4169 §3): the password is base64(HMAC-MD5(RES ‖ IK ‖ CK,
    /// "http-digest-akav2-password")).
    AkaV2Md5,
}

impl DigestAlgorithm {
    /// The token as sent on the wire.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Md5 => "MD5",
            Self::AkaV1Md5 => "AKAv1-MD5",
            Self::AkaV2Md5 => "AKAv2-MD5",
        }
    }

    /// Whether the password comes from AKA.
    pub fn is_aka(self) -> bool {
        !matches!(self, Self::Md5)
    }
}

impl FromStr for DigestAlgorithm {
    type Err = Error;

    /// Case-insensitive, as RFC 2617 compares tokens.
    fn from_str(s: &str) -> Result<Self, Error> {
        [Self::Md5, Self::AkaV1Md5, Self::AkaV2Md5]
            .into_iter()
            .find(|a| a.as_str().eq_ignore_ascii_case(s))
            .ok_or_else(|| Error::UnsupportedDigest {
                what: "algorithm",
                value: s.to_owned(),
            })
    }
}

impl fmt::Display for DigestAlgorithm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The quality of protection (RFC 2617 §3.2.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Qop {
    /// `auth`: HA2 = MD5(method ":" uri).
    Auth,
    /// `auth-int`: HA2 = MD5(method ":" uri ":" MD5(body)).
    AuthInt,
}

impl Qop {
    /// The token.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Auth => "auth",
            Self::AuthInt => "auth-int",
        }
    }
}

impl FromStr for Qop {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self, Error> {
        if s.eq_ignore_ascii_case("auth") {
            Ok(Self::Auth)
        } else if s.eq_ignore_ascii_case("auth-int") {
            Ok(Self::AuthInt)
        } else {
            Err(Error::UnsupportedDigest {
                what: "qop",
                value: s.to_owned(),
            })
        }
    }
}

/// The `nc` value: 8 hex digits (RFC 2617 §3.2.2). Keeps the digits exactly as received,
/// because the response hashes them verbatim.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct NonceCount {
    value: u32,
    text: [u8; 8],
}

impl NonceCount {
    /// A count, printed as 8 lowercase hex digits.
    pub fn new(value: u32) -> Self {
        let mut text = [0u8; 8];
        for (i, t) in text.iter_mut().enumerate() {
            *t = HEX[((value >> (28 - 4 * i)) & 0xf) as usize];
        }
        Self { value, text }
    }

    /// The numeric value (for the server's replay check: it must increase per nonce).
    pub fn value(self) -> u32 {
        self.value
    }

    /// The 8 digits as received or generated.
    pub fn as_str(&self) -> &str {
        std::str::from_utf8(&self.text).unwrap_or("")
    }
}

impl FromStr for NonceCount {
    type Err = Error;

    /// Exactly 8 hex digits, either case.
    fn from_str(s: &str) -> Result<Self, Error> {
        let text: [u8; 8] = s
            .as_bytes()
            .try_into()
            .map_err(|_| Error::UnsupportedDigest {
                what: "nc",
                value: s.to_owned(),
            })?;
        let value = u32::from_str_radix(s, 16)
            .ok()
            .filter(|_| text.iter().all(u8::is_ascii_hexdigit))
            .ok_or_else(|| Error::UnsupportedDigest {
                what: "nc",
                value: s.to_owned(),
            })?;
        Ok(Self { value, text })
    }
}

impl fmt::Debug for NonceCount {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "NonceCount({})", self.as_str())
    }
}

impl fmt::Display for NonceCount {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A digest password (for MD5 users, or the derived AKAv2 password). A secret.
#[derive(Clone, PartialEq, Eq, Zeroize, ZeroizeOnDrop)]
pub struct Password(Vec<u8>);

impl Password {
    /// Wraps bytes.
    pub fn new(b: impl Into<Vec<u8>>) -> Self {
        Self(b.into())
    }

    /// The bytes, for HA1 only.
    pub fn expose(&self) -> &[u8] {
        &self.0
    }
}

impl fmt::Debug for Password {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Password(..)")
    }
}

/// The AKAv2 password (RFC 4169 §3): base64(PRF(RES ‖ IK ‖ CK, "http-digest-akav2-password"))
/// with PRF = HMAC-MD5 keyed by RES ‖ IK ‖ CK. The base64 text itself is the password.
pub fn akav2_password(res: &Res, ik: &Ik, ck: &Ck) -> Password {
    // RES is at most 16 bytes, so the key (at most 48 bytes) is shorter than MD5's 64-byte
    // block; HMAC pads such keys with zeros (RFC 2104 §2), which is what this buffer holds.
    let mut key = [0u8; 64];
    let r = res.expose();
    key[..r.len()].copy_from_slice(r);
    key[r.len()..r.len() + 16].copy_from_slice(ik.expose());
    key[r.len() + 16..r.len() + 32].copy_from_slice(ck.expose());
    let mut mac = <Hmac<Md5>>::new(&key.into());
    key.zeroize();
    mac.update(b"http-digest-akav2-password");
    let mut tag: [u8; 16] = mac.finalize().into_bytes().into();
    let pw = Password::new(BASE64.encode(tag));
    tag.zeroize();
    pw
}

/// HA1 = MD5(username ":" realm ":" password) (RFC 2617 §3.2.2.2). Stored instead of MD5
/// passwords, and kept by the S-CSCF per AKA challenge. A secret.
#[derive(Clone, Zeroize, ZeroizeOnDrop)]
pub struct Ha1([u8; 16]);

impl Ha1 {
    /// From a plain password.
    pub fn new(username: &str, realm: &str, password: &[u8]) -> Self {
        let mut h = Md5::new();
        h.update(username.as_bytes());
        h.update(b":");
        h.update(realm.as_bytes());
        h.update(b":");
        h.update(password);
        Self(h.finalize().into())
    }

    /// For an AKA challenge: password RES (AKAv1) or the AKAv2 password. `res` is XRES on the
    /// network side. Errors for [`DigestAlgorithm::Md5`], which has no AKA password.
    pub fn aka(
        algorithm: DigestAlgorithm,
        username: &str,
        realm: &str,
        res: &Res,
        ik: &Ik,
        ck: &Ck,
    ) -> Result<Self, Error> {
        match algorithm {
            DigestAlgorithm::AkaV1Md5 => Ok(Self::new(username, realm, res.expose())),
            DigestAlgorithm::AkaV2Md5 => Ok(Self::new(
                username,
                realm,
                akav2_password(res, ik, ck).expose(),
            )),
            DigestAlgorithm::Md5 => Err(Error::UnsupportedDigest {
                what: "AKA algorithm",
                value: algorithm.as_str().to_owned(),
            }),
        }
    }

    /// The S-CSCF's HA1 for a vector it is about to send as a challenge.
    pub fn for_vector(
        algorithm: DigestAlgorithm,
        username: &str,
        realm: &str,
        v: &AuthVector,
    ) -> Result<Self, Error> {
        Self::aka(algorithm, username, realm, &v.xres, &v.ik, &v.ck)
    }

    /// HA1 with the empty password: the response a UE sends with `auts` after a
    /// synchronisation failure (RFC 3310 §3.4).
    pub fn empty_password(username: &str, realm: &str) -> Self {
        Self::new(username, realm, b"")
    }

    /// From 32 hex digits (the store's form).
    pub fn from_hex(s: &str) -> Result<Self, Error> {
        let mut b = [0u8; 16];
        hex::decode_to_slice(s.trim(), &mut b).map_err(|_| Error::InvalidHex {
            what: "HA1",
            expected: 32,
        })?;
        Ok(Self(b))
    }

    /// Lowercase hex, for the store only.
    pub fn expose_hex(&self) -> String {
        hex::encode(self.0)
    }
}

impl PartialEq for Ha1 {
    /// Constant time.
    fn eq(&self, other: &Self) -> bool {
        ct_eq(&self.0, &other.0)
    }
}
impl Eq for Ha1 {}

impl fmt::Debug for Ha1 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Ha1(..)")
    }
}

/// `qop`, `nc` and `cnonce`, which go together (RFC 2617 §3.2.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QopParams<'a> {
    /// The qop chosen by the client.
    pub qop: Qop,
    /// The nonce count.
    pub nc: NonceCount,
    /// The client nonce, unquoted.
    pub cnonce: &'a str,
}

/// The per-request inputs of a digest response, all unquoted parameter values.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DigestRequest<'a> {
    /// The `nonce` of the challenge.
    pub nonce: &'a str,
    /// The SIP method (`REGISTER`).
    pub method: &'a str,
    /// The `uri` parameter, exactly as the client sent it.
    pub uri: &'a str,
    /// `qop`/`nc`/`cnonce`; `None` for the RFC 2069 form.
    pub qop: Option<QopParams<'a>>,
    /// The message body, hashed for `auth-int` (empty when there is none).
    pub body: &'a [u8],
}

/// A digest response or rspauth value: 16 bytes, sent as 32 lowercase hex digits.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct DigestResponse(pub [u8; 16]);

impl DigestResponse {
    /// Lowercase hex.
    pub fn to_hex(self) -> String {
        hex::encode(self.0)
    }

    /// Parses 32 hex digits, either case.
    pub fn parse(s: &str) -> Result<Self, Error> {
        let mut b = [0u8; 16];
        if s.len() != 32 {
            return Err(Error::MalformedResponse { len: s.len() });
        }
        hex::decode_to_slice(s, &mut b).map_err(|_| Error::MalformedResponse { len: s.len() })?;
        Ok(Self(b))
    }
}

impl fmt::Debug for DigestResponse {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "DigestResponse({})", hex::encode(self.0))
    }
}

impl fmt::Display for DigestResponse {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&hex::encode(self.0))
    }
}

/// request-digest (RFC 2617 §3.2.2.1): with qop, MD5(HA1 ":" nonce ":" nc ":" cnonce ":" qop
/// ":" HA2); without, MD5(HA1 ":" nonce ":" HA2). HA2 per [`Qop`].
pub fn response(ha1: &Ha1, req: &DigestRequest<'_>) -> DigestResponse {
    compute(ha1, req, req.method)
}

/// Verifies a client's `response` in constant time (the S-CSCF's and registrar's check).
pub fn verify(ha1: &Ha1, req: &DigestRequest<'_>, response_hex: &str) -> Result<(), Error> {
    let got = DigestResponse::parse(response_hex)?;
    let want = compute(ha1, req, req.method);
    if ct_eq(&got.0, &want.0) {
        Ok(())
    } else {
        Err(Error::DigestMismatch)
    }
}

/// The `rspauth` of Authentication-Info (RFC 2617 §3.2.3): as the response, with an empty
/// method in HA2.
pub fn rspauth(ha1: &Ha1, req: &DigestRequest<'_>) -> DigestResponse {
    compute(ha1, req, "")
}

/// Verifies an `rspauth` received by the client, in constant time.
pub fn verify_rspauth(ha1: &Ha1, req: &DigestRequest<'_>, rspauth_hex: &str) -> Result<(), Error> {
    let got = DigestResponse::parse(rspauth_hex)?;
    let want = compute(ha1, req, "");
    if ct_eq(&got.0, &want.0) {
        Ok(())
    } else {
        Err(Error::DigestMismatch)
    }
}

const HEX: &[u8; 16] = b"0123456789abcdef";

fn hex32(b: &[u8; 16]) -> [u8; 32] {
    let mut out = [0u8; 32];
    for (i, x) in b.iter().enumerate() {
        out[2 * i] = HEX[usize::from(x >> 4)];
        out[2 * i + 1] = HEX[usize::from(x & 0xf)];
    }
    out
}

fn compute(ha1: &Ha1, req: &DigestRequest<'_>, method: &str) -> DigestResponse {
    let mut h2 = Md5::new();
    h2.update(method.as_bytes());
    h2.update(b":");
    h2.update(req.uri.as_bytes());
    if let Some(QopParams {
        qop: Qop::AuthInt, ..
    }) = req.qop
    {
        let body: [u8; 16] = Md5::digest(req.body).into();
        h2.update(b":");
        h2.update(hex32(&body));
    }
    let ha2 = hex32(&h2.finalize().into());

    let mut ha1_hex = hex32(&ha1.0);
    let mut h = Md5::new();
    h.update(ha1_hex);
    ha1_hex.zeroize();
    h.update(b":");
    h.update(req.nonce.as_bytes());
    h.update(b":");
    if let Some(q) = &req.qop {
        h.update(q.nc.as_str().as_bytes());
        h.update(b":");
        h.update(q.cnonce.as_bytes());
        h.update(b":");
        h.update(q.qop.as_str().as_bytes());
        h.update(b":");
    }
    h.update(ha2);
    DigestResponse(h.finalize().into())
}

/// The `integrity-protected` Authorization parameter the P-CSCF adds (TS 24.229 §7.2A.2).
/// Unknown values are kept verbatim.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum IntegrityProtected {
    /// `yes`: IMS AKA, request received over the IPsec SA.
    Yes,
    /// `no`: IMS AKA, request not protected (the initial REGISTER).
    No,
    /// `tls-pending`: SIP digest over TLS, session not yet bound to the identity.
    TlsPending,
    /// `tls-yes`: SIP digest over TLS, session bound to the identity.
    TlsYes,
    /// `ip-assoc-pending`: SIP digest without TLS, no IP association yet.
    IpAssocPending,
    /// `ip-assoc-yes`: SIP digest without TLS, request maps to an IP association.
    IpAssocYes,
    /// `auth-done`: a trusted entity already authenticated the identity.
    AuthDone,
    /// Any other value, verbatim.
    Other(String),
}

impl IntegrityProtected {
    /// Parses the unquoted value; exact, case-sensitive tokens, anything else is `Other`.
    pub fn parse(s: &str) -> Self {
        match s {
            "yes" => Self::Yes,
            "no" => Self::No,
            "tls-pending" => Self::TlsPending,
            "tls-yes" => Self::TlsYes,
            "ip-assoc-pending" => Self::IpAssocPending,
            "ip-assoc-yes" => Self::IpAssocYes,
            "auth-done" => Self::AuthDone,
            other => Self::Other(other.to_owned()),
        }
    }

    /// The value as sent.
    pub fn as_str(&self) -> &str {
        match self {
            Self::Yes => "yes",
            Self::No => "no",
            Self::TlsPending => "tls-pending",
            Self::TlsYes => "tls-yes",
            Self::IpAssocPending => "ip-assoc-pending",
            Self::IpAssocYes => "ip-assoc-yes",
            Self::AuthDone => "auth-done",
            Self::Other(s) => s,
        }
    }

    /// Whether the request arrived protected, so the S-CSCF may skip a new challenge
    /// (TS 24.229 §5.4.1.2.1: `yes`, `tls-yes`, `ip-assoc-yes`, `auth-done`).
    pub fn is_protected(&self) -> bool {
        matches!(
            self,
            Self::Yes | Self::TlsYes | Self::IpAssocYes | Self::AuthDone
        )
    }
}

impl fmt::Display for IntegrityProtected {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}
