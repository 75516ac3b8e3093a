//! A tap on everything a node sends and receives, for captures (pcap) and tests.

use std::fs::File;
use std::io::BufWriter;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Mutex;
use std::time::SystemTime;

use imslab_pcap::PcapWriter;

/// Which way a message went.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    /// Sent by this node.
    Tx,
    /// Received by this node.
    Rx,
}

/// Sees every whole Diameter message on every connection. Called from connection tasks: must
/// not block for long.
pub trait Tap: Send + Sync + 'static {
    /// One message; `local` and `remote` are the connection's addresses.
    fn message(&self, dir: Direction, local: SocketAddr, remote: SocketAddr, bytes: &[u8]);
}

/// A [`Tap`] writing a pcap file (TCP synthesized by [`PcapWriter`], so tshark decodes the
/// Diameter messages; TLS connections appear as plain TCP).
pub struct PcapTap {
    writer: Mutex<PcapWriter<BufWriter<File>>>,
}

impl std::fmt::Debug for PcapTap {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PcapTap").finish_non_exhaustive()
    }
}

impl PcapTap {
    /// Creates (truncates) the file at `path`.
    pub fn create(path: &Path) -> std::io::Result<Self> {
        let w = PcapWriter::new(BufWriter::new(File::create(path)?))?;
        Ok(Self {
            writer: Mutex::new(w),
        })
    }

    /// Flushes buffered records to the file.
    pub fn flush(&self) -> std::io::Result<()> {
        match self.writer.lock() {
            Ok(mut w) => w.flush(),
            Err(_) => Ok(()),
        }
    }
}

impl Tap for PcapTap {
    fn message(&self, dir: Direction, local: SocketAddr, remote: SocketAddr, bytes: &[u8]) {
        let (src, dst) = match dir {
            Direction::Tx => (local, remote),
            Direction::Rx => (remote, local),
        };
        if let Ok(mut w) = self.writer.lock()
            && let Err(e) = w.tcp(SystemTime::now(), src, dst, bytes)
        {
            tracing::warn!(error = %e, "pcap write failed");
        }
    }
}
