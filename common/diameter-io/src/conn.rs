//! One connection task: reads frames with the [`Framer`], writes what the node sends.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use imslab_diameter::Framer;
use imslab_diameter::peer::ConnId;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::mpsc;

use crate::tap::{Direction, Tap};

/// How long one write may block before the connection is given up.
const WRITE_TIMEOUT: Duration = Duration::from_secs(10);
/// Read buffer growth step; the framer bounds what is ever buffered.
const READ_CHUNK: usize = 16 * 1024;

/// Commands from the node to a connection.
#[derive(Debug)]
pub(crate) enum ConnCmd {
    /// Write one message.
    Send(Bytes),
    /// Close the connection (the node has logged why).
    Close,
}

/// What connection tasks report to the node.
#[derive(Debug)]
pub(crate) enum ConnEvent {
    /// A whole message arrived.
    Frame(ConnId, Bytes),
    /// The connection ended from the network side, or the framing was lost.
    Closed(ConnId, String),
}

/// A connection's addresses.
#[derive(Debug, Clone, Copy)]
pub(crate) struct ConnAddrs {
    pub(crate) id: ConnId,
    pub(crate) local: SocketAddr,
    pub(crate) remote: SocketAddr,
}

/// Runs until the node closes the connection or the network does.
pub(crate) async fn run<S>(
    stream: S,
    addrs: ConnAddrs,
    framer: Framer,
    mut cmds: mpsc::UnboundedReceiver<ConnCmd>,
    events: mpsc::Sender<ConnEvent>,
    tap: Option<Arc<dyn Tap>>,
) where
    S: AsyncRead + AsyncWrite + Send + Unpin,
{
    let (mut rd, mut wr) = tokio::io::split(stream);
    let mut buf = BytesMut::with_capacity(READ_CHUNK);
    let reason = 'conn: loop {
        tokio::select! {
            r = async { buf.reserve(READ_CHUNK); rd.read_buf(&mut buf).await } => match r {
                Ok(0) if buf.is_empty() => break 'conn "peer closed the connection".to_owned(),
                Ok(0) => break 'conn format!(
                    "peer closed the connection in the middle of a message ({} bytes of it received)",
                    buf.len()
                ),
                Ok(_) => loop {
                    match framer.next_frame(&mut buf) {
                        Ok(Some(frame)) => {
                            if let Some(t) = &tap {
                                t.message(Direction::Rx, addrs.local, addrs.remote, &frame);
                            }
                            // Waits while the node is behind: the peer is not read meanwhile.
                            if events.send(ConnEvent::Frame(addrs.id, frame)).await.is_err() {
                                return;
                            }
                        }
                        Ok(None) => break,
                        Err(e) => break 'conn format!("framing lost: {e}"),
                    }
                },
                Err(e) => break 'conn format!("read failed: {e}"),
            },
            cmd = cmds.recv() => match cmd {
                Some(ConnCmd::Send(bytes)) => {
                    if let Some(t) = &tap {
                        t.message(Direction::Tx, addrs.local, addrs.remote, &bytes);
                    }
                    match tokio::time::timeout(WRITE_TIMEOUT, wr.write_all(&bytes)).await {
                        Ok(Ok(())) => {}
                        Ok(Err(e)) => break 'conn format!("write failed: {e}"),
                        Err(_) => break 'conn "write blocked for 10 s: peer is not reading".to_owned(),
                    }
                }
                Some(ConnCmd::Close) | None => {
                    let _ = tokio::time::timeout(Duration::from_secs(1), wr.shutdown()).await;
                    return;
                }
            },
        }
    };
    let _ = events.send(ConnEvent::Closed(addrs.id, reason)).await;
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A 20-byte message: the smallest the framer passes on.
    const TINY: [u8; 20] = [
        1, 0, 0, 20, 0x80, 0, 1, 24, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 1,
    ];

    #[tokio::test]
    async fn a_peer_is_read_no_faster_than_the_node_takes_its_messages() {
        let (ours, mut theirs) = tokio::io::duplex(4096);
        let (_cmd_tx, cmds) = mpsc::unbounded_channel();
        let (events, mut rx) = mpsc::channel(16);
        let addrs = ConnAddrs {
            id: ConnId(1),
            local: "127.0.0.1:3868".parse().expect("addr"),
            remote: "127.0.0.1:40000".parse().expect("addr"),
        };
        tokio::spawn(run(ours, addrs, Framer::default(), cmds, events, None));
        const COUNT: usize = 50_000;
        let flood = TINY.repeat(COUNT);
        let mut writer = tokio::spawn(async move {
            theirs.write_all(&flood).await.expect("write");
            theirs
        });
        // Nobody takes the events: the connection must stop reading, so the writer stalls.
        let stalled = tokio::time::timeout(Duration::from_millis(300), &mut writer).await;
        assert!(stalled.is_err(), "1 MB read while the node took nothing");
        // Taking them lets every message through.
        let mut frames = 0;
        while frames < COUNT {
            match rx.recv().await {
                Some(ConnEvent::Frame(_, f)) => {
                    assert_eq!(&f[..], &TINY[..]);
                    frames += 1;
                }
                other => panic!("unexpected {other:?}"),
            }
        }
        let _theirs = writer.await.expect("writer finished");
    }
}
