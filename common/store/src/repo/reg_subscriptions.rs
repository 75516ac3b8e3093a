//! reg event package subscriptions (RFC 3680, TS 24.229 §5.4.2.1.2 and §5.2.3): the dialog state
//! a notifier (S-CSCF) or subscriber (P-CSCF) needs to keep NOTIFYing or refreshing after a
//! restart.

use std::time::SystemTime;

use imslab_types::Impu;
use serde::{Deserialize, Serialize};

use crate::backend::{from_unix_ms, read, unix_ms, write};
use crate::repo::{from_json_list, to_json_list};
use crate::{Error, Store};

/// Which end of the subscription dialog this node is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum SubscriptionRole {
    /// This node sends NOTIFY (the S-CSCF).
    Notifier,
    /// This node sent SUBSCRIBE (the P-CSCF).
    Subscriber,
}

impl SubscriptionRole {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Self::Notifier => "notifier",
            Self::Subscriber => "subscriber",
        }
    }

    fn parse(s: &str) -> Option<Self> {
        match s {
            "notifier" => Some(Self::Notifier),
            "subscriber" => Some(Self::Subscriber),
            _ => None,
        }
    }
}

/// One reg event subscription dialog.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RegSubscription {
    /// Notifier or subscriber side.
    pub role: SubscriptionRole,
    /// The watched resource (the registered public identity).
    pub impu: Impu,
    /// Who watches: the UE's IMPU or the P-CSCF's URI.
    pub watcher: String,
    /// Dialog Call-ID.
    pub call_id: String,
    /// Our tag.
    pub local_tag: String,
    /// The peer's tag.
    pub remote_tag: String,
    /// Our last CSeq in the dialog.
    pub local_cseq: i64,
    /// The peer's last CSeq.
    pub remote_cseq: i64,
    /// The peer's Contact (remote target).
    pub remote_target: String,
    /// The route set, in order.
    pub route_set: Vec<String>,
    /// The last reginfo `version` sent (notifier) or received (subscriber) (RFC 3680 §5.4.3).
    pub version: i64,
    /// When the subscription expires.
    pub expires_at: SystemTime,
}

#[derive(sqlx::FromRow)]
struct Row {
    role: String,
    impu: String,
    watcher: String,
    call_id: String,
    local_tag: String,
    remote_tag: String,
    local_cseq: i64,
    remote_cseq: i64,
    remote_target: String,
    route_set: String,
    version: i64,
    expires_at: i64,
}

impl Row {
    fn into_subscription(self) -> Result<RegSubscription, Error> {
        let row = format!("{};{}", self.call_id, self.local_tag);
        Ok(RegSubscription {
            role: SubscriptionRole::parse(&self.role)
                .ok_or_else(|| Error::corrupt("role", row.clone(), &self.role))?,
            impu: Impu::new(self.impu).map_err(|e| Error::corrupt("impu", row.clone(), e))?,
            watcher: self.watcher,
            call_id: self.call_id,
            local_tag: self.local_tag,
            remote_tag: self.remote_tag,
            local_cseq: self.local_cseq,
            remote_cseq: self.remote_cseq,
            remote_target: self.remote_target,
            route_set: from_json_list("route_set", &row, &self.route_set)?,
            version: self.version,
            expires_at: from_unix_ms(self.expires_at),
        })
    }
}

const SELECT: &str = "SELECT role, impu, watcher, call_id, local_tag, remote_tag, local_cseq, \
    remote_cseq, remote_target, route_set, version, expires_at FROM reg_subscriptions";

/// The reg event subscription repository of one node: `store.reg_subscriptions(owner)`.
#[derive(Debug, Clone, Copy)]
pub struct RegSubscriptions<'a> {
    pub(crate) store: &'a Store,
    pub(crate) owner: &'a str,
}

impl RegSubscriptions<'_> {
    /// Creates or replaces the subscription keyed by (`call_id`, `local_tag`).
    pub async fn put(&self, s: &RegSubscription, now: SystemTime) -> Result<(), Error> {
        write!(self.store, |p| {
            sqlx::query(
                "INSERT INTO reg_subscriptions (owner, role, impu, watcher, call_id, local_tag, \
                 remote_tag, local_cseq, remote_cseq, remote_target, route_set, version, \
                 expires_at, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, \
                 $12, $13, $14) ON CONFLICT (owner, call_id, local_tag) DO UPDATE SET \
                 role = excluded.role, impu = excluded.impu, watcher = excluded.watcher, \
                 remote_tag = excluded.remote_tag, local_cseq = excluded.local_cseq, \
                 remote_cseq = excluded.remote_cseq, remote_target = excluded.remote_target, \
                 route_set = excluded.route_set, version = excluded.version, \
                 expires_at = excluded.expires_at, updated_at = excluded.updated_at",
            )
            .bind(self.owner)
            .bind(s.role.as_str())
            .bind(s.impu.as_str())
            .bind(s.watcher.as_str())
            .bind(s.call_id.as_str())
            .bind(s.local_tag.as_str())
            .bind(s.remote_tag.as_str())
            .bind(s.local_cseq)
            .bind(s.remote_cseq)
            .bind(s.remote_target.as_str())
            .bind(to_json_list(&s.route_set))
            .bind(s.version)
            .bind(unix_ms(s.expires_at))
            .bind(unix_ms(now))
            .execute(p)
            .await
            .map(|r| r.rows_affected())
        })
        .map_err(Error::query("reg_subscriptions.put"))?;
        Ok(())
    }

    /// The subscription with this dialog id.
    pub async fn get(
        &self,
        call_id: &str,
        local_tag: &str,
    ) -> Result<Option<RegSubscription>, Error> {
        let row: Option<Row> = read!(self.store, |p| {
            sqlx::query_as(sqlx::AssertSqlSafe(format!(
                "{SELECT} WHERE owner = $1 AND call_id = $2 AND local_tag = $3"
            )))
            .bind(self.owner)
            .bind(call_id)
            .bind(local_tag)
            .fetch_optional(p)
            .await
        })
        .map_err(Error::query("reg_subscriptions.get"))?;
        row.map(Row::into_subscription).transpose()
    }

    /// Every subscription watching `impu`.
    pub async fn for_impu(&self, impu: &Impu) -> Result<Vec<RegSubscription>, Error> {
        let rows: Vec<Row> = read!(self.store, |p| {
            sqlx::query_as(sqlx::AssertSqlSafe(format!(
                "{SELECT} WHERE owner = $1 AND impu = $2 ORDER BY call_id"
            )))
            .bind(self.owner)
            .bind(impu.as_str())
            .fetch_all(p)
            .await
        })
        .map_err(Error::query("reg_subscriptions.for_impu"))?;
        rows.into_iter().map(Row::into_subscription).collect()
    }

    /// Every subscription of this node.
    pub async fn all(&self) -> Result<Vec<RegSubscription>, Error> {
        let rows: Vec<Row> = read!(self.store, |p| {
            sqlx::query_as(sqlx::AssertSqlSafe(format!(
                "{SELECT} WHERE owner = $1 ORDER BY call_id"
            )))
            .bind(self.owner)
            .fetch_all(p)
            .await
        })
        .map_err(Error::query("reg_subscriptions.all"))?;
        rows.into_iter().map(Row::into_subscription).collect()
    }

    /// Atomically increments the reginfo version and our CSeq for the next NOTIFY; returns
    /// (version, cseq) to put in it, or `None` if the subscription is gone.
    pub async fn next_notify(
        &self,
        call_id: &str,
        local_tag: &str,
    ) -> Result<Option<(i64, i64)>, Error> {
        write!(self.store, |p| {
            sqlx::query_as(
                "UPDATE reg_subscriptions SET version = version + 1, local_cseq = local_cseq + 1 \
                 WHERE owner = $1 AND call_id = $2 AND local_tag = $3 RETURNING version, local_cseq",
            )
            .bind(self.owner)
            .bind(call_id)
            .bind(local_tag)
            .fetch_optional(p)
            .await
        })
        .map_err(Error::query("reg_subscriptions.next_notify"))
    }

    /// Subscriptions that expired at or before `now`.
    pub async fn expired(&self, now: SystemTime) -> Result<Vec<RegSubscription>, Error> {
        let rows: Vec<Row> = read!(self.store, |p| {
            sqlx::query_as(sqlx::AssertSqlSafe(format!(
                "{SELECT} WHERE owner = $1 AND expires_at <= $2 ORDER BY expires_at"
            )))
            .bind(self.owner)
            .bind(unix_ms(now))
            .fetch_all(p)
            .await
        })
        .map_err(Error::query("reg_subscriptions.expired"))?;
        rows.into_iter().map(Row::into_subscription).collect()
    }

    /// Removes a subscription. Returns false if absent.
    pub async fn remove(&self, call_id: &str, local_tag: &str) -> Result<bool, Error> {
        let done = write!(self.store, |p| {
            sqlx::query(
                "DELETE FROM reg_subscriptions WHERE owner = $1 AND call_id = $2 AND local_tag = $3",
            )
            .bind(self.owner)
            .bind(call_id)
            .bind(local_tag)
            .execute(p)
            .await
            .map(|r| r.rows_affected())
        })
        .map_err(Error::query("reg_subscriptions.remove"))?;
        Ok(done > 0)
    }
}
