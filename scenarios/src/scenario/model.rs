//! The scenario file format: typed structs that reject unknown keys. See the crate README for
//! the documentation and examples, and `scenario.schema.json` for the JSON Schema.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::time::Duration;

use serde::{Deserialize, Deserializer};
use serde_saphyr::Spanned;

/// A whole scenario.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Scenario {
    /// Short name (JUnit test suite name).
    pub name: String,
    /// What it checks.
    #[serde(default)]
    pub description: Option<String>,
    /// What the lab must be configured with for this scenario (documentation; the runner
    /// reports it when a step fails).
    #[serde(default)]
    pub requires: Option<String>,
    /// `${name}` values substituted into the file before it is read.
    #[serde(default)]
    pub variables: BTreeMap<String, Scalar>,
    /// The UEs, by name.
    pub ues: BTreeMap<String, UeSpec>,
    /// Default time bound of every waiting step (`10s` when absent).
    #[serde(default, deserialize_with = "opt_duration")]
    pub timeout: Option<Duration>,
    /// The steps, in order.
    pub steps: Vec<Spanned<Step>>,
    /// Load mode settings (the command line overrides them).
    #[serde(default)]
    pub load: Option<LoadSpec>,
}

/// A scalar variable value.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(untagged)]
pub enum Scalar {
    /// A boolean.
    Bool(bool),
    /// An integer.
    Int(i64),
    /// A string.
    Str(String),
}

impl std::fmt::Display for Scalar {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Bool(b) => write!(f, "{b}"),
            Self::Int(i) => write!(f, "{i}"),
            Self::Str(s) => f.write_str(s),
        }
    }
}

/// SIP transport of a UE.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum TransportSpec {
    /// UDP (the default).
    #[default]
    Udp,
    /// TCP.
    Tcp,
}

/// The `algorithm` of the first Authorization.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AuthSpec {
    /// No algorithm: the network decides.
    None,
    /// AKAv1-MD5.
    Akav1,
    /// AKAv2-MD5.
    Akav2,
    /// MD5 (SIP digest).
    Md5,
}

/// One alg/ealg pair of a Security-Client offer.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SuiteSpec {
    /// `hmac-sha-1-96` or `hmac-md5-96`.
    pub alg: String,
    /// `null`, `aes-cbc` or `des-ede3-cbc`.
    #[serde(default = "null_ealg")]
    pub ealg: String,
}

fn null_ealg() -> String {
    "null".into()
}

/// IPsec: `false` (no sec-agree), `true` (the profile's offers), or explicit offers.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(untagged)]
pub enum IpsecSpec {
    /// On or off.
    Enabled(bool),
    /// One alg/ealg pair.
    One(SuiteSpec),
    /// Several, in order.
    Offers {
        /// The offers.
        offers: Vec<SuiteSpec>,
    },
}

/// One UE: by IMSI from the store, or with inline identities and keys.
#[derive(Debug, Clone, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct UeSpec {
    /// IMSI. Without `k`, the subscriber's K, OP/OPc, password and identities come from the
    /// store.
    #[serde(default)]
    pub imsi: Option<String>,
    /// Private identity; default from the IMSI (`<imsi>@<domain>`).
    #[serde(default)]
    pub impi: Option<String>,
    /// Public identity to register; default the subscriber's first, else `sip:<imsi>@<domain>`.
    #[serde(default)]
    pub impu: Option<String>,
    /// K, 32 hex digits (inline keys).
    #[serde(default)]
    pub k: Option<String>,
    /// OPc, 32 hex digits.
    #[serde(default)]
    pub opc: Option<String>,
    /// OP, 32 hex digits.
    #[serde(default)]
    pub op: Option<String>,
    /// Highest SQN the card has seen (forces a resynchronisation when above the HSS's).
    #[serde(default)]
    pub sqn_ms: Option<u64>,
    /// The card's SQN this far above the HSS's current SQN (read from the store): forces a
    /// resynchronisation on every run.
    #[serde(default)]
    pub sqn_ms_ahead: Option<u64>,
    /// SIP digest password (inline, or overriding the store's).
    #[serde(default)]
    pub password: Option<String>,
    /// Handset profile: samsung-s23, pixel-7, iphone-14 or generic (default).
    #[serde(default)]
    pub profile: Option<String>,
    /// udp (default) or tcp.
    #[serde(default)]
    pub transport: TransportSpec,
    /// Security agreement; default `true`.
    #[serde(default)]
    pub ipsec: Option<IpsecSpec>,
    /// `algorithm` named in the first REGISTER.
    #[serde(default)]
    pub auth: Option<AuthSpec>,
    /// The UE's IP address (default 127.0.0.2; must differ from the P-CSCF's with IPsec).
    #[serde(default)]
    pub address: Option<IpAddr>,
    /// Registration expiry asked for.
    #[serde(default)]
    pub expires: Option<u32>,
    /// Re-register before expiry on its own.
    #[serde(default)]
    pub auto_refresh: bool,
    /// Answer challenges even when AUTN's MAC is wrong (to test the network's RES check).
    #[serde(default)]
    pub ignore_mac_failure: bool,
}

/// What a waiting step expects.
#[derive(Debug, Clone, Deserialize, Default, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Expect {
    /// Final status code, or a list of acceptable ones.
    #[serde(default)]
    pub status: Option<StatusSpec>,
    /// Header name → regex every expectation must find in one of its values.
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    /// Header names that must be absent.
    #[serde(default)]
    pub absent: Vec<String>,
    /// A substring of the body.
    #[serde(default)]
    pub body_contains: Option<String>,
    /// Upper time bound.
    #[serde(default, deserialize_with = "opt_duration")]
    pub within: Option<Duration>,
    /// Lower time bound: fail if it came sooner.
    #[serde(default, deserialize_with = "opt_duration")]
    pub after: Option<Duration>,
}

/// One status or several.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(untagged)]
pub enum StatusSpec {
    /// Exactly this.
    One(u16),
    /// Any of these.
    Any(Vec<u16>),
}

impl StatusSpec {
    /// Whether `s` is acceptable.
    pub fn accepts(&self, s: u16) -> bool {
        match self {
            Self::One(c) => *c == s,
            Self::Any(v) => v.contains(&s),
        }
    }
}

impl std::fmt::Display for StatusSpec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::One(c) => write!(f, "{c}"),
            Self::Any(v) => write!(
                f,
                "one of {}",
                v.iter().map(u16::to_string).collect::<Vec<_>>().join("/")
            ),
        }
    }
}

/// A step acting on one UE, with an optional expectation on its outcome.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct UeAction {
    /// The UE.
    pub ue: String,
    /// Registration or subscription expiry.
    #[serde(default)]
    pub expires: Option<u32>,
    /// What must come back (default: success).
    #[serde(default)]
    pub expect: Option<Expect>,
}

/// `hangup`: BYE in a confirmed call, CANCEL while the caller waits, and while the callee
/// rings a final response: 486 by default, or `status` (480 no answer, 603 declined...).
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct HangupStep {
    /// The UE.
    pub ue: String,
    /// The callee's rejection status (400–699); only while its phone rings.
    #[serde(default)]
    pub status: Option<u16>,
    /// What must come back to the BYE or CANCEL (default: no wait).
    #[serde(default)]
    pub expect: Option<Expect>,
}

/// `call`.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct CallStep {
    /// The calling UE.
    pub from: String,
    /// A UE name (its IMPU is called) or a SIP/tel URI.
    pub to: String,
    /// Use QoS preconditions (183, PRACK, UPDATE).
    #[serde(default)]
    pub preconditions: bool,
    /// Ask for a session timer (RFC 4028 Session-Expires, in seconds, at least 90).
    #[serde(default)]
    pub session_expires: Option<u32>,
    /// Wait for this response to the INVITE (none: return at once).
    #[serde(default)]
    pub expect: Option<Expect>,
}

/// An SMS.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct SmsSpec {
    /// The text.
    pub text: String,
    /// The SMSC's PSI (Request-URI); default `sip:smsc@<domain>`.
    #[serde(default)]
    pub smsc: Option<String>,
    /// TP-DA digits; default the digits of `to`'s user part.
    #[serde(default)]
    pub destination: Option<String>,
}

/// `message`.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct MessageStep {
    /// The sending UE.
    pub from: String,
    /// A UE name or a URI.
    pub to: String,
    /// A text/plain body.
    #[serde(default)]
    pub text: Option<String>,
    /// An SMS over IP (TS 24.341).
    #[serde(default)]
    pub sms: Option<SmsSpec>,
    /// What must come back (default 2xx).
    #[serde(default)]
    pub expect: Option<Expect>,
}

/// `options`.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct OptionsStep {
    /// The UE.
    pub ue: String,
    /// A UE name or URI.
    pub to: String,
    /// What must come back (default 200).
    #[serde(default)]
    pub expect: Option<Expect>,
}

/// `expect`: wait for a message or an event at a UE.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ExpectStep {
    /// The UE.
    pub ue: String,
    /// A request of this method arriving (NOTIFY, MESSAGE, INVITE...).
    #[serde(default)]
    pub request: Option<String>,
    /// A response to a request of this method (default: any response).
    #[serde(default)]
    pub response: Option<String>,
    /// An event: registered, deregistered, registration-failed, call-confirmed,
    /// call-ringing, call-terminated, sms.
    #[serde(default)]
    pub event: Option<String>,
    /// Conditions on the message.
    #[serde(flatten)]
    pub expect: Expect,
}

/// `send`: a raw SIP message written in the scenario.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct SendStep {
    /// The UE.
    pub ue: String,
    /// The message. `${branch}`, `${tag}`, `${call_id}`, `${local_ip}`, `${local_port}`,
    /// `${transport}`, `${impu}`, `${impi}`, `${domain}`, `${contact}`, `${route}`,
    /// `${pcscf}`, `${user_agent}` are filled in; Content-Length is computed.
    pub template: String,
    /// Wait for a final response like this.
    #[serde(default)]
    pub expect: Option<Expect>,
}

/// The Cx command of a `cx` step.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CxCommand {
    /// User-Authorization-Request.
    Uar,
    /// Location-Info-Request.
    Lir,
}

/// `cx`: a Diameter Cx request to the HSS.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct CxStep {
    /// The command.
    pub request: CxCommand,
    /// Public identity (or a UE name).
    pub impu: String,
    /// Private identity (UAR); default the UE's or derived.
    #[serde(default)]
    pub impi: Option<String>,
    /// Expected Result-Code or Experimental-Result-Code.
    pub expect_result: u32,
}

/// `hss`: ask the HSS, through the REST API, to deregister (RTR) or push a profile (PPR).
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, rename_all = "snake_case")]
pub struct HssStep {
    /// RTR for this UE's subscriber (UE name or IMSI).
    #[serde(default)]
    pub deregister: Option<String>,
    /// PPR for this UE's subscriber (UE name or IMSI).
    #[serde(default)]
    pub push_profile: Option<String>,
    /// Expected HTTP status (default 200).
    #[serde(default)]
    pub expect_http: Option<u16>,
}

/// `repeat`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RepeatStep {
    /// How many times.
    pub times: u32,
    /// The steps.
    pub steps: Vec<Spanned<Step>>,
}

/// One step.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Step {
    /// Register (initial or refresh) and wait for the outcome.
    Register(UeAction),
    /// Re-register over the SAs and wait.
    Reregister(UeAction),
    /// De-register and wait.
    Deregister(UeAction),
    /// Subscribe to the own reg event and wait for the 2xx.
    Subscribe(UeAction),
    /// Place a call.
    Call(CallStep),
    /// Answer the incoming call.
    Answer(UeAction),
    /// Hang up (BYE, CANCEL or 486).
    Hangup(HangupStep),
    /// Send a MESSAGE and wait for its response.
    Message(MessageStep),
    /// Send an OPTIONS and wait.
    Options(OptionsStep),
    /// Pause (`500ms`, `2s`, `1m`).
    Wait(#[serde(deserialize_with = "duration")] Duration),
    /// Wait for a message or event.
    Expect(ExpectStep),
    /// Send a raw SIP message.
    Send(SendStep),
    /// A Cx request to the HSS.
    Cx(CxStep),
    /// RTR or PPR through the HSS's REST API.
    Hss(HssStep),
    /// Repeat steps.
    Repeat(RepeatStep),
    /// Run branches of steps at the same time.
    Parallel(Vec<Vec<Spanned<Self>>>),
    /// Print a line in the log.
    Log(String),
}

impl Step {
    /// The step's keyword.
    pub fn keyword(&self) -> &'static str {
        match self {
            Self::Register(_) => "register",
            Self::Reregister(_) => "reregister",
            Self::Deregister(_) => "deregister",
            Self::Subscribe(_) => "subscribe",
            Self::Call(_) => "call",
            Self::Answer(_) => "answer",
            Self::Hangup(_) => "hangup",
            Self::Message(_) => "message",
            Self::Options(_) => "options",
            Self::Wait(_) => "wait",
            Self::Expect(_) => "expect",
            Self::Send(_) => "send",
            Self::Cx(_) => "cx",
            Self::Hss(_) => "hss",
            Self::Repeat(_) => "repeat",
            Self::Parallel(_) => "parallel",
            Self::Log(_) => "log",
        }
    }

    /// The UEs the step names.
    pub fn ues(&self) -> Vec<&str> {
        match self {
            Self::Register(a)
            | Self::Reregister(a)
            | Self::Deregister(a)
            | Self::Subscribe(a)
            | Self::Answer(a) => vec![&a.ue],
            Self::Hangup(h) => vec![&h.ue],
            Self::Call(c) => vec![&c.from],
            Self::Message(m) => vec![&m.from],
            Self::Options(o) => vec![&o.ue],
            Self::Expect(e) => vec![&e.ue],
            Self::Send(s) => vec![&s.ue],
            _ => Vec::new(),
        }
    }
}

/// Load mode.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct LoadSpec {
    /// Concurrent UEs, each running the steps with its own subscriber.
    pub ues: u32,
    /// New UEs started per second.
    pub rate: f64,
    /// How long to keep starting UEs.
    #[serde(deserialize_with = "duration")]
    pub duration: Duration,
    /// The UE of the scenario each virtual UE plays (default: the only one).
    #[serde(default)]
    pub ue: Option<String>,
    /// IMSI of the first subscriber; virtual UE i uses this + i (default the UE's IMSI).
    #[serde(default)]
    pub imsi_start: Option<String>,
    /// How many subscribers to cycle through (default `ues`).
    #[serde(default)]
    pub subscribers: Option<u32>,
}

/// Parses `250ms`, `2s`, `1.5s`, `3m`, or a bare number of seconds.
pub fn parse_duration(s: &str) -> Option<Duration> {
    let s = s.trim();
    let (num, unit) = match s.find(|c: char| c.is_ascii_alphabetic()) {
        Some(i) => s.split_at(i),
        None => (s, "s"),
    };
    let v: f64 = num.trim().parse().ok()?;
    if !v.is_finite() || v < 0.0 {
        return None;
    }
    let secs = match unit {
        "ms" => v / 1000.0,
        "s" => v,
        "m" | "min" => v * 60.0,
        "h" => v * 3600.0,
        _ => return None,
    };
    Some(Duration::from_secs_f64(secs))
}

#[derive(Deserialize)]
#[serde(untagged)]
enum DurRepr {
    Num(f64),
    Text(String),
}

fn duration<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
    match DurRepr::deserialize(d)? {
        DurRepr::Num(n) if n >= 0.0 && n.is_finite() => Ok(Duration::from_secs_f64(n)),
        DurRepr::Num(n) => Err(serde::de::Error::custom(format!("bad duration {n}"))),
        DurRepr::Text(t) => parse_duration(&t).ok_or_else(|| {
            serde::de::Error::custom(format!("bad duration {t:?} (write 500ms, 2s, 1.5s or 3m)"))
        }),
    }
}

fn opt_duration<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Duration>, D::Error> {
    duration(d).map(Some)
}
