use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use super::model::{IpsecSpec, Step};
use super::parse;
use crate::Error;

fn builtins() -> BTreeMap<String, String> {
    BTreeMap::from([("domain".to_owned(), "ims.example".to_owned())])
}

fn line_of(err: Error) -> (u32, String) {
    match err {
        Error::Invalid { line, message, .. } => (line, message),
        other => panic!("expected Invalid, got {other:?}"),
    }
}

const GOOD: &str = "\
name: demo
variables:
  exp: 600
ues:
  alice:
    imsi: \"001010000000001\"
    profile: samsung-s23
    ipsec: {alg: hmac-sha-1-96, ealg: aes-cbc}
steps:
  - register: {ue: alice, expires: ${exp}}
  - wait: 250ms
  - expect:
      ue: alice
      request: NOTIFY
      body_contains: 'aor=\"sip:x@${domain}\"'
      within: 2s
  - repeat:
      times: 2
      steps:
        - reregister: {ue: alice}
  - deregister: {ue: alice}
";

#[test]
fn valid_scenario_loads_with_variables_substituted_and_step_lines() {
    let sc = parse(GOOD, Path::new("demo.yaml"), &builtins()).unwrap();
    assert_eq!(sc.name, "demo");
    assert_eq!(sc.steps.len(), 5);
    assert_eq!(sc.steps[0].referenced.line(), 10);
    match &sc.steps[0].value {
        Step::Register(a) => assert_eq!(a.expires, Some(600)),
        other => panic!("{other:?}"),
    }
    match &sc.steps[1].value {
        Step::Wait(d) => assert_eq!(*d, Duration::from_millis(250)),
        other => panic!("{other:?}"),
    }
    match &sc.steps[2].value {
        Step::Expect(e) => {
            assert_eq!(
                e.expect.body_contains.as_deref(),
                Some("aor=\"sip:x@ims.example\"")
            );
            assert_eq!(e.expect.within, Some(Duration::from_secs(2)));
        }
        other => panic!("{other:?}"),
    }
    assert!(matches!(
        sc.ues["alice"].ipsec,
        Some(IpsecSpec::One(ref s)) if s.ealg == "aes-cbc"
    ));
}

#[test]
fn unknown_key_error_names_its_line() {
    let text = GOOD.replace("    profile: samsung-s23\n", "    profil: samsung-s23\n");
    let (line, msg) = line_of(parse(&text, Path::new("x.yaml"), &builtins()).unwrap_err());
    assert_eq!(line, 7, "{msg}");
    assert!(msg.contains("profil"), "{msg}");
}

#[test]
fn unknown_ue_in_a_nested_step_names_the_step_line() {
    let text = GOOD.replace("- reregister: {ue: alice}", "- reregister: {ue: bob}");
    let (line, msg) = line_of(parse(&text, Path::new("x.yaml"), &builtins()).unwrap_err());
    assert_eq!(line, 20, "{msg}");
    assert!(msg.contains("unknown UE \"bob\""), "{msg}");
}

#[test]
fn bad_duration_and_bad_regex_are_reported_at_their_lines() {
    let text = GOOD.replace("wait: 250ms", "wait: soon");
    let (line, msg) = line_of(parse(&text, Path::new("x.yaml"), &builtins()).unwrap_err());
    assert_eq!(line, 11, "{msg}");
    let text = GOOD.replace(
        "      within: 2s\n",
        "      within: 2s\n      headers: {Event: \"reg(\"}\n",
    );
    let (line, msg) = line_of(parse(&text, Path::new("x.yaml"), &builtins()).unwrap_err());
    assert_eq!(line, 12, "{msg}");
    assert!(msg.contains("regex"), "{msg}");
}

#[test]
fn message_needs_exactly_one_body_kind() {
    let text = GOOD.replace(
        "  - deregister: {ue: alice}\n",
        "  - message: {from: alice, to: alice}\n",
    );
    let (line, msg) = line_of(parse(&text, Path::new("x.yaml"), &builtins()).unwrap_err());
    assert_eq!(line, 21, "{msg}");
    assert!(msg.contains("exactly one"), "{msg}");
}

#[test]
fn unknown_profile_is_refused() {
    let text = GOOD.replace("samsung-s23", "nokia-3310");
    let (_, msg) = line_of(parse(&text, Path::new("x.yaml"), &builtins()).unwrap_err());
    assert!(msg.contains("unknown profile"), "{msg}");
}

#[test]
fn hangup_status_must_be_a_failure_status_and_names_its_line() {
    let text = GOOD.replace(
        "  - deregister: {ue: alice}\n",
        "  - hangup: {ue: alice, status: 200}\n",
    );
    let (line, msg) = line_of(parse(&text, Path::new("x.yaml"), &builtins()).unwrap_err());
    assert_eq!(line, 21, "{msg}");
    assert!(msg.contains("400–699"), "{msg}");
    let text = GOOD.replace(
        "  - deregister: {ue: alice}\n",
        "  - hangup: {ue: alice, status: 603}\n",
    );
    let sc = parse(&text, Path::new("x.yaml"), &builtins()).unwrap();
    assert!(
        sc.steps
            .iter()
            .any(|s| matches!(&s.value, Step::Hangup(h) if h.status == Some(603)))
    );
}

#[test]
fn ipsec_variable_from_the_lab_fills_a_ue_field() {
    let text = "name: x\nues: {a: {imsi: \"001010000000001\", ipsec: ${ipsec}}}\nsteps: [{register: {ue: a}}]\n";
    let mut vars = builtins();
    vars.insert("ipsec".into(), "false".into());
    let sc = parse(text, Path::new("x.yaml"), &vars).unwrap();
    assert_eq!(sc.ues["a"].ipsec, Some(IpsecSpec::Enabled(false)));
}
