//! Reading and checking scenario files. Every error names the line (YAML syntax, unknown keys,
//! wrong types from `serde-saphyr`; unknown UEs, bad regexes, contradictory fields from the
//! checks here).

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use serde::Deserialize;
use serde_saphyr::Spanned;

use super::model::{Scalar, Scenario, Step};
use crate::Error;

#[derive(Deserialize)]
struct VarsOnly {
    #[serde(default)]
    variables: BTreeMap<String, Scalar>,
}

/// Reads a scenario file. `builtins` are variables the lab provides (`domain`...); the file's
/// own `variables` win.
pub fn load(path: &Path, builtins: &BTreeMap<String, String>) -> Result<Scenario, Error> {
    let text = std::fs::read_to_string(path).map_err(|source| Error::Read {
        path: path.to_owned(),
        source,
    })?;
    parse(&text, path, builtins)
}

/// Replaces `${name}` for every known name; unknown ones stay for the runner (templates).
pub fn substitute(text: &str, vars: &BTreeMap<String, String>) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(i) = rest.find("${") {
        out.push_str(&rest[..i]);
        let after = &rest[i + 2..];
        match after.find('}') {
            Some(j) if vars.contains_key(&after[..j]) => {
                out.push_str(&vars[&after[..j]]);
                rest = &after[j + 1..];
            }
            _ => {
                out.push_str("${");
                rest = after;
            }
        }
    }
    out.push_str(rest);
    out
}

fn blank_references(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(i) = rest.find("${") {
        out.push_str(&rest[..i]);
        match rest[i..].find('}') {
            Some(j) => {
                out.push_str(&"_".repeat(j + 1));
                rest = &rest[i + j + 1..];
            }
            None => {
                out.push_str("${");
                rest = &rest[i + 2..];
            }
        }
    }
    out.push_str(rest);
    out
}

/// Parses scenario text; `origin` names it in errors.
pub fn parse(
    text: &str,
    origin: &Path,
    builtins: &BTreeMap<String, String>,
) -> Result<Scenario, Error> {
    let invalid = |line: u64, message: String| Error::Invalid {
        path: origin.to_owned(),
        line: u32::try_from(line).unwrap_or(u32::MAX),
        message,
    };
    let mut vars = builtins.clone();
    // References may sit where YAML syntax matters (`{expires: ${exp}}`), so variables are
    // read from a copy where every reference is blanked out.
    if let Ok(v) = serde_saphyr::from_str::<VarsOnly>(&blank_references(text)) {
        for (k, val) in v.variables {
            vars.insert(k, val.to_string());
        }
    }
    let text = substitute(text, &vars);
    let sc: Scenario = serde_saphyr::from_str(&text).map_err(|e| {
        let line = e.location().map_or(0, |l| l.line());
        invalid(line, e.to_string())
    })?;
    if sc.ues.is_empty() {
        return Err(invalid(
            1,
            "a scenario needs at least one UE under `ues`".into(),
        ));
    }
    for (name, ue) in &sc.ues {
        if ue.imsi.is_none() && (ue.impi.is_none() || ue.impu.is_none()) {
            return Err(invalid(
                0,
                format!("UE {name}: give `imsi` (from the store) or `impi` and `impu`"),
            ));
        }
        if ue.k.is_some() != (ue.opc.is_some() || ue.op.is_some()) {
            return Err(invalid(
                0,
                format!("UE {name}: inline keys need `k` with `opc` or `op`"),
            ));
        }
        let suites: Vec<&super::model::SuiteSpec> = match &ue.ipsec {
            Some(super::model::IpsecSpec::One(s)) => vec![s],
            Some(super::model::IpsecSpec::Offers { offers }) => offers.iter().collect(),
            _ => Vec::new(),
        };
        for s in suites {
            if s.alg.parse::<imslab_ipsec::IntegrityAlg>().is_err()
                || s.ealg.parse::<imslab_ipsec::EncryptionAlg>().is_err()
            {
                return Err(invalid(
                    0,
                    format!(
                        "UE {name}: unsupported IPsec suite {}/{} (alg: hmac-sha-1-96 or \
                         hmac-md5-96; ealg: null, aes-cbc or des-ede3-cbc)",
                        s.alg, s.ealg
                    ),
                ));
            }
        }
        if let Some(p) = &ue.profile
            && crate::ue::Profile::by_name(p).is_none()
        {
            return Err(invalid(
                0,
                format!(
                    "UE {name}: unknown profile {p:?} (known: {})",
                    crate::ue::Profile::NAMES.join(", ")
                ),
            ));
        }
    }
    let names: BTreeSet<&str> = sc.ues.keys().map(String::as_str).collect();
    check_steps(&sc.steps, &names, &invalid)?;
    if let Some(l) = &sc.load {
        if l.ues == 0 || l.rate.is_nan() || l.rate <= 0.0 {
            return Err(invalid(0, "load: `ues` and `rate` must be positive".into()));
        }
        if let Some(u) = &l.ue
            && !names.contains(u.as_str())
        {
            return Err(invalid(0, format!("load: unknown UE {u:?}")));
        }
    }
    Ok(sc)
}

fn check_steps(
    steps: &[Spanned<Step>],
    names: &BTreeSet<&str>,
    invalid: &dyn Fn(u64, String) -> Error,
) -> Result<(), Error> {
    for s in steps {
        let line = s.referenced.line();
        let step = &s.value;
        for ue in step.ues() {
            if !names.contains(ue) {
                return Err(invalid(
                    line,
                    format!(
                        "{}: unknown UE {ue:?} (declared: {})",
                        step.keyword(),
                        names.iter().copied().collect::<Vec<_>>().join(", ")
                    ),
                ));
            }
        }
        if let Step::Hangup(h) = step
            && let Some(code) = h.status
            && !(400..=699).contains(&code)
        {
            return Err(invalid(
                line,
                format!("hangup: status {code} is not a final failure status (400–699)"),
            ));
        }
        let expects: Vec<&super::model::Expect> = match step {
            Step::Register(a)
            | Step::Reregister(a)
            | Step::Deregister(a)
            | Step::Subscribe(a)
            | Step::Answer(a) => a.expect.iter().collect(),
            Step::Hangup(h) => h.expect.iter().collect(),
            Step::Call(c) => c.expect.iter().collect(),
            Step::Message(m) => m.expect.iter().collect(),
            Step::Options(o) => o.expect.iter().collect(),
            Step::Send(s) => s.expect.iter().collect(),
            Step::Expect(e) => vec![&e.expect],
            _ => Vec::new(),
        };
        for e in expects {
            for (h, re) in &e.headers {
                if let Err(err) = regex::Regex::new(re) {
                    return Err(invalid(line, format!("header {h}: bad regex: {err}")));
                }
            }
        }
        match step {
            Step::Message(m) if m.text.is_some() == m.sms.is_some() => {
                return Err(invalid(
                    line,
                    "message: give exactly one of `text` and `sms`".into(),
                ));
            }
            Step::Hss(h) if h.deregister.is_some() == h.push_profile.is_some() => {
                return Err(invalid(
                    line,
                    "hss: give exactly one of `deregister` and `push_profile`".into(),
                ));
            }
            Step::Expect(e)
                if [e.request.is_some(), e.response.is_some(), e.event.is_some()]
                    .iter()
                    .filter(|b| **b)
                    .count()
                    > 1 =>
            {
                return Err(invalid(
                    line,
                    "expect: give at most one of `request`, `response` and `event`".into(),
                ));
            }
            Step::Expect(e)
                if e.event
                    .as_deref()
                    .is_some_and(|ev| !super::EVENTS.contains(&ev)) =>
            {
                return Err(invalid(
                    line,
                    format!(
                        "expect: unknown event {:?} (known: {})",
                        e.event.as_deref().unwrap_or_default(),
                        super::EVENTS.join(", ")
                    ),
                ));
            }
            Step::Repeat(r) => check_steps(&r.steps, names, invalid)?,
            Step::Parallel(branches) => {
                for b in branches {
                    check_steps(b, names, invalid)?;
                }
            }
            _ => {}
        }
    }
    Ok(())
}
