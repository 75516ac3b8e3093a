//! The bridge to imslab-sip's transaction layer: `Received::peer` in, `Output::Transmit` out
//! through `send_to_peer`, over UDP and TCP.

use std::time::Instant;

use imslab_sip::header::Transport;
use imslab_sip::transaction::{Output, Peer, TimerConfig, TransactionLayer};
use imslab_sip::{Message, StatusCode};
use imslab_sip_io::{Config, Event, Payload, SipTransport, TransportKind};
use tokio::sync::mpsc::Receiver;

use crate::support::*;

/// A UAS on the transaction layer: answers every request 200 through its server transaction.
async fn uas(transport: SipTransport, mut rx: Receiver<Event>) {
    let mut layer = TransactionLayer::new(TimerConfig::default());
    while let Some(event) = rx.recv().await {
        let Event::Received(r) = event else { continue };
        let Payload::Message(m) = r.payload.clone() else {
            continue;
        };
        let outputs = layer.handle_message(Instant::now(), m, r.peer()).unwrap();
        for out in outputs {
            if let Output::Request {
                id: Some(id),
                request,
                ..
            } = out
            {
                let ok = request.response(StatusCode::OK, Some("tx")).unwrap();
                for out in layer.send_response(Instant::now(), id, &ok).unwrap() {
                    if let Output::Transmit { to, bytes, .. } = out {
                        transport.send_to_peer(&to, bytes).await.unwrap();
                    }
                }
            }
        }
    }
}

async fn client_transaction_completes(kind: TransportKind) {
    let (udp, tcp) = udp_and_tcp().await;
    let (server, server_rx) = SipTransport::new(Config::default());
    let server_addr = server.add_udp(udp).unwrap();
    server.add_tcp(tcp).unwrap();
    tokio::spawn(uas(server.clone(), server_rx));

    let (client, mut client_rx, client_addr) = udp_transport(Config::default()).await;
    let mut layer = TransactionLayer::new(TimerConfig::default());
    let request: Message = request("OPTIONS", kind.via_token(), client_addr, "");
    let to = Peer::new(kind.to_sip(), server_addr);
    let (id, outputs) = layer.send_request(Instant::now(), request, to).unwrap();
    let mut sent_peer = None;
    for out in outputs {
        if let Output::Transmit { to, bytes, .. } = out {
            let sent = client.send_to_peer(&to, bytes).await.unwrap();
            assert_eq!(sent.transport, kind);
            sent_peer = Some(sent.peer());
        }
    }
    let sent_peer = sent_peer.expect("the request was transmitted");

    let got = next_received(&mut client_rx).await;
    assert_eq!(
        got.peer(),
        sent_peer,
        "the answer came back on the flow it left on"
    );
    let outputs = layer
        .handle_message(Instant::now(), parsed(&got).clone(), got.peer())
        .unwrap();
    let response = outputs.into_iter().find_map(|o| match o {
        Output::Response { id: rid, response } if rid == id => Some(response),
        _ => None,
    });
    assert_eq!(response.and_then(|r| r.status()), Some(StatusCode::OK));
}

#[tokio::test]
async fn client_transaction_over_udp_is_answered_through_send_to_peer() {
    client_transaction_completes(TransportKind::Udp).await;
}

#[tokio::test]
async fn client_transaction_over_tcp_is_answered_on_its_connection() {
    client_transaction_completes(TransportKind::Tcp).await;
}

#[tokio::test]
async fn peers_with_unknown_transports_or_closed_flows_are_refused() {
    let (client, _rx, addr) = udp_transport(Config::default()).await;
    let sctp = Peer::new(Transport::Sctp, addr);
    assert!(matches!(
        client.target_for(&sctp),
        Err(imslab_sip_io::Error::UnsupportedTransport { .. })
    ));
    let gone = Peer {
        flow: Some(imslab_sip::transaction::FlowId(999)),
        ..Peer::new(Transport::Tcp, addr)
    };
    let err = client
        .send_to_peer(
            &gone,
            bytes::Bytes::from_static(b"OPTIONS sip:x SIP/2.0\r\n\r\n"),
        )
        .await
        .unwrap_err();
    assert!(matches!(err, imslab_sip_io::Error::FlowClosed(_)), "{err}");
}
