//! TLS material for the TLS and WSS transports: a certificate and key from PEM files, or a
//! self-signed pair generated on first start and kept in the data directory. rustls with the
//! ring provider throughout.

use std::fmt;
use std::fs;
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::{ClientConfig, RootCertStore, ServerConfig};

use crate::Error;

/// File name of the generated certificate in the data directory.
pub const CERT_FILE: &str = "sip-tls-cert.pem";
/// File name of the generated private key in the data directory (mode 0600).
pub const KEY_FILE: &str = "sip-tls-key.pem";

/// A certificate chain and its private key. `Debug` does not show the key.
pub struct TlsIdentity {
    chain: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
}

impl fmt::Debug for TlsIdentity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TlsIdentity")
            .field("certificates", &self.chain.len())
            .finish_non_exhaustive()
    }
}

impl Clone for TlsIdentity {
    fn clone(&self) -> Self {
        Self {
            chain: self.chain.clone(),
            key: self.key.clone_key(),
        }
    }
}

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

impl TlsIdentity {
    /// Loads a PEM certificate chain (leaf first) and a PEM private key (PKCS#8, PKCS#1 or
    /// SEC1).
    pub fn from_pem_files(cert: &Path, key: &Path) -> Result<Self, Error> {
        let cert_pem = fs::read(cert).map_err(|source| Error::TlsFile {
            path: cert.to_owned(),
            source,
        })?;
        let key_pem = fs::read(key).map_err(|source| Error::TlsFile {
            path: key.to_owned(),
            source,
        })?;
        let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(&cert_pem)
            .filter_map(Result::ok)
            .collect();
        if chain.is_empty() {
            return Err(Error::TlsPem {
                path: cert.to_owned(),
                what: "certificate",
            });
        }
        let key = PrivateKeyDer::from_pem_slice(&key_pem).map_err(|_| Error::TlsPem {
            path: key.to_owned(),
            what: "private key",
        })?;
        Ok(Self { chain, key })
    }

    /// Loads [`CERT_FILE`] and [`KEY_FILE`] from `data_dir`, or, when neither exists,
    /// generates a self-signed certificate for `names` (DNS names and IP addresses, for example
    /// `["pcscf.ims.example", "127.0.0.1"]`), writes both files (the key with mode 0600) and
    /// returns it. The directory is created if needed. One file without the other is an error:
    /// nothing is overwritten.
    pub fn load_or_generate(data_dir: &Path, names: &[&str]) -> Result<Self, Error> {
        let cert = data_dir.join(CERT_FILE);
        let key = data_dir.join(KEY_FILE);
        match (cert.exists(), key.exists()) {
            (true, true) => return Self::from_pem_files(&cert, &key),
            (true, false) => {
                return Err(Error::TlsPairIncomplete {
                    present: cert,
                    missing: key,
                });
            }
            (false, true) => {
                return Err(Error::TlsPairIncomplete {
                    present: key,
                    missing: cert,
                });
            }
            (false, false) => {}
        }
        fs::create_dir_all(data_dir).map_err(|source| Error::TlsFile {
            path: data_dir.to_owned(),
            source,
        })?;
        let names: Vec<String> = names.iter().map(|n| (*n).to_owned()).collect();
        let generated = rcgen::generate_simple_self_signed(names)?;
        write_new(
            &key,
            generated.signing_key.serialize_pem().as_bytes(),
            0o600,
        )?;
        write_new(&cert, generated.cert.pem().as_bytes(), 0o644)?;
        tracing::info!(cert = %cert.display(), "generated a self-signed SIP TLS certificate");
        Self::from_pem_files(&cert, &key)
    }

    /// The certificate chain, leaf first. A peer that trusts the self-signed leaf can pass it
    /// to [`client_config`].
    pub fn chain(&self) -> &[CertificateDer<'static>] {
        &self.chain
    }

    /// A rustls server configuration (no client authentication) for
    /// [`SipTransport::add_tls`](crate::SipTransport::add_tls) and
    /// [`SipTransport::add_wss`](crate::SipTransport::add_wss).
    pub fn server_config(&self) -> Result<Arc<ServerConfig>, Error> {
        let config = ServerConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()?
            .with_no_client_auth()
            .with_single_cert(self.chain.clone(), self.key.clone_key())?;
        Ok(Arc::new(config))
    }
}

/// A rustls client configuration that trusts exactly `roots` (for example the self-signed
/// certificate of the peer), for [`Config::tls_client`](crate::Config::tls_client).
pub fn client_config(roots: &[CertificateDer<'static>]) -> Result<Arc<ClientConfig>, Error> {
    let mut store = RootCertStore::empty();
    for root in roots {
        store.add(root.clone())?;
    }
    let config = ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()?
        .with_root_certificates(store)
        .with_no_client_auth();
    Ok(Arc::new(config))
}

/// Loads every certificate of a PEM file, for [`client_config`].
pub fn load_certificates(path: &Path) -> Result<Vec<CertificateDer<'static>>, Error> {
    let pem = fs::read(path).map_err(|source| Error::TlsFile {
        path: path.to_owned(),
        source,
    })?;
    let certs: Vec<_> = CertificateDer::pem_slice_iter(&pem)
        .filter_map(Result::ok)
        .collect();
    if certs.is_empty() {
        return Err(Error::TlsPem {
            path: path.to_owned(),
            what: "certificate",
        });
    }
    Ok(certs)
}

/// Writes a file that must not exist yet, through a temporary file and a rename so a crash
/// never leaves half a key.
fn write_new(path: &Path, contents: &[u8], mode: u32) -> Result<(), Error> {
    let err = |source| Error::TlsFile {
        path: path.to_owned(),
        source,
    };
    let mut tmp = PathBuf::from(path);
    tmp.set_extension("tmp");
    let mut file = fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(mode)
        .open(&tmp)
        .map_err(err)?;
    file.write_all(contents).map_err(err)?;
    file.sync_all().map_err(err)?;
    fs::rename(&tmp, path).map_err(err)
}
