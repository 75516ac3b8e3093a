//! IMS registration of the soft UE (TS 24.229 §5.1.1): initial REGISTER with an empty
//! Authorization and Security-Client, the 401 (AKAv1-MD5, AKAv2-MD5 or MD5; AUTS on a
//! synchronisation failure), SAs from CK/IK (TS 33.203 Annex I) and the protected REGISTER
//! with Security-Verify, re-registration over the SAs with a new offer (§7.4), de-registration,
//! expiry, and the network's termination through reg-event.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use imslab_aka::{
    DigestAlgorithm, DigestRequest, Ha1, NonceCount, Qop, QopParams, digest, milenage::Milenage,
};
use imslab_ipsec::header::{parse_value, print_list};
use imslab_ipsec::{Endpoint, EspKeys, IpsecMechanism, SaBundle, Spi};
use imslab_sip::header::Auth;
use imslab_sip::{HeaderName, Message};
use imslab_types::Outcome;

use super::config::OperatorKey;
use super::core::{Draft, Event, Output, Purpose, UeCore, same_contact, secs};
use super::ids::Ids;
use crate::Error;

/// An SA set with the Security-Server it was built from (for Security-Verify).
#[derive(Debug, Clone)]
pub struct SaSet {
    /// The four SAs, seen from the UE.
    pub bundle: SaBundle,
    /// The Security-Server values of the 401, printed.
    pub security_server: String,
}

/// Where the registration stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Phase {
    Idle,
    Registering,
    Registered,
    Deregistering,
}

/// The challenge being answered.
#[derive(Clone)]
pub(crate) struct Challenge {
    realm: String,
    nonce: String,
    algorithm: DigestAlgorithm,
    opaque: Option<String>,
    qop: Option<Qop>,
    ha1: Ha1,
    nc: u32,
}

/// The registration state of one UE.
pub(crate) struct Registration {
    pub(crate) call_id: String,
    from_tag: String,
    cseq: u32,
    pub(crate) phase: Phase,
    was_registered: bool,
    pub(crate) service_route: Vec<String>,
    pub(crate) associated: Vec<String>,
    refresh_at: Option<Instant>,
    expires_at: Option<Instant>,
    pub(crate) sa: Option<SaSet>,
    pub(crate) pending_sa: Option<SaSet>,
    /// The Security-Client value of the attempt in progress.
    security_client: Option<String>,
    /// Our offer in that value: (spi-c, spi-s, port-c).
    offer: Option<(Spi, Spi, u16)>,
    challenge: Option<Challenge>,
    rounds: u32,
    asked_expires: u32,
    /// SAs kept after the registration expired, until this instant.
    lingering: Option<(Instant, SaSet)>,
}

impl Registration {
    pub(crate) fn new(ids: &mut Ids) -> Self {
        Self {
            call_id: format!("{}-reg", ids.token()),
            from_tag: ids.token(),
            cseq: 0,
            phase: Phase::Idle,
            was_registered: false,
            service_route: Vec::new(),
            associated: Vec::new(),
            refresh_at: None,
            expires_at: None,
            sa: None,
            pending_sa: None,
            security_client: None,
            offer: None,
            challenge: None,
            rounds: 0,
            asked_expires: 0,
            lingering: None,
        }
    }

    pub(crate) fn is_registered(&self) -> bool {
        matches!(self.phase, Phase::Registered)
            || (self.was_registered && self.phase != Phase::Idle)
    }

    pub(crate) fn poll_timeout(&self) -> Option<Instant> {
        [
            self.refresh_at,
            self.expires_at,
            self.lingering.as_ref().map(|(at, _)| *at),
        ]
        .into_iter()
        .flatten()
        .min()
    }
}

/// How long SAs outlive an expired registration.
const SA_GRACE: Duration = Duration::from_secs(30);

/// Most 401s answered in one registration attempt before the UE gives up.
const MAX_ROUNDS: u32 = 4;

impl UeCore {
    /// Starts a registration (initial, or a refresh when registered) asking for `expires`
    /// seconds, or the profile's default.
    pub fn register(&mut self, now: Instant, expires: Option<u32>) -> Result<(), Error> {
        let exp = expires.unwrap_or_else(|| self.cfg.expires());
        self.reg.rounds = 0;
        self.reg.phase = Phase::Registering;
        self.reg.asked_expires = exp;
        self.new_offer();
        self.send_register(now, exp, None)
    }

    /// De-registers (expires 0) over the current SAs.
    pub fn deregister(&mut self, now: Instant) -> Result<(), Error> {
        self.reg.rounds = 0;
        self.reg.phase = Phase::Deregistering;
        self.reg.asked_expires = 0;
        self.send_register(now, 0, None)
    }

    /// A fresh Security-Client offer: new SPIs, and a new port-c when SAs already exist
    /// (TS 33.203 §7.4.1).
    fn new_offer(&mut self) {
        let Some(ipsec) = self.cfg.ipsec.clone() else {
            self.reg.security_client = None;
            self.reg.offer = None;
            return;
        };
        let port_c = match &self.reg.sa {
            Some(sa) if sa.bundle.local.port_c == ipsec.ports.port_c => ipsec.ports.port_c_alt,
            _ => ipsec.ports.port_c,
        };
        let (spi_c, spi_s) = (Spi(self.ids.spi()), Spi(self.ids.spi()));
        let mechs: Vec<_> = self
            .cfg
            .offers()
            .into_iter()
            .map(|suite| {
                IpsecMechanism {
                    q: None,
                    suite,
                    protocol: imslab_ipsec::header::IpsecProtocol::Esp,
                    mode: imslab_ipsec::header::IpsecMode::Transport,
                    spi_c,
                    spi_s,
                    port_c,
                    port_s: ipsec.ports.port_s,
                }
                .to_mechanism()
            })
            .collect();
        self.reg.security_client = Some(print_list(&mechs));
        self.reg.offer = Some((spi_c, spi_s, port_c));
    }

    fn authorization(&mut self, uri: &str) -> String {
        let impi = self.cfg.impi.as_str().to_owned();
        match self.reg.challenge.as_mut() {
            Some(ch) if self.reg.was_registered || self.reg.sa.is_some() => {
                // Re-registration: the last nonce with a fresh response (TS 24.229 §5.1.1.4.1).
                ch.nc += 1;
                let ch = ch.clone();
                digest_header(&impi, uri, &ch, None, None)
            }
            _ => {
                let alg = match self.cfg.auth_hint {
                    super::config::AuthHint::None => String::new(),
                    super::config::AuthHint::AkaV1 => ", algorithm=AKAv1-MD5".into(),
                    super::config::AuthHint::AkaV2 => ", algorithm=AKAv2-MD5".into(),
                    super::config::AuthHint::Md5 => ", algorithm=MD5".into(),
                };
                format!(
                    "Digest username=\"{impi}\", realm=\"{}\", nonce=\"\", uri=\"{uri}\", \
                     response=\"\"{alg}",
                    self.cfg.domain.as_str()
                )
            }
        }
    }

    /// Sends a REGISTER. `auth`: the Authorization value answering a challenge; `via_sa`:
    /// send over the SA set negotiated in the 401.
    fn send_register(
        &mut self,
        now: Instant,
        expires: u32,
        answer: Option<(String, bool)>,
    ) -> Result<(), Error> {
        let uri = format!("sip:{}", self.cfg.domain.as_str());
        let (auth, over_pending) = match answer {
            Some((a, p)) => (a, p),
            None => (self.authorization(&uri), false),
        };
        let peer = match (&self.reg.pending_sa, over_pending) {
            (Some(sa), true) => self.protected_request_peer(sa),
            _ => self.request_peer(),
        };
        self.reg.cseq += 1;
        let impu = self.cfg.impu.as_str().to_owned();
        let p = self.cfg.profile.clone();
        let contact = if expires == 0 {
            // TS 24.229 §5.1.1.6.1: the binding's +sip.instance names what is removed (the
            // registrar keys instance bindings by it, RFC 5626 §6).
            format!(
                "<{}>;expires=0;+sip.instance={}",
                self.contact_uri(),
                self.cfg.profile.instance(self.cfg.serial)
            )
        } else {
            format!("{};expires={expires}", self.contact())
        };
        let mut d = Draft::request("REGISTER", &uri)
            .h("Via", self.via(&peer))
            .h("Max-Forwards", 70)
            .h("From", format!("<{impu}>;tag={}", self.reg.from_tag))
            .h("To", format!("<{impu}>"))
            .h("Call-ID", &self.reg.call_id)
            .h("CSeq", format!("{} REGISTER", self.reg.cseq))
            .h("Contact", contact)
            .h("Expires", expires)
            .h("Authorization", auth)
            .h("Supported", p.register_supported)
            .h("Allow", p.allow)
            .h("User-Agent", p.user_agent)
            .h("P-Access-Network-Info", p.access_network_info);
        if let Some(sc) = &self.reg.security_client {
            d = d
                .h("Require", "sec-agree")
                .h("Proxy-Require", "sec-agree")
                .h("Security-Client", sc);
            let verify = if over_pending {
                self.reg.pending_sa.as_ref()
            } else {
                self.reg.sa.as_ref()
            };
            if let Some(v) = verify {
                d = d.h("Security-Verify", &v.security_server);
            }
        }
        let msg = d.build()?;
        self.send(now, msg, peer, Purpose::Register);
        Ok(())
    }

    pub(crate) fn on_register_response(&mut self, now: Instant, resp: Message) {
        let Some(status) = resp.status() else { return };
        if status.is_provisional() {
            return;
        }
        // A late answer to an earlier REGISTER (say the de-REGISTER's 200 arriving after the
        // reg-event NOTIFY ended the registration and a new REGISTER left): not ours to act on.
        if resp.cseq().is_ok_and(|c| c.seq != self.reg.cseq) {
            self.diag(
                "register",
                Outcome::Info,
                format!("late {} to an earlier REGISTER ignored", status.as_u16()),
            );
            return;
        }
        match status.as_u16() {
            200..=299 => self.register_ok(now, &resp),
            401 => self.on_challenge(now, &resp),
            423 => {
                let min = resp
                    .header_str(&HeaderName::MIN_EXPIRES)
                    .and_then(Result::ok)
                    .and_then(|v| v.trim().parse::<u32>().ok());
                match min {
                    Some(m) if self.reg.rounds < MAX_ROUNDS => {
                        self.reg.rounds += 1;
                        self.reg.asked_expires = m;
                        if let Err(e) = self.send_register(now, m, None) {
                            self.registration_failed(now, Some(423), e.to_string());
                        }
                    }
                    _ => self.registration_failed(now, Some(423), "423 without Min-Expires".into()),
                }
            }
            code => {
                let reason =
                    String::from_utf8_lossy(resp.reason_phrase().unwrap_or_default()).into_owned();
                self.registration_failed(now, Some(code), format!("{code} {reason}"));
            }
        }
    }

    fn on_challenge(&mut self, now: Instant, resp: &Message) {
        self.reg.rounds += 1;
        if self.reg.rounds > MAX_ROUNDS {
            self.registration_failed(now, Some(401), "too many challenges".into());
            return;
        }
        let Some(Ok(ch)) = resp.typed::<Auth<'_>>(&HeaderName::WWW_AUTHENTICATE) else {
            self.registration_failed(now, Some(401), "401 without WWW-Authenticate".into());
            return;
        };
        let ch = ch.into_owned();
        let algorithm = match ch.algorithm().map(|a| a.as_str().to_owned()) {
            None => DigestAlgorithm::Md5,
            Some(a) => match a.parse::<DigestAlgorithm>() {
                Ok(a) => a,
                Err(_) => {
                    self.registration_failed(now, Some(401), format!("unsupported algorithm {a}"));
                    return;
                }
            },
        };
        let realm = ch.realm().unwrap_or(self.cfg.domain.as_str()).to_owned();
        let nonce = ch.nonce().unwrap_or_default().to_owned();
        let qop = ch.qop().and_then(|q| {
            q.split(',')
                .map(str::trim)
                .find_map(|t| t.parse::<Qop>().ok().filter(|q| *q == Qop::Auth))
        });
        let impi = self.cfg.impi.as_str().to_owned();
        let uri = format!("sip:{}", self.cfg.domain.as_str());
        let mut keys = None;
        let mut auts = None;
        let ha1 = if algorithm.is_aka() {
            match self.aka(&nonce) {
                AkaOutcome::Ok { res, ck, ik } => {
                    let h = Ha1::aka(algorithm, &impi, &realm, &res, &ik, &ck);
                    keys = Some((ck, ik));
                    self.diag(
                        "aka",
                        Outcome::Ok,
                        format!("{algorithm} challenge answered"),
                    );
                    match h {
                        Ok(h) => h,
                        Err(e) => {
                            self.registration_failed(now, Some(401), e.to_string());
                            return;
                        }
                    }
                }
                AkaOutcome::Sync(a) => {
                    self.diag(
                        "resync",
                        Outcome::Info,
                        "SQN out of range: sending AUTS (TS 33.203 §6.1.2)",
                    );
                    auts = Some(a);
                    Ha1::empty_password(&impi, &realm)
                }
                AkaOutcome::MacFailure => {
                    self.diag(
                        "aka",
                        Outcome::Failed,
                        "AUTN rejected: MAC failure (the network does not know our K)",
                    );
                    let a = format!(
                        "Digest username=\"{impi}\", realm=\"{realm}\", nonce=\"{nonce}\", \
                         uri=\"{uri}\", response=\"\", algorithm={}",
                        algorithm.as_str()
                    );
                    self.reg.challenge = None;
                    if let Err(e) =
                        self.send_register(now, self.reg.asked_expires, Some((a, false)))
                    {
                        self.registration_failed(now, Some(401), e.to_string());
                    }
                    return;
                }
                AkaOutcome::Unusable(why) => {
                    self.registration_failed(now, Some(401), why);
                    return;
                }
            }
        } else {
            match &self.cfg.credentials.password {
                Some(pw) => Ha1::new(&impi, &realm, pw.as_bytes()),
                None => {
                    self.registration_failed(
                        now,
                        Some(401),
                        "MD5 challenge but no password".into(),
                    );
                    return;
                }
            }
        };
        let challenge = Challenge {
            realm,
            nonce,
            algorithm,
            opaque: ch.opaque().map(str::to_owned),
            qop,
            ha1,
            nc: 1,
        };
        let header = digest_header(&impi, &uri, &challenge, auts.as_deref(), None);
        self.reg.challenge = Some(challenge);
        // Security agreement: the SAs from CK/IK and the 401's Security-Server.
        let mut over_pending = false;
        if auts.is_none()
            && let Some((ck, ik)) = keys
            && self.cfg.ipsec.is_some()
        {
            match self.build_sas(resp, &ck, &ik) {
                Ok(set) => {
                    self.diag(
                        "sec-agree",
                        Outcome::Ok,
                        format!(
                            "SAs with {} / {}: spi-c {} spi-s {} port-c {} port-s {}",
                            set.bundle.suite().integrity.token(),
                            set.bundle.suite().encryption.token(),
                            set.bundle.local.spi_c.0,
                            set.bundle.local.spi_s.0,
                            set.bundle.local.port_c,
                            set.bundle.local.port_s
                        ),
                    );
                    self.out
                        .push_back(Output::InstallSa(Box::new(set.bundle.clone())));
                    if let Some(old) = self.reg.pending_sa.replace(set) {
                        self.out.push_back(Output::RemoveSa(Box::new(old.bundle)));
                    }
                    over_pending = true;
                }
                Err(why) => {
                    self.diag("sec-agree", Outcome::Failed, why.clone());
                    self.registration_failed(now, Some(401), why);
                    return;
                }
            }
        }
        if let Err(e) =
            self.send_register(now, self.reg.asked_expires, Some((header, over_pending)))
        {
            self.registration_failed(now, Some(401), e.to_string());
        }
    }

    fn build_sas(
        &mut self,
        resp: &Message,
        ck: &imslab_types::Ck,
        ik: &imslab_types::Ik,
    ) -> Result<SaSet, String> {
        let values: Vec<String> = resp
            .values(&HeaderName::SECURITY_SERVER)
            .map(|v| String::from_utf8_lossy(v).into_owned())
            .collect();
        if values.is_empty() {
            return Err("401 without Security-Server: the P-CSCF did not agree on IPsec".into());
        }
        let mut mechs = Vec::new();
        for v in &values {
            mechs.extend(parse_value(v).map_err(|e| format!("bad Security-Server: {e}"))?);
        }
        let offered = self.cfg.offers();
        // RFC 3329 §2.3.1: the mechanism of highest preference (q) the client supports.
        let mut best: Option<(u16, IpsecMechanism)> = None;
        for m in &mechs {
            let Ok(im) = IpsecMechanism::from_mechanism(m) else {
                continue;
            };
            if !im.is_usable() || !offered.contains(&im.suite) {
                continue;
            }
            let q = im.q.map_or(1000, |q| q.thousandths());
            if best.as_ref().is_none_or(|(bq, _)| q > *bq) {
                best = Some((q, im));
            }
        }
        let (_, server) =
            best.ok_or_else(|| "Security-Server offers no mechanism we offered".to_string())?;
        let (spi_c, spi_s, port_c) = self
            .reg
            .offer
            .ok_or_else(|| "no Security-Client offer in progress".to_string())?;
        let port_s = self.cfg.ipsec.as_ref().map_or(0, |s| s.ports.port_s);
        let local = Endpoint {
            ip: self.cfg.local_ip,
            spi_c,
            spi_s,
            port_c,
            port_s,
        };
        let remote = Endpoint {
            ip: self.cfg.pcscf.ip(),
            spi_c: server.spi_c,
            spi_s: server.spi_s,
            port_c: server.port_c,
            port_s: server.port_s,
        };
        let keys = EspKeys::derive(server.suite, ik, ck);
        Ok(SaSet {
            bundle: SaBundle::new(local, remote, keys),
            security_server: print_list(&mechs),
        })
    }

    fn aka(&mut self, nonce: &str) -> AkaOutcome {
        let Some(usim) = self.usim.as_mut() else {
            return AkaOutcome::Unusable("AKA challenge but the UE has no K/OPc".into());
        };
        match usim.authenticate_nonce(nonce) {
            Ok(r) => AkaOutcome::Ok {
                res: r.res,
                ck: r.ck,
                ik: r.ik,
            },
            Err(imslab_aka::Error::SyncFailure { auts, .. }) => AkaOutcome::Sync(auts.to_base64()),
            Err(imslab_aka::Error::MacFailure) if self.cfg.ignore_mac_failure => {
                // Answer anyway, as a card that skips the MAC check would: RES from f2.
                let Some((k, op)) = self.cfg.credentials.aka.as_ref() else {
                    return AkaOutcome::MacFailure;
                };
                let m = match op {
                    OperatorKey::Opc(opc) => Milenage::new(k, opc),
                    OperatorKey::Op(op) => Milenage::with_op(k, op),
                };
                match imslab_aka::Nonce::parse(nonce) {
                    Ok(n) => {
                        let f = m.f2345(&n.rand);
                        AkaOutcome::Ok {
                            res: f.res,
                            ck: f.ck,
                            ik: f.ik,
                        }
                    }
                    Err(e) => AkaOutcome::Unusable(format!("bad nonce: {e}")),
                }
            }
            Err(imslab_aka::Error::MacFailure) => AkaOutcome::MacFailure,
            Err(e) => AkaOutcome::Unusable(format!("AUTN rejected: {e}")),
        }
    }

    fn register_ok(&mut self, now: Instant, resp: &Message) {
        let dereg = self.reg.phase == Phase::Deregistering || self.reg.asked_expires == 0;
        // The SA set the 200 came over becomes the one in use; the previous one goes.
        if let Some(new) = self.reg.pending_sa.take()
            && let Some(old) = self.reg.sa.replace(new)
        {
            self.out.push_back(Output::RemoveSa(Box::new(old.bundle)));
        }
        if dereg {
            self.ended("unregistered");
            return;
        }
        self.reg.service_route = resp
            .values(&HeaderName::SERVICE_ROUTE)
            .map(|v| String::from_utf8_lossy(v).trim().to_owned())
            .collect();
        self.reg.associated = resp
            .values(&HeaderName::P_ASSOCIATED_URI)
            .map(|v| String::from_utf8_lossy(v).trim().to_owned())
            .collect();
        let mine = self.contact_uri();
        let granted = resp
            .contacts()
            .flatten()
            .filter_map(|c| {
                let a = c.addr()?;
                same_contact(&a.uri.to_string(), &mine).then(|| c.expires().ok().flatten())?
            })
            .next()
            .or_else(|| resp.expires().ok().flatten())
            .unwrap_or(self.reg.asked_expires);
        self.reg.phase = Phase::Registered;
        self.reg.was_registered = true;
        self.reg.expires_at = Some(now + secs(granted));
        // TS 24.229 §5.1.1.4.1: refresh 600 s before expiry, or at half time for short ones.
        self.reg.refresh_at = self.cfg.auto_refresh.then(|| {
            let before = if granted > 1200 {
                granted - 600
            } else {
                granted / 2
            };
            now + secs(before)
        });
        self.diag(
            "register",
            Outcome::Ok,
            format!("registered for {granted} s"),
        );
        self.emit(Event::Registered { expires: granted });
    }

    pub(crate) fn registration_failed(
        &mut self,
        now: Instant,
        status: Option<u16>,
        reason: String,
    ) {
        let _ = now;
        if let Some(p) = self.reg.pending_sa.take() {
            self.out.push_back(Output::RemoveSa(Box::new(p.bundle)));
        }
        self.reg.phase = if self.reg.sa.is_some() && self.reg.was_registered {
            Phase::Registered
        } else {
            Phase::Idle
        };
        self.diag("register", Outcome::Failed, reason.clone());
        self.emit(Event::RegistrationFailed { status, reason });
    }

    /// The registration is over: drop SAs and state. After an expiry the SAs stay for
    /// [`SA_GRACE`] more (TS 24.229 §5.1.1.2.1: the SA lifetime is the registration's plus 30 s),
    /// so the network's NOTIFY about it still decrypts.
    fn ended(&mut self, reason: &str) {
        let now_sets = [self.reg.sa.take(), self.reg.pending_sa.take()];
        for s in now_sets.into_iter().flatten() {
            match (reason, self.reg.expires_at) {
                ("expired", Some(at)) if self.reg.lingering.is_none() => {
                    self.reg.lingering = Some((at + SA_GRACE, s));
                }
                _ => self.out.push_back(Output::RemoveSa(Box::new(s.bundle))),
            }
        }
        self.reg.phase = Phase::Idle;
        self.reg.was_registered = false;
        self.reg.refresh_at = None;
        self.reg.expires_at = None;
        self.reg.service_route.clear();
        self.reg.challenge = None;
        self.diag("deregister", Outcome::Info, reason.to_owned());
        self.emit(Event::Deregistered {
            reason: reason.to_owned(),
        });
    }

    /// The network ended the registration (reg-event NOTIFY, TS 24.229 §5.1.1.7).
    pub(crate) fn network_deregistered(&mut self, event: &str) {
        self.ended(event);
    }

    pub(crate) fn registration_timers(&mut self, now: Instant) {
        if let Some((at, _)) = &self.reg.lingering
            && now >= *at
            && let Some((_, s)) = self.reg.lingering.take()
        {
            self.out.push_back(Output::RemoveSa(Box::new(s.bundle)));
        }
        if let Some(at) = self.reg.expires_at
            && now >= at
        {
            self.ended("expired");
            return;
        }
        if let Some(at) = self.reg.refresh_at
            && now >= at
        {
            self.reg.refresh_at = None;
            if let Err(e) = self.register(now, Some(self.reg.asked_expires)) {
                self.registration_failed(now, None, e.to_string());
            }
        }
    }

    /// The protected server address of the P-CSCF, when SAs exist.
    pub fn pcscf_protected(&self) -> Option<SocketAddr> {
        self.reg
            .sa
            .as_ref()
            .map(|s| SocketAddr::new(s.bundle.remote.ip, s.bundle.remote.port_s))
    }

    /// Seconds left of the registration.
    pub fn remaining(&self, now: Instant) -> Option<Duration> {
        self.reg
            .expires_at
            .map(|e| e.saturating_duration_since(now))
    }
}

enum AkaOutcome {
    Ok {
        res: imslab_aka::Res,
        ck: imslab_types::Ck,
        ik: imslab_types::Ik,
    },
    Sync(String),
    MacFailure,
    Unusable(String),
}

/// The Authorization value answering `ch` (RFC 2617 §3.2.2, RFC 3310 §3.4 for `auts`).
fn digest_header(
    impi: &str,
    uri: &str,
    ch: &Challenge,
    auts: Option<&str>,
    body: Option<&[u8]>,
) -> String {
    let cnonce = format!("{:08x}", ch.nc.wrapping_mul(0x9e37_79b9) ^ 0x5a5a_5a5a);
    let nc = NonceCount::new(ch.nc);
    let qop = ch.qop.map(|qop| QopParams {
        qop,
        nc,
        cnonce: &cnonce,
    });
    let req = DigestRequest {
        nonce: &ch.nonce,
        method: "REGISTER",
        uri,
        qop,
        body: body.unwrap_or_default(),
    };
    let response = digest::response(&ch.ha1, &req).to_hex();
    let mut s = format!(
        "Digest username=\"{impi}\", realm=\"{}\", nonce=\"{}\", uri=\"{uri}\", \
         response=\"{response}\", algorithm={}",
        ch.realm,
        ch.nonce,
        ch.algorithm.as_str()
    );
    if let Some(q) = &qop {
        s.push_str(&format!(
            ", qop={}, nc={}, cnonce=\"{cnonce}\"",
            q.qop.as_str(),
            q.nc.as_str()
        ));
    }
    if let Some(o) = &ch.opaque {
        s.push_str(&format!(", opaque=\"{o}\""));
    }
    if let Some(a) = auts {
        s.push_str(&format!(", auts=\"{a}\""));
    }
    s
}
