//! Per-UE diagnosis: outcomes this crate decides about a phone, in [`UeEvent`] shape.
//!
//! The crate does not know who a phone is or what time it is; the caller does. So every
//! decision (offer refused, Security-Verify mismatch, SA installed or removed, ESP packet
//! dropped) converts to a [`Diagnosis`], and [`Diagnosis::into_event`] adds time, function and
//! identity.

use std::time::SystemTime;

use imslab_types::{Function, Outcome, UeEvent, UeRef};

use crate::EspDrop;
use crate::negotiate::{ListMismatch, NoAcceptableMechanism};
use crate::table::SaAction;

/// A step, its outcome and the reason: a [`UeEvent`] without time, function and identity.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnosis {
    /// Stable step name: `sec-agree`, `sec-verify`, `ipsec-sa`, `esp`.
    pub step: &'static str,
    /// Success, failure or information.
    pub outcome: Outcome,
    /// Human-readable reason.
    pub reason: Option<String>,
}

impl Diagnosis {
    /// The full event.
    pub fn into_event(self, at: SystemTime, function: Function, ue: UeRef) -> UeEvent {
        UeEvent {
            at,
            function,
            ue,
            step: self.step,
            outcome: self.outcome,
            reason: self.reason,
        }
    }
}

impl From<&NoAcceptableMechanism> for Diagnosis {
    fn from(e: &NoAcceptableMechanism) -> Self {
        Self {
            step: "sec-agree",
            outcome: Outcome::Failed,
            reason: Some(format!("494: {e}")),
        }
    }
}

impl From<&ListMismatch> for Diagnosis {
    fn from(e: &ListMismatch) -> Self {
        Self {
            step: "sec-verify",
            outcome: Outcome::Failed,
            reason: Some(format!(
                "Security-Verify rejected (bid-down protection): {e}"
            )),
        }
    }
}

impl From<&EspDrop> for Diagnosis {
    fn from(e: &EspDrop) -> Self {
        Self {
            step: "esp",
            outcome: Outcome::Failed,
            reason: Some(format!("packet dropped: {e}")),
        }
    }
}

impl From<&SaAction> for Diagnosis {
    fn from(a: &SaAction) -> Self {
        match a {
            SaAction::Install { id, bundle } => Self {
                step: "ipsec-sa",
                outcome: Outcome::Ok,
                reason: Some(format!(
                    "{id} installed: {} SPIs {}/{} (P-CSCF) {}/{} (UE)",
                    bundle.suite(),
                    bundle.local.spi_c,
                    bundle.local.spi_s,
                    bundle.remote.spi_c,
                    bundle.remote.spi_s
                )),
            },
            SaAction::Remove { id, reason, .. } => Self {
                step: "ipsec-sa",
                outcome: Outcome::Info,
                reason: Some(format!("{id} removed: {reason}")),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spi::Spi;

    #[test]
    fn esp_drop_becomes_a_failed_esp_event_for_the_given_ue() {
        let d = Diagnosis::from(&EspDrop::Replay {
            spi: Spi(4096),
            seq: 7,
        });
        let ue = UeRef::impi(imslab_types::Impi::new("alice@ims.example").unwrap());
        let ev = d.into_event(SystemTime::UNIX_EPOCH, Function::Pcscf, ue.clone());
        assert_eq!((ev.step, ev.outcome, ev.ue), ("esp", Outcome::Failed, ue));
        assert_eq!(
            ev.reason.as_deref(),
            Some("packet dropped: replayed sequence 7 on SPI 4096")
        );
    }
}
