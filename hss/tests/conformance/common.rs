use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use imslab_config::HssConfig;
use imslab_diameter::cx::{CxResult, Lir, Mar, Sar, SipAuthDataItem, Uar};
use imslab_diameter::enums::{
    ServerAssignmentType, UserAuthorizationType, UserDataAlreadyAvailable,
};
use imslab_diameter::{ExperimentalResultCode, ResultCode};
use imslab_hss::CxSettings;
use imslab_hss::cx::Lookup;
use imslab_store::model::{
    ApplicationServer, DefaultHandling, InitialFilterCriteria, ProfilePartIndicator,
    ServicePointTrigger, SessionCase, SptKind, TriggerPoint,
};
use imslab_store::{
    AuthScheme, AuthSchemes, ChargingInfo, DigestSecret, OperatorKey, PublicIdentity, RegState,
    ServiceProfile, ServingScscf, Subscriber, Subscription,
};
use imslab_types::{Amf, DiameterIdentity, Impi, Impu, Imsi, K, Opc, Realm, Sqn};

pub(crate) const K_HEX: &str = "465b5ce8b199b49faa5f0a2ee238a6bc";
pub(crate) const OPC_HEX: &str = "cd63cb71954a9f4e48a5994e37a02baf";
pub(crate) const IMPI: &str = "001010000000001@ims.example";
pub(crate) const ALICE: &str = "sip:alice@ims.example";
pub(crate) const ALICE_TEL: &str = "tel:+15550001";
pub(crate) const BARRED_ALONE: &str = "sip:barred@ims.example";
pub(crate) const BARRED_WITH_PEER: &str = "sip:temp@ims.example";
pub(crate) const PEER_OF_BARRED: &str = "sip:peer@ims.example";
pub(crate) const UNREG_SERVICES: &str = "sip:voicemail@ims.example";
pub(crate) const BOB: &str = "sip:bob@ims.example";
pub(crate) const SCSCF: &str = "sip:scscf.ims.example:6060";
pub(crate) const OTHER_SCSCF: &str = "sip:scscf2.ims.example:6060";

pub(crate) fn now() -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(1_750_000_000)
}

pub(crate) fn settings() -> CxSettings {
    let mut cfg = HssConfig {
        origin_host: "hss.ims.example".into(),
        max_auth_items: 4,
        allowed_visited_networks: vec!["visited.example".into()],
        mandatory_capabilities: vec![1],
        optional_capabilities: vec![2, 3],
        ..HssConfig::default()
    };
    cfg.charging.ccf_primary = Some("aaa://ccf.ims.example:3868".into());
    CxSettings::from_config(&cfg, &Realm::new("ims.example").unwrap()).unwrap()
}

pub(crate) fn impu(s: &str) -> Impu {
    Impu::new(s).unwrap()
}

pub(crate) fn impi(s: &str) -> Impi {
    Impi::new(s).unwrap()
}

fn identity(
    uri: &str,
    irs: i64,
    default: bool,
    barred: bool,
    profile: Option<&str>,
) -> PublicIdentity {
    PublicIdentity {
        impu: impu(uri),
        irs,
        is_default: default,
        barred,
        profile: profile.map(Into::into),
        reg_state: RegState::NotRegistered,
    }
}

pub(crate) fn mmtel() -> ServiceProfile {
    ServiceProfile {
        name: "mmtel".into(),
        subscribed_media_profile_id: Some(7),
        ifcs: vec![
            InitialFilterCriteria {
                priority: 10,
                trigger_point: Some(TriggerPoint {
                    condition_type_cnf: true,
                    spts: vec![
                        ServicePointTrigger {
                            condition_negated: false,
                            groups: vec![0],
                            kind: SptKind::Method("INVITE".into()),
                            registration_types: vec![],
                        },
                        ServicePointTrigger {
                            condition_negated: true,
                            groups: vec![1],
                            kind: SptKind::SipHeader {
                                header: "Subject".into(),
                                content: Some("<spam & \"eggs\">".into()),
                            },
                            registration_types: vec![],
                        },
                        ServicePointTrigger {
                            condition_negated: false,
                            groups: vec![2, 3],
                            kind: SptKind::SessionCase(SessionCase::OriginatingRegistered),
                            registration_types: vec![],
                        },
                        ServicePointTrigger {
                            condition_negated: false,
                            groups: vec![2],
                            kind: SptKind::SessionDescription {
                                line: "m".into(),
                                content: Some("audio.*".into()),
                            },
                            registration_types: vec![],
                        },
                        ServicePointTrigger {
                            condition_negated: false,
                            groups: vec![4],
                            kind: SptKind::RequestUri("sip:.*@ims\\.example".into()),
                            registration_types: vec![],
                        },
                    ],
                }),
                application_server: ApplicationServer {
                    server_name: "sip:tas.ims.example".into(),
                    default_handling: DefaultHandling::SessionTerminated,
                    service_info: Some("mmtel".into()),
                    include_register_request: true,
                    include_register_response: true,
                },
                profile_part_indicator: Some(ProfilePartIndicator::Registered),
            },
            InitialFilterCriteria {
                priority: 5,
                trigger_point: Some(TriggerPoint {
                    condition_type_cnf: false,
                    spts: vec![ServicePointTrigger {
                        condition_negated: false,
                        groups: vec![0],
                        kind: SptKind::Method("REGISTER".into()),
                        registration_types: vec![0, 2],
                    }],
                }),
                application_server: ApplicationServer {
                    server_name: "sip:as.ims.example".into(),
                    ..ApplicationServer::default()
                },
                profile_part_indicator: Some(ProfilePartIndicator::Registered),
            },
        ],
    }
}

pub(crate) fn voicemail() -> ServiceProfile {
    ServiceProfile {
        name: "voicemail".into(),
        subscribed_media_profile_id: None,
        ifcs: vec![InitialFilterCriteria {
            priority: 1,
            trigger_point: Some(TriggerPoint {
                condition_type_cnf: false,
                spts: vec![ServicePointTrigger {
                    condition_negated: false,
                    groups: vec![0],
                    kind: SptKind::SessionCase(SessionCase::TerminatingUnregistered),
                    registration_types: vec![],
                }],
            }),
            application_server: ApplicationServer {
                server_name: "sip:vm.ims.example".into(),
                ..ApplicationServer::default()
            },
            profile_part_indicator: Some(ProfilePartIndicator::Unregistered),
        }],
    }
}

/// One subscriber with: implicit set 1 {alice (default), tel}, set 2 {barred alone}, set 3
/// {temp (barred), peer}, set 4 {voicemail, with unregistered services}; AKAv1, AKAv2 and
/// SIP Digest allowed.
pub(crate) fn subscription() -> Subscription {
    Subscription {
        subscriber: Subscriber {
            id: 42,
            imsi: Imsi::new("001010000000001").unwrap(),
            impi: impi(IMPI),
            msisdn: None,
            k: K::from_hex(K_HEX).unwrap(),
            operator_key: OperatorKey::Opc(Opc::from_hex(OPC_HEX).unwrap()),
            amf: Amf([0x80, 0x00]),
            sqn: Sqn::new(0).unwrap(),
            auth_schemes: AuthSchemes::of(&[
                AuthScheme::AkaV1Md5,
                AuthScheme::AkaV2Md5,
                AuthScheme::SipDigest,
            ]),
            digest_realm: None,
            digest: Some(DigestSecret::Password("secret".into())),
            fixed_scscf: None,
            scscf: None,
            charging: ChargingInfo::default(),
            impus: vec![
                identity(ALICE, 1, true, false, Some("mmtel")),
                identity(ALICE_TEL, 1, false, false, Some("mmtel")),
                identity(BARRED_ALONE, 2, true, true, None),
                identity(BARRED_WITH_PEER, 3, true, true, None),
                identity(PEER_OF_BARRED, 3, false, false, None),
                identity(UNREG_SERVICES, 4, true, false, Some("voicemail")),
            ],
        },
        profiles: vec![mmtel(), voicemail()],
    }
}

/// The fixture with `impus`' implicit sets in `state` and the S-CSCF `scscf` stored.
pub(crate) fn with_state(
    mut sub: Subscription,
    impus: &[&str],
    state: RegState,
    scscf: Option<&str>,
) -> Subscription {
    let sets: Vec<i64> = sub
        .subscriber
        .impus
        .iter()
        .filter(|p| impus.contains(&p.impu.as_str()))
        .map(|p| p.irs)
        .collect();
    for p in &mut sub.subscriber.impus {
        if sets.contains(&p.irs) {
            p.reg_state = state;
        }
    }
    sub.subscriber.scscf = scscf.map(|n| ServingScscf {
        name: n.into(),
        origin_host: Some(
            n.trim_start_matches("sip:")
                .split(':')
                .next()
                .unwrap()
                .into(),
        ),
        origin_realm: Some("ims.example".into()),
    });
    sub
}

pub(crate) fn lookup(sub: Subscription) -> Lookup {
    Lookup::found(sub)
}

/// A lookup where the subscriber was found by IMPI but `foreign` belongs to `owner` (or nobody).
pub(crate) fn lookup_foreign(sub: Subscription, foreign: &str, owner: Option<&str>) -> Lookup {
    Lookup {
        subscription: Some(sub),
        foreign: vec![(impu(foreign), owner.map(|o| Imsi::new(o).unwrap()))],
    }
}

pub(crate) fn unknown() -> Lookup {
    Lookup::default()
}

fn head() -> (String, DiameterIdentity, Realm) {
    (
        "icscf.ims.example;1;2".into(),
        DiameterIdentity::new("icscf.ims.example").unwrap(),
        Realm::new("ims.example").unwrap(),
    )
}

pub(crate) fn uar(
    user: &str,
    public: &str,
    kind: Option<UserAuthorizationType>,
    visited: &str,
) -> Uar {
    let (sid, host, realm) = head();
    Uar {
        session_id: sid,
        origin_host: host,
        origin_realm: realm.clone(),
        destination_host: None,
        destination_realm: realm,
        user_name: impi(user),
        supported_features: vec![],
        public_identity: impu(public),
        visited_network_identifier: Bytes::copy_from_slice(visited.as_bytes()),
        user_authorization_type: kind,
        uar_flags: None,
        extra: vec![],
        proxy_info: vec![],
        route_record: vec![],
    }
}

pub(crate) fn mar(user: &str, public: &str, scheme: &str, items: u32, server: &str) -> Mar {
    let (sid, _, realm) = head();
    Mar {
        session_id: sid,
        origin_host: DiameterIdentity::new(
            server.trim_start_matches("sip:").split(':').next().unwrap(),
        )
        .unwrap(),
        origin_realm: realm.clone(),
        destination_host: None,
        destination_realm: realm,
        user_name: impi(user),
        supported_features: vec![],
        public_identity: impu(public),
        sip_auth_data_item: SipAuthDataItem::with_scheme(scheme),
        sip_number_auth_items: items,
        server_name: server.into(),
        extra: vec![],
        proxy_info: vec![],
        route_record: vec![],
    }
}

pub(crate) fn sar(
    user: Option<&str>,
    publics: &[&str],
    t: ServerAssignmentType,
    server: &str,
) -> Sar {
    let (sid, _, realm) = head();
    Sar {
        session_id: sid,
        origin_host: DiameterIdentity::new(
            server.trim_start_matches("sip:").split(':').next().unwrap(),
        )
        .unwrap(),
        origin_realm: realm.clone(),
        destination_host: None,
        destination_realm: realm,
        user_name: user.map(impi),
        supported_features: vec![],
        public_identities: publics.iter().map(|p| impu(p)).collect(),
        wildcarded_public_identity: None,
        server_name: server.into(),
        server_assignment_type: t,
        user_data_already_available: UserDataAlreadyAvailable::USER_DATA_NOT_AVAILABLE,
        scscf_restoration_info: None,
        multiple_registration_indication: None,
        session_priority: None,
        sar_flags: None,
        failed_pcscf: None,
        extra: vec![],
        proxy_info: vec![],
        route_record: vec![],
    }
}

pub(crate) fn lir(public: &str, kind: Option<UserAuthorizationType>) -> Lir {
    let (sid, host, realm) = head();
    Lir {
        session_id: sid,
        origin_host: host,
        origin_realm: realm.clone(),
        destination_host: None,
        destination_realm: realm,
        originating_request: None,
        supported_features: vec![],
        public_identity: impu(public),
        user_authorization_type: kind,
        session_priority: None,
        extra: vec![],
        proxy_info: vec![],
        route_record: vec![],
    }
}

/// Expected result.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Want {
    Exp(ExperimentalResultCode),
    Base(ResultCode),
}

impl Want {
    pub(crate) fn matches(self, r: &CxResult) -> bool {
        match (self, r) {
            (Self::Base(w), CxResult::Base(g)) => w == *g,
            (Self::Exp(w), CxResult::Experimental { code, vendor }) => {
                w == *code && vendor.0 == 10415
            }
            _ => false,
        }
    }
}

pub(crate) const SUCCESS: Want = Want::Base(ResultCode::DIAMETER_SUCCESS);
