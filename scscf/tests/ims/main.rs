//! I-CSCF + S-CSCF + the real HSS on loopback: IMS AKA and SIP Digest registrations,
//! reg-event, HSS-initiated de-registration, a restart of the S-CSCF, refusals. Every SIP
//! message the test client saw is checked with tshark.

mod calls;
mod sipp;
mod support;

use std::time::Duration;

use imslab_aka::{DigestAlgorithm, Ha1, Milenage};
use imslab_diameter::enums::ReasonCode;
use imslab_hss::cx::rtr::RtrScope;
use imslab_sip::{HeaderName, StatusCode};
use imslab_store::{RegState, SubscriberKey};
use imslab_types::{Imsi, K, Opc};
use support::*;

fn tshark_sip(ue: &mut Ue, lab: &Lab) {
    ue.finish_pcap();
    let ports = [ue.addr.port(), lab.icscf.port(), lab.scscf.port()];
    let decode: Vec<String> = ports.iter().map(|p| format!("udp.port=={p},sip")).collect();
    let mut args = Vec::new();
    for d in &decode {
        args.push("-d");
        args.push(d.as_str());
    }
    let packets =
        imslab_test_support::tshark_check(&ue.pcap_path, &args, &["sip.Method", "sip.Status-Code"]);
    assert!(!packets.is_empty());
    assert!(
        packets
            .iter()
            .all(|p| p.fields.iter().any(|f| !f.is_empty())),
        "every packet decodes as SIP: {packets:?}"
    );
}

async fn register_aka(lab: &Lab, ue: &mut Ue) -> imslab_sip::Message {
    let text = ue.register_text(&ue.initial_auth(), 600);
    let r401 = ue.request(lab.icscf, text).await;
    let ch = challenge(&r401);
    assert_eq!(ch.get("algorithm"), Some("AKAv1-MD5"));
    assert!(
        ch.ck().is_some() && ch.ik().is_some(),
        "ck and ik toward the P-CSCF"
    );
    let auth = ue.aka_answer(&r401);
    let text = ue.register_text(&auth, 600);
    ue.request(lab.icscf, text).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn aka_registration_reg_event_and_deregistration_through_icscf_scscf_and_hss() {
    let dir = tempfile::tempdir().expect("dir");
    let lab = Lab::start().await;
    provision(&lab.store, 1, None, None).await;
    let mut ue = Ue::new(1, dir.path(), K_HEX).await;

    let ok = register_aka(&lab, &mut ue).await;
    assert_eq!(ok.status(), Some(StatusCode::OK), "{ok:?}");
    assert_eq!(values(&ok, &HeaderName::PATH), [ue.path()]);
    assert_eq!(
        values(&ok, &HeaderName::SERVICE_ROUTE),
        [format!("<sip:orig@127.0.0.1:{};lr>", lab.scscf.port())]
    );
    assert_eq!(
        values(&ok, &HeaderName::P_ASSOCIATED_URI),
        [format!("<{}>", impu(1)), "<tel:+15550001>".to_owned()]
    );
    assert_eq!(
        values(&ok, &HeaderName::CONTACT),
        [format!("{};expires=600", ue.contact())]
    );
    let key = SubscriberKey::Imsi(Imsi::new(imsi(1)).expect("imsi"));
    let sub = lab
        .store
        .subscribers()
        .require(&key)
        .await
        .expect("subscriber");
    assert_eq!(sub.impus[0].reg_state, RegState::Registered);
    assert!(lab.events.has("uar", "REGISTER to"));
    assert!(lab.events.has("registered", "1 contact"));

    // The P-CSCF subscribes to the reg event.
    let text = ue.subscribe_text();
    let sub_ok = ue.request(lab.scscf, text).await;
    assert_eq!(sub_ok.status(), Some(StatusCode::OK));
    let n0 = ue.next_notify().await;
    let doc = body(&n0);
    assert!(
        doc.contains("version=\"0\"") && doc.contains("state=\"active\""),
        "{doc}"
    );
    assert!(
        doc.contains(&format!("<uri>sip:ue1@{}</uri>", ue.addr)),
        "{doc}"
    );

    // Re-registration with the same nonce, next nonce count: one round trip.
    let ch = challenge_again(&mut ue);
    let text = ue.register_text(&ch, 600);
    let ok = ue.request(lab.icscf, text).await;
    assert_eq!(ok.status(), Some(StatusCode::OK));
    let n1 = ue.next_notify().await;
    assert!(body(&n1).contains("version=\"1\"") && body(&n1).contains("event=\"refreshed\""));

    // De-registration.
    let ch = challenge_again(&mut ue);
    let text = ue.register_text(&ch, 0);
    let ok = ue.request(lab.icscf, text).await;
    assert_eq!(ok.status(), Some(StatusCode::OK));
    let n2 = ue.next_notify().await;
    let doc = body(&n2);
    assert!(
        doc.contains("version=\"2\"") && doc.contains("event=\"unregistered\""),
        "{doc}"
    );
    assert!(values(&n2, &HeaderName::SUBSCRIPTION_STATE)[0].starts_with("terminated"));
    tokio::time::sleep(Duration::from_millis(200)).await;
    let sub = lab
        .store
        .subscribers()
        .require(&key)
        .await
        .expect("subscriber");
    assert_eq!(sub.impus[0].reg_state, RegState::NotRegistered);
    tshark_sip(&mut ue, &lab);
    lab.stop().await;
}

/// The answer to the last challenge again, with the next nonce count.
fn challenge_again(ue: &mut Ue) -> String {
    ue.reuse_last_answer()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hss_rtr_deregisters_and_the_watchers_get_a_rejected_notify() {
    let dir = tempfile::tempdir().expect("dir");
    let lab = Lab::start().await;
    provision(&lab.store, 2, None, None).await;
    let mut ue = Ue::new(2, dir.path(), K_HEX).await;
    assert_eq!(
        register_aka(&lab, &mut ue).await.status(),
        Some(StatusCode::OK)
    );
    let text = ue.subscribe_text();
    assert_eq!(
        ue.request(lab.scscf, text).await.status(),
        Some(StatusCode::OK)
    );
    ue.next_notify().await;
    let key = SubscriberKey::Imsi(Imsi::new(imsi(2)).expect("imsi"));
    let (dereg, notify) = tokio::join!(
        lab.hss.deregister(
            &key,
            RtrScope::Subscriber,
            ReasonCode::PERMANENT_TERMINATION,
            Some("test".into())
        ),
        ue.next_notify()
    );
    let impus = dereg.expect("the S-CSCF answered RTA success");
    assert!(!impus.is_empty());
    let doc = body(&notify);
    assert!(doc.contains("event=\"rejected\""), "{doc}");
    assert!(values(&notify, &HeaderName::SUBSCRIPTION_STATE)[0].contains("reason=rejected"));
    assert!(lab.events.has("deregistered", "Registration-Termination"));
    tokio::time::sleep(Duration::from_millis(200)).await;
    let left = lab
        .store
        .scscf(&lab.config.scscf.uri)
        .registrations()
        .await
        .expect("store");
    assert!(left.is_empty(), "the S-CSCF removed it from the store");
    tshark_sip(&mut ue, &lab);
    lab.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn registration_survives_a_restart_of_the_scscf() {
    let dir = tempfile::tempdir().expect("dir");
    let mut lab = Lab::start().await;
    provision(&lab.store, 3, None, None).await;
    let mut ue = Ue::new(3, dir.path(), K_HEX).await;
    assert_eq!(
        register_aka(&lab, &mut ue).await.status(),
        Some(StatusCode::OK)
    );
    lab.scscf_run.take().expect("running").shut().await;
    lab.start_scscf().await;
    let text = ue.subscribe_text();
    assert_eq!(
        ue.request(lab.scscf, text).await.status(),
        Some(StatusCode::OK)
    );
    let n = ue.next_notify().await;
    let doc = body(&n);
    assert!(
        doc.contains("state=\"active\" event=\"registered\""),
        "{doc}"
    );
    assert!(doc.contains(&format!("sip:ue3@{}", ue.addr)));
    lab.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_key_is_refused_cleanly_with_403() {
    let dir = tempfile::tempdir().expect("dir");
    let lab = Lab::start().await;
    provision(&lab.store, 4, None, None).await;
    let wrong_k = "00112233445566778899aabbccddeeff";

    // A UE that checks the network: MAC failure, empty response, 403.
    let mut ue = Ue::new(4, dir.path(), wrong_k).await;
    let text = ue.register_text(&ue.initial_auth(), 600);
    let r401 = ue.request(lab.icscf, text).await;
    let ch = challenge(&r401);
    assert!(
        ue.usim
            .authenticate_nonce(ch.nonce().expect("nonce"))
            .is_err()
    );
    let empty = format!(
        "Authorization: Digest username=\"{}\", realm=\"{DOMAIN}\", nonce=\"{}\", \
         uri=\"sip:{DOMAIN}\", response=\"\", algorithm=AKAv1-MD5\r\n",
        impi(4),
        ch.nonce().expect("nonce")
    );
    let text = ue.register_text(&empty, 600);
    let r = ue.request(lab.icscf, text).await;
    assert_eq!(r.status(), Some(StatusCode::FORBIDDEN));
    assert!(lab.events.has("auth-response", "MAC failure"));

    // A client that does not check AUTN (like SIPp) answers with the wrong RES: challenged
    // again until the S-CSCF gives up with 403.
    let m = Milenage::new(
        &K::from_hex(wrong_k).expect("k"),
        &Opc::from_hex(OPC_HEX).expect("opc"),
    );
    let mut last = None;
    for _ in 0..lab.config.scscf.max_auth_failures {
        let text = ue.register_text(&ue.initial_auth(), 600);
        let mut r = ue.request(lab.icscf, text).await;
        if r.status() == Some(StatusCode::UNAUTHORIZED) {
            let ch = challenge(&r);
            let nonce = imslab_aka::Nonce::parse(ch.nonce().expect("nonce")).expect("nonce");
            let f = m.f2345(&nonce.rand);
            let ha1 = Ha1::aka(
                DigestAlgorithm::AkaV1Md5,
                &impi(4),
                DOMAIN,
                &f.res,
                &f.ik,
                &f.ck,
            )
            .expect("ha1");
            ue.reset_nc();
            let auth = ue.answer(&ch, &ha1, "AKAv1-MD5");
            let text = ue.register_text(&auth, 600);
            r = ue.request(lab.icscf, text).await;
        }
        last = r.status();
        if last == Some(StatusCode::FORBIDDEN) {
            break;
        }
        assert_eq!(
            last,
            Some(StatusCode::UNAUTHORIZED),
            "a fresh challenge after a wrong response"
        );
    }
    assert_eq!(last, Some(StatusCode::FORBIDDEN));
    assert!(lab.events.has("auth-response", "RES does not match XRES"));
    tshark_sip(&mut ue, &lab);
    lab.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sip_digest_subscriber_registers_with_a_plain_digest_client() {
    let dir = tempfile::tempdir().expect("dir");
    let lab = Lab::start().await;
    provision(&lab.store, 5, Some("lab-password"), Some(&["SIP Digest"])).await;
    let mut ue = Ue::new(5, dir.path(), K_HEX).await;
    let text = ue.register_text("", 600);
    let r401 = ue.request(lab.icscf, text).await;
    let ch = challenge(&r401);
    assert_eq!(ch.get("algorithm"), Some("MD5"));
    assert!(ch.ck().is_none());
    let ha1 = Ha1::new(&impi(5), ch.realm().expect("realm"), b"lab-password");
    let auth = ue.answer(&ch, &ha1, "MD5");
    let text = ue.register_text(&auth, 600);
    let ok = ue.request(lab.icscf, text).await;
    assert_eq!(ok.status(), Some(StatusCode::OK), "{ok:?}");
    tshark_sip(&mut ue, &lab);
    lab.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_user_is_answered_404_by_the_icscf() {
    let dir = tempfile::tempdir().expect("dir");
    let lab = Lab::start().await;
    let mut ue = Ue::new(9, dir.path(), K_HEX).await;
    let text = ue.register_text(&ue.initial_auth(), 600);
    let r = ue.request(lab.icscf, text).await;
    assert_eq!(r.status(), Some(StatusCode::NOT_FOUND));
    assert!(lab.events.has("uar", "user unknown"));
    lab.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn out_of_sync_sim_resynchronises_through_the_hss_and_registers() {
    let dir = tempfile::tempdir().expect("dir");
    let lab = Lab::start().await;
    provision(&lab.store, 6, None, None).await;
    let mut ue = Ue::new(6, dir.path(), K_HEX).await;
    // The card already accepted SQNs far beyond what the HSS hands out next, in every IND.
    let m = Milenage::new(
        &K::from_hex(K_HEX).expect("k"),
        &Opc::from_hex(OPC_HEX).expect("opc"),
    );
    let cfg = imslab_aka::SqnConfig::default();
    for ind in 0..32 {
        let sqn = cfg.compose(100_000 + u64::from(ind), ind).expect("sqn");
        let v = imslab_aka::generate_vector(
            &m,
            imslab_types::Rand([ind as u8; 16]),
            sqn,
            imslab_types::Amf([0x80, 0]),
        );
        ue.usim.authenticate(&v.rand, &v.autn).expect("accepted");
    }
    let text = ue.register_text(&ue.initial_auth(), 600);
    let r401 = ue.request(lab.icscf, text).await;
    let ch = challenge(&r401);
    let auts = match ue.usim.authenticate_nonce(ch.nonce().expect("nonce")) {
        Err(imslab_aka::Error::SyncFailure { auts, .. }) => auts,
        other => panic!("expected a synchronisation failure, got {other:?}"),
    };
    let empty = Ha1::empty_password(&impi(6), DOMAIN);
    ue.reset_nc();
    let auth = ue
        .answer(&ch, &empty, "AKAv1-MD5")
        .replace("\r\n", &format!(", auts=\"{}\"\r\n", auts.to_base64()));
    let text = ue.register_text(&auth, 600);
    let fresh = ue.request(lab.icscf, text).await;
    assert_ne!(
        challenge(&fresh).nonce(),
        ch.nonce(),
        "a fresh challenge after the resync"
    );
    let auth = ue.aka_answer(&fresh);
    let text = ue.register_text(&auth, 600);
    let ok = ue.request(lab.icscf, text).await;
    assert_eq!(ok.status(), Some(StatusCode::OK), "{ok:?}");
    assert!(lab.events.has("aka-resync", "synchronisation failure"));
    tshark_sip(&mut ue, &lab);
    lab.stop().await;
}

/// An I-CSCF table whose first (preferred) S-CSCF is at `dead`; the lab's own comes after.
fn dead_scscf_first(c: &mut imslab_config::Config, dead: std::net::SocketAddr) {
    c.icscf.scscfs.push(imslab_config::ScscfEntry {
        // The URI's port wins over the address's when both are given.
        uri: format!(
            "sip:scscf-dead.ims.mnc001.mcc001.3gppnetwork.org:{}",
            dead.port()
        ),
        address: Some(dead),
        capabilities: vec![],
    });
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn register_fails_over_from_a_silent_s_cscf_to_another_capable_one() {
    let dir = tempfile::tempdir().expect("dir");
    let silent = tokio::net::UdpSocket::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let dead = silent.local_addr().expect("addr");
    let lab = Lab::start_with(|c| dead_scscf_first(c, dead)).await;
    provision(&lab.store, 1, None, None).await;
    let mut ue = Ue::new(1, dir.path(), K_HEX).await;

    let ok = register_aka(&lab, &mut ue).await;
    assert_eq!(ok.status(), Some(StatusCode::OK), "{ok:?}");
    let mut buf = vec![0u8; 65536];
    let (n, _) = tokio::time::timeout(Duration::from_secs(1), silent.recv_from(&mut buf))
        .await
        .expect("the preferred S-CSCF was tried first")
        .expect("recv");
    assert!(buf[..n].starts_with(b"REGISTER "));
    assert!(lab.events.has("scscf-failover", "no answer within"));
    assert!(
        lab.events
            .has("scscf-failover", "fail-over from sip:scscf-dead")
    );
    tshark_sip(&mut ue, &lab);
    lab.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn register_fails_over_when_the_preferred_s_cscf_port_is_closed() {
    let dir = tempfile::tempdir().expect("dir");
    let dead = {
        let s = std::net::UdpSocket::bind("127.0.0.1:0").expect("bind");
        s.local_addr().expect("addr")
    };
    let lab = Lab::start_with(|c| dead_scscf_first(c, dead)).await;
    provision(&lab.store, 1, None, None).await;
    let mut ue = Ue::new(1, dir.path(), K_HEX).await;
    let ok = register_aka(&lab, &mut ue).await;
    assert_eq!(ok.status(), Some(StatusCode::OK), "{ok:?}");
    assert!(
        lab.events
            .has("scscf-failover", "fail-over from sip:scscf-dead")
    );
    lab.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_200_to_a_register_leaves_the_binding_already_in_the_store() {
    let dir = tempfile::tempdir().expect("dir");
    let lab = Lab::start().await;
    provision(&lab.store, 4, None, None).await;
    let mut ue = Ue::new(4, dir.path(), K_HEX).await;
    assert_eq!(
        register_aka(&lab, &mut ue).await.status(),
        Some(StatusCode::OK)
    );
    // No wait: what the phone was told is registered must survive a crash from now on.
    let scscf = lab.store.scscf(&lab.config.scscf.uri);
    let impu = imslab_types::Impu::new(impu(4)).expect("impu");
    assert!(scscf.registration(&impu).await.expect("store").is_some());
    let bindings = scscf.bindings(&impu).await.expect("store");
    assert!(
        bindings
            .iter()
            .any(|b| b.contact.contains(&ue.addr.to_string())),
        "{bindings:?}"
    );
    lab.stop().await;
}
