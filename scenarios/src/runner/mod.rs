//! The replay runner: starts the scenario's soft UEs, runs the steps in order with a log line
//! per step, stops at the first failed expectation saying what was expected and what came, and
//! reports (JUnit XML, pcap with ESP keys).

pub mod cx;
pub mod http;
pub mod junit;
pub mod lab;

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::path::PathBuf;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use imslab_sip::{HeaderName, Message, Method};
use imslab_store::Store;
use serde::Serialize;
use serde_saphyr::Spanned;
use tokio::sync::Mutex as AsyncMutex;

use crate::Error;
use crate::capture::Capture;
use crate::scenario::model::{Expect, Scenario, StatusSpec, Step, UeSpec};
use crate::ue::{
    CallOptions, CallState, EspHubs, Event, Purpose, Rejection, Role, UeCore, UeHandle,
};
pub use lab::Lab;

/// What the binary passes to [`crate::replay`].
#[derive(Debug, Clone)]
pub struct ReplayOptions {
    /// The scenario file.
    pub scenario: PathBuf,
    /// The lab's addresses ([`Lab::from_config`]).
    pub lab: Lab,
    /// The subscriber store, for UEs named by IMSI (the binary opens it from the config).
    pub store: Option<Store>,
    /// Write a JUnit report here.
    pub junit: Option<PathBuf>,
    /// Write the capture here (and the ESP keys beside it, `.esp_sa`).
    pub pcap: Option<PathBuf>,
    /// Load mode from the command line (overrides the file's `load`).
    pub load: Option<crate::load::LoadSettings>,
    /// Print the step log on stdout.
    pub print_log: bool,
}

/// The outcome of one step.
#[derive(Debug, Clone, Serialize)]
pub struct StepResult {
    /// `#3 register alice` style label.
    pub label: String,
    /// The step keyword.
    pub keyword: &'static str,
    /// Line in the scenario file.
    pub line: u64,
    /// Whether it passed.
    pub passed: bool,
    /// Failure message: expected and received.
    pub message: Option<String>,
    /// Duration.
    pub seconds: f64,
}

/// The outcome of a replay.
#[derive(Debug, Clone, Serialize)]
pub struct ReplayReport {
    /// The scenario's name.
    pub name: String,
    /// Every step run, in order.
    pub steps: Vec<StepResult>,
    /// The first failure, if any.
    pub failure: Option<String>,
    /// Total run time, seconds.
    pub seconds: f64,
    /// The log lines.
    pub log: Vec<String>,
    /// The load report, in load mode.
    pub load: Option<crate::load::LoadReport>,
    /// The pcap written, if any.
    pub pcap: Option<PathBuf>,
    /// The Wireshark ESP SA file written, if any.
    pub esp_keys: Option<PathBuf>,
}

impl ReplayReport {
    /// True when every step passed (and, in load mode, no virtual UE failed).
    pub fn passed(&self) -> bool {
        self.failure.is_none()
            && self
                .load
                .as_ref()
                .is_none_or(|l| l.failures_total() == 0 && l.attempts > 0)
    }

    /// The process exit code the binary should use: 0 passed, 1 failed.
    pub fn exit_code(&self) -> u8 {
        u8::from(!self.passed())
    }
}

/// A UE of a running scenario with its unconsumed events.
pub(crate) struct Slot {
    pub(crate) handle: UeHandle,
    pub(crate) buffer: VecDeque<(Instant, Event)>,
    pub(crate) impu: String,
    pub(crate) imsi: Option<String>,
}

/// The state of one run.
pub(crate) struct Runner {
    pub(crate) lab: Lab,
    pub(crate) ues: HashMap<String, AsyncMutex<Slot>>,
    pub(crate) started: Instant,
    pub(crate) timeout: Duration,
    pub(crate) print: bool,
    pub(crate) log: Mutex<Vec<String>>,
    pub(crate) results: Mutex<Vec<StepResult>>,
    pub(crate) counter: Mutex<u32>,
    pub(crate) cx: AsyncMutex<Option<cx::CxClient>>,
    /// Per-step timings (keyword and index → seconds), for load mode.
    pub(crate) timings: Mutex<Vec<(String, f64)>>,
}

/// Starts the scenario's UEs.
pub(crate) async fn start_ues(
    ues: &BTreeMap<String, UeSpec>,
    lab: &Lab,
    store: Option<&Store>,
    hubs: &EspHubs,
    capture: Option<&Arc<Capture>>,
    serial_base: u32,
    seed: u64,
) -> Result<HashMap<String, AsyncMutex<Slot>>, Error> {
    let mut out = HashMap::new();
    for (i, (name, spec)) in ues.iter().enumerate() {
        let wants_ipsec = !matches!(
            spec.ipsec,
            Some(crate::scenario::model::IpsecSpec::Enabled(false))
        );
        let ip = spec.address.unwrap_or(lab.ue_address);
        let hub = if wants_ipsec {
            Some(hubs.get(ip)?)
        } else {
            None
        };
        let ports = hub.as_ref().map(|h| h.allocate_ports());
        let serial = serial_base.wrapping_add(i as u32);
        let cfg = lab::ue_config(name, spec, lab, store, ports, serial).await?;
        let impu = cfg.impu.as_str().to_owned();
        let imsi = cfg.imsi.as_ref().map(|i| i.as_str().to_owned());
        let core = UeCore::new(cfg, seed ^ (u64::from(serial) << 17) ^ (i as u64 + 1));
        let handle = UeHandle::start(core, hub, capture.cloned()).await?;
        out.insert(
            name.clone(),
            AsyncMutex::new(Slot {
                handle,
                buffer: VecDeque::new(),
                impu,
                imsi,
            }),
        );
    }
    Ok(out)
}

fn random_seed() -> u64 {
    use rand::RngCore as _;
    rand::rng().next_u64()
}

/// Loads and runs a scenario (see [`ReplayOptions`]).
pub async fn replay(opts: ReplayOptions) -> Result<ReplayReport, Error> {
    let sc = crate::scenario::load(&opts.scenario, &opts.lab.variables())?;
    if opts.load.is_some() || sc.load.is_some() {
        return crate::load::run_load(sc, &opts).await;
    }
    run_scenario(&sc, &opts).await
}

/// Runs an already loaded scenario once.
pub async fn run_scenario(sc: &Scenario, opts: &ReplayOptions) -> Result<ReplayReport, Error> {
    let capture = match &opts.pcap {
        Some(p) => Some(Capture::create(p)?),
        None => None,
    };
    let hubs = EspHubs::new(capture.clone());
    let ues = start_ues(
        &sc.ues,
        &opts.lab,
        opts.store.as_ref(),
        &hubs,
        capture.as_ref(),
        1,
        random_seed(),
    )
    .await?;
    let runner = Runner::new(opts.lab.clone(), ues, sc.timeout, opts.print_log);
    runner.say(format!(
        "scenario {}: {}",
        sc.name,
        sc.description.as_deref().unwrap_or("")
    ));
    let outcome = runner.run_steps(&sc.steps, String::new()).await;
    let failure = outcome.err().map(|e| {
        let msg = e.to_string();
        runner.say(format!("FAILED: {msg}"));
        if let Some(r) = &sc.requires {
            runner.say(format!("(this scenario requires: {r})"));
        }
        msg
    });
    if failure.is_none() {
        runner.say(format!(
            "PASSED: {} steps in {:.3} s",
            runner.results_len(),
            runner.started.elapsed().as_secs_f64()
        ));
    }
    let steps = runner.results();
    let seconds = runner.started.elapsed().as_secs_f64();
    // Every UE stops (SAs removed, sockets closed) before the capture is closed.
    let log = runner.shutdown().await;
    let esp_keys = match &capture {
        Some(c) => c.finish()?,
        None => None,
    };
    let report = ReplayReport {
        name: sc.name.clone(),
        steps,
        failure,
        seconds,
        log,
        load: None,
        pcap: opts.pcap.clone(),
        esp_keys,
    };
    if let Some(j) = &opts.junit {
        junit::write(j, &report)?;
    }
    Ok(report)
}

fn summarize(e: &Event) -> String {
    match e {
        Event::Response { purpose, response } => format!(
            "{} {} to {:?}",
            response.status().map_or(0, |s| s.as_u16()),
            String::from_utf8_lossy(response.reason_phrase().unwrap_or_default()),
            purpose
        ),
        Event::Request { request } => {
            format!("{} request", request.method().map_or("?", Method::as_str))
        }
        Event::Registered { expires } => format!("registered ({expires} s)"),
        Event::RegistrationFailed { status, reason } => {
            format!("registration failed ({status:?}: {reason})")
        }
        Event::Deregistered { reason } => format!("deregistered ({reason})"),
        Event::Call { call_id, state } => format!("call {call_id} {state:?}"),
        Event::Sms { text, .. } => format!("SMS {text:?}"),
        Event::Failed { purpose, reason } => format!("{purpose:?} failed: {reason}"),
        Event::Diagnosis {
            step,
            outcome,
            reason,
        } => format!("{step} {outcome:?} {}", reason.as_deref().unwrap_or("")),
        Event::Sent { line, protected } => {
            format!("→ {line}{}", if *protected { " (ESP)" } else { "" })
        }
    }
}

fn first_line(m: &Message) -> String {
    let b = m.to_bytes();
    b.split(|c| *c == b'\r')
        .next()
        .map(|l| String::from_utf8_lossy(l).into_owned())
        .unwrap_or_default()
}

/// Checks a message against an expectation; `Err` says what differs.
pub(crate) fn check_message(e: &Expect, msg: Option<&Message>) -> Result<(), String> {
    let status = msg.and_then(Message::status).map(|s| s.as_u16());
    if let (Some(want), Some(m)) = (&e.status, msg)
        && m.is_request()
    {
        return Err(format!("expected status {want}, got a request"));
    }
    if let Some(want) = &e.status {
        match status {
            Some(s) if want.accepts(s) => {}
            Some(s) => return Err(format!("expected status {want}, got {s}")),
            None => return Err(format!("expected status {want}, got no response")),
        }
    }
    for (h, re) in &e.headers {
        let Some(m) = msg else {
            return Err(format!("expected header {h} ~ /{re}/, got no message"));
        };
        let re = regex::Regex::new(re).map_err(|err| err.to_string())?;
        let name = HeaderName::new(h.clone()).ok_or_else(|| format!("bad header name {h}"))?;
        let values: Vec<String> = m
            .fields_named(&name)
            .map(|f| String::from_utf8_lossy(f.value()).into_owned())
            .collect();
        if !values.iter().any(|v| re.is_match(v)) {
            return Err(format!(
                "expected header {h} ~ /{re}/, got {}",
                if values.is_empty() {
                    "no such header".to_owned()
                } else {
                    values.join(" | ")
                }
            ));
        }
    }
    for h in &e.absent {
        if let (Some(m), Some(name)) = (msg, HeaderName::new(h.clone()))
            && m.has_header(&name)
        {
            return Err(format!("expected no {h} header, got one"));
        }
    }
    if let Some(needle) = &e.body_contains {
        let body = msg
            .map(|m| String::from_utf8_lossy(m.body()).into_owned())
            .unwrap_or_default();
        if !body.contains(needle.as_str()) {
            return Err(format!(
                "expected the body to contain {needle:?}, got {:?}",
                body.chars().take(300).collect::<String>()
            ));
        }
    }
    Ok(())
}

fn ok_status() -> StatusSpec {
    StatusSpec::Any(vec![200, 202])
}

impl Runner {
    pub(crate) fn new(
        lab: Lab,
        ues: HashMap<String, AsyncMutex<Slot>>,
        timeout: Option<Duration>,
        print: bool,
    ) -> Self {
        Self {
            lab,
            ues,
            started: Instant::now(),
            timeout: timeout.unwrap_or(Duration::from_secs(10)),
            print,
            log: Mutex::new(Vec::new()),
            results: Mutex::new(Vec::new()),
            counter: Mutex::new(0),
            cx: AsyncMutex::new(None),
            timings: Mutex::new(Vec::new()),
        }
    }

    pub(crate) fn say(&self, line: String) {
        let line = format!("[{:8.3}s] {line}", self.started.elapsed().as_secs_f64());
        if self.print {
            println!("{line}");
        }
        self.log
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(line);
    }

    fn results_len(&self) -> usize {
        self.results
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .len()
    }

    pub(crate) fn results(&self) -> Vec<StepResult> {
        self.results
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    pub(crate) fn log_lines(&self) -> Vec<String> {
        self.log
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    pub(crate) async fn shutdown(self) -> Vec<String> {
        if let Some(c) = self.cx.lock().await.take() {
            c.close().await;
        }
        let log = self.log_lines();
        for (_, slot) in self.ues {
            slot.into_inner().handle.stop().await;
        }
        log
    }

    fn next_number(&self) -> u32 {
        let mut c = self.counter.lock().unwrap_or_else(PoisonError::into_inner);
        *c += 1;
        *c
    }

    pub(crate) fn run_steps<'a>(
        &'a self,
        steps: &'a [Spanned<Step>],
        prefix: String,
    ) -> std::pin::Pin<Box<dyn Future<Output = Result<(), Error>> + Send + 'a>> {
        Box::pin(async move {
            for (i, s) in steps.iter().enumerate() {
                self.run_step(s, &format!("{prefix}{}", i + 1)).await?;
            }
            Ok(())
        })
    }

    async fn run_step(&self, s: &Spanned<Step>, index: &str) -> Result<(), Error> {
        let step = &s.value;
        let n = self.next_number();
        let label = format!("#{n} {} {}", step.keyword(), describe(step));
        let line = s.referenced.line();
        match step {
            Step::Repeat(r) => {
                self.say(format!("{label} (line {line})"));
                for k in 0..r.times {
                    self.run_steps(&r.steps, format!("{index}.{}.", k + 1))
                        .await?;
                }
                return Ok(());
            }
            Step::Parallel(branches) => {
                self.say(format!("{label} (line {line})"));
                let futs = branches
                    .iter()
                    .enumerate()
                    .map(|(b, steps)| self.run_steps(steps, format!("{index}.{}.", b + 1)));
                let results = futures_util::future::join_all(futs).await;
                for r in results {
                    r?;
                }
                return Ok(());
            }
            _ => {}
        }
        let t0 = Instant::now();
        let outcome = self.exec(step, t0).await;
        let secs = t0.elapsed().as_secs_f64();
        self.timings
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push((format!("{index} {}", step.keyword()), secs));
        let (passed, message) = match &outcome {
            Ok(detail) => {
                self.say(format!(
                    "{label} ... ok{} ({:.0} ms)",
                    if detail.is_empty() {
                        String::new()
                    } else {
                        format!(": {detail}")
                    },
                    secs * 1000.0
                ));
                (true, None)
            }
            Err(m) => {
                self.say(format!("{label} (line {line}) ... FAILED: {m}"));
                (false, Some(m.clone()))
            }
        };
        self.results
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(StepResult {
                label: label.clone(),
                keyword: step.keyword(),
                line,
                passed,
                message: message.clone(),
                seconds: secs,
            });
        match message {
            None => Ok(()),
            Some(m) => Err(Error::StepFailed {
                step: format!("{label} (line {line})"),
                message: m,
            }),
        }
    }

    fn slot(&self, ue: &str) -> Result<&AsyncMutex<Slot>, String> {
        self.ues.get(ue).ok_or_else(|| format!("unknown UE {ue}"))
    }

    /// Runs `f` on the UE's core.
    async fn on_ue<R: Send + 'static>(
        &self,
        ue: &str,
        f: impl FnOnce(&mut UeCore, Instant) -> R + Send + 'static,
    ) -> Result<R, String> {
        let slot = self.slot(ue)?.lock().await;
        slot.handle
            .with(f)
            .await
            .ok_or_else(|| format!("UE {ue} has stopped"))
    }

    /// Waits until `pick` accepts an event of `ue`; earlier responses are dropped, other
    /// events stay for later steps. Diagnoses go to the log.
    async fn wait_for<T>(
        &self,
        ue: &str,
        deadline: Instant,
        mut pick: impl FnMut(&Event) -> Option<T>,
    ) -> Result<(T, Instant), String> {
        let mut slot = self.slot(ue)?.lock().await;
        let mut seen = Vec::new();
        let mut i = 0;
        while i < slot.buffer.len() {
            if let Some((at, e)) = slot.buffer.get(i)
                && let Some(t) = pick(e)
            {
                let at = *at;
                slot.buffer.remove(i);
                let mut j = 0;
                while j < i.min(slot.buffer.len()) {
                    if matches!(slot.buffer.get(j), Some((_, Event::Response { .. }))) {
                        slot.buffer.remove(j);
                        i -= 1;
                    } else {
                        j += 1;
                    }
                }
                return Ok((t, at));
            }
            i += 1;
        }
        loop {
            let next = tokio::time::timeout_at(deadline.into(), slot.handle.events.recv()).await;
            match next {
                Ok(Some(e)) => {
                    let at = Instant::now();
                    match &e {
                        Event::Diagnosis { .. } | Event::Sent { .. } => {
                            self.say(format!("    {ue}: {}", summarize(&e)));
                            continue;
                        }
                        Event::Response { response: m, .. } | Event::Request { request: m } => {
                            self.say(format!("    {ue}: ← {}", first_line(m)));
                        }
                        _ => {}
                    }
                    if let Some(t) = pick(&e) {
                        slot.buffer
                            .retain(|(_, b)| !matches!(b, Event::Response { .. }));
                        return Ok((t, at));
                    }
                    seen.push(summarize(&e));
                    slot.buffer.push_back((at, e));
                    if slot.buffer.len() > 256 {
                        slot.buffer.pop_front();
                    }
                }
                Ok(None) => return Err(format!("UE {ue} stopped")),
                Err(_) => {
                    let got = if seen.is_empty() {
                        "nothing".to_owned()
                    } else {
                        seen.join("; ")
                    };
                    return Err(format!("timed out; meanwhile got: {got}"));
                }
            }
        }
    }

    fn deadline(&self, t0: Instant, e: Option<&Expect>) -> Instant {
        t0 + e.and_then(|e| e.within).unwrap_or(self.timeout)
    }

    /// The Call-ID of `ue`'s incoming call that is not answered yet, waiting for it to ring.
    async fn ringing_call(&self, ue: &str, deadline: Instant) -> Result<String, String> {
        let call = self
            .on_ue(ue, |c, _| {
                c.call_in_state(
                    Role::Callee,
                    &[CallState::Trying, CallState::Early, CallState::Ringing],
                )
            })
            .await?;
        if let Some(id) = call {
            return Ok(id);
        }
        let (id, _) = self
            .wait_for(ue, deadline, |e| match e {
                Event::Call {
                    call_id,
                    state: CallState::Ringing | CallState::Early,
                } => Some(call_id.clone()),
                _ => None,
            })
            .await?;
        Ok(id)
    }

    fn impu_of(&self, name_or_uri: &str) -> String {
        if let Some(s) = self.ues.get(name_or_uri)
            && let Ok(slot) = s.try_lock()
        {
            return slot.impu.clone();
        }
        name_or_uri.to_owned()
    }

    async fn imsi_of(&self, name_or_imsi: &str) -> String {
        if let Some(s) = self.ues.get(name_or_imsi) {
            let slot = s.lock().await;
            if let Some(i) = &slot.imsi {
                return i.clone();
            }
        }
        name_or_imsi.to_owned()
    }

    /// Waits for the final response of a request with this purpose and checks it.
    async fn final_response(
        &self,
        ue: &str,
        t0: Instant,
        expect: Option<&Expect>,
        default: StatusSpec,
        want: impl Fn(&Purpose) -> bool,
    ) -> Result<String, String> {
        let deadline = self.deadline(t0, expect);
        let (msg, at) = self
            .wait_for(ue, deadline, |e| match e {
                Event::Response { purpose, response }
                    if want(purpose) && response.status().is_some_and(|s| s.is_final()) =>
                {
                    Some(Some(response.clone()))
                }
                Event::Failed { purpose, .. } if want(purpose) => Some(None),
                _ => None,
            })
            .await?;
        let e = expect.cloned().unwrap_or_default();
        let e = Expect {
            status: e.status.clone().or(Some(default)),
            ..e
        };
        check_message(&e, msg.as_ref())?;
        check_after(&e, t0, at)?;
        Ok(msg
            .and_then(|m| m.status())
            .map(|s| s.as_u16().to_string())
            .unwrap_or_default())
    }

    async fn exec(&self, step: &Step, t0: Instant) -> Result<String, String> {
        match step {
            Step::Register(a) | Step::Reregister(a) => {
                let exp = a.expires;
                self.on_ue(&a.ue, move |c, now| c.register(now, exp))
                    .await?
                    .map_err(|e| e.to_string())?;
                self.registration_outcome(&a.ue, t0, a.expect.as_ref(), true)
                    .await
            }
            Step::Deregister(a) => {
                self.on_ue(&a.ue, |c, now| c.deregister(now))
                    .await?
                    .map_err(|e| e.to_string())?;
                self.registration_outcome(&a.ue, t0, a.expect.as_ref(), false)
                    .await
            }
            Step::Subscribe(a) => {
                let exp = a.expires.unwrap_or(600_000);
                self.on_ue(&a.ue, move |c, now| c.subscribe_reg(now, exp))
                    .await?
                    .map_err(|e| e.to_string())?;
                self.final_response(&a.ue, t0, a.expect.as_ref(), ok_status(), |p| {
                    *p == Purpose::Subscribe
                })
                .await
            }
            Step::Call(c) => {
                let to = self.impu_of(&c.to);
                let opts = CallOptions {
                    preconditions: c.preconditions,
                    session_expires: c.session_expires,
                };
                let call_id = self
                    .on_ue(&c.from, move |core, now| core.invite(now, &to, opts))
                    .await?
                    .map_err(|e| e.to_string())?;
                let Some(e) = &c.expect else {
                    return Ok(call_id);
                };
                let deadline = self.deadline(t0, Some(e));
                let want = e.status.clone();
                let (msg, at) = self
                    .wait_for(&c.from, deadline, |ev| match ev {
                        Event::Response {
                            purpose: Purpose::Invite(_),
                            response,
                        } => {
                            let s = response.status().map_or(0, |s| s.as_u16());
                            let accepted = want.as_ref().is_none_or(|w| w.accepts(s));
                            (accepted || s >= 200).then(|| response.clone())
                        }
                        _ => None,
                    })
                    .await?;
                check_message(e, Some(&msg))?;
                check_after(e, t0, at)?;
                Ok(format!(
                    "{call_id}: {}",
                    msg.status().map_or(0, |s| s.as_u16())
                ))
            }
            Step::Answer(a) => {
                let deadline = self.deadline(t0, a.expect.as_ref());
                let id = self.ringing_call(&a.ue, deadline).await?;
                let cid = id.clone();
                self.on_ue(&a.ue, move |c, now| c.answer(now, &cid))
                    .await?
                    .map_err(|e| e.to_string())?;
                Ok(id)
            }
            Step::Hangup(h) if h.status.is_some() => {
                let deadline = self.deadline(t0, h.expect.as_ref());
                let id = self.ringing_call(&h.ue, deadline).await?;
                let cid = id.clone();
                let why = Rejection(h.status.unwrap_or(Rejection::BUSY.0));
                self.on_ue(&h.ue, move |c, now| c.reject(now, &cid, why))
                    .await?
                    .map_err(|e| e.to_string())?;
                Ok(format!("{id}: {}", why.0))
            }
            Step::Hangup(h) => {
                let id = self
                    .on_ue(&h.ue, |c, _| c.any_call())
                    .await?
                    .ok_or_else(|| format!("{} has no call to hang up", h.ue))?;
                let cid = id.clone();
                self.on_ue(&h.ue, move |c, now| c.hangup(now, &cid))
                    .await?
                    .map_err(|e| e.to_string())?;
                if h.expect.is_some() {
                    return self
                        .final_response(&h.ue, t0, h.expect.as_ref(), ok_status(), |p| {
                            matches!(p, Purpose::Bye(_) | Purpose::Cancel(_))
                        })
                        .await;
                }
                Ok(id)
            }
            Step::Message(m) => {
                let to = self.impu_of(&m.to);
                let domain = self.lab.domain.as_str().to_owned();
                match (&m.text, &m.sms) {
                    (Some(text), _) => {
                        let text = text.clone();
                        self.on_ue(&m.from, move |c, now| c.message_text(now, &to, &text))
                            .await?
                            .map_err(|e| e.to_string())?;
                    }
                    (None, Some(sms)) => {
                        let smsc = sms
                            .smsc
                            .clone()
                            .unwrap_or_else(|| format!("sip:smsc@{domain}"));
                        let dest = sms
                            .destination
                            .clone()
                            .unwrap_or_else(|| crate::ue::core::user_digits(&to));
                        let text = sms.text.clone();
                        self.on_ue(&m.from, move |c, now| {
                            c.message_sms(now, &smsc, &dest, &text)
                        })
                        .await?
                        .map_err(|e| e.to_string())?;
                    }
                    (None, None) => return Err("message without body".into()),
                }
                self.final_response(&m.from, t0, m.expect.as_ref(), ok_status(), |p| {
                    *p == Purpose::Message
                })
                .await
            }
            Step::Options(o) => {
                let to = self.impu_of(&o.to);
                self.on_ue(&o.ue, move |c, now| c.options(now, &to))
                    .await?
                    .map_err(|e| e.to_string())?;
                self.final_response(&o.ue, t0, o.expect.as_ref(), StatusSpec::One(200), |p| {
                    *p == Purpose::Options
                })
                .await
            }
            Step::Wait(d) => {
                tokio::time::sleep(*d).await;
                Ok(String::new())
            }
            Step::Expect(x) => self.expect(x, t0).await,
            Step::Send(s) => {
                let template = s.template.clone();
                self.on_ue(&s.ue, move |c, now| {
                    let vals = c.template_values();
                    let mut text = template;
                    for (k, v) in vals {
                        text = text.replace(&format!("${{{k}}}"), &v);
                    }
                    c.send_raw(now, &text)
                })
                .await?
                .map_err(|e| e.to_string())?;
                if s.expect.is_some() {
                    return self
                        .final_response(&s.ue, t0, s.expect.as_ref(), ok_status(), |p| {
                            *p == Purpose::Raw
                        })
                        .await;
                }
                Ok(String::new())
            }
            Step::Cx(c) => {
                let impu = self.impu_of(&c.impu);
                let impi = match &c.impi {
                    Some(i) => i.clone(),
                    None => crate::ue::core::user_digits(&impu) + "@" + self.lab.domain.as_str(),
                };
                let mut guard = self.cx.lock().await;
                if guard.is_none() {
                    *guard = Some(cx::CxClient::connect(&self.lab, self.timeout).await?);
                }
                let client = guard.as_ref().ok_or("no Cx client")?;
                let code =
                    tokio::time::timeout(self.timeout, client.request(c.request, &impu, &impi))
                        .await
                        .map_err(|_| "the HSS did not answer in time".to_owned())??;
                if code != c.expect_result {
                    return Err(format!("expected result {}, got {code}", c.expect_result));
                }
                Ok(format!("result {code}"))
            }
            Step::Hss(h) => {
                let (who, action) = match (&h.deregister, &h.push_profile) {
                    (Some(w), _) => (w, "deregister"),
                    (None, Some(w)) => (w, "push-profile"),
                    (None, None) => return Err("hss step without action".into()),
                };
                let imsi = self.imsi_of(who).await;
                let path = format!("/api/v1/subscribers/{imsi}/{action}");
                let (status, body) = http::post(
                    self.lab.web,
                    &path,
                    self.lab.web_token.as_deref(),
                    self.timeout,
                )
                .await?;
                let want = h.expect_http.unwrap_or(200);
                if status != want {
                    return Err(format!(
                        "expected HTTP {want} from POST {path}, got {status}: {}",
                        body.trim()
                    ));
                }
                Ok(format!("HTTP {status} {}", body.trim()))
            }
            Step::Log(text) => {
                self.say(format!("    {text}"));
                Ok(String::new())
            }
            Step::Repeat(_) | Step::Parallel(_) => Ok(String::new()),
        }
    }

    async fn registration_outcome(
        &self,
        ue: &str,
        t0: Instant,
        expect: Option<&Expect>,
        register: bool,
    ) -> Result<String, String> {
        let deadline = self.deadline(t0, expect);
        let mut last: Option<Message> = None;
        let ((status, detail), at) = self
            .wait_for(ue, deadline, |e| match e {
                Event::Response {
                    purpose: Purpose::Register,
                    response,
                } => {
                    if response.status().is_some_and(|s| s.is_final()) {
                        last = Some(response.clone());
                    }
                    None
                }
                Event::Registered { expires } if register => {
                    Some((200u16, format!("registered for {expires} s")))
                }
                Event::Deregistered { reason } if !register => {
                    Some((200u16, format!("deregistered ({reason})")))
                }
                Event::RegistrationFailed { status, reason } => {
                    Some((status.unwrap_or(0), reason.clone()))
                }
                _ => None,
            })
            .await?;
        let e = expect.cloned().unwrap_or_default();
        let want = e.status.clone().unwrap_or(StatusSpec::One(200));
        if !want.accepts(status) {
            return Err(format!(
                "expected {} {want}, got {} ({detail})",
                if register { "REGISTER" } else { "de-REGISTER" },
                if status == 0 {
                    "no final response".to_owned()
                } else {
                    status.to_string()
                }
            ));
        }
        let e = Expect { status: None, ..e };
        if !e.headers.is_empty() || e.body_contains.is_some() || !e.absent.is_empty() {
            check_message(&e, last.as_ref())?;
        }
        check_after(&e, t0, at)?;
        Ok(detail)
    }

    async fn expect(
        &self,
        x: &crate::scenario::model::ExpectStep,
        t0: Instant,
    ) -> Result<String, String> {
        let deadline = self.deadline(t0, Some(&x.expect));
        let e = &x.expect;
        if let Some(ev) = &x.event {
            let ev = ev.clone();
            let (desc, at) = self
                .wait_for(&x.ue, deadline, |e| {
                    let hit = matches!(
                        (ev.as_str(), e),
                        ("registered", Event::Registered { .. })
                            | ("deregistered", Event::Deregistered { .. })
                            | ("registration-failed", Event::RegistrationFailed { .. })
                            | (
                                "call-ringing",
                                Event::Call {
                                    state: CallState::Ringing,
                                    ..
                                }
                            )
                            | (
                                "call-confirmed",
                                Event::Call {
                                    state: CallState::Confirmed,
                                    ..
                                }
                            )
                            | (
                                "call-terminated",
                                Event::Call {
                                    state: CallState::Terminated,
                                    ..
                                }
                            )
                            | ("sms", Event::Sms { .. })
                    );
                    hit.then(|| summarize(e))
                })
                .await?;
            if let Some(needle) = &e.body_contains
                && !desc.contains(needle.as_str())
            {
                return Err(format!("expected {needle:?} in {desc}"));
            }
            check_after(e, t0, at)?;
            return Ok(desc);
        }
        let request = x.request.clone().map(|r| r.to_ascii_uppercase());
        let response = x.response.clone().map(|r| r.to_ascii_uppercase());
        let (msg, at) = self
            .wait_for(&x.ue, deadline, |ev| match (ev, &request) {
                (Event::Request { request: m }, Some(want)) => {
                    let ok = m.method().is_some_and(|me| me.as_str() == want)
                        && check_message(
                            &Expect {
                                status: None,
                                ..e.clone()
                            },
                            Some(m),
                        )
                        .is_ok();
                    ok.then(|| m.clone())
                }
                (Event::Response { response: m, .. }, None) => {
                    let method_ok = response
                        .as_deref()
                        .is_none_or(|want| m.cseq().is_ok_and(|c| c.method.as_str() == want));
                    let status_ok = e
                        .status
                        .as_ref()
                        .is_none_or(|s| m.status().is_some_and(|st| s.accepts(st.as_u16())));
                    (method_ok && status_ok).then(|| m.clone())
                }
                _ => None,
            })
            .await?;
        let check = if request.is_some() {
            Expect {
                status: None,
                ..e.clone()
            }
        } else {
            e.clone()
        };
        check_message(&check, Some(&msg))?;
        check_after(e, t0, at)?;
        Ok(match msg.method() {
            Some(m) => format!("{} received", m.as_str()),
            None => format!("{} received", msg.status().map_or(0, |s| s.as_u16())),
        })
    }
}

fn check_after(e: &Expect, t0: Instant, at: Instant) -> Result<(), String> {
    if let Some(min) = e.after {
        let took = at.saturating_duration_since(t0);
        if took < min {
            return Err(format!(
                "expected it no sooner than {min:?}, got it after {took:?}"
            ));
        }
    }
    Ok(())
}

fn describe(step: &Step) -> String {
    match step {
        Step::Register(a)
        | Step::Reregister(a)
        | Step::Deregister(a)
        | Step::Subscribe(a)
        | Step::Answer(a) => a.ue.clone(),
        Step::Hangup(h) => match h.status {
            Some(code) => format!("{} ({code})", h.ue),
            None => h.ue.clone(),
        },
        Step::Call(c) => format!("{} → {}", c.from, c.to),
        Step::Message(m) => format!("{} → {}", m.from, m.to),
        Step::Options(o) => format!("{} → {}", o.ue, o.to),
        Step::Wait(d) => format!("{d:?}"),
        Step::Expect(e) => format!(
            "{} {}",
            e.ue,
            e.request
                .as_deref()
                .map(|r| format!("request {r}"))
                .or_else(|| e.response.as_deref().map(|r| format!("response {r}")))
                .or_else(|| e.event.as_deref().map(|r| format!("event {r}")))
                .unwrap_or_else(|| "response".into())
        ),
        Step::Send(s) => s.ue.clone(),
        Step::Cx(c) => format!("{:?} {}", c.request, c.impu),
        Step::Hss(h) => h
            .deregister
            .as_deref()
            .map(|d| format!("deregister {d}"))
            .or_else(|| {
                h.push_profile
                    .as_deref()
                    .map(|p| format!("push-profile {p}"))
            })
            .unwrap_or_default(),
        Step::Repeat(r) => format!("{} times", r.times),
        Step::Parallel(b) => format!("{} branches", b.len()),
        Step::Log(_) => String::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn response() -> Message {
        Message::parse(
            &b"SIP/2.0 200 OK\r\nVia: SIP/2.0/UDP 127.0.0.2:5060;branch=z9hG4bK1\r\n\
               From: <sip:a@x>;tag=1\r\nTo: <sip:a@x>;tag=2\r\nCall-ID: c\r\n\
               CSeq: 2 REGISTER\r\nService-Route: <sip:orig@scscf:6060;lr>\r\n\
               P-Associated-URI: <sip:a@x>, <tel:+1555>\r\nContent-Length: 5\r\n\r\nhello"[..],
        )
        .unwrap()
    }

    fn expect(yaml: &str) -> Expect {
        serde_saphyr::from_str(yaml).unwrap()
    }

    #[test]
    fn status_lists_header_regexes_absent_headers_and_body_are_all_checked() {
        let m = response();
        assert!(check_message(&expect("status: [200, 202]"), Some(&m)).is_ok());
        let e = check_message(&expect("status: 403"), Some(&m)).unwrap_err();
        assert_eq!(e, "expected status 403, got 200");
        assert!(
            check_message(
                &expect("headers: {P-Associated-URI: 'tel:\\+1555'}"),
                Some(&m)
            )
            .is_ok()
        );
        let e = check_message(&expect("headers: {Service-Route: 'icscf'}"), Some(&m)).unwrap_err();
        assert!(e.contains("got <sip:orig@scscf:6060;lr>"), "{e}");
        let e = check_message(&expect("absent: [Service-Route]"), Some(&m)).unwrap_err();
        assert!(e.contains("expected no Service-Route"), "{e}");
        assert!(check_message(&expect("body_contains: ell"), Some(&m)).is_ok());
        let e = check_message(&expect("body_contains: bye"), Some(&m)).unwrap_err();
        assert!(e.contains("\"hello\""), "{e}");
        let e = check_message(&expect("status: 200"), None).unwrap_err();
        assert_eq!(e, "expected status 200, got no response");
    }

    #[test]
    fn lower_time_bound_fails_an_early_arrival() {
        let e = expect("after: 1s");
        let t0 = Instant::now();
        assert!(check_after(&e, t0, t0 + Duration::from_millis(10)).is_err());
        assert!(check_after(&e, t0, t0 + Duration::from_secs(2)).is_ok());
    }
}
