//! Stream framing for TCP and TLS: splits a byte stream into whole messages (RFC 6733 §3).

use bytes::{Bytes, BytesMut};

use crate::error::Error;
use crate::header::HEADER_LEN;

/// Splits a byte stream into messages by the 24-bit Message Length field.
///
/// The length is checked as soon as its 4 bytes arrive, before the body is awaited or buffered:
/// below 20, not a multiple of 4, or above the configured maximum is an error after which the
/// stream cannot be resynchronised and the connection must close. The version byte is not
/// checked here, so a well-framed message of another version can still be answered with
/// DIAMETER_UNSUPPORTED_VERSION.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Framer {
    max_message_len: usize,
}

impl Default for Framer {
    /// A framer accepting messages up to 1 MiB.
    fn default() -> Self {
        Self {
            max_message_len: 1 << 20,
        }
    }
}

impl Framer {
    /// A framer accepting messages up to `max_message_len` bytes (at most 16 MiB - 1, the
    /// 24-bit field's range).
    pub fn new(max_message_len: usize) -> Self {
        Self { max_message_len }
    }

    /// The configured maximum.
    pub fn max_message_len(&self) -> usize {
        self.max_message_len
    }

    /// The length of the first message in `buf`: `Ok(None)` while more bytes are needed,
    /// `Ok(Some(len))` when `buf` holds at least `len` bytes.
    pub fn frame_len(&self, buf: &[u8]) -> Result<Option<usize>, Error> {
        let Some(h) = buf.first_chunk::<4>() else {
            return Ok(None);
        };
        let len = u32::from_be_bytes([0, h[1], h[2], h[3]]) as usize;
        if len < HEADER_LEN {
            return Err(Error::InvalidMessageLength {
                len,
                reason: "shorter than the header",
            });
        }
        if !len.is_multiple_of(4) {
            return Err(Error::InvalidMessageLength {
                len,
                reason: "not a multiple of 4",
            });
        }
        if len > self.max_message_len {
            return Err(Error::MessageTooLong {
                len,
                max: self.max_message_len,
            });
        }
        Ok((buf.len() >= len).then_some(len))
    }

    /// Splits the first whole message off `buf`: `Ok(None)` while more bytes are needed.
    pub fn next_frame(&self, buf: &mut BytesMut) -> Result<Option<Bytes>, Error> {
        Ok(self.frame_len(buf)?.map(|len| buf.split_to(len).freeze()))
    }

    /// How many more bytes the first message needs (at least 1 while the length is unknown).
    /// Drivers use it to bound reads: they never buffer beyond the announced length.
    pub fn missing(&self, buf: &[u8]) -> Result<usize, Error> {
        match self.frame_len(buf)? {
            Some(_) => Ok(0),
            None if buf.len() < 4 => Ok(4 - buf.len()),
            None => {
                let h = buf.first_chunk::<4>().copied().unwrap_or_default();
                let len = u32::from_be_bytes([0, h[1], h[2], h[3]]) as usize;
                Ok(len.saturating_sub(buf.len()))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn msg(len: u32) -> Vec<u8> {
        let mut v = vec![0u8; len as usize];
        v[..4].copy_from_slice(&((1 << 24) | len).to_be_bytes());
        v
    }

    #[test]
    fn needs_more_bytes_until_the_whole_message_is_there() {
        let f = Framer::default();
        let m = msg(28);
        for cut in 0..m.len() {
            assert_eq!(f.frame_len(&m[..cut]), Ok(None), "cut at {cut}");
        }
        assert_eq!(f.frame_len(&m), Ok(Some(28)));
    }

    #[test]
    fn splits_back_to_back_messages() {
        let f = Framer::default();
        let mut buf = BytesMut::new();
        buf.extend_from_slice(&msg(20));
        buf.extend_from_slice(&msg(24));
        buf.extend_from_slice(&msg(32)[..10]);
        assert_eq!(
            f.next_frame(&mut buf).map(|o| o.map(|b| b.len())),
            Ok(Some(20))
        );
        assert_eq!(
            f.next_frame(&mut buf).map(|o| o.map(|b| b.len())),
            Ok(Some(24))
        );
        assert_eq!(f.next_frame(&mut buf), Ok(None));
        assert_eq!(f.missing(&buf), Ok(22));
    }

    #[test]
    fn invalid_lengths_are_errors_that_close_the_connection() {
        let f = Framer::default();
        for len in [0u8, 19, 22] {
            let e = f.frame_len(&[1, 0, 0, len]);
            assert!(
                e.as_ref().is_err_and(Error::closes_connection),
                "len {len}: {e:?}"
            );
        }
    }

    #[test]
    fn sixteen_mebibyte_length_is_refused_from_four_bytes() {
        let f = Framer::default();
        let head = [1u8, 0xff, 0xff, 0xfc];
        let e = f.frame_len(&head);
        assert_eq!(
            e,
            Err(Error::MessageTooLong {
                len: 0x00ff_fffc,
                max: 1 << 20
            })
        );
        assert!(e.is_err_and(|e| e.closes_connection()));
    }
}
