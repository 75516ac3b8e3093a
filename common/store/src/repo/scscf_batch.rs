//! Many S-CSCF state writes as one transaction: [`Scscf::apply`].
//!
//! The S-CSCF's store writer takes every write queued while the previous batch ran. Applied one
//! by one, each is a statement and a commit (on SQLite, round trips to the connection's worker
//! thread each time); here the batch is first reduced to the final state of every key it
//! touches ([`Plan`]), then written with a few multi-row statements in one transaction. The rows
//! end exactly as if the writes had been applied one by one, in order.

use std::collections::{HashMap, HashSet};
use std::time::SystemTime;

use imslab_types::Impu;

use crate::backend::{transaction, unix_ms};
use crate::repo::{chunks, to_json_list, values};
use crate::{Binding, Error, RegSubscription, Scscf, ScscfRegistration};

/// One S-CSCF state write.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ScscfWrite {
    /// Create or replace a registration.
    PutRegistration(ScscfRegistration),
    /// Delete a registration and its bindings.
    DeleteRegistration(Impu),
    /// Create or refresh a binding.
    PutBinding(Binding),
    /// Remove one binding.
    RemoveBinding {
        /// The registration.
        impu: Impu,
        /// [`Binding::key`].
        key: String,
    },
    /// Create or update a reg-event subscription.
    PutSubscription(RegSubscription),
    /// Remove a reg-event subscription.
    RemoveSubscription {
        /// Call-ID.
        call_id: String,
        /// Our tag.
        local_tag: String,
    },
}

/// The final effect of a sequence of writes, per key.
#[derive(Debug, Default)]
struct Plan<'a> {
    /// Identities whose bindings are all deleted first (a registration deleted in the batch;
    /// binding writes before that deletion are dropped from `bindings`).
    wiped: HashSet<&'a str>,
    /// Per identity: the registration to put, or `None` to delete it.
    registrations: HashMap<&'a str, Option<&'a ScscfRegistration>>,
    /// Per (identity, binding key): the binding to put, or `None` to remove it.
    bindings: HashMap<(&'a str, String), Option<&'a Binding>>,
    /// Per (Call-ID, local tag): the subscription to put, or `None` to remove it.
    subscriptions: HashMap<(&'a str, &'a str), Option<&'a RegSubscription>>,
}

impl<'a> Plan<'a> {
    fn of(writes: &'a [ScscfWrite]) -> Self {
        let mut p = Plan::default();
        for w in writes {
            match w {
                ScscfWrite::PutRegistration(r) => {
                    p.registrations.insert(r.impu.as_str(), Some(r));
                }
                ScscfWrite::DeleteRegistration(impu) => {
                    let impu = impu.as_str();
                    p.registrations.insert(impu, None);
                    p.bindings.retain(|(i, _), _| *i != impu);
                    p.wiped.insert(impu);
                }
                ScscfWrite::PutBinding(b) => {
                    p.bindings.insert((b.impu.as_str(), b.key()), Some(b));
                }
                ScscfWrite::RemoveBinding { impu, key } => {
                    p.bindings.insert((impu.as_str(), key.clone()), None);
                }
                ScscfWrite::PutSubscription(s) => {
                    p.subscriptions
                        .insert((s.call_id.as_str(), s.local_tag.as_str()), Some(s));
                }
                ScscfWrite::RemoveSubscription { call_id, local_tag } => {
                    p.subscriptions
                        .insert((call_id.as_str(), local_tag.as_str()), None);
                }
            }
        }
        p
    }
}

/// `(a = $first AND b = $first+1) OR …` for `rows` pairs.
fn pairs(rows: usize, a: &str, b: &str, first: usize) -> String {
    (0..rows)
        .map(|r| {
            format!(
                "({a} = ${} AND {b} = ${})",
                first + 2 * r,
                first + 2 * r + 1
            )
        })
        .collect::<Vec<_>>()
        .join(" OR ")
}

/// `$first, $first+1, …` for `rows` values.
fn list(rows: usize, first: usize) -> String {
    (0..rows)
        .map(|r| format!("${}", first + r))
        .collect::<Vec<_>>()
        .join(", ")
}

fn registrations_upsert(rows: usize) -> String {
    format!(
        "INSERT INTO scscf_registrations (owner, impu, impi, reg_state, implicit_set, user_data, \
         charging, updated_at) VALUES {} ON CONFLICT (owner, impu) DO UPDATE SET \
         impi = excluded.impi, reg_state = excluded.reg_state, \
         implicit_set = excluded.implicit_set, user_data = excluded.user_data, \
         charging = excluded.charging, updated_at = excluded.updated_at",
        values(rows, 8, 1)
    )
}

fn bindings_upsert(rows: usize) -> String {
    format!(
        "INSERT INTO scscf_bindings (owner, impu, impi, binding_key, contact, expires_at, \
         q_milli, path, instance_id, reg_id, call_id, cseq, pcscf_flow, received, user_agent, \
         contact_params, updated_at) VALUES {} \
         ON CONFLICT (owner, impu, binding_key) DO UPDATE SET impi = excluded.impi, \
         contact = excluded.contact, expires_at = excluded.expires_at, \
         q_milli = excluded.q_milli, path = excluded.path, instance_id = excluded.instance_id, \
         reg_id = excluded.reg_id, call_id = excluded.call_id, cseq = excluded.cseq, \
         pcscf_flow = excluded.pcscf_flow, received = excluded.received, \
         user_agent = excluded.user_agent, contact_params = excluded.contact_params, \
         updated_at = excluded.updated_at",
        values(rows, 17, 1)
    )
}

fn subscriptions_upsert(rows: usize) -> String {
    format!(
        "INSERT INTO reg_subscriptions (owner, role, impu, watcher, call_id, local_tag, \
         remote_tag, local_cseq, remote_cseq, remote_target, route_set, version, expires_at, \
         updated_at) VALUES {} ON CONFLICT (owner, call_id, local_tag) DO UPDATE SET \
         role = excluded.role, impu = excluded.impu, watcher = excluded.watcher, \
         remote_tag = excluded.remote_tag, local_cseq = excluded.local_cseq, \
         remote_cseq = excluded.remote_cseq, remote_target = excluded.remote_target, \
         route_set = excluded.route_set, version = excluded.version, \
         expires_at = excluded.expires_at, updated_at = excluded.updated_at",
        values(rows, 14, 1)
    )
}

/// A registration's columns after `owner`, as bound values.
struct RegRow<'a> {
    r: &'a ScscfRegistration,
    implicit_set: String,
    charging: Option<String>,
}

/// For each chunk of `$items`: the statement `$sql(n)`, with `$owner` bound first when given
/// (as `$1`) and then every row through `$bind`, run in `$tx`.
macro_rules! each_chunk {
    ($tx:ident, $items:expr, $sql:expr, $owner:expr, |$q:ident, $row:ident| $bind:expr) => {{
        let items = $items;
        let mut at = 0;
        for n in chunks(items.len()) {
            let mut $q = sqlx::query(sqlx::AssertSqlSafe($sql(n)));
            if let Some(owner) = $owner {
                $q = $q.bind(owner);
            }
            for $row in items.iter().skip(at).take(n) {
                $q = $bind;
            }
            $q.execute(&mut *$tx).await.map_err(Error::query(OP))?;
            at += n;
        }
    }};
}

const OP: &str = "scscf.apply";

impl Scscf<'_> {
    /// Applies `writes` in one transaction, with the result of applying them one by one in
    /// order (each key ends in its last written state; deleting a registration deletes the
    /// bindings written before it). An error rolls the whole batch back.
    pub async fn apply(&self, writes: &[ScscfWrite], now: SystemTime) -> Result<(), Error> {
        if writes.is_empty() {
            return Ok(());
        }
        let plan = Plan::of(writes);
        let now = unix_ms(now);
        let owner = self.owner;
        let wiped: Vec<&str> = plan.wiped.iter().copied().collect();
        let reg_deletes: Vec<&str> = plan
            .registrations
            .iter()
            .filter(|(_, r)| r.is_none())
            .map(|(i, _)| *i)
            .collect();
        let mut reg_puts = Vec::new();
        for r in plan.registrations.values().flatten() {
            let charging = r
                .charging
                .as_ref()
                .map(serde_json::to_string)
                .transpose()
                .map_err(|e| Error::corrupt("charging", r.impu.to_string(), e))?;
            reg_puts.push(RegRow {
                r,
                implicit_set: to_json_list(&r.implicit_set),
                charging,
            });
        }
        let binding_removes: Vec<(&str, &str)> = plan
            .bindings
            .iter()
            .filter(|(_, b)| b.is_none())
            .map(|((i, k), _)| (*i, k.as_str()))
            .collect();
        let binding_puts: Vec<(&Binding, &str, String)> = plan
            .bindings
            .iter()
            .filter_map(|((_, k), b)| b.map(|b| (b, k.as_str(), to_json_list(&b.path))))
            .collect();
        let sub_removes: Vec<(&str, &str)> = plan
            .subscriptions
            .iter()
            .filter(|(_, s)| s.is_none())
            .map(|(k, _)| *k)
            .collect();
        let sub_puts: Vec<(&RegSubscription, String)> = plan
            .subscriptions
            .values()
            .flatten()
            .map(|s| (*s, to_json_list(&s.route_set)))
            .collect();
        let with_owner = Some(owner);
        let no_owner: Option<&str> = None;

        transaction!(self.store, OP, |tx| {
            async {
                each_chunk!(
                    tx,
                    &wiped,
                    |n| format!(
                        "DELETE FROM scscf_bindings WHERE owner = $1 AND impu IN ({})",
                        list(n, 2)
                    ),
                    with_owner,
                    |q, i| q.bind(*i)
                );
                each_chunk!(
                    tx,
                    &reg_deletes,
                    |n| format!(
                        "DELETE FROM scscf_registrations WHERE owner = $1 AND impu IN ({})",
                        list(n, 2)
                    ),
                    with_owner,
                    |q, i| q.bind(*i)
                );
                each_chunk!(
                    tx,
                    &binding_removes,
                    |n| format!(
                        "DELETE FROM scscf_bindings WHERE owner = $1 AND ({})",
                        pairs(n, "impu", "binding_key", 2)
                    ),
                    with_owner,
                    |q, p| q.bind(p.0).bind(p.1)
                );
                each_chunk!(
                    tx,
                    &sub_removes,
                    |n| format!(
                        "DELETE FROM reg_subscriptions WHERE owner = $1 AND ({})",
                        pairs(n, "call_id", "local_tag", 2)
                    ),
                    with_owner,
                    |q, p| q.bind(p.0).bind(p.1)
                );
                each_chunk!(tx, &reg_puts, registrations_upsert, no_owner, |q, row| q
                    .bind(owner)
                    .bind(row.r.impu.as_str())
                    .bind(row.r.impi.as_str())
                    .bind(row.r.state.to_db())
                    .bind(row.implicit_set.as_str())
                    .bind(row.r.user_data.as_deref())
                    .bind(row.charging.as_deref())
                    .bind(now));
                each_chunk!(tx, &binding_puts, bindings_upsert, no_owner, |q, row| {
                    let (b, key, path) = row;
                    q.bind(owner)
                        .bind(b.impu.as_str())
                        .bind(b.impi.as_str())
                        .bind(*key)
                        .bind(b.contact.as_str())
                        .bind(unix_ms(b.expires_at))
                        .bind(b.q_milli)
                        .bind(path.as_str())
                        .bind(b.instance_id.as_deref())
                        .bind(b.reg_id)
                        .bind(b.call_id.as_str())
                        .bind(b.cseq)
                        .bind(b.pcscf_flow.as_deref())
                        .bind(b.received.as_deref())
                        .bind(b.user_agent.as_deref())
                        .bind(b.contact_params.as_deref())
                        .bind(now)
                });
                each_chunk!(tx, &sub_puts, subscriptions_upsert, no_owner, |q, row| {
                    let (s, route_set) = row;
                    q.bind(owner)
                        .bind(s.role.as_str())
                        .bind(s.impu.as_str())
                        .bind(s.watcher.as_str())
                        .bind(s.call_id.as_str())
                        .bind(s.local_tag.as_str())
                        .bind(s.remote_tag.as_str())
                        .bind(s.local_cseq)
                        .bind(s.remote_cseq)
                        .bind(s.remote_target.as_str())
                        .bind(route_set.as_str())
                        .bind(s.version)
                        .bind(unix_ms(s.expires_at))
                        .bind(now)
                });
                Ok::<(), Error>(())
            }
            .await
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placeholders_number_rows_after_the_owner() {
        assert_eq!(list(3, 2), "$2, $3, $4");
        assert_eq!(
            pairs(2, "a", "b", 2),
            "(a = $2 AND b = $3) OR (a = $4 AND b = $5)"
        );
    }
}
