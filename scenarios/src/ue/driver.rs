//! The tokio driver of one soft UE: a UDP socket (and TCP connections on demand) through
//! `imslab-sip-io`, ESP through an [`EspHub`], timers, and a command channel. Thin: every
//! decision is [`UeCore`]'s.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use imslab_sip::Message;
use imslab_sip::transaction::Peer;
use imslab_sip_io::{Config as IoConfig, Event as IoEvent, Payload, SipTransport};
use tokio::net::UdpSocket;
use tokio::sync::{mpsc, oneshot};

use super::core::{Event, Link, Output, UeCore};
use super::esp::{EspDatagram, EspHub};
use crate::Error;
use crate::capture::Capture;

type Command = Box<dyn FnOnce(&mut UeCore, Instant) + Send>;

/// A running UE. Dropping it stops the UE and removes its SAs.
#[derive(Debug)]
pub struct UeHandle {
    name: String,
    cmds: mpsc::UnboundedSender<Command>,
    /// The UE's events, in order.
    pub events: mpsc::UnboundedReceiver<Event>,
    local: SocketAddr,
    task: tokio::task::JoinHandle<()>,
}

impl UeHandle {
    /// Binds the UE's socket on `core.config().local_ip` (an ephemeral port), opens ESP when
    /// the UE uses IPsec, and starts it.
    pub async fn start(
        mut core: UeCore,
        hub: Option<Arc<EspHub>>,
        capture: Option<Arc<Capture>>,
    ) -> Result<Self, Error> {
        let ip = core.config().local_ip;
        let sock = UdpSocket::bind(SocketAddr::new(ip, 0))
            .await
            .map_err(|source| Error::Io {
                what: format!("bind the UE's SIP socket on {ip}"),
                source,
            })?;
        let cfg = IoConfig {
            pcap: capture.as_ref().map(|c| c.tap()),
            // The scenario's `transport` decides UDP or TCP, not the size rule of RFC 3261
            // §18.1.1: a UDP UE keeps its large REGISTER (six Security-Client offers) on UDP.
            udp_request_limit: 65_000,
            ..IoConfig::default()
        };
        let (transport, io_events) = SipTransport::new(cfg);
        let local = transport.add_udp(sock)?;
        core.set_local_port(local.port());
        let name = core.config().name.clone();
        let (cmd_tx, cmd_rx) = mpsc::unbounded_channel();
        let (ev_tx, ev_rx) = mpsc::unbounded_channel();
        let task = tokio::spawn(run(core, transport, io_events, hub, cmd_rx, ev_tx));
        Ok(Self {
            name,
            cmds: cmd_tx,
            events: ev_rx,
            local,
            task,
        })
    }

    /// The UE's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The UE's unprotected SIP address.
    pub fn local_addr(&self) -> SocketAddr {
        self.local
    }

    /// Stops the UE and waits until it has removed its SAs and closed its sockets.
    pub async fn stop(self) {
        let Self { cmds, task, .. } = self;
        drop(cmds);
        let _ = task.await;
    }

    /// Runs `f` on the UE core at the current time and returns its result.
    pub async fn with<R: Send + 'static>(
        &self,
        f: impl FnOnce(&mut UeCore, Instant) -> R + Send + 'static,
    ) -> Option<R> {
        let (tx, rx) = oneshot::channel();
        let cmd: Command = Box::new(move |core, now| {
            let _ = tx.send(f(core, now));
        });
        self.cmds.send(cmd).ok()?;
        rx.await.ok()
    }
}

async fn run(
    mut core: UeCore,
    transport: SipTransport,
    mut io: mpsc::Receiver<IoEvent>,
    hub: Option<Arc<EspHub>>,
    mut cmds: mpsc::UnboundedReceiver<Command>,
    events: mpsc::UnboundedSender<Event>,
) {
    let (esp_tx, mut esp_rx) = mpsc::channel::<EspDatagram>(256);
    let mut installed = Vec::new();
    loop {
        while let Some(o) = core.poll_output() {
            match o {
                Output::Transmit { link, to, bytes } => match link {
                    Link::Plain { transport: t, flow } => {
                        let peer = Peer {
                            transport: t,
                            addr: to,
                            flow,
                        };
                        if let Err(e) = transport.send_to_peer(&peer, bytes).await {
                            tracing::warn!(ue = core.config().name, %to, "send failed: {e}");
                        }
                    }
                    Link::Protected {
                        src_port,
                        transport: t,
                    } => match &hub {
                        Some(h) => {
                            let r = if t == imslab_sip::header::Transport::Tcp {
                                h.send_tcp(src_port, to, &bytes).await
                            } else {
                                h.send_udp(src_port, to, &bytes).await
                            };
                            if let Err(e) = r {
                                tracing::warn!(ue = core.config().name, %to, "ESP send failed: {e}");
                            }
                        }
                        None => tracing::warn!("protected send without an ESP hub"),
                    },
                },
                Output::InstallSa(b) => {
                    if let Some(h) = &hub {
                        match h.install(&b, esp_tx.clone()) {
                            Ok(()) => installed.push(*b),
                            Err(e) => tracing::warn!("SA install failed: {e}"),
                        }
                    }
                }
                Output::RemoveSa(b) => {
                    if let Some(h) = &hub {
                        h.remove(&b);
                    }
                    installed.retain(|x| *x != *b);
                }
                Output::Event(e) => {
                    let _ = events.send(e);
                }
            }
        }
        let deadline = core.poll_timeout();
        let sleep = async {
            match deadline {
                Some(d) => tokio::time::sleep_until(d.into()).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            ev = io.recv() => match ev {
                Some(IoEvent::Received(rx)) => {
                    if let Payload::Message(m) = &rx.payload {
                        core.handle_message(Instant::now(), m.clone(), rx.peer());
                    }
                }
                Some(_) => {}
                None => break,
            },
            Some(d) = esp_rx.recv() => {
                if let Ok(m) = Message::parse(d.payload) {
                    core.handle_message(Instant::now(), m, Link::protected_peer(d.from, d.to_port, d.transport));
                }
            }
            cmd = cmds.recv() => match cmd {
                Some(f) => f(&mut core, Instant::now()),
                None => break,
            },
            () = sleep => core.handle_timeout(Instant::now()),
        }
    }
    if let Some(h) = &hub {
        for b in &installed {
            h.remove(b);
        }
    }
    transport.shutdown();
}
