//! The userspace user plane: GTP-U on UDP 2152 in and out of a TUN device.
//!
//! The TUN device is created with the `tun-rs` crate (the TUNSETIFF ioctl lives there; this
//! crate has no unsafe code). Its addresses, which also install the routes to the address
//! pools, and its link state are set with rtnetlink. Forwarding decisions are in
//! [`Forwarder`]. Needs CAP_NET_ADMIN.

use std::net::{IpAddr, SocketAddr};

use futures_util::TryStreamExt;
use imslab_config::PgwConfig;
use rtnetlink::LinkUnspec;
use tokio::net::UdpSocket;
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;

use crate::gtpu::{Forwarder, FromSgw, GTPU_PORT};
use crate::session::TunnelUpdate;
use crate::settings::Settings;
use crate::{Error, Result};

/// What the user plane needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserPlaneSettings {
    /// TUN device name.
    pub tun_name: String,
    /// GTP-U listen address.
    pub gtpu_listen: SocketAddr,
    /// Addresses of the TUN device with their prefix lengths (the gateway of every pool).
    pub tun_addresses: Vec<(IpAddr, u8)>,
    /// MTU of the TUN device.
    pub mtu: u16,
    /// UDP port of SGW-U peers.
    pub sgw_port: u16,
}

impl UserPlaneSettings {
    /// From the checked settings: one gateway address per pool.
    pub fn from_settings(s: &Settings, cfg: &PgwConfig) -> Result<Self> {
        let mut tun_addresses = Vec::new();
        for apn in &s.apns {
            if let Some((a, l)) = apn.ipv4_gateway() {
                tun_addresses.push((IpAddr::V4(a), l));
            }
            if let Some((a, l)) = apn.ipv6_gateway() {
                tun_addresses.push((IpAddr::V6(a), l));
            }
        }
        let mtu = s
            .apns
            .iter()
            .filter_map(|a| a.pco.mtu)
            .max()
            .unwrap_or(1400);
        Ok(Self {
            tun_name: cfg.tun_name.clone(),
            gtpu_listen: cfg.gtpu_listen,
            tun_addresses,
            mtu,
            sgw_port: GTPU_PORT,
        })
    }
}

/// A running user plane.
pub struct UserPlane {
    local: SocketAddr,
    updates: mpsc::UnboundedSender<TunnelUpdate>,
    stop: Option<oneshot::Sender<()>>,
    task: JoinHandle<()>,
}

impl UserPlane {
    /// The GTP-U socket's address.
    pub fn local_addr(&self) -> SocketAddr {
        self.local
    }

    /// Where the control plane sends tunnel changes.
    pub fn updates(&self) -> mpsc::UnboundedSender<TunnelUpdate> {
        self.updates.clone()
    }

    /// Stops forwarding and removes the TUN device.
    pub async fn stop(mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        let _ = (&mut self.task).await;
    }
}

impl Drop for UserPlane {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn nl(e: impl std::fmt::Display) -> Error {
    Error::Netlink(e.to_string())
}

/// Sets the TUN's addresses (which install the pool routes) and brings it up, over rtnetlink.
async fn configure_link(index: u32, addresses: &[(IpAddr, u8)]) -> Result<()> {
    let (conn, handle, _) = rtnetlink::new_connection().map_err(nl)?;
    let conn_task = tokio::spawn(conn);
    let result = async {
        for (addr, len) in addresses {
            handle
                .address()
                .add(index, *addr, *len)
                .replace()
                .execute()
                .await
                .map_err(|e| Error::Netlink(format!("adding {addr}/{len}: {e}")))?;
        }
        handle
            .link()
            .set(LinkUnspec::new_with_index(index).up().build())
            .execute()
            .await
            .map_err(|e| Error::Netlink(format!("setting link up: {e}")))?;
        // Check the link is there and up as asked.
        let mut links = handle.link().get().match_index(index).execute();
        links
            .try_next()
            .await
            .map_err(nl)?
            .ok_or_else(|| Error::Netlink("TUN link vanished".into()))?;
        Ok(())
    }
    .await;
    conn_task.abort();
    result
}

/// Creates the TUN device, configures it and starts forwarding.
pub async fn start(s: UserPlaneSettings) -> Result<UserPlane> {
    let dev = tun_rs::DeviceBuilder::new()
        .name(s.tun_name.clone())
        .mtu(s.mtu)
        .build_async()
        .map_err(|e| Error::Io {
            context: format!("creating TUN device {} (needs CAP_NET_ADMIN)", s.tun_name),
            source: e,
        })?;
    let index = dev.if_index().map_err(|e| Error::Io {
        context: "TUN interface index".into(),
        source: e,
    })?;
    configure_link(index, &s.tun_addresses).await?;
    let sock = UdpSocket::bind(s.gtpu_listen)
        .await
        .map_err(|e| Error::Io {
            context: format!("binding GTP-U {}", s.gtpu_listen),
            source: e,
        })?;
    let local = sock.local_addr().map_err(|e| Error::Io {
        context: "GTP-U address".into(),
        source: e,
    })?;
    let (tx, mut rx) = mpsc::unbounded_channel::<TunnelUpdate>();
    let (stop_tx, mut stop_rx) = oneshot::channel::<()>();
    let mut fwd = Forwarder::new(s.sgw_port);
    tracing::info!(tun = %s.tun_name, %local, "P-GW user plane up");
    let task = tokio::spawn(async move {
        let mut ubuf = vec![0u8; 65_536];
        let mut tbuf = vec![0u8; 65_536];
        loop {
            tokio::select! {
                r = sock.recv_from(&mut ubuf) => {
                    let Ok((n, from)) = r else { continue };
                    match fwd.from_sgw(ubuf.get(..n).unwrap_or_default()) {
                        FromSgw::ToTun(pkt) => {
                            if let Err(e) = dev.send(&pkt).await {
                                tracing::debug!(error = %e, "TUN write failed");
                            }
                        }
                        FromSgw::Reply(b) => {
                            let _ = sock.send_to(&b, from).await;
                        }
                        FromSgw::Drop(why) => tracing::trace!(%from, why, "GTP-U dropped"),
                    }
                }
                r = dev.recv(&mut tbuf) => {
                    let Ok(n) = r else { continue };
                    if let Some((to, b)) = fwd.from_tun(tbuf.get(..n).unwrap_or_default()) {
                        let _ = sock.send_to(&b, to).await;
                    }
                }
                u = rx.recv() => match u {
                    Some(u) => fwd.apply(&u),
                    None => return,
                },
                _ = &mut stop_rx => return,
            }
        }
    });
    Ok(UserPlane {
        local,
        updates: tx,
        stop: Some(stop_tx),
        task,
    })
}
