//! Scenario replay and the soft UE of imslab.
//!
//! - [`ue`]: the soft UE. [`ue::UeCore`] is a pure SIP UA on the RFC 3261 transaction layer
//!   with a USIM: IMS registration (TS 24.229 §5.1.1) with AKAv1/AKAv2/MD5, AUTS resync,
//!   sec-agree and IPsec SAs (TS 33.203), reg-event, calls with and without preconditions,
//!   MESSAGE (text, SMS over IP per TS 24.341), OPTIONS, handset profiles. [`ue::UeHandle`]
//!   runs it on tokio: UDP/TCP through `imslab-sip-io`, userspace ESP through
//!   [`ue::EspHub`].
//! - [`scenario`]: the YAML format (typed, `deny_unknown_fields`, line-numbered errors) and its
//!   loader. The JSON Schema is `scenario.schema.json` at the crate root; the README documents
//!   the format.
//! - [`runner`]: [`replay`] runs a scenario file with a step log, stops at the first failed
//!   expectation, writes JUnit and a pcap (ESP and decrypted SIP, plus Wireshark's `esp_sa`
//!   keys file). [`load`]: many UEs at a rate for a duration, with per-step percentiles.
//!
//! # For the `imslab replay` command
//!
//! ```no_run
//! # async fn cli(cfg: imslab_config::Config, store: imslab_store::Store) -> Result<(), imslab_scenarios::Error> {
//! use imslab_scenarios::{Lab, LoadSettings, ReplayOptions, replay};
//! let report = replay(ReplayOptions {
//!     scenario: "scenarios/library/aka-ipsec-sha1-aes-cbc.yaml".into(), // FILE
//!     lab: Lab::from_config(&cfg),   // pcscf.listen, hss.listen/origin_host, web.listen/token, network.domain
//!     store: Some(store),            // the store of the config, for UEs named by IMSI
//!     junit: None,                   // --junit FILE
//!     pcap: None,                    // --pcap FILE (FILE.esp_sa is written beside it)
//!     load: None,                    // Some(LoadSettings { ues, rate, duration }) for --ues/--rate/--duration
//!     print_log: true,               // the step log (and the load table) on stdout
//! })
//! .await?;
//! std::process::exit(i32::from(report.exit_code())); // 0 passed, 1 a step or a load UE failed
//! # }
//! ```
//!
//! `Err` means the scenario could not run at all (unreadable or invalid file, naming the line;
//! an unknown IMSI; no raw-socket permission for ESP): print it and exit 2. With `--spawn`, the
//! binary starts the lab first (as `imslab up` does) and passes the same [`Lab`]. In load mode
//! `report.load` holds the [`LoadReport`] (serialize it with serde_json for `--json`). The UEs
//! use 127.0.0.2 unless the scenario says otherwise ([`Lab::ue_address`]); userspace ESP needs
//! `CAP_NET_RAW`.
//!
//! # What it is not
//!
//! No media (RTP) — the SDP is offered and answered, nothing is streamed; no TLS/WebSocket UEs;
//! IPsec carries UDP only (as the P-CSCF's userspace backend); no retransmission of reliable
//! provisional responses; no re-INVITE or session timers.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod capture;
mod error;
pub mod fuzzing;
pub mod load;
pub mod runner;
pub mod scenario;
pub mod ue;

pub use error::Error;

pub use load::{LoadReport, LoadSettings};
pub use runner::{Lab, ReplayOptions, ReplayReport, replay};
