//! The scripted network of [`crate::fake`] on real sockets: UDP on 127.0.0.1 and userspace ESP
//! through `imslab-ipsec`'s `EspSocket` (the P-CSCF's own driver), so the soft UE's driver,
//! ESP hub and capture are exercised end to end.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use imslab_ipsec::socket::{EspSocket, Incoming};
use imslab_sip::Message;
use tokio::net::UdpSocket;
use tokio::task::JoinHandle;

use crate::fake::{FakeNet, NetOut};

pub(crate) struct FakePcscf {
    pub(crate) addr: SocketAddr,
    pub(crate) net: Arc<Mutex<FakeNet>>,
    pub(crate) esp: Arc<EspSocket>,
    task: JoinHandle<()>,
}

impl Drop for FakePcscf {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl FakePcscf {
    pub(crate) async fn start(configure: impl FnOnce(&mut FakeNet)) -> Self {
        let udp = Arc::new(UdpSocket::bind("127.0.0.1:0").await.unwrap());
        let addr = udp.local_addr().unwrap();
        let esp = Arc::new(
            EspSocket::bind(addr.ip()).expect("raw ESP socket (the tests run as root here)"),
        );
        let mut n = FakeNet::new(addr);
        configure(&mut n);
        let net = Arc::new(Mutex::new(n));
        let (u, e, nn) = (Arc::clone(&udp), Arc::clone(&esp), Arc::clone(&net));
        let task = tokio::spawn(async move {
            let mut buf = vec![0u8; 65_536];
            loop {
                let (msg, from, protected, local_port) = tokio::select! {
                    r = u.recv_from(&mut buf) => {
                        let Ok((n, from)) = r else { break };
                        (buf[..n].to_vec(), from, false, addr.port())
                    }
                    r = e.recv() => match r {
                        Ok(Incoming::Udp(d)) => (d.payload, d.from, true, d.to.port()),
                        Ok(_) => continue,
                        Err(_) => break,
                    },
                };
                let Ok(msg) = Message::parse(msg) else {
                    continue;
                };
                if !msg.is_request() {
                    continue;
                }
                let outs = nn.lock().unwrap().handle(&msg, from, protected);
                for o in outs {
                    match o {
                        NetOut::Respond(r) => {
                            let bytes = r.to_bytes();
                            if protected {
                                let _ = e.send_udp(local_port, from, &bytes).await;
                            } else {
                                let _ = u.send_to(&bytes, from).await;
                            }
                        }
                        NetOut::Request(r) => {
                            let (server, port_c) = {
                                let n = nn.lock().unwrap();
                                (n.ue_server(), n.ports.port_c)
                            };
                            let bytes = r.to_bytes();
                            match server {
                                Some(s) => {
                                    let _ = e.send_udp(port_c, s, &bytes).await;
                                }
                                None => {
                                    let _ = u.send_to(&bytes, from).await;
                                }
                            }
                        }
                        NetOut::Install(b) => e.install(&b).unwrap(),
                    }
                }
            }
        });
        Self {
            addr,
            net,
            esp,
            task,
        }
    }
}
