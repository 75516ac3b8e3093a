//! Repositories: typed access to each part of the schema.

pub mod hss_state;
pub mod loader;
pub mod pcscf;
pub mod profiles;
pub mod reg_subscriptions;
pub mod scscf;
pub mod sqn_batch;
pub mod subscribers;
pub mod ue_events;

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::Error;

pub(crate) fn to_json_list<T: Serialize>(v: &[T]) -> String {
    serde_json::to_string(v).unwrap_or_else(|_| "[]".to_owned())
}

pub(crate) fn from_json_list<T: DeserializeOwned>(
    column: &'static str,
    row: &str,
    s: &str,
) -> Result<Vec<T>, Error> {
    serde_json::from_str(s).map_err(|e| Error::corrupt(column, row, e))
}
