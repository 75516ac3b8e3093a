use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use imslab_config::HssConfig;
use imslab_diameter::base::{Capabilities, VendorSpecificApplicationId};
use imslab_diameter::cx::{Mar, Sar, SipAuthDataItem};
use imslab_diameter::enums::{ServerAssignmentType, UserDataAlreadyAvailable};
use imslab_diameter::{Message, VendorId};
use imslab_diameter_io::{DiameterNode, NodeOptions, PeerOptions, RequestHandler};
use imslab_hss::Hss;
use imslab_store::Store;
use imslab_store::provision::{ImpuInput, NewSubscriber, ProvisionDefaults, SubscriberInput};
use imslab_store::testing::{PgDatabase, sqlite_store};
use imslab_types::{DiameterIdentity, Impi, Impu, Realm, UeEvent, UeEventSink};

pub(crate) const REALM: &str = "ims.example";
pub(crate) const K: &str = "465b5ce8b199b49faa5f0a2ee238a6bc";
pub(crate) const OPC: &str = "cd63cb71954a9f4e48a5994e37a02baf";
pub(crate) const SCSCF_HOST: &str = "scscf.ims.example";
pub(crate) const SCSCF_NAME: &str = "sip:scscf.ims.example:6060";

pub(crate) fn realm() -> Realm {
    Realm::new(REALM).unwrap()
}

pub(crate) fn imsi(n: u32) -> String {
    format!("00101{n:010}")
}

pub(crate) fn impi(n: u32) -> Impi {
    Impi::new(format!("{}@{REALM}", imsi(n))).unwrap()
}

pub(crate) fn impu(n: u32) -> Impu {
    Impu::new(format!("sip:{}@{REALM}", imsi(n))).unwrap()
}

/// Collects events.
#[derive(Default)]
pub(crate) struct Events(pub(crate) Mutex<Vec<UeEvent>>);

impl UeEventSink for Events {
    fn emit(&self, e: UeEvent) {
        self.0.lock().unwrap().push(e);
    }
}

pub(crate) enum Db {
    Sqlite(#[allow(dead_code)] tempfile::TempDir),
    Pg(#[allow(dead_code)] PgDatabase),
}

pub(crate) async fn store(backend: &str, test: &str) -> (Store, Db) {
    if backend == "sqlite" {
        let (s, d) = sqlite_store().await;
        (s, Db::Sqlite(d))
    } else {
        let db = PgDatabase::create(test).await;
        (db.store().await, Db::Pg(db))
    }
}

/// Provisions subscribers 1..=n with the test K/OPc, one IMPU each.
pub(crate) async fn provision(store: &Store, n: u32) {
    let defaults = ProvisionDefaults::new(realm());
    let news: Vec<NewSubscriber> = (1..=n)
        .map(|i| {
            let input = SubscriberInput {
                imsi: imsi(i),
                k: K.into(),
                opc: Some(OPC.into()),
                impus: vec![ImpuInput::Uri(impu(i).to_string())],
                ..SubscriberInput::default()
            };
            NewSubscriber::from_input(&input, &defaults).unwrap()
        })
        .collect();
    store
        .subscribers()
        .insert_all(&news, SystemTime::now())
        .await
        .unwrap();
}

pub(crate) async fn start_hss(store: Store) -> (Hss, SocketAddr, Arc<Events>) {
    let cfg = HssConfig {
        origin_host: "hss.ims.example".into(),
        request_timeout_ms: 3000,
        ..HssConfig::default()
    };
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let events = Arc::new(Events::default());
    let hss = Hss::start(&cfg, &realm(), store, listener, events.clone()).unwrap();
    let addr = hss.local_addr().unwrap();
    (hss, addr, events)
}

pub(crate) fn caps(host: &str) -> Capabilities {
    Capabilities {
        origin_host: DiameterIdentity::new(host).unwrap(),
        origin_realm: realm(),
        host_ip_addresses: vec![],
        vendor_id: VendorId(0),
        product_name: "test-scscf".into(),
        origin_state_id: Some(1),
        supported_vendor_ids: vec![VendorId::TGPP],
        auth_application_ids: vec![],
        inband_security_ids: vec![],
        acct_application_ids: vec![],
        vendor_specific_application_ids: vec![VendorSpecificApplicationId::CX],
        firmware_revision: None,
    }
}

/// A client node (the S-CSCF) connected to the HSS, answering HSS requests with `handler`.
pub(crate) async fn scscf<H: RequestHandler>(hss: SocketAddr, handler: H) -> DiameterNode {
    let mut opts = NodeOptions::new(caps(SCSCF_HOST));
    opts.peers.push(PeerOptions::connect_tcp(
        DiameterIdentity::new("hss.ims.example").unwrap(),
        realm(),
        hss,
    ));
    let node = DiameterNode::start(opts, handler, None).unwrap();
    node.wait_peer_up("hss.ims.example", Duration::from_secs(10))
        .await
        .unwrap();
    node
}

pub(crate) fn mar(n: u32, sid: u64, items: u32) -> Mar {
    Mar {
        session_id: format!("{SCSCF_HOST};mar;{sid}"),
        origin_host: DiameterIdentity::new(SCSCF_HOST).unwrap(),
        origin_realm: realm(),
        destination_host: None,
        destination_realm: realm(),
        user_name: impi(n),
        supported_features: vec![],
        public_identity: impu(n),
        sip_auth_data_item: SipAuthDataItem::with_scheme(SipAuthDataItem::SCHEME_AKAV1_MD5),
        sip_number_auth_items: items,
        server_name: SCSCF_NAME.into(),
        extra: vec![],
        proxy_info: vec![],
        route_record: vec![],
    }
}

pub(crate) fn sar(n: u32, t: ServerAssignmentType) -> Sar {
    Sar {
        session_id: format!("{SCSCF_HOST};sar;{n}"),
        origin_host: DiameterIdentity::new(SCSCF_HOST).unwrap(),
        origin_realm: realm(),
        destination_host: None,
        destination_realm: realm(),
        user_name: Some(impi(n)),
        supported_features: vec![],
        public_identities: vec![impu(n)],
        wildcarded_public_identity: None,
        server_name: SCSCF_NAME.into(),
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

pub(crate) async fn ask(node: &DiameterNode, m: Message) -> Message {
    node.request(m).await.unwrap()
}
