//! `cx` steps: a Diameter Cx client (an I-CSCF-like peer) sending UAR or LIR to the HSS.

use std::time::{SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use imslab_diameter::Origin;
use imslab_diameter::base::{Capabilities, VendorSpecificApplicationId};
use imslab_diameter::codes::VendorId;
use imslab_diameter::cx::{CxResult, Lia, Lir, Uaa, Uar};
use imslab_diameter_io::{DiameterNode, NodeOptions, PeerOptions, RefuseRequests};
use imslab_types::{DiameterIdentity, Impi, Impu, Realm};

use super::lab::Lab;
use crate::scenario::model::CxCommand;

const HOST: &str = "replay.imslab.invalid";

/// A connected Cx client.
pub struct CxClient {
    node: DiameterNode,
    origin: Origin,
    realm: Realm,
    hss: DiameterIdentity,
}

impl std::fmt::Debug for CxClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CxClient").finish_non_exhaustive()
    }
}

fn stamp() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64)
}

impl CxClient {
    /// Starts a Diameter node with the HSS as its only peer and waits for the connection.
    pub async fn connect(lab: &Lab, timeout: std::time::Duration) -> Result<Self, String> {
        let host = DiameterIdentity::new(HOST).map_err(|e| e.to_string())?;
        let realm = lab.domain.clone();
        let hss = DiameterIdentity::new(lab.hss_host.clone()).map_err(|e| e.to_string())?;
        let caps = Capabilities {
            origin_host: host.clone(),
            origin_realm: realm.clone(),
            host_ip_addresses: Vec::new(),
            vendor_id: VendorId::TGPP,
            product_name: "imslab-replay".into(),
            origin_state_id: Some((stamp() & 0xffff_ffff) as u32),
            supported_vendor_ids: vec![VendorId::TGPP],
            auth_application_ids: Vec::new(),
            inband_security_ids: Vec::new(),
            acct_application_ids: Vec::new(),
            vendor_specific_application_ids: vec![VendorSpecificApplicationId::CX],
            firmware_revision: None,
        };
        let mut opts = NodeOptions::new(caps);
        opts.peers.push(PeerOptions::connect_tcp(
            hss.clone(),
            realm.clone(),
            lab.hss,
        ));
        let node = DiameterNode::start(
            opts,
            RefuseRequests(Origin {
                host: host.clone(),
                realm: realm.clone(),
            }),
            None,
        )
        .map_err(|e| e.to_string())?;
        node.wait_peer_up(&lab.hss_host, timeout)
            .await
            .map_err(|e| format!("the HSS at {} did not come up: {e}", lab.hss))?;
        Ok(Self {
            node,
            origin: Origin {
                host,
                realm: realm.clone(),
            },
            realm,
            hss,
        })
    }

    /// Sends one request; returns the numeric result code.
    pub async fn request(&self, cmd: CxCommand, impu: &str, impi: &str) -> Result<u32, String> {
        let impu = Impu::new(impu).map_err(|e| format!("bad IMPU: {e}"))?;
        let session_id = format!("{HOST};{};1", stamp());
        let msg = match cmd {
            CxCommand::Uar => Uar {
                session_id,
                origin_host: self.origin.host.clone(),
                origin_realm: self.origin.realm.clone(),
                destination_host: Some(self.hss.clone()),
                destination_realm: self.realm.clone(),
                user_name: Impi::new(impi).map_err(|e| format!("bad IMPI: {e}"))?,
                supported_features: Vec::new(),
                public_identity: impu,
                visited_network_identifier: Bytes::copy_from_slice(self.realm.as_str().as_bytes()),
                user_authorization_type: None,
                uar_flags: None,
                extra: Vec::new(),
                proxy_info: Vec::new(),
                route_record: Vec::new(),
            }
            .to_message(),
            CxCommand::Lir => Lir {
                session_id,
                origin_host: self.origin.host.clone(),
                origin_realm: self.origin.realm.clone(),
                destination_host: Some(self.hss.clone()),
                destination_realm: self.realm.clone(),
                originating_request: None,
                supported_features: Vec::new(),
                public_identity: impu,
                user_authorization_type: None,
                session_priority: None,
                extra: Vec::new(),
                proxy_info: Vec::new(),
                route_record: Vec::new(),
            }
            .to_message(),
        };
        let answer = self
            .node
            .request(msg)
            .await
            .map_err(|e| format!("Cx request failed: {e}"))?;
        let result = match cmd {
            CxCommand::Uar => Uaa::decode(&answer).map(|a| a.result),
            CxCommand::Lir => Lia::decode(&answer).map(|a| a.result),
        }
        .map_err(|e| format!("undecodable answer: {e}"))?;
        Ok(code(&result))
    }

    /// Stops the node.
    pub async fn close(self) {
        self.node.shutdown().await;
    }
}

fn code(r: &CxResult) -> u32 {
    match r {
        CxResult::Base(c) => c.0,
        CxResult::Experimental { code, .. } => code.0,
    }
}
