use imslab_store::provision::{export_csv, import_csv};
use imslab_store::{Error, Store, SubscriberKey};
use imslab_types::Imsi;

use crate::{K, OPC, defaults, new_subscriber, on_both, t0};

async fn import_is_all_or_nothing_and_reports_clashes_with_stored_subscribers(store: Store) {
    store
        .subscribers()
        .insert(&new_subscriber("001010000000001", Some("15550001")), t0())
        .await
        .unwrap();
    let text = format!(
        "imsi,msisdn,k,opc\n\
         001010000000002,15550002,{K},{OPC}\n\
         001010000000001,,{K},{OPC}\n\
         001010000000003,15550001,{K},{OPC}\n"
    );
    let err = import_csv(&store, &text, &defaults(), t0())
        .await
        .unwrap_err();
    let Error::InvalidImport { lines } = err else {
        panic!("expected InvalidImport, got {err}")
    };
    let shown: Vec<String> = lines.iter().map(ToString::to_string).collect();
    assert_eq!(
        shown,
        [
            "line 3 (001010000000001): imsi: 001010000000001 already exists, impus: \
             sip:001010000000001@ims.mnc001.mcc001.3gppnetwork.org already belongs to \
             001010000000001",
            "line 4 (001010000000003): impus: sip:15550001@ims.mnc001.mcc001.3gppnetwork.org \
             already belongs to 001010000000001, impus: tel:+15550001 already belongs to \
             001010000000001",
        ]
    );
    // Line 2 was valid but nothing was imported.
    assert_eq!(store.subscribers().count().await.unwrap(), 1);
    let good = format!("imsi,msisdn,k,opc\n001010000000002,15550002,{K},{OPC}\n");
    let report = import_csv(&store, &good, &defaults(), t0()).await.unwrap();
    assert_eq!(report.imported, 1);
    assert_eq!(store.subscribers().count().await.unwrap(), 2);
}
on_both!(
    import_is_all_or_nothing_and_reports_clashes_with_stored_subscribers,
    import_is_all_or_nothing_and_reports_clashes_with_stored_subscribers
);

async fn export_with_secrets_reimports_identically_and_without_hides_them(store: Store) {
    let text = format!(
        "imsi,msisdn,k,op,amf,sqn,password,impus,auth_schemes\n\
         001010000000001,15550001,{K},cdc202d5123e20f62b6d676ac72cb318,0000,4242,s3cret,\
         \"sip:a@ims.example|tel:+15550001#irs=1|sip:b@ims.example#irs=2,barred\",\
         Digest-AKAv1-MD5|SIP Digest\n\
         001010000000002,,{K},{OPC},,,,,\n"
    );
    import_csv(&store, &text, &defaults(), t0()).await.unwrap();
    let all = store.subscribers().list(0, 100).await.unwrap();
    let hidden = export_csv(&all, false);
    assert!(!hidden.contains(K) && !hidden.contains(OPC) && !hidden.contains("s3cret"));
    assert!(!hidden.contains("cdc202d5"));
    let full = export_csv(&all, true);
    assert!(full.contains(K) && full.contains("s3cret"));

    let (other, _guard) = crate::open(
        match store.kind() {
            imslab_store::BackendKind::Sqlite => "sqlite",
            imslab_store::BackendKind::Postgres => "postgres",
        },
        "export_reimport",
    )
    .await;
    import_csv(&other, &full, &defaults(), t0()).await.unwrap();
    let again = other.subscribers().list(0, 100).await.unwrap();
    for (a, b) in all.iter().zip(&again) {
        let mut b = b.clone();
        b.id = a.id;
        assert_eq!(a, &b);
    }
    let s = other
        .subscribers()
        .require(&SubscriberKey::Imsi(Imsi::new("001010000000001").unwrap()))
        .await
        .unwrap();
    assert_eq!(s.sqn.value(), 4242);
    assert!(s.impus[2].barred && s.impus[2].is_default && s.impus[2].irs == 2);
}
on_both!(
    export_with_secrets_reimports_identically_and_without_hides_them,
    export_with_secrets_reimports_identically_and_without_hides_them
);
