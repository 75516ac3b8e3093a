//! The HSS's registration state: serving S-CSCF and per-identity state (TS 29.228 §6.1.2).

use std::collections::HashMap;
use std::time::SystemTime;

use imslab_types::{Impi, Impu, Imsi};
use serde::Serialize;

use crate::backend::{Backend, read, transaction, unix_ms};
use crate::model::{HssChange, RegState, ServingScscf};
use crate::repo::subscribers::sqn_db;
use crate::repo::{chunks, values};
use crate::{Error, Store};

/// Runs the statements of `$changes` for subscriber `$id` in transaction `$tx`, one by one.
macro_rules! apply_changes {
    ($tx:ident, $op:expr, $id:expr, $changes:expr, $now:expr) => {
        for change in $changes {
            match change {
                HssChange::SetScscf(s) => {
                    sqlx::query(
                        "UPDATE subscribers SET scscf_name = $1, scscf_origin_host = $2, \
                         scscf_origin_realm = $3, updated_at = $4 WHERE id = $5",
                    )
                    .bind(s.as_ref().map(|s| s.name.clone()))
                    .bind(s.as_ref().and_then(|s| s.origin_host.clone()))
                    .bind(s.as_ref().and_then(|s| s.origin_realm.clone()))
                    .bind($now)
                    .bind($id)
                    .execute(&mut *$tx)
                    .await
                    .map_err(Error::query($op))?;
                }
                HssChange::SetRegState { impus, state } => {
                    for impu in impus {
                        sqlx::query(
                            "UPDATE impus SET reg_state = $1 \
                             WHERE subscriber_id = $2 AND impu = $3",
                        )
                        .bind(state.to_db())
                        .bind($id)
                        .bind(impu.as_str())
                        .execute(&mut *$tx)
                        .await
                        .map_err(Error::query($op))?;
                    }
                }
                HssChange::SetSqn(sqn) => {
                    sqlx::query("UPDATE subscribers SET sqn = $1 WHERE id = $2")
                        .bind(sqn_db(*sqn))
                        .bind($id)
                        .execute(&mut *$tx)
                        .await
                        .map_err(Error::query($op))?;
                }
            }
        }
    };
}

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
                apply_changes!(tx, OP, subscriber_id, changes, now);
                Ok::<(), Error>(())
            }
            .await
        })
    }

    /// Applies the changes of several Cx transactions in one transaction, with the result of
    /// applying each `(subscriber_id, changes)` one by one in order (every change sets a value:
    /// each key ends in its last one). On SQLite the changes go in a few multi-row statements.
    /// An error rolls the whole batch back.
    pub async fn apply_many(
        &self,
        items: &[(i64, &[HssChange])],
        now: SystemTime,
    ) -> Result<(), Error> {
        const OP: &str = "hss_state.apply_many";
        if items.iter().all(|(_, c)| c.is_empty()) {
            return Ok(());
        }
        if let Backend::Postgres(_) = &self.store.backend {
            return transaction!(self.store, OP, |tx| {
                async {
                    let now = unix_ms(now);
                    for (id, changes) in items {
                        apply_changes!(tx, OP, *id, *changes, now);
                    }
                    Ok::<(), Error>(())
                }
                .await
            });
        }
        // The last value of each key, in first-appearance order.
        let mut scscf: HashMap<i64, &Option<ServingScscf>> = HashMap::new();
        let mut sqn: HashMap<i64, i64> = HashMap::new();
        let mut states: HashMap<(i64, &str), i64> = HashMap::new();
        for (id, changes) in items {
            for change in *changes {
                match change {
                    HssChange::SetScscf(s) => {
                        scscf.insert(*id, s);
                    }
                    HssChange::SetRegState { impus, state } => {
                        for impu in impus {
                            states.insert((*id, impu.as_str()), state.to_db());
                        }
                    }
                    HssChange::SetSqn(v) => {
                        sqn.insert(*id, sqn_db(*v));
                    }
                }
            }
        }
        let scscf: Vec<(i64, &Option<ServingScscf>)> = scscf.into_iter().collect();
        let sqn: Vec<(i64, i64)> = sqn.into_iter().collect();
        let states: Vec<((i64, &str), i64)> = states.into_iter().collect();
        let now = unix_ms(now);
        transaction!(self.store, OP, |tx| {
            async {
                let mut at = 0;
                for n in chunks(scscf.len()) {
                    let sql = format!(
                        "UPDATE subscribers SET scscf_name = v.column2, \
                         scscf_origin_host = v.column3, scscf_origin_realm = v.column4, \
                         updated_at = $1 FROM (VALUES {}) AS v WHERE subscribers.id = v.column1",
                        values(n, 4, 2)
                    );
                    let mut q = sqlx::query(sqlx::AssertSqlSafe(sql)).bind(now);
                    for (id, s) in scscf.iter().skip(at).take(n) {
                        q = q
                            .bind(*id)
                            .bind(s.as_ref().map(|s| s.name.as_str()))
                            .bind(s.as_ref().and_then(|s| s.origin_host.as_deref()))
                            .bind(s.as_ref().and_then(|s| s.origin_realm.as_deref()));
                    }
                    q.execute(&mut *tx).await.map_err(Error::query(OP))?;
                    at += n;
                }
                let mut at = 0;
                for n in chunks(states.len()) {
                    let sql = format!(
                        "UPDATE impus SET reg_state = v.column3 FROM (VALUES {}) AS v \
                         WHERE impus.subscriber_id = v.column1 AND impus.impu = v.column2",
                        values(n, 3, 1)
                    );
                    let mut q = sqlx::query(sqlx::AssertSqlSafe(sql));
                    for ((id, impu), state) in states.iter().skip(at).take(n) {
                        q = q.bind(*id).bind(*impu).bind(*state);
                    }
                    q.execute(&mut *tx).await.map_err(Error::query(OP))?;
                    at += n;
                }
                for (id, v) in &sqn {
                    sqlx::query("UPDATE subscribers SET sqn = $1 WHERE id = $2")
                        .bind(*v)
                        .bind(*id)
                        .execute(&mut *tx)
                        .await
                        .map_err(Error::query(OP))?;
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
