//! SIP request methods: an open set (RFC 3261 §7.1, §27.4).

use std::fmt;

use crate::{Error, scan};

/// A request method. Methods are case-sensitive tokens; unknown ones are kept as
/// [`Method::Other`] and print back unchanged.
#[derive(Clone, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Method {
    /// RFC 3261.
    Invite,
    /// RFC 3261.
    Ack,
    /// RFC 3261.
    Bye,
    /// RFC 3261.
    Cancel,
    /// RFC 3261.
    Options,
    /// RFC 3261.
    Register,
    /// RFC 3262.
    Prack,
    /// RFC 6665.
    Subscribe,
    /// RFC 6665.
    Notify,
    /// RFC 3903.
    Publish,
    /// RFC 6086.
    Info,
    /// RFC 3515.
    Refer,
    /// RFC 3428.
    Message,
    /// RFC 3311.
    Update,
    /// Any other token.
    Other(Box<str>),
}

impl Method {
    /// Parses a method token; `None` if `s` is empty or has non-token characters.
    pub fn from_token(s: &[u8]) -> Option<Self> {
        Some(match s {
            b"INVITE" => Self::Invite,
            b"ACK" => Self::Ack,
            b"BYE" => Self::Bye,
            b"CANCEL" => Self::Cancel,
            b"OPTIONS" => Self::Options,
            b"REGISTER" => Self::Register,
            b"PRACK" => Self::Prack,
            b"SUBSCRIBE" => Self::Subscribe,
            b"NOTIFY" => Self::Notify,
            b"PUBLISH" => Self::Publish,
            b"INFO" => Self::Info,
            b"REFER" => Self::Refer,
            b"MESSAGE" => Self::Message,
            b"UPDATE" => Self::Update,
            _ if !s.is_empty() && s.iter().all(|&b| scan::is_token(b)) => {
                Self::Other(std::str::from_utf8(s).ok()?.into())
            }
            _ => return None,
        })
    }

    /// The method name as sent on the wire.
    pub fn as_str(&self) -> &str {
        match self {
            Self::Invite => "INVITE",
            Self::Ack => "ACK",
            Self::Bye => "BYE",
            Self::Cancel => "CANCEL",
            Self::Options => "OPTIONS",
            Self::Register => "REGISTER",
            Self::Prack => "PRACK",
            Self::Subscribe => "SUBSCRIBE",
            Self::Notify => "NOTIFY",
            Self::Publish => "PUBLISH",
            Self::Info => "INFO",
            Self::Refer => "REFER",
            Self::Message => "MESSAGE",
            Self::Update => "UPDATE",
            Self::Other(s) => s,
        }
    }
}

impl std::str::FromStr for Method {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self, Error> {
        Self::from_token(s.as_bytes()).ok_or(Error::StartLine)
    }
}

impl fmt::Display for Method {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl fmt::Debug for Method {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn methods_are_case_sensitive_and_unknown_ones_are_kept() {
        assert_eq!(Method::from_token(b"INVITE"), Some(Method::Invite));
        assert_eq!(
            Method::from_token(b"invite")
                .map(|m| m.to_string())
                .as_deref(),
            Some("invite")
        );
        let odd = Method::from_token(b"!interesting-Method0123456789_*+`.%indeed'~");
        assert_eq!(
            odd.map(|m| m.to_string()).as_deref(),
            Some("!interesting-Method0123456789_*+`.%indeed'~")
        );
        assert_eq!(Method::from_token(b"IN VITE"), None);
        assert_eq!(Method::from_token(b""), None);
    }
}
