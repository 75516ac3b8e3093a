//! Helpers shared by the typed commands: ABNF multiplicity checks and value conversions.

use bytes::Bytes;
use imslab_types::{DiameterIdentity, Impi, Impu, Realm};

use crate::avp::Avp;
use crate::codes::CommandCode;
use crate::dict::AvpDef;
use crate::error::Error;
use crate::message::Message;

/// Reads the AVPs of a message or Grouped AVP by dictionary entry, marking what it consumed so
/// the rest can be kept as `*[ AVP ]`.
pub(crate) struct Reader<'a> {
    avps: &'a [Avp],
    used: Used,
}

/// Which AVPs were consumed: a bit mask for the usual case, a vector beyond 128 AVPs.
enum Used {
    Bits(u128),
    Many(Vec<bool>),
}

impl Used {
    fn set(&mut self, i: usize) {
        match self {
            Self::Bits(b) => *b |= 1 << i,
            Self::Many(v) => {
                if let Some(x) = v.get_mut(i) {
                    *x = true;
                }
            }
        }
    }

    fn get(&self, i: usize) -> bool {
        match self {
            Self::Bits(b) => *b & (1 << i) != 0,
            Self::Many(v) => v.get(i).copied().unwrap_or(false),
        }
    }
}

impl<'a> Reader<'a> {
    pub(crate) fn new(avps: &'a [Avp]) -> Self {
        let used = if avps.len() <= 128 {
            Used::Bits(0)
        } else {
            Used::Many(vec![false; avps.len()])
        };
        Self { avps, used }
    }

    /// `{ X }`: exactly one (RFC 6733 §3.2).
    pub(crate) fn one(&mut self, def: &'static AvpDef) -> Result<&'a Avp, Error> {
        self.opt(def)?.ok_or(Error::MissingAvp { def })
    }

    /// `[ X ]`: at most one.
    pub(crate) fn opt(&mut self, def: &AvpDef) -> Result<Option<&'a Avp>, Error> {
        let mut found = None;
        for (i, a) in self.avps.iter().enumerate() {
            if a.is(def) {
                if found.is_some() {
                    return Err(Error::AvpOccursTooManyTimes {
                        failed: Box::new(a.clone()),
                    });
                }
                self.used.set(i);
                found = Some(a);
            }
        }
        Ok(found)
    }

    /// `*[ X ]`: any number, in order.
    pub(crate) fn many(&mut self, def: &AvpDef) -> Vec<&'a Avp> {
        let mut out = Vec::new();
        for (i, a) in self.avps.iter().enumerate() {
            if a.is(def) {
                self.used.set(i);
                out.push(a);
            }
        }
        out
    }

    /// `*[ X ]` converted with `f`.
    pub(crate) fn many_map<T>(
        &mut self,
        def: &AvpDef,
        f: impl Fn(&Avp) -> Result<T, Error>,
    ) -> Result<Vec<T>, Error> {
        self.many(def).into_iter().map(f).collect()
    }

    /// `[ X ]` converted with `f`.
    pub(crate) fn opt_map<T>(
        &mut self,
        def: &AvpDef,
        f: impl Fn(&Avp) -> Result<T, Error>,
    ) -> Result<Option<T>, Error> {
        self.opt(def)?.map(f).transpose()
    }

    /// `*[ AVP ]`: everything not consumed, in order.
    pub(crate) fn rest(self) -> Vec<Avp> {
        let used = &self.used;
        self.avps
            .iter()
            .enumerate()
            .filter(|(i, _)| !used.get(*i))
            .map(|(_, a)| a.clone())
            .collect()
    }
}

/// Checks that `m` is the expected command and direction.
pub(crate) fn expect_command(
    m: &Message,
    code: CommandCode,
    request: bool,
    expected: &'static str,
) -> Result<(), Error> {
    if m.header.code == code && m.is_request() == request {
        Ok(())
    } else {
        Err(Error::UnexpectedCommand {
            expected,
            code: m.header.code,
            request: m.is_request(),
        })
    }
}

pub(crate) fn string(a: &Avp) -> Result<String, Error> {
    a.as_utf8().map(str::to_owned)
}

pub(crate) fn octets(a: &Avp) -> Result<Bytes, Error> {
    a.as_octets().map(|o| o.to_bytes())
}

pub(crate) fn identity(a: &Avp) -> Result<DiameterIdentity, Error> {
    a.as_identity()
}

pub(crate) fn realm(a: &Avp) -> Result<Realm, Error> {
    a.as_realm()
}

pub(crate) fn u32v(a: &Avp) -> Result<u32, Error> {
    a.as_u32()
}

pub(crate) fn impi(a: &Avp) -> Result<Impi, Error> {
    Impi::new(a.as_utf8()?).map_err(|_| Error::InvalidAvpValue {
        failed: Box::new(a.clone()),
        reason: "not a private user identity (user@realm)",
    })
}

pub(crate) fn impu(a: &Avp) -> Result<Impu, Error> {
    Impu::new(a.as_utf8()?).map_err(|_| Error::InvalidAvpValue {
        failed: Box::new(a.clone()),
        reason: "not a public user identity (sip:, sips: or tel: URI)",
    })
}

/// Pushes `[ X ]` when present.
pub(crate) fn push_opt<T>(out: &mut Vec<Avp>, v: Option<T>, f: impl FnOnce(T) -> Avp) {
    if let Some(v) = v {
        out.push(f(v));
    }
}
