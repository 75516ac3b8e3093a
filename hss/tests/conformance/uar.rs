use imslab_diameter::ExperimentalResultCode as E;
use imslab_diameter::ResultCode as B;
use imslab_diameter::enums::UserAuthorizationType as T;
use imslab_hss::cx::{Lookup, uar};
use imslab_store::RegState;
use imslab_types::Outcome;

use crate::common::*;

struct Case {
    name: &'static str,
    lookup: Lookup,
    req: imslab_diameter::cx::Uar,
    want: Want,
    server_name: Option<&'static str>,
    capabilities: bool,
}

fn cases() -> Vec<Case> {
    let home = "ims.example";
    let reg = |s: &str| with_state(subscription(), &[s], RegState::Registered, Some(SCSCF));
    let mut fixed = subscription();
    fixed.subscriber.fixed_scscf = Some(OTHER_SCSCF.into());
    let mut emergency = uar(IMPI, BARRED_ALONE, None, home);
    emergency.uar_flags = Some(1);
    let mut pending = subscription();
    pending.subscriber.scscf =
        with_state(subscription(), &[], RegState::NotRegistered, Some(SCSCF))
            .subscriber
            .scscf;
    vec![
        Case {
            name: "unknown private identity is user unknown",
            lookup: unknown(),
            req: uar("nobody@ims.example", ALICE, None, home),
            want: Want::Exp(E::DIAMETER_ERROR_USER_UNKNOWN),
            server_name: None,
            capabilities: false,
        },
        Case {
            name: "unprovisioned public identity is user unknown",
            lookup: lookup_foreign(subscription(), BOB, None),
            req: uar(IMPI, BOB, None, home),
            want: Want::Exp(E::DIAMETER_ERROR_USER_UNKNOWN),
            server_name: None,
            capabilities: false,
        },
        Case {
            name: "public identity of another subscriber does not match",
            lookup: lookup_foreign(subscription(), BOB, Some("001010000000002")),
            req: uar(IMPI, BOB, None, home),
            want: Want::Exp(E::DIAMETER_ERROR_IDENTITIES_DONT_MATCH),
            server_name: None,
            capabilities: false,
        },
        Case {
            name: "identity barred with its whole set is rejected",
            lookup: lookup(subscription()),
            req: uar(IMPI, BARRED_ALONE, Some(T::REGISTRATION), home),
            want: Want::Base(B::DIAMETER_AUTHORIZATION_REJECTED),
            server_name: None,
            capabilities: false,
        },
        Case {
            name: "barred identity with a non-barred peer in its set may register",
            lookup: lookup(subscription()),
            req: uar(IMPI, BARRED_WITH_PEER, None, home),
            want: Want::Exp(E::DIAMETER_FIRST_REGISTRATION),
            server_name: None,
            capabilities: true,
        },
        Case {
            name: "emergency registration ignores barring",
            lookup: lookup(subscription()),
            req: emergency,
            want: Want::Exp(E::DIAMETER_FIRST_REGISTRATION),
            server_name: None,
            capabilities: true,
        },
        Case {
            name: "visited network outside the allowed list is roaming not allowed",
            lookup: lookup(subscription()),
            req: uar(IMPI, ALICE, None, "elsewhere.example"),
            want: Want::Exp(E::DIAMETER_ERROR_ROAMING_NOT_ALLOWED),
            server_name: None,
            capabilities: false,
        },
        Case {
            name: "allowed visited network registers",
            lookup: lookup(subscription()),
            req: uar(IMPI, ALICE, None, "VISITED.example"),
            want: Want::Exp(E::DIAMETER_FIRST_REGISTRATION),
            server_name: None,
            capabilities: true,
        },
        Case {
            name: "not registered without s-cscf is first registration with capabilities",
            lookup: lookup(subscription()),
            req: uar(IMPI, ALICE, Some(T::REGISTRATION), home),
            want: Want::Exp(E::DIAMETER_FIRST_REGISTRATION),
            server_name: None,
            capabilities: true,
        },
        Case {
            name: "registered identity is subsequent registration with server name",
            lookup: lookup(reg(ALICE)),
            req: uar(IMPI, ALICE_TEL, Some(T::REGISTRATION), home),
            want: Want::Exp(E::DIAMETER_SUBSEQUENT_REGISTRATION),
            server_name: Some(SCSCF),
            capabilities: false,
        },
        Case {
            name: "unregistered identity is subsequent registration with server name",
            lookup: lookup(with_state(
                subscription(),
                &[UNREG_SERVICES],
                RegState::Unregistered,
                Some(SCSCF),
            )),
            req: uar(IMPI, UNREG_SERVICES, None, home),
            want: Want::Exp(E::DIAMETER_SUBSEQUENT_REGISTRATION),
            server_name: Some(SCSCF),
            capabilities: false,
        },
        Case {
            name: "s-cscf stored by a mar is subsequent registration",
            lookup: lookup(pending),
            req: uar(IMPI, ALICE, None, home),
            want: Want::Exp(E::DIAMETER_SUBSEQUENT_REGISTRATION),
            server_name: Some(SCSCF),
            capabilities: false,
        },
        Case {
            name: "registration and capabilities asks for a new selection",
            lookup: lookup(reg(ALICE)),
            req: uar(IMPI, ALICE, Some(T::REGISTRATION_AND_CAPABILITIES), home),
            want: Want::Exp(E::DIAMETER_FIRST_REGISTRATION),
            server_name: None,
            capabilities: true,
        },
        Case {
            name: "de-registration of a registered identity returns its s-cscf",
            lookup: lookup(reg(BARRED_ALONE)),
            req: uar(IMPI, BARRED_ALONE, Some(T::DE_REGISTRATION), home),
            want: SUCCESS,
            server_name: Some(SCSCF),
            capabilities: false,
        },
        Case {
            name: "de-registration of a not registered identity is identity not registered",
            lookup: lookup(subscription()),
            req: uar(IMPI, ALICE, Some(T::DE_REGISTRATION), "elsewhere.example"),
            want: Want::Exp(E::DIAMETER_ERROR_IDENTITY_NOT_REGISTERED),
            server_name: None,
            capabilities: false,
        },
        Case {
            name: "fixed s-cscf is offered first in the capabilities",
            lookup: lookup(fixed),
            req: uar(IMPI, ALICE, None, home),
            want: Want::Exp(E::DIAMETER_FIRST_REGISTRATION),
            server_name: None,
            capabilities: true,
        },
        Case {
            name: "undefined authorization type is an invalid avp value",
            lookup: lookup(subscription()),
            req: uar(IMPI, ALICE, Some(T(7)), home),
            want: Want::Base(B::DIAMETER_INVALID_AVP_VALUE),
            server_name: None,
            capabilities: false,
        },
    ]
}

#[test]
fn uar_answers_follow_ts_29_228_6_1_1() {
    let settings = settings();
    for c in cases() {
        let out = uar::handle(&c.req, &c.lookup, &settings, now());
        let a = &out.answer;
        assert!(c.want.matches(&a.result), "{}: got {:?}", c.name, a.result);
        assert_eq!(
            a.server_name.as_deref(),
            c.server_name,
            "{}: Server-Name",
            c.name
        );
        assert_eq!(
            a.server_capabilities.is_some(),
            c.capabilities,
            "{}: capabilities",
            c.name
        );
        assert!(out.changes.is_empty(), "{}: UAR changes nothing", c.name);
        assert_eq!(a.session_id, c.req.session_id, "{}", c.name);
        assert_eq!(a.origin_host.as_str(), "hss.ims.example");
        let ev = &out.events[0];
        assert_eq!(ev.step, "uar");
        let ok = a.result.is_success();
        assert_eq!(
            ev.outcome,
            if ok { Outcome::Ok } else { Outcome::Failed },
            "{}",
            c.name
        );
        // The answer survives the wire.
        let wire = imslab_diameter::Message::decode(a.to_message().encode().unwrap()).unwrap();
        assert_eq!(
            &imslab_diameter::cx::Uaa::decode(&wire).unwrap(),
            a,
            "{}",
            c.name
        );
    }
}

#[test]
fn capabilities_carry_configuration_and_fixed_scscf_first() {
    let mut fixed = subscription();
    fixed.subscriber.fixed_scscf = Some(OTHER_SCSCF.into());
    let out = uar::handle(
        &uar(IMPI, ALICE, None, "ims.example"),
        &lookup(fixed),
        &settings(),
        now(),
    );
    let caps = out.answer.server_capabilities.unwrap();
    assert_eq!(caps.mandatory, [1]);
    assert_eq!(caps.optional, [2, 3]);
    assert_eq!(caps.server_names, [OTHER_SCSCF]);
}

#[test]
fn uar_failure_event_names_the_reason() {
    let out = uar::handle(
        &uar(IMPI, BARRED_ALONE, None, "ims.example"),
        &lookup(subscription()),
        &settings(),
        now(),
    );
    let reason = out.events[0].reason.clone().unwrap();
    assert!(
        reason.contains("5003 (DIAMETER_AUTHORIZATION_REJECTED)"),
        "{reason}"
    );
    assert!(reason.contains(BARRED_ALONE), "{reason}");
    assert_eq!(
        out.events[0].ue.imsi.as_ref().unwrap().as_str(),
        "001010000000001"
    );
}
