//! Repositories: typed access to each part of the schema.

pub mod hss_state;
pub mod hss_writer;
pub mod loader;
pub mod pcscf;
pub mod profiles;
pub mod reg_subscriptions;
pub mod scscf;
pub mod scscf_batch;
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

/// Most rows one statement carries (SQLite admits 32,766 parameters, PostgreSQL 65,535).
pub(crate) const MAX_ROWS: usize = 32;

/// Chunk sizes for `n` rows: full chunks of [`MAX_ROWS`], then powers of two, so that few
/// distinct statements reach the prepared-statement cache.
pub(crate) fn chunks(n: usize) -> Vec<usize> {
    let mut out = vec![MAX_ROWS; n / MAX_ROWS];
    let rest = n % MAX_ROWS;
    let mut bit = MAX_ROWS;
    while bit > 0 {
        if rest & bit != 0 {
            out.push(bit);
        }
        bit /= 2;
    }
    out
}

/// `($first, $first+1, …)` groups for `rows` rows of `width` parameters.
pub(crate) fn values(rows: usize, width: usize, first: usize) -> String {
    let mut s = String::new();
    for r in 0..rows {
        if r > 0 {
            s.push_str(", ");
        }
        s.push('(');
        for c in 0..width {
            if c > 0 {
                s.push_str(", ");
            }
            s.push_str(&format!("${}", first + r * width + c));
        }
        s.push(')');
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunks_cover_every_row_in_few_distinct_sizes() {
        for n in 0..200 {
            let c = chunks(n);
            assert_eq!(c.iter().sum::<usize>(), n);
            assert!(c.iter().all(|s| s.is_power_of_two() && *s <= MAX_ROWS));
        }
        assert_eq!(chunks(70), vec![32, 32, 4, 2]);
    }

    #[test]
    fn values_number_parameters_row_by_row() {
        assert_eq!(values(2, 2, 1), "($1, $2), ($3, $4)");
        assert_eq!(values(1, 3, 4), "($4, $5, $6)");
    }
}
