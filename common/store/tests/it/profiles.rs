use imslab_store::model::{
    ApplicationServer, DefaultHandling, InitialFilterCriteria, ProfilePartIndicator,
    ServicePointTrigger, SessionCase, SptKind, TriggerPoint,
};
use imslab_store::provision::{ImpuInput, NewSubscriber, SubscriberInput};
use imslab_store::{Error, ServiceProfile, Store, SubscriberKey};
use imslab_types::Imsi;

use crate::{K, OPC, defaults, on_both, t0};

pub(crate) fn mmtel() -> ServiceProfile {
    ServiceProfile {
        name: "mmtel".into(),
        subscribed_media_profile_id: Some(3),
        ifcs: vec![
            InitialFilterCriteria {
                priority: 20,
                trigger_point: Some(TriggerPoint {
                    condition_type_cnf: false,
                    spts: vec![
                        ServicePointTrigger {
                            condition_negated: false,
                            groups: vec![0],
                            kind: SptKind::Method("INVITE".into()),
                            registration_types: vec![],
                        },
                        ServicePointTrigger {
                            condition_negated: false,
                            groups: vec![0],
                            kind: SptKind::SessionCase(SessionCase::OriginatingRegistered),
                            registration_types: vec![],
                        },
                        ServicePointTrigger {
                            condition_negated: true,
                            groups: vec![1],
                            kind: SptKind::SipHeader {
                                header: "Accept-Contact".into(),
                                content: None,
                            },
                            registration_types: vec![],
                        },
                    ],
                }),
                application_server: ApplicationServer {
                    server_name: "sip:tas.ims.example".into(),
                    default_handling: DefaultHandling::SessionTerminated,
                    service_info: Some("mmtel".into()),
                    include_register_request: false,
                    include_register_response: false,
                },
                profile_part_indicator: Some(ProfilePartIndicator::Registered),
            },
            InitialFilterCriteria {
                priority: 10,
                trigger_point: Some(TriggerPoint {
                    condition_type_cnf: true,
                    spts: vec![ServicePointTrigger {
                        condition_negated: false,
                        groups: vec![0],
                        kind: SptKind::Method("REGISTER".into()),
                        registration_types: vec![0, 1],
                    }],
                }),
                application_server: ApplicationServer {
                    server_name: "sip:as.ims.example".into(),
                    default_handling: DefaultHandling::SessionContinued,
                    service_info: None,
                    include_register_request: true,
                    include_register_response: true,
                },
                profile_part_indicator: None,
            },
        ],
    }
}

async fn profiles_round_trip_in_priority_order_and_replace(store: Store) {
    let p = mmtel();
    store.profiles().put(&p, t0()).await.unwrap();
    let got = store.profiles().get("mmtel").await.unwrap().unwrap();
    let mut expected = p.clone();
    expected.ifcs.sort_by_key(|i| i.priority);
    assert_eq!(got, expected);
    let mut smaller = p.clone();
    smaller.ifcs.truncate(1);
    store.profiles().put(&smaller, t0()).await.unwrap();
    assert_eq!(
        store
            .profiles()
            .get("mmtel")
            .await
            .unwrap()
            .unwrap()
            .ifcs
            .len(),
        1
    );
    assert_eq!(store.profiles().names().await.unwrap(), ["mmtel"]);
    let mut dup = p.clone();
    dup.ifcs[1].priority = 20;
    assert!(matches!(
        store.profiles().put(&dup, t0()).await,
        Err(Error::Duplicate { .. })
    ));
}
on_both!(
    profiles_round_trip_in_priority_order_and_replace,
    profiles_round_trip_in_priority_order_and_replace
);

async fn subscription_carries_profiles_of_its_identities(store: Store) {
    store.profiles().put(&mmtel(), t0()).await.unwrap();
    let input = SubscriberInput {
        imsi: "001010000000001".into(),
        k: K.into(),
        opc: Some(OPC.into()),
        profile: Some("mmtel".into()),
        impus: vec![ImpuInput::Uri("sip:alice@ims.example".into())],
        ..SubscriberInput::default()
    };
    let new = NewSubscriber::from_input(&input, &defaults()).unwrap();
    store.subscribers().insert(&new, t0()).await.unwrap();
    let key = SubscriberKey::Imsi(Imsi::new("001010000000001").unwrap());
    let sub = store
        .subscribers()
        .subscription(&key)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(sub.subscriber.impus[0].profile.as_deref(), Some("mmtel"));
    assert_eq!(sub.profile("mmtel").unwrap().ifcs.len(), 2);
    // An unknown profile is refused at insert.
    let mut bad = input.clone();
    bad.imsi = "001010000000002".into();
    bad.profile = Some("nope".into());
    bad.impus = vec![ImpuInput::Uri("sip:bob@ims.example".into())];
    let new = NewSubscriber::from_input(&bad, &defaults()).unwrap();
    assert!(matches!(
        store.subscribers().insert(&new, t0()).await,
        Err(Error::NotFound {
            what: "service profile",
            ..
        })
    ));
    // Deleting the profile leaves the identity without one.
    assert!(store.profiles().delete("mmtel").await.unwrap());
    let sub = store
        .subscribers()
        .subscription(&key)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(sub.subscriber.impus[0].profile, None);
    assert!(sub.profiles.is_empty());
}
on_both!(
    subscription_carries_profiles_of_its_identities,
    subscription_carries_profiles_of_its_identities
);
