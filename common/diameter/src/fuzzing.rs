//! Entry points for the cargo-fuzz targets `diameter_message` and `diameter_stream`
//! (`fuzz/fuzz_targets/`). The unit tests replay the committed corpora
//! (`fuzz/corpus/diameter_*`) and random inputs through the same functions, so CI exercises them
//! without a nightly toolchain.
//!
//! Both functions panic only when an invariant breaks, which is what the fuzzer looks for.

use bytes::{Bytes, BytesMut};

use crate::answer::{Origin, error_answer, error_answer_for_frame, validate_request};
use crate::base::{Cea, Cer, Dpa, Dpr, Dwa, Dwr};
use crate::cx::{CxAnswer, CxRequest};
use crate::framer::Framer;
use crate::message::Message;

fn origin() -> Origin {
    Origin {
        host: imslab_types::DiameterIdentity::new("fuzz.example")
            .unwrap_or_else(|_| unreachable!()),
        realm: imslab_types::Realm::new("example").unwrap_or_else(|_| unreachable!()),
    }
}

/// One message: decode; when it decodes, re-encode, decode again and require the same message
/// and the same bytes; run validation, the typed decoders and the error-answer builder, and
/// require typed commands to survive their own round trip.
pub fn message(data: &[u8]) {
    let o = origin();
    let m = match Message::decode(Bytes::copy_from_slice(data)) {
        Ok(m) => m,
        Err(e) => {
            if let Some(ans) = error_answer_for_frame(data, &e, &o) {
                assert!(ans.encode().is_ok(), "error answers always encode");
            }
            return;
        }
    };
    let wire = m.encode().expect("a decoded message re-encodes");
    let again = Message::decode(wire.clone()).expect("a re-encoded message decodes");
    assert_eq!(again, m, "decode(encode(m)) == m");
    assert_eq!(again.encode().expect("encodes"), wire, "encoding is stable");
    assert_eq!(wire.len(), m.encoded_len());

    if let Err(e) = validate_request(&m) {
        let ans = error_answer(&m.header, &m.avps, &e, &o);
        assert!(ans.encode().is_ok(), "error answers always encode");
    }
    if let Ok(r) = CxRequest::decode(&m) {
        let msg = match &r {
            CxRequest::Uar(x) => x.to_message(),
            CxRequest::Sar(x) => x.to_message(),
            CxRequest::Lir(x) => x.to_message(),
            CxRequest::Mar(x) => x.to_message(),
            CxRequest::Rtr(x) => x.to_message(),
            CxRequest::Ppr(x) => x.to_message(),
        };
        assert_eq!(
            CxRequest::decode(&msg).as_ref(),
            Ok(&r),
            "typed request round trip"
        );
    }
    if let Ok(a) = CxAnswer::decode(&m) {
        let msg = match &a {
            CxAnswer::Uaa(x) => x.to_message(),
            CxAnswer::Saa(x) => x.to_message(),
            CxAnswer::Lia(x) => x.to_message(),
            CxAnswer::Maa(x) => x.to_message(),
            CxAnswer::Rta(x) => x.to_message(),
            CxAnswer::Ppa(x) => x.to_message(),
        };
        assert_eq!(
            CxAnswer::decode(&msg).as_ref(),
            Ok(&a),
            "typed answer round trip"
        );
    }
    if let Ok(x) = Cer::decode(&m) {
        assert_eq!(Cer::decode(&x.to_message()), Ok(x));
    }
    if let Ok(x) = Cea::decode(&m) {
        assert_eq!(Cea::decode(&x.to_message()), Ok(x));
    }
    let _ = (
        Dwr::decode(&m),
        Dwa::decode(&m),
        Dpr::decode(&m),
        Dpa::decode(&m),
    );
}

/// A byte stream: the first byte picks a chunk size (1..=256), the rest is fed to a [`Framer`]
/// (64 KiB limit) in chunks, as reads from a socket would deliver it. Every frame goes through
/// [`message`]; a framing error must be one that closes the connection and ends the stream;
/// the buffer never holds more than one maximal message plus one chunk.
pub fn stream(data: &[u8]) {
    let Some((&first, rest)) = data.split_first() else {
        return;
    };
    let chunk = usize::from(first) + 1;
    let framer = Framer::new(64 * 1024);
    let mut buf = BytesMut::new();
    for piece in rest.chunks(chunk) {
        buf.extend_from_slice(piece);
        loop {
            match framer.next_frame(&mut buf) {
                Ok(Some(frame)) => {
                    assert!(frame.len() >= 20 && frame.len() % 4 == 0 && frame.len() <= 64 * 1024);
                    message(&frame);
                }
                Ok(None) => break,
                Err(e) => {
                    assert!(
                        e.closes_connection(),
                        "framer errors close the connection: {e}"
                    );
                    return;
                }
            }
        }
        assert!(
            buf.len() <= 64 * 1024 + chunk,
            "buffered more than one message"
        );
    }
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use proptest::collection::vec;
    use proptest::prelude::*;

    use super::*;
    use crate::avp::{Avp, AvpData, AvpFlags};
    use crate::codes::{ApplicationId, CommandCode, VendorId};
    use crate::dict::{self, AvpCode, AvpType};
    use crate::header::{CommandFlags, Header};

    fn corpus(name: &str) -> Vec<(String, Vec<u8>)> {
        let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("../../fuzz/corpus")
            .join(name);
        let mut files: Vec<_> = std::fs::read_dir(&dir)
            .unwrap_or_else(|e| panic!("seed corpus {} is missing: {e}", dir.display()))
            .map(|e| e.expect("dir entry").path())
            .collect();
        files.sort();
        let out: Vec<_> = files
            .into_iter()
            .map(|p| {
                (
                    p.file_name()
                        .map(|n| n.to_string_lossy().into_owned())
                        .unwrap_or_default(),
                    std::fs::read(&p).expect("read seed"),
                )
            })
            .collect();
        assert!(!out.is_empty(), "empty corpus {name}");
        out
    }

    #[test]
    fn message_corpus_replays_through_the_fuzz_entry_point() {
        for (name, data) in corpus("diameter_message") {
            let decoded = Message::decode(Bytes::from(data.clone()));
            let broken = [
                "truncated",
                "uar_bad_length",
                "uar_bad_avp_length",
                "version_2",
            ]
            .contains(&name.as_str());
            assert_eq!(decoded.is_err(), broken, "seed {name}: {decoded:?}");
            message(&data);
        }
    }

    #[test]
    fn well_formed_seeds_are_byte_exact_after_a_round_trip() {
        for (name, data) in corpus("diameter_message") {
            if let Ok(m) = Message::decode(Bytes::from(data.clone())) {
                assert_eq!(m.encode().map(|b| b.to_vec()), Ok(data), "seed {name}");
            }
        }
    }

    #[test]
    fn stream_corpus_replays_through_the_fuzz_entry_point() {
        for (_, data) in corpus("diameter_stream") {
            stream(&data);
        }
    }

    fn leaf_defs() -> Vec<&'static dict::AvpDef> {
        dict::ALL
            .iter()
            .filter(|d| d.ty != AvpType::Grouped)
            .collect()
    }

    fn grouped_defs() -> Vec<&'static dict::AvpDef> {
        dict::ALL
            .iter()
            .filter(|d| d.ty == AvpType::Grouped)
            .collect()
    }

    /// Any flags except V (which follows the vendor id).
    fn arb_flags() -> impl Strategy<Value = AvpFlags> {
        any::<u8>().prop_map(|f| AvpFlags(f & !AvpFlags::VENDOR))
    }

    fn arb_leaf() -> impl Strategy<Value = Avp> {
        let known =
            (0..leaf_defs().len(), arb_flags(), vec(any::<u8>(), 0..24)).prop_map(|(i, f, d)| {
                let def = leaf_defs()[i];
                Avp::new(def.code, def.vendor_id(), f, AvpData::Octets(d.into()))
            });
        // Codes 5000..6000 are not in the dictionary, with or without a vendor.
        let unknown = (
            5000u32..6000,
            proptest::option::of(1u32..100_000),
            arb_flags(),
            vec(any::<u8>(), 0..24),
        )
            .prop_map(|(c, v, f, d)| {
                Avp::new(AvpCode(c), v.map(VendorId), f, AvpData::Octets(d.into()))
            });
        prop_oneof![known, unknown]
    }

    fn arb_avp() -> impl Strategy<Value = Avp> {
        arb_leaf().prop_recursive(3, 24, 4, |inner| {
            (0..grouped_defs().len(), arb_flags(), vec(inner, 0..4)).prop_map(|(i, f, children)| {
                let def = grouped_defs()[i];
                Avp::new(def.code, def.vendor_id(), f, AvpData::Grouped(children))
            })
        })
    }

    fn arb_message() -> impl Strategy<Value = Message> {
        (
            any::<u8>(),
            0u32..0x0100_0000,
            any::<u32>(),
            any::<u32>(),
            any::<u32>(),
            vec(arb_avp(), 0..12),
        )
            .prop_map(|(flags, code, app, hbh, e2e, avps)| Message {
                header: Header {
                    flags: CommandFlags(flags),
                    code: CommandCode(code),
                    application_id: ApplicationId(app),
                    hop_by_hop: hbh,
                    end_to_end: e2e,
                },
                avps,
            })
    }

    fn seeds() -> Vec<Vec<u8>> {
        corpus("diameter_message")
            .into_iter()
            .map(|(_, d)| d)
            .collect()
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

        #[test]
        fn decode_of_encode_is_the_same_message(m in arb_message()) {
            let wire = m.encode().expect("encodes");
            prop_assert_eq!(wire.len(), m.encoded_len());
            let back = Message::decode(wire.clone()).expect("decodes");
            prop_assert_eq!(&back, &m);
            prop_assert_eq!(back.encode().expect("encodes"), wire);
        }

        #[test]
        fn random_bytes_never_panic_the_message_entry(data in vec(any::<u8>(), 0..512)) {
            message(&data);
        }

        #[test]
        fn random_bytes_never_panic_the_stream_entry(data in vec(any::<u8>(), 0..2048)) {
            stream(&data);
        }

        #[test]
        fn mutated_seeds_never_panic(pick in any::<usize>(), flips in vec((any::<usize>(), 1u8..=255), 1..6)) {
            let seeds = seeds();
            let mut data = seeds[pick % seeds.len()].clone();
            for (i, b) in flips {
                let n = data.len();
                if n > 0 {
                    data[i % n] ^= b;
                }
            }
            message(&data);
            let mut s = vec![17u8];
            s.extend_from_slice(&data);
            stream(&s);
        }
    }
}
