//! The replay's capture: every message the UEs sent and received, in one pcap. Plain SIP is
//! recorded by `imslab-sip-io`'s tap; SIP inside ESP is recorded twice, as the ESP packet on
//! the wire and as the decrypted UDP datagram between the protected ports, and the SA keys go
//! to a Wireshark `esp_sa` file beside it so the ESP packets open decrypted too.

use std::fs::File;
use std::io::BufWriter;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::SystemTime;

use imslab_ipsec::SaBundle;
use imslab_sip_io::{PcapTap, pcap_tap};

use crate::Error;

/// A shared capture file.
pub struct Capture {
    tap: PcapTap,
    path: PathBuf,
    bundles: Mutex<Vec<SaBundle>>,
    closed: std::sync::atomic::AtomicBool,
}

impl std::fmt::Debug for Capture {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Capture").field("path", &self.path).finish()
    }
}

impl Capture {
    /// Creates the pcap file.
    pub fn create(path: &Path) -> Result<Arc<Self>, Error> {
        let file = File::create(path).map_err(|source| Error::Write {
            path: path.to_owned(),
            source,
        })?;
        let tap = pcap_tap(BufWriter::new(file)).map_err(|source| Error::Write {
            path: path.to_owned(),
            source,
        })?;
        Ok(Arc::new(Self {
            tap,
            path: path.to_owned(),
            bundles: Mutex::new(Vec::new()),
            closed: std::sync::atomic::AtomicBool::new(false),
        }))
    }

    /// The tap to hand to `imslab_sip_io::Config::pcap`.
    pub fn tap(&self) -> PcapTap {
        self.tap.clone()
    }

    /// Records a whole IP packet (an ESP packet with its outer header).
    pub fn ip_packet(&self, packet: &[u8]) {
        let mut w = self.tap.lock().unwrap_or_else(PoisonError::into_inner);
        if self.closed.load(std::sync::atomic::Ordering::Relaxed) {
            return;
        }
        if let Err(e) = w.ip_packet(SystemTime::now(), packet) {
            tracing::warn!("pcap write failed: {e}");
        }
    }

    /// Records a decrypted UDP datagram.
    pub fn udp(&self, src: SocketAddr, dst: SocketAddr, payload: &[u8]) {
        let mut w = self.tap.lock().unwrap_or_else(PoisonError::into_inner);
        if self.closed.load(std::sync::atomic::Ordering::Relaxed) {
            return;
        }
        if let Err(e) = w.udp(SystemTime::now(), src, dst, payload) {
            tracing::warn!("pcap write failed: {e}");
        }
    }

    /// Remembers an SA set for the keys file.
    pub fn add_bundle(&self, b: &SaBundle) {
        let mut v = self.bundles.lock().unwrap_or_else(PoisonError::into_inner);
        if !v.contains(b) {
            v.push(b.clone());
        }
    }

    /// The keys file path for a pcap path: `x.pcap` → `x.esp_sa`.
    pub fn keys_path(pcap: &Path) -> PathBuf {
        pcap.with_extension("esp_sa")
    }

    /// Flushes the pcap and writes the Wireshark ESP SA file next to it (only when SAs were
    /// used). Returns the keys file, if written. Call it once every UE has stopped; the ESP
    /// hubs record nothing after it.
    pub fn finish(&self) -> Result<Option<PathBuf>, Error> {
        {
            let mut w = self.tap.lock().unwrap_or_else(PoisonError::into_inner);
            self.closed
                .store(true, std::sync::atomic::Ordering::Relaxed);
            w.flush().map_err(|source| Error::Write {
                path: self.path.clone(),
                source,
            })?;
        }
        let bundles = self.bundles.lock().unwrap_or_else(PoisonError::into_inner);
        if bundles.is_empty() {
            return Ok(None);
        }
        let keys = Self::keys_path(&self.path);
        std::fs::write(&keys, imslab_ipsec::wireshark::esp_sa_file(bundles.iter())).map_err(
            |source| Error::Write {
                path: keys.clone(),
                source,
            },
        )?;
        Ok(Some(keys))
    }
}
