use std::time::Duration;

use imslab_store::{EventFilter, EventRecorder, RecorderOptions, Retention, Store};
use imslab_types::{Function, Imsi, Outcome, UeEvent, UeEventSink, UeRef};

use crate::{on_both, t0};

fn event(imsi: &str, step: &'static str, secs: u64) -> UeEvent {
    UeEvent {
        at: t0() + Duration::from_secs(secs),
        function: Function::Hss,
        ue: UeRef::imsi(Imsi::new(imsi).unwrap()),
        step,
        outcome: Outcome::Failed,
        reason: Some("IMPU barred".into()),
    }
}

async fn events_are_queried_per_phone_newest_first_and_pruned(store: Store) {
    let mut batch = Vec::new();
    for i in 0..250u64 {
        batch.push(event(
            if i % 2 == 0 {
                "001010000000001"
            } else {
                "001010000000002"
            },
            "uar",
            i,
        ));
    }
    store.ue_events().insert(&batch).await.unwrap();
    let filter = EventFilter {
        imsi: Some(Imsi::new("001010000000001").unwrap()),
        limit: Some(3),
        ..EventFilter::default()
    };
    let got = store.ue_events().query(&filter).await.unwrap();
    assert_eq!(got.len(), 3);
    assert_eq!(got[0].at, t0() + Duration::from_secs(248));
    assert_eq!(
        (
            got[0].function.as_str(),
            got[0].step.as_str(),
            got[0].outcome.as_str()
        ),
        ("hss", "uar", "failed")
    );
    assert_eq!(got[0].reason.as_deref(), Some("IMPU barred"));
    // Age bound: everything before t0+100 s goes; then the row bound keeps the newest 50.
    let retention = Retention {
        max_rows: 50,
        max_age: Duration::from_secs(150),
    };
    let deleted = store
        .ue_events()
        .prune(retention, t0() + Duration::from_secs(250))
        .await
        .unwrap();
    assert_eq!(deleted, 200);
    assert_eq!(store.ue_events().count().await.unwrap(), 50);
    let oldest = store
        .ue_events()
        .query(&EventFilter {
            limit: Some(1000),
            ..EventFilter::default()
        })
        .await
        .unwrap();
    assert_eq!(oldest.last().unwrap().at, t0() + Duration::from_secs(200));
}
on_both!(
    events_are_queried_per_phone_newest_first_and_pruned,
    events_are_queried_per_phone_newest_first_and_pruned
);

async fn recorder_writes_emitted_events_in_batches(store: Store) {
    let opts = RecorderOptions {
        flush_interval: Duration::from_millis(20),
        ..RecorderOptions::default()
    };
    let (rec, task) = EventRecorder::spawn(store.clone(), opts);
    for i in 0..500 {
        rec.emit(event("001010000000001", "mar", i));
    }
    drop(rec);
    task.await.unwrap();
    assert_eq!(store.ue_events().count().await.unwrap(), 500);
}
on_both!(
    recorder_writes_emitted_events_in_batches,
    recorder_writes_emitted_events_in_batches
);

/// `sqlite::memory:` keeps the timeline in the same (only) database: both migration sets apply.
#[tokio::test]
async fn in_memory_sqlite_holds_subscribers_and_events() {
    let store = Store::open(&imslab_store::StoreOptions::new("sqlite::memory:"))
        .await
        .unwrap();
    store
        .subscribers()
        .insert(&crate::new_subscriber("001010000000001", None), t0())
        .await
        .unwrap();
    store
        .ue_events()
        .insert(&[event("001010000000001", "mar", 1)])
        .await
        .unwrap();
    assert_eq!(store.ue_events().count().await.unwrap(), 1);
    assert_eq!(store.subscribers().count().await.unwrap(), 1);
}
