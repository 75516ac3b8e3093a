//! Message framing on stream transports (TCP, TLS): RFC 3261 §18.3 and RFC 5626 §3.5.1.

use bytes::{Buf, BytesMut};
use memchr::{memchr, memmem};

use crate::message::skip_leading_crlf;
use crate::name::Std;
use crate::{Error, Limits, Message, scan};

/// What a stream yields.
#[derive(Debug)]
pub enum Frame {
    /// A complete message.
    Message(Message),
    /// A double-CRLF keep-alive ping (RFC 5626 §3.5.1); answer with a single CRLF pong.
    Ping,
    /// A single-CRLF pong, reported only while [`StreamFramer::ping_sent`] is armed.
    Pong,
    /// A message complete by its Content-Length that does not parse. The stream stays in sync:
    /// answer it with [`crate::validate::answer_unparseable`] when that gives a 400 (RFC 3261
    /// §16.3 step 1, §21.4.1), otherwise drop it, and read on.
    Invalid {
        /// The framed bytes, start line to end of body.
        raw: bytes::Bytes,
        /// Why they do not parse.
        error: Error,
    },
}

/// Cuts messages out of a byte stream using Content-Length.
///
/// Feed it the connection's read buffer: [`StreamFramer::decode`] returns `Ok(None)` when more
/// bytes are needed, consumes exactly one frame otherwise. A missing Content-Length counts as 0
/// (§18.3 requires it on streams; this is the lenient reading). A framed message that does not
/// parse is returned as [`Frame::Invalid`] and the stream goes on; an error (no end of the
/// header section within the size limit, a Content-Length that cannot be read) means the stream
/// is out of sync: close the connection.
#[derive(Debug, Clone)]
pub struct StreamFramer {
    limits: Limits,
    awaiting_pong: bool,
    /// How far the buffer was searched for the end of the head, to resume without rescanning.
    searched: usize,
}

impl StreamFramer {
    /// A framer with the given limits.
    pub fn new(limits: Limits) -> Self {
        Self {
            limits,
            awaiting_pong: false,
            searched: 0,
        }
    }

    /// Tells the framer a ping was sent, so a lone CRLF is reported as [`Frame::Pong`] instead of
    /// being skipped as white space before a start line (§7.5).
    pub fn ping_sent(&mut self) {
        self.awaiting_pong = true;
    }

    /// Takes the next frame from the front of `buf`.
    pub fn decode(&mut self, buf: &mut BytesMut) -> Result<Option<Frame>, Error> {
        loop {
            if buf.starts_with(b"\r\n\r\n") {
                buf.advance(4);
                self.searched = 0;
                return Ok(Some(Frame::Ping));
            }
            if buf.starts_with(b"\r\n") {
                let ambiguous = buf.len() < 4 && buf.get(2).is_none_or(|&b| b == b'\r');
                if self.awaiting_pong {
                    buf.advance(2);
                    self.awaiting_pong = false;
                    self.searched = 0;
                    return Ok(Some(Frame::Pong));
                }
                if ambiguous {
                    return Ok(None);
                }
                buf.advance(2);
                self.searched = 0;
                continue;
            }
            if buf.len() == 1 && buf.first() == Some(&b'\r') {
                return Ok(None);
            }
            break;
        }
        let from = self.searched.saturating_sub(3);
        let Some(head_end) =
            memmem::find(buf.get(from..).unwrap_or_default(), b"\r\n\r\n").map(|i| i + from)
        else {
            if buf.len() > self.limits.max_message {
                return Err(Error::TooLarge {
                    len: buf.len(),
                    limit: self.limits.max_message,
                });
            }
            self.searched = buf.len();
            return Ok(None);
        };
        let head = buf.get(..head_end + 2).unwrap_or_default();
        if !plausible_start_line(head) {
            // Not SIP at all: nothing tells where it ends, so the stream cannot be trusted.
            return Err(Error::StartLine);
        }
        let body_len = content_length(head)?;
        let total = head_end + 4 + body_len;
        if total > self.limits.max_message {
            return Err(Error::TooLarge {
                len: total,
                limit: self.limits.max_message,
            });
        }
        if buf.len() < total {
            self.searched = head_end;
            return Ok(None);
        }
        self.searched = 0;
        let frame = buf.split_to(total).freeze();
        Ok(Some(
            match Message::parse_with(frame.clone(), &self.limits) {
                Ok(m) => Frame::Message(m),
                Err(error) => Frame::Invalid { raw: frame, error },
            },
        ))
    }
}

impl Default for StreamFramer {
    fn default() -> Self {
        Self::new(Limits::default())
    }
}

/// Whether the first line could be a SIP start line, however malformed: it names a `SIP/`
/// version somewhere (status line, request line, or one with an unsupported version).
fn plausible_start_line(head: &[u8]) -> bool {
    let line = head.split(|&b| b == b'\n').next().unwrap_or_default();
    line.windows(4).any(|w| w.eq_ignore_ascii_case(b"SIP/"))
}

/// Finds Content-Length (or `l`) in a header section without a full parse. Several equal values
/// are accepted, different ones are an error (RFC 4475 §3.3.9).
fn content_length(head: &[u8]) -> Result<usize, Error> {
    let mut found: Option<usize> = None;
    let mut pos = skip_leading_crlf(head);
    let mut first = true;
    let mut current: Option<Vec<u8>> = None;
    let finish = |v: &[u8], found: &mut Option<usize>| -> Result<(), Error> {
        let n = scan::parse_u64(scan::trim(v))
            .and_then(|n| usize::try_from(n).ok())
            .ok_or(Error::ContentLength)?;
        if found.is_some_and(|f| f != n) {
            return Err(Error::ContentLength);
        }
        *found = Some(n);
        Ok(())
    };
    while pos < head.len() {
        let rest = head.get(pos..).unwrap_or_default();
        let nl = memchr(b'\n', rest).unwrap_or(rest.len());
        let line = rest.get(..nl).unwrap_or_default();
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        pos += nl + 1;
        if first {
            first = false;
            continue;
        }
        if matches!(line.first(), Some(b' ' | b'\t')) {
            if let Some(v) = current.as_mut() {
                v.extend_from_slice(line);
            }
            continue;
        }
        if let Some(v) = current.take() {
            finish(&v, &mut found)?;
        }
        if let Some(colon) = memchr(b':', line) {
            let name = scan::trim(line.get(..colon).unwrap_or_default());
            if Std::lookup(name) == Some(Std::ContentLength) {
                current = Some(line.get(colon + 1..).unwrap_or_default().to_vec());
            }
        }
    }
    if let Some(v) = current.take() {
        finish(&v, &mut found)?;
    }
    Ok(found.unwrap_or(0))
}

#[cfg(test)]
mod tests {
    use super::*;

    const OPTIONS: &[u8] =
        b"OPTIONS sip:a@b SIP/2.0\r\nVia: SIP/2.0/TCP h;branch=z9hG4bK1\r\nl: 5\r\n\r\nhello";

    fn next(f: &mut StreamFramer, buf: &mut BytesMut) -> Option<Frame> {
        f.decode(buf).ok().flatten()
    }

    #[test]
    fn stream_needs_more_bytes_until_the_body_is_complete() {
        let mut f = StreamFramer::default();
        let mut buf = BytesMut::new();
        for chunk in OPTIONS.chunks(7) {
            assert!(next(&mut f, &mut buf).is_none());
            buf.extend_from_slice(chunk);
        }
        match next(&mut f, &mut buf) {
            Some(Frame::Message(m)) => assert_eq!(m.body(), b"hello"),
            other => panic!("expected a message, got {other:?}"),
        }
        assert!(buf.is_empty());
    }

    #[test]
    fn two_pipelined_messages_are_cut_apart() {
        let mut f = StreamFramer::default();
        let mut buf = BytesMut::from(&[OPTIONS, OPTIONS].concat()[..]);
        assert!(matches!(next(&mut f, &mut buf), Some(Frame::Message(_))));
        assert!(matches!(next(&mut f, &mut buf), Some(Frame::Message(_))));
        assert!(buf.is_empty());
    }

    #[test]
    fn double_crlf_is_a_ping_and_single_crlf_a_pong_when_expected() {
        let mut f = StreamFramer::default();
        let mut buf = BytesMut::from(&b"\r\n\r\n"[..]);
        assert!(matches!(next(&mut f, &mut buf), Some(Frame::Ping)));
        let mut buf = BytesMut::from(&b"\r\n"[..]);
        assert!(
            next(&mut f, &mut buf).is_none(),
            "a lone CRLF may be half a ping"
        );
        f.ping_sent();
        assert!(matches!(next(&mut f, &mut buf), Some(Frame::Pong)));
        let mut buf = BytesMut::from(&[b"\r\n", OPTIONS].concat()[..]);
        assert!(
            matches!(next(&mut f, &mut buf), Some(Frame::Message(_))),
            "CRLF before a start line is skipped"
        );
    }

    #[test]
    fn oversized_head_without_end_is_refused() {
        let mut f = StreamFramer::new(Limits {
            max_message: 64,
            max_headers: 8,
        });
        let mut buf = BytesMut::from(&[b'a'; 100][..]);
        assert!(matches!(f.decode(&mut buf), Err(Error::TooLarge { .. })));
    }

    #[test]
    fn huge_content_length_is_refused_before_buffering() {
        let mut f = StreamFramer::default();
        let mut buf =
            BytesMut::from(&b"OPTIONS sip:a@b SIP/2.0\r\nContent-Length: 999999999\r\n\r\n"[..]);
        assert!(matches!(f.decode(&mut buf), Err(Error::TooLarge { .. })));
    }

    #[test]
    fn a_framed_but_unparseable_message_is_returned_and_the_stream_goes_on() {
        let mut f = StreamFramer::default();
        let bad = b"OPTIONS sip:a@b SIP/2.0\r\nVia: SIP/2.0/TCP h;branch=z9hG4bK1\r\nbroken line\r\nl: 2\r\n\r\nab";
        let mut buf = BytesMut::from(&[&bad[..], OPTIONS].concat()[..]);
        match f.decode(&mut buf) {
            Ok(Some(Frame::Invalid { raw, error })) => {
                assert_eq!(&raw[..], &bad[..]);
                assert!(matches!(error, Error::HeaderLine { .. }), "{error:?}");
            }
            other => panic!("expected an invalid frame, got {other:?}"),
        }
        assert!(
            matches!(next(&mut f, &mut buf), Some(Frame::Message(_))),
            "the next message is still framed"
        );
        assert!(buf.is_empty());
    }

    #[test]
    fn garbage_without_an_end_of_head_is_an_error_that_closes_the_flow() {
        let mut f = StreamFramer::new(Limits {
            max_message: 256,
            max_headers: 8,
        });
        let mut buf = BytesMut::from(&[0x16u8, 0x03, 0x01, 0x02, 0x00].repeat(60)[..]);
        assert!(f.decode(&mut buf).is_err());
        let mut f = StreamFramer::default();
        let mut buf = BytesMut::from(&b"\x16\x03\x01\x02\x00 this is not SIP\r\n\r\n"[..]);
        assert_eq!(f.decode(&mut buf).err(), Some(Error::StartLine));
        let mut buf = BytesMut::from(&b"OPTIONS sip:a@b SIP/2.0 \r\nl: 0\r\n\r\n"[..]);
        assert!(
            matches!(f.decode(&mut buf), Ok(Some(Frame::Invalid { .. }))),
            "a broken SIP start line is still SIP"
        );
    }

    #[test]
    fn conflicting_content_lengths_are_refused() {
        let mut f = StreamFramer::default();
        let mut buf =
            BytesMut::from(&b"OPTIONS sip:a@b SIP/2.0\r\nContent-Length: 1\r\nl: 2\r\n\r\nab"[..]);
        assert_eq!(f.decode(&mut buf).err(), Some(Error::ContentLength));
    }
}
