//! Fuzz entry points (see `fuzz/fuzz_targets/aka_nonce.rs`). Each takes arbitrary bytes, never
//! panics on them, and asserts that what decodes re-encodes to something that decodes equal.

use crate::digest::IntegrityProtected;
use crate::values::Auts;
use crate::vector::Nonce;

/// The AKA `nonce`, `auts` and `integrity-protected` decoders: decode → encode → decode.
pub fn nonce_round_trip(data: &[u8]) {
    let Ok(s) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(n) = Nonce::parse(s) {
        let again = Nonce::parse(&n.encode());
        assert_eq!(again.as_ref(), Ok(&n), "nonce did not survive a round trip");
    }
    if let Ok(a) = Auts::from_base64(s) {
        assert_eq!(
            Auts::from_base64(&a.to_base64()),
            Ok(a),
            "auts did not survive a round trip"
        );
    }
    let ip = IntegrityProtected::parse(s);
    assert_eq!(
        ip.as_str(),
        s,
        "integrity-protected must re-encode byte-exact"
    );
    assert_eq!(IntegrityProtected::parse(ip.as_str()), ip);
}
