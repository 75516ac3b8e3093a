//! The HSS's registration state: serving S-CSCF and per-identity state (TS 29.228 §6.1.2).

use std::time::SystemTime;

use imslab_types::{Impi, Impu, Imsi};
use serde::Serialize;

use crate::backend::{read, transaction, unix_ms};
use crate::model::{HssChange, RegState};
use crate::repo::subscribers::sqn_db;
use crate::{Error, Store};

/// One public identity's registration as the HSS sees it (REST `/api/v1/registrations`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Registration {
    /// The subscriber's IMSI.
    pub imsi: Imsi,
    /// The private identity.
    pub impi: Impi,
    /// The public identity.
    pub impu: Impu,
    /// Registered or unregistered (not-registered identities are not listed).
    pub state: RegState,
    /// The serving S-CSCF's SIP URI, if assigned.
    pub scscf: Option<String>,
}

/// Registration state repository: `store.hss_state()`.
#[derive(Debug, Clone, Copy)]
pub struct HssState<'a> {
    pub(crate) store: &'a Store,
}

impl HssState<'_> {
    /// Applies the changes one Cx transaction decided, atomically, to subscriber `subscriber_id`.
    pub async fn apply(
        &self,
        subscriber_id: i64,
        changes: &[HssChange],
        now: SystemTime,
    ) -> Result<(), Error> {
        const OP: &str = "hss_state.apply";
        if changes.is_empty() {
            return Ok(());
        }
        let now = unix_ms(now);
        transaction!(self.store, OP, |tx| {
            async {
                for change in changes {
                    match change {
                        HssChange::SetScscf(s) => {
                            sqlx::query(
                                "UPDATE subscribers SET scscf_name = $1, scscf_origin_host = $2, \
                                 scscf_origin_realm = $3, updated_at = $4 WHERE id = $5",
                            )
                            .bind(s.as_ref().map(|s| s.name.clone()))
                            .bind(s.as_ref().and_then(|s| s.origin_host.clone()))
                            .bind(s.as_ref().and_then(|s| s.origin_realm.clone()))
                            .bind(now)
                            .bind(subscriber_id)
                            .execute(&mut *tx)
                            .await
                            .map_err(Error::query(OP))?;
                        }
                        HssChange::SetRegState { impus, state } => {
                            for impu in impus {
                                sqlx::query(
                                    "UPDATE impus SET reg_state = $1 \
                                     WHERE subscriber_id = $2 AND impu = $3",
                                )
                                .bind(state.to_db())
                                .bind(subscriber_id)
                                .bind(impu.as_str())
                                .execute(&mut *tx)
                                .await
                                .map_err(Error::query(OP))?;
                            }
                        }
                        HssChange::SetSqn(sqn) => {
                            sqlx::query("UPDATE subscribers SET sqn = $1 WHERE id = $2")
                                .bind(sqn_db(*sqn))
                                .bind(subscriber_id)
                                .execute(&mut *tx)
                                .await
                                .map_err(Error::query(OP))?;
                        }
                    }
                }
                Ok::<(), Error>(())
            }
            .await
        })
    }

    /// Every registered or unregistered public identity, ordered by IMSI.
    pub async fn registrations(&self) -> Result<Vec<Registration>, Error> {
        let rows: Vec<(String, String, String, i64, Option<String>)> = read!(self.store, |p| {
            sqlx::query_as(
                "SELECT s.imsi, s.impi, i.impu, i.reg_state, s.scscf_name FROM impus i \
                 JOIN subscribers s ON s.id = i.subscriber_id WHERE i.reg_state <> 0 \
                 ORDER BY s.imsi, i.position",
            )
            .fetch_all(p)
            .await
        })
        .map_err(Error::query("hss_state.registrations"))?;
        rows.into_iter()
            .map(|(imsi, impi, impu, state, scscf)| {
                let bad = |c: &'static str| {
                    let row = imsi.clone();
                    move |e: imslab_types::Error| Error::corrupt(c, row, e)
                };
                Ok(Registration {
                    imsi: Imsi::new(imsi.clone()).map_err(bad("imsi"))?,
                    impi: Impi::new(impi).map_err(bad("impi"))?,
                    impu: Impu::new(impu).map_err(bad("impu"))?,
                    state: RegState::from_db(state)
                        .ok_or_else(|| Error::corrupt("impus.reg_state", imsi.clone(), state))?,
                    scscf,
                })
            })
            .collect()
    }
}
