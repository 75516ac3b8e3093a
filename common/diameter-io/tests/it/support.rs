//! Shared helpers: identities, capabilities, typed Cx requests, a log capture, a Cx server.

use std::io::Write;
use std::net::Ipv4Addr;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use imslab_diameter::answer::{Origin, error_answer};
use imslab_diameter::base::{Capabilities, VendorSpecificApplicationId};
use imslab_diameter::codes::{ExperimentalResultCode, VendorId};
use imslab_diameter::cx::{CxRequest, CxResult, Maa, SipAuthDataItem, Uaa, Uar};
use imslab_diameter::types::Address;
use imslab_diameter::{Error, Message};
use imslab_diameter_io::{DiameterNode, NodeOptions, PeerInfo};
use imslab_types::{DiameterIdentity, Impi, Impu, Realm};
use tokio::net::TcpListener;

pub(crate) const REALM: &str = "ims.example";

pub(crate) fn id(s: &str) -> DiameterIdentity {
    DiameterIdentity::new(s).expect("valid identity")
}

pub(crate) fn realm(s: &str) -> Realm {
    Realm::new(s).expect("valid realm")
}

pub(crate) fn caps(host: &str, realm_name: &str) -> Capabilities {
    Capabilities {
        origin_host: id(host),
        origin_realm: realm(realm_name),
        host_ip_addresses: vec![Address::V4(Ipv4Addr::LOCALHOST)],
        vendor_id: VendorId(0),
        product_name: "imslab".into(),
        origin_state_id: Some(1),
        supported_vendor_ids: vec![VendorId::TGPP],
        auth_application_ids: vec![],
        inband_security_ids: vec![],
        acct_application_ids: vec![],
        vendor_specific_application_ids: vec![VendorSpecificApplicationId::CX],
        firmware_revision: None,
    }
}

pub(crate) fn origin(host: &str, realm_name: &str) -> Origin {
    Origin {
        host: id(host),
        realm: realm(realm_name),
    }
}

/// A UAR from the I-CSCF for `user`, to `dest_realm`.
pub(crate) fn uar(from: &str, from_realm: &str, dest_realm: &str, user: &str) -> Uar {
    Uar {
        session_id: format!("{from};{user};1"),
        origin_host: id(from),
        origin_realm: realm(from_realm),
        destination_host: None,
        destination_realm: realm(dest_realm),
        user_name: Impi::new(format!("{user}@{REALM}")).expect("valid IMPI"),
        supported_features: vec![],
        public_identity: Impu::new(format!("sip:{user}@{REALM}")).expect("valid IMPU"),
        visited_network_identifier: Bytes::from_static(b"ims.example"),
        user_authorization_type: None,
        uar_flags: None,
        extra: vec![],
        proxy_info: vec![],
        route_record: vec![],
    }
}

/// A toy HSS: UAR for `alice` gets FIRST_REGISTRATION with a server name, others
/// USER_UNKNOWN; MAR gets one empty vector; anything else an error answer.
pub(crate) fn hss_handler(
    origin: Origin,
) -> impl Fn(Message, PeerInfo) -> std::future::Ready<Message> + Send + Sync + 'static {
    move |req: Message, _peer: PeerInfo| {
        let ans = match CxRequest::decode(&req) {
            Ok(CxRequest::Uar(u)) => {
                if u.user_name.user() == "alice" {
                    let mut a = Uaa::new(
                        &u,
                        &origin,
                        CxResult::experimental(ExperimentalResultCode::DIAMETER_FIRST_REGISTRATION),
                    );
                    a.server_name = Some("sip:scscf.ims.example:6060".into());
                    a.to_message()
                } else {
                    Uaa::new(
                        &u,
                        &origin,
                        CxResult::experimental(ExperimentalResultCode::DIAMETER_ERROR_USER_UNKNOWN),
                    )
                    .to_message()
                }
            }
            Ok(CxRequest::Mar(m)) => {
                let mut a = Maa::new(&m, &origin, CxResult::SUCCESS);
                a.sip_number_auth_items = Some(1);
                a.sip_auth_data_items.push(SipAuthDataItem::with_scheme(
                    SipAuthDataItem::SCHEME_AKAV1_MD5,
                ));
                a.to_message()
            }
            Ok(_) => {
                let e = Error::UnsupportedCommand {
                    code: req.header.code,
                    app: req.header.application_id,
                };
                error_answer(&req.header, &req.avps, &e, &origin)
            }
            Err(e) => error_answer(&req.header, &req.avps, &e, &origin),
        };
        std::future::ready(ans)
    }
}

/// Starts our HSS on 127.0.0.1 (any port).
pub(crate) async fn start_hss(mut opts: NodeOptions) -> DiameterNode {
    let o = Origin {
        host: opts.local.origin_host.clone(),
        realm: opts.local.origin_realm.clone(),
    };
    opts.local.host_ip_addresses.clear();
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    DiameterNode::start(opts, hss_handler(o), Some(listener)).expect("node starts")
}

/// Captures `tracing` output of the current thread (use with `#[tokio::test]`, whose runtime
/// runs every task on the test thread).
#[derive(Clone, Default)]
pub(crate) struct LogCapture(Arc<Mutex<Vec<u8>>>);

impl LogCapture {
    pub(crate) fn install(&self) -> tracing::subscriber::DefaultGuard {
        let sub = tracing_subscriber::fmt()
            .with_ansi(false)
            .with_max_level(tracing::Level::DEBUG)
            .with_writer(self.clone())
            .finish();
        tracing::subscriber::set_default(sub)
    }

    pub(crate) fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().expect("log lock")).into_owned()
    }
}

impl Write for LogCapture {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().expect("log lock").extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for LogCapture {
    type Writer = Self;

    fn make_writer(&'a self) -> Self::Writer {
        self.clone()
    }
}

/// The Result-Code or Experimental-Result-Code of an answer.
pub(crate) fn outcome(m: &Message) -> Option<u32> {
    use imslab_diameter::dict;
    m.find(&dict::RESULT_CODE)
        .and_then(|a| a.as_u32().ok())
        .or_else(|| {
            m.find(&dict::EXPERIMENTAL_RESULT)
                .and_then(|e| e.child(&dict::EXPERIMENTAL_RESULT_CODE).ok().flatten())
                .and_then(|a| a.as_u32().ok())
        })
}
