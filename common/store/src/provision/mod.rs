//! Provisioning logic shared by the CLI (`imslab subscriber ...`) and the REST API: validated
//! subscribers built from strings with precise errors, CSV import (our format and pySim card-data
//! files) that changes nothing unless every line is valid, and export.
//!
//! K, OP and OPc are write-only: nothing here returns them unless the caller passes
//! `include_secrets` explicitly ([`export_csv`], [`SubscriberView::from_subscriber`]).

mod csv;
mod input;

pub(crate) use self::csv::csv_field;
pub use self::csv::{
    CsvFormat, EXPORT_COLUMNS, ImportReport, LineError, export_csv, import_csv, parse_csv_records,
    parse_import,
};
pub use self::input::{
    FieldError, ImpuInput, ImpuView, NewPublicIdentity, NewSubscriber, ProvisionDefaults,
    SubscriberInput, SubscriberUpdate, SubscriberView, UpdateInput,
};
