//! Structured per-UE events for the diagnosis timeline.
//!
//! Every function reports each step of a phone's life (PCO handed out, UAR answered, challenge
//! sent, AUTN rejected, SA installed...) as a [`UeEvent`]. A timeline collects them per phone and
//! names why a phone did not register. Events carry identities and reasons, never secrets.

use std::time::SystemTime;

use serde::{Deserialize, Serialize};

use crate::{Impi, Impu, Imsi};

/// The network function that observed the event.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
#[non_exhaustive]
pub enum Function {
    /// The Home Subscriber Server (Cx).
    Hss,
    /// The Interrogating CSCF.
    Icscf,
    /// The Serving CSCF.
    Scscf,
    /// The Proxy CSCF.
    Pcscf,
    /// The P-GW PCO stub (S5/S8).
    Pgw,
    /// The soft UE of the scenario runner.
    Ue,
    /// The web UI / REST API.
    Web,
}

/// Whether the step succeeded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Outcome {
    /// The step succeeded.
    Ok,
    /// The step failed; `reason` says why.
    Failed,
    /// Informational: neither success nor failure (for example a resync was started).
    Info,
}

/// Which phone an event concerns. At least one field is set.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct UeRef {
    /// The IMSI, when known.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub imsi: Option<Imsi>,
    /// The private identity, when known.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub impi: Option<Impi>,
    /// The public identity, when known.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub impu: Option<Impu>,
}

impl UeRef {
    /// A reference by IMSI.
    pub fn imsi(imsi: Imsi) -> Self {
        Self {
            imsi: Some(imsi),
            ..Self::default()
        }
    }

    /// A reference by private identity.
    pub fn impi(impi: Impi) -> Self {
        Self {
            impi: Some(impi),
            ..Self::default()
        }
    }

    /// A reference by public identity.
    pub fn impu(impu: Impu) -> Self {
        Self {
            impu: Some(impu),
            ..Self::default()
        }
    }
}

/// One step in one phone's timeline.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct UeEvent {
    /// When it happened.
    pub at: SystemTime,
    /// Which function saw it.
    pub function: Function,
    /// Which phone.
    pub ue: UeRef,
    /// A short, stable step name, for example `mar`, `challenge`, `sec-agree`, `pco`.
    pub step: &'static str,
    /// Success, failure or information.
    pub outcome: Outcome,
    /// A human-readable reason, for failures: "AUTN rejected: MAC mismatch", "IMPU barred".
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// Where functions send their events. Implementations must not block.
pub trait UeEventSink: Send + Sync {
    /// Records one event.
    fn emit(&self, event: UeEvent);
}
