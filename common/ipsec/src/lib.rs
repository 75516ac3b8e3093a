//! IMS security agreement and IPsec ESP between the UE and the P-CSCF (RFC 3329, TS 33.203 §7,
//! TS 24.229 §5.2.2).
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod alg;
pub mod diag;
mod error;
pub mod esp;
pub mod fuzzing;
pub mod header;
pub mod inner;
pub mod keys;
pub mod negotiate;
pub mod sa;
pub mod socket;
pub mod spi;
pub mod table;
pub mod wireshark;
pub mod xfrm;

pub use alg::{CipherSuite, EncryptionAlg, IntegrityAlg};
pub use diag::Diagnosis;
pub use error::{Error, EspDrop, HeaderError};
pub use header::{IpsecMechanism, SecurityMechanism};
pub use keys::EspKeys;
pub use negotiate::{
    Advertise, Chosen, ListMismatch, LocalParams, NoAcceptableMechanism, Preference, ProtectedPorts,
};
pub use sa::{Direction, Endpoint, SaBundle, SaRole, SecurityAssociation};
pub use spi::{Spi, SpiAllocator};
pub use table::{RemovalReason, SaAction, SaSet, SaSetId, SaState, SaTable, SaTableConfig};
