//! Subscribers and their public identities; the SQN counter.

use std::time::SystemTime;

use imslab_types::{Amf, Impi, Impu, Imsi, K, Msisdn, Op, Opc, Sqn};

use crate::backend::{read, transaction, unix_ms, write};
use crate::error::unique_or_query;
use crate::model::{
    AuthSchemes, ChargingInfo, DigestSecret, OperatorKey, PublicIdentity, RegState, Revision,
    ServingScscf, Subscriber, Subscription,
};
use crate::provision::{NewPublicIdentity, NewSubscriber, SubscriberUpdate};
use crate::{Error, Store};

/// How to find a subscriber.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SubscriberKey {
    /// By IMSI.
    Imsi(Imsi),
    /// By private identity.
    Impi(Impi),
    /// By one of its public identities.
    Impu(Impu),
    /// By MSISDN.
    Msisdn(Msisdn),
}

impl SubscriberKey {
    fn describe(&self) -> String {
        match self {
            Self::Imsi(v) => v.to_string(),
            Self::Impi(v) => v.to_string(),
            Self::Impu(v) => v.to_string(),
            Self::Msisdn(v) => v.to_string(),
        }
    }
}

#[derive(sqlx::FromRow)]
struct SubscriberRow {
    id: i64,
    imsi: String,
    impi: String,
    msisdn: Option<String>,
    k: String,
    op: Option<String>,
    opc: Option<String>,
    amf: String,
    sqn: i64,
    auth_schemes: i64,
    digest_realm: Option<String>,
    digest_password: Option<String>,
    digest_ha1: Option<String>,
    fixed_scscf: Option<String>,
    scscf_name: Option<String>,
    scscf_origin_host: Option<String>,
    scscf_origin_realm: Option<String>,
    ccf_primary: Option<String>,
    ccf_secondary: Option<String>,
    ecf_primary: Option<String>,
    ecf_secondary: Option<String>,
    revision: i64,
}

#[derive(sqlx::FromRow)]
struct ImpuRow {
    subscriber_id: i64,
    impu: String,
    irs: i64,
    is_default: bool,
    barred: bool,
    profile: Option<String>,
    reg_state: i64,
}

/// The identity columns of a subscriber joined with its identities (NULL without any).
#[derive(sqlx::FromRow)]
struct JoinedImpu {
    impu: Option<String>,
    irs: Option<i64>,
    is_default: Option<bool>,
    barred: Option<bool>,
    profile: Option<String>,
    reg_state: Option<i64>,
}

impl JoinedImpu {
    fn into_row(self, subscriber_id: i64) -> Option<ImpuRow> {
        Some(ImpuRow {
            subscriber_id,
            impu: self.impu?,
            irs: self.irs?,
            is_default: self.is_default?,
            barred: self.barred?,
            profile: self.profile,
            reg_state: self.reg_state?,
        })
    }
}

#[derive(sqlx::FromRow)]
pub(crate) struct JoinedRow {
    #[sqlx(flatten)]
    sub: SubscriberRow,
    #[sqlx(flatten)]
    impu: JoinedImpu,
}

/// The SELECT … FROM of the joined subscriber query, before WHERE.
pub(crate) const JOINED_SELECT: &str = "SELECT s.id, s.imsi, s.impi, s.msisdn, s.k, s.op, s.opc, \
    s.amf, s.sqn, s.auth_schemes, s.digest_realm, s.digest_password, s.digest_ha1, s.fixed_scscf, \
    s.scscf_name, s.scscf_origin_host, s.scscf_origin_realm, s.ccf_primary, s.ccf_secondary, \
    s.ecf_primary, s.ecf_secondary, s.revision, i.impu, i.irs, i.is_default, i.barred, \
    p.name AS profile, i.reg_state FROM subscribers s LEFT JOIN impus i ON i.subscriber_id = s.id \
    LEFT JOIN service_profiles p ON p.id = i.profile_id";

/// Groups joined rows (ordered by subscriber) into subscribers, each with its revision.
pub(crate) fn group_joined(rows: Vec<JoinedRow>) -> Result<Vec<(Subscriber, Revision)>, Error> {
    let mut out = Vec::new();
    let mut current: Option<(SubscriberRow, Vec<ImpuRow>)> = None;
    for r in rows {
        let id = r.sub.id;
        match &mut current {
            Some((sub, impus)) if sub.id == id => impus.extend(r.impu.into_row(id)),
            _ => {
                if let Some((sub, impus)) = current.take() {
                    let revision = Revision(sub.revision);
                    out.push((sub.into_subscriber(impus)?, revision));
                }
                let impus = r.impu.into_row(id).into_iter().collect();
                current = Some((r.sub, impus));
            }
        }
    }
    if let Some((sub, impus)) = current {
        let revision = Revision(sub.revision);
        out.push((sub.into_subscriber(impus)?, revision));
    }
    Ok(out)
}

macro_rules! select_joined {
    ($where:literal) => {
        concat!(
            "SELECT s.id, s.imsi, s.impi, s.msisdn, s.k, s.op, s.opc, s.amf, s.sqn, \
             s.auth_schemes, s.digest_realm, s.digest_password, s.digest_ha1, s.fixed_scscf, \
             s.scscf_name, s.scscf_origin_host, s.scscf_origin_realm, s.ccf_primary, \
             s.ccf_secondary, s.ecf_primary, s.ecf_secondary, s.revision, i.impu, i.irs, \
             i.is_default, \
             i.barred, p.name AS profile, i.reg_state FROM subscribers s \
             LEFT JOIN impus i ON i.subscriber_id = s.id \
             LEFT JOIN service_profiles p ON p.id = i.profile_id WHERE ",
            $where,
            " ORDER BY s.id, i.position"
        )
    };
}

macro_rules! select_subscriber {
    ($where:literal) => {
        concat!(
            "SELECT id, imsi, impi, msisdn, k, op, opc, amf, sqn, auth_schemes, digest_realm, \
             digest_password, digest_ha1, fixed_scscf, scscf_name, scscf_origin_host, \
             scscf_origin_realm, ccf_primary, ccf_secondary, ecf_primary, ecf_secondary, \
             revision FROM subscribers ",
            $where
        )
    };
}

impl SubscriberRow {
    fn into_subscriber(self, impus: Vec<ImpuRow>) -> Result<Subscriber, Error> {
        let row = self.imsi.clone();
        let bad = |column: &'static str| {
            let row = row.clone();
            move |e: imslab_types::Error| Error::corrupt(column, row, e)
        };
        let operator_key = match (&self.opc, &self.op) {
            (Some(opc), _) => OperatorKey::Opc(Opc::from_hex(opc).map_err(bad("opc"))?),
            (None, Some(op)) => OperatorKey::Op(Op::from_hex(op).map_err(bad("op"))?),
            (None, None) => return Err(Error::corrupt("opc", row, "neither OP nor OPc is set")),
        };
        let digest = match (self.digest_ha1, self.digest_password) {
            (Some(ha1), _) => Some(DigestSecret::Ha1(ha1)),
            (None, Some(pw)) => Some(DigestSecret::Password(pw)),
            (None, None) => None,
        };
        let scscf = self.scscf_name.map(|name| ServingScscf {
            name,
            origin_host: self.scscf_origin_host,
            origin_realm: self.scscf_origin_realm,
        });
        let impus = impus
            .into_iter()
            .map(|r| {
                Ok(PublicIdentity {
                    impu: Impu::new(r.impu).map_err(bad("impus.impu"))?,
                    irs: r.irs,
                    is_default: r.is_default,
                    barred: r.barred,
                    profile: r.profile,
                    reg_state: RegState::from_db(r.reg_state).ok_or_else(|| {
                        Error::corrupt("impus.reg_state", row.clone(), r.reg_state)
                    })?,
                })
            })
            .collect::<Result<Vec<_>, Error>>()?;
        Ok(Subscriber {
            id: self.id,
            imsi: Imsi::new(self.imsi.clone()).map_err(bad("imsi"))?,
            impi: Impi::new(self.impi).map_err(bad("impi"))?,
            msisdn: self
                .msisdn
                .map(Msisdn::new)
                .transpose()
                .map_err(bad("msisdn"))?,
            k: K::from_hex(&self.k).map_err(bad("k"))?,
            operator_key,
            amf: Amf::from_hex(&self.amf).map_err(bad("amf"))?,
            sqn: u64::try_from(self.sqn)
                .ok()
                .and_then(|v| Sqn::new(v).ok())
                .ok_or_else(|| Error::corrupt("sqn", row.clone(), self.sqn))?,
            auth_schemes: AuthSchemes::from_db(self.auth_schemes),
            digest_realm: self.digest_realm,
            digest,
            fixed_scscf: self.fixed_scscf,
            scscf,
            charging: ChargingInfo {
                ccf_primary: self.ccf_primary,
                ccf_secondary: self.ccf_secondary,
                ecf_primary: self.ecf_primary,
                ecf_secondary: self.ecf_secondary,
            },
            impus,
        })
    }
}

/// Inserts one public identity on `$conn`; evaluates to `Result<(), Error>`.
macro_rules! insert_impu {
    ($conn:expr, $id:expr, $pos:expr, $p:expr, $state:expr) => {{
        const OP: &str = "subscribers.insert_impu";
        let p: &NewPublicIdentity = $p;
        let state: i64 = $state;
        async {
            let profile_id: Option<i64> = match &p.profile {
                Some(name) => Some(
                    sqlx::query_scalar::<_, i64>("SELECT id FROM service_profiles WHERE name = $1")
                        .bind(name.as_str())
                        .fetch_optional($conn)
                        .await
                        .map_err(Error::query(OP))?
                        .ok_or_else(|| Error::NotFound {
                            what: "service profile",
                            key: name.clone(),
                        })?,
                ),
                None => None,
            };
            sqlx::query(
                "INSERT INTO impus (subscriber_id, impu, position, irs, is_default, barred, \
                 profile_id, reg_state) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
            )
            .bind($id)
            .bind(p.impu.as_str())
            .bind(i64::try_from($pos).unwrap_or(i64::MAX))
            .bind(p.irs)
            .bind(p.is_default)
            .bind(p.barred)
            .bind(profile_id)
            .bind(state)
            .execute($conn)
            .await
            .map_err(unique_or_query(OP, "IMPU", p.impu.as_str()))?;
            Ok::<(), Error>(())
        }
        .await
    }};
}

/// Inserts one subscriber on `$conn`; evaluates to `Result<i64, Error>`.
macro_rules! insert_one {
    ($conn:expr, $new:expr, $now:expr) => {{
        const OP: &str = "subscribers.insert";
        let new: &NewSubscriber = $new;
        let now: i64 = $now;
        async {
            new.check()?;
            let taken: Option<(String, String)> = sqlx::query_as(
                "SELECT imsi, impi FROM subscribers WHERE imsi = $1 OR impi = $2 LIMIT 1",
            )
            .bind(new.imsi.as_str())
            .bind(new.impi.as_str())
            .fetch_optional($conn)
            .await
            .map_err(Error::query(OP))?;
            if let Some((imsi, _)) = taken {
                return Err(if imsi == new.imsi.as_str() {
                    Error::Duplicate { what: "IMSI", key: imsi }
                } else {
                    Error::Duplicate { what: "IMPI", key: new.impi.to_string() }
                });
            }
            for p in &new.impus {
                let owner: Option<String> = sqlx::query_scalar(
                    "SELECT s.imsi FROM impus i JOIN subscribers s ON s.id = i.subscriber_id \
                     WHERE i.impu = $1",
                )
                .bind(p.impu.as_str())
                .fetch_optional($conn)
                .await
                .map_err(Error::query(OP))?;
                if owner.is_some() {
                    return Err(Error::Duplicate { what: "IMPU", key: p.impu.to_string() });
                }
            }
            let (op, opc) = match &new.operator_key {
                OperatorKey::Op(op) => (Some(op.expose_hex()), None),
                OperatorKey::Opc(opc) => (None, Some(opc.expose_hex())),
            };
            let (password, ha1) = match &new.digest {
                Some(DigestSecret::Password(p)) => (Some(p.clone()), None),
                Some(DigestSecret::Ha1(h)) => (None, Some(h.clone())),
                None => (None, None),
            };
            let id: i64 = sqlx::query_scalar(
                "INSERT INTO subscribers (imsi, impi, msisdn, k, op, opc, amf, sqn, auth_schemes, \
                 digest_realm, digest_password, digest_ha1, fixed_scscf, ccf_primary, ccf_secondary, \
                 ecf_primary, ecf_secondary, created_at, updated_at) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, \
                 $18, $18) RETURNING id",
            )
            .bind(new.imsi.as_str())
            .bind(new.impi.as_str())
            .bind(new.msisdn.as_ref().map(|m| m.as_str().to_owned()))
            .bind(new.k.expose_hex())
            .bind(op)
            .bind(opc)
            .bind(new.amf.to_hex())
            .bind(sqn_db(new.sqn))
            .bind(new.auth_schemes.to_db())
            .bind(new.digest_realm.clone())
            .bind(password)
            .bind(ha1)
            .bind(new.fixed_scscf.clone())
            .bind(new.charging.ccf_primary.clone())
            .bind(new.charging.ccf_secondary.clone())
            .bind(new.charging.ecf_primary.clone())
            .bind(new.charging.ecf_secondary.clone())
            .bind(now)
            .fetch_one($conn)
            .await
            .map_err(unique_or_query(OP, "subscriber", new.imsi.as_str()))?;
            for (pos, p) in new.impus.iter().enumerate() {
                insert_impu!($conn, id, pos, p, 0)?;
            }
            Ok::<i64, Error>(id)
        }
        .await
    }};
}

/// The SQNs that one [`Subscribers::next_sqns`] call handed out, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SqnBatch {
    /// The SQNs, each strictly greater (in SEQ) than every SQN handed out before.
    pub sqns: Vec<Sqn>,
}

/// Computes the SQNs of one batch from the stored value after the update (see `next_sqns`).
pub(crate) fn batch_from_new(new: u64, count: u32, ind_bits: u8) -> Vec<Sqn> {
    let mask = (1u64 << ind_bits) - 1;
    let n = u64::from(count);
    let seq_old = (new >> ind_bits) - n;
    let ind_old = (new & mask).wrapping_sub(n) & mask;
    (1..=n)
        .filter_map(|i| Sqn::new(((seq_old + i) << ind_bits) | ((ind_old + i) & mask)).ok())
        .collect()
}

/// Subscriber repository: `store.subscribers()`.
#[derive(Debug, Clone, Copy)]
pub struct Subscribers<'a> {
    pub(crate) store: &'a Store,
}

impl Subscribers<'_> {
    /// The subscriber found by `key`, with its public identities.
    pub async fn get(&self, key: &SubscriberKey) -> Result<Option<Subscriber>, Error> {
        Ok(self.get_with_revision(key).await?.map(|(s, _)| s))
    }

    /// Like [`Self::get`], with the subscriber's [`Revision`].
    pub async fn get_with_revision(
        &self,
        key: &SubscriberKey,
    ) -> Result<Option<(Subscriber, Revision)>, Error> {
        const OP: &str = "subscribers.get";
        // One query: the subscriber joined with its identities (one row per identity).
        let rows: Vec<JoinedRow> = read!(self.store, |p| {
            match key {
                SubscriberKey::Imsi(v) => {
                    sqlx::query_as(select_joined!("s.imsi = $1"))
                        .bind(v.as_str())
                        .fetch_all(p)
                        .await
                }
                SubscriberKey::Impi(v) => {
                    sqlx::query_as(select_joined!("s.impi = $1"))
                        .bind(v.as_str())
                        .fetch_all(p)
                        .await
                }
                SubscriberKey::Msisdn(v) => {
                    sqlx::query_as(select_joined!("s.msisdn = $1"))
                        .bind(v.as_str())
                        .fetch_all(p)
                        .await
                }
                SubscriberKey::Impu(v) => {
                    sqlx::query_as(select_joined!(
                        "s.id = (SELECT subscriber_id FROM impus WHERE impu = $1)"
                    ))
                    .bind(v.as_str())
                    .fetch_all(p)
                    .await
                }
            }
        })
        .map_err(Error::query(OP))?;
        let mut rows = rows.into_iter();
        let Some(first) = rows.next() else {
            return Ok(None);
        };
        let id = first.sub.id;
        let mut impus: Vec<ImpuRow> = first.impu.into_row(id).into_iter().collect();
        // Several subscribers share an MSISDN only in a hand-edited database: keep the first.
        impus.extend(
            rows.filter(|r| r.sub.id == id)
                .filter_map(|r| r.impu.into_row(id)),
        );
        let revision = Revision(first.sub.revision);
        first
            .sub
            .into_subscriber(impus)
            .map(|s| Some((s, revision)))
    }

    /// Like [`Self::get`], failing with [`Error::NotFound`] when there is no such subscriber.
    pub async fn require(&self, key: &SubscriberKey) -> Result<Subscriber, Error> {
        self.get(key).await?.ok_or_else(|| Error::NotFound {
            what: "subscriber",
            key: key.describe(),
        })
    }

    /// The subscriber and the service profiles its identities use.
    pub async fn subscription(&self, key: &SubscriberKey) -> Result<Option<Subscription>, Error> {
        let Some(subscriber) = self.get(key).await? else {
            return Ok(None);
        };
        self.with_profiles(subscriber).await.map(Some)
    }

    /// `subscriber` (as [`Self::get`] or [`crate::SubscriberLoader`] returned it) with the
    /// service profiles its identities use.
    pub async fn with_profiles(&self, subscriber: Subscriber) -> Result<Subscription, Error> {
        let mut names: Vec<&str> = subscriber
            .impus
            .iter()
            .filter_map(|p| p.profile.as_deref())
            .collect();
        names.sort_unstable();
        names.dedup();
        let mut profiles = Vec::with_capacity(names.len());
        for name in names {
            if let Some(p) = self.store.profiles().get(name).await? {
                profiles.push(p);
            }
        }
        Ok(Subscription {
            subscriber,
            profiles,
        })
    }

    /// Which subscriber (IMSI) owns `impu`, if any: a cheap existence check.
    pub async fn owner_of(&self, impu: &Impu) -> Result<Option<Imsi>, Error> {
        let imsi: Option<String> = read!(self.store, |p| {
            sqlx::query_scalar(
                "SELECT s.imsi FROM impus i JOIN subscribers s ON s.id = i.subscriber_id \
                 WHERE i.impu = $1",
            )
            .bind(impu.as_str())
            .fetch_optional(p)
            .await
        })
        .map_err(Error::query("subscribers.owner_of"))?;
        imsi.map(|s| Imsi::new(s.clone()).map_err(|e| Error::corrupt("imsi", s, e)))
            .transpose()
    }

    /// Subscribers ordered by IMSI, `limit` from `offset`.
    pub async fn list(&self, offset: i64, limit: i64) -> Result<Vec<Subscriber>, Error> {
        const OP: &str = "subscribers.list";
        let rows: Vec<SubscriberRow> = read!(self.store, |p| {
            sqlx::query_as(select_subscriber!("ORDER BY imsi LIMIT $1 OFFSET $2"))
                .bind(limit)
                .bind(offset)
                .fetch_all(p)
                .await
        })
        .map_err(Error::query(OP))?;
        let ids: Vec<i64> = rows.iter().map(|r| r.id).collect();
        let mut impus: Vec<ImpuRow> = Vec::new();
        for chunk in ids.chunks(500) {
            let (Some(lo), Some(hi)) = (chunk.first(), chunk.last()) else {
                continue;
            };
            let part: Vec<ImpuRow> = read!(self.store, |p| {
                sqlx::query_as(
                    "SELECT i.subscriber_id, i.impu, i.irs, i.is_default, i.barred, \
                     p.name AS profile, i.reg_state FROM impus i \
                     LEFT JOIN service_profiles p ON p.id = i.profile_id \
                     WHERE i.subscriber_id BETWEEN $1 AND $2 ORDER BY i.subscriber_id, i.position",
                )
                .bind(lo.min(hi))
                .bind(lo.max(hi))
                .fetch_all(p)
                .await
            })
            .map_err(Error::query(OP))?;
            impus.extend(part);
        }
        rows.into_iter()
            .map(|row| {
                let mine = impus
                    .iter()
                    .filter(|i| i.subscriber_id == row.id)
                    .map(|i| ImpuRow {
                        subscriber_id: i.subscriber_id,
                        impu: i.impu.clone(),
                        irs: i.irs,
                        is_default: i.is_default,
                        barred: i.barred,
                        profile: i.profile.clone(),
                        reg_state: i.reg_state,
                    })
                    .collect();
                row.into_subscriber(mine)
            })
            .collect()
    }

    /// Number of subscribers.
    pub async fn count(&self) -> Result<i64, Error> {
        read!(self.store, |p| {
            sqlx::query_scalar("SELECT COUNT(*) FROM subscribers")
                .fetch_one(p)
                .await
        })
        .map_err(Error::query("subscribers.count"))
    }

    /// Inserts a subscriber with its public identities. Fails with [`Error::Duplicate`] naming the
    /// IMSI, IMPI or IMPU that already exists, and with [`Error::NotFound`] for an unknown profile.
    pub async fn insert(&self, new: &NewSubscriber, now: SystemTime) -> Result<i64, Error> {
        transaction!(self.store, "subscribers.insert", |tx| {
            async { insert_one!(&mut *tx, new, unix_ms(now)) }.await
        })
    }

    /// Inserts every subscriber in one transaction: all or none.
    pub async fn insert_all(&self, news: &[NewSubscriber], now: SystemTime) -> Result<(), Error> {
        transaction!(self.store, "subscribers.insert_all", |tx| {
            async {
                for new in news {
                    insert_one!(&mut *tx, new, unix_ms(now))?;
                }
                Ok::<(), Error>(())
            }
            .await
        })
    }

    /// Applies `update` to the subscriber with `imsi`. Identities kept by a new IMPU list keep
    /// their registration state.
    pub async fn update(
        &self,
        imsi: &Imsi,
        update: &SubscriberUpdate,
        now: SystemTime,
    ) -> Result<(), Error> {
        const OP: &str = "subscribers.update";
        let now = unix_ms(now);
        transaction!(self.store, OP, |tx| {
            async {
                let id: Option<i64> =
                    sqlx::query_scalar("SELECT id FROM subscribers WHERE imsi = $1")
                        .bind(imsi.as_str())
                        .fetch_optional(&mut *tx)
                        .await
                        .map_err(Error::query(OP))?;
                let id = id.ok_or_else(|| Error::NotFound {
                    what: "subscriber",
                    key: imsi.to_string(),
                })?;
                macro_rules! set {
                    ($sql:literal, $v:expr) => {
                        sqlx::query(concat!(
                            "UPDATE subscribers SET ",
                            $sql,
                            ", updated_at = $2 WHERE id = $3"
                        ))
                        .bind($v)
                        .bind(now)
                        .bind(id)
                        .execute(&mut *tx)
                        .await
                        .map_err(Error::query(OP))?
                    };
                }
                if let Some(m) = &update.msisdn {
                    set!("msisdn = $1", m.as_ref().map(|m| m.as_str().to_owned()));
                }
                if let Some(k) = &update.k {
                    set!("k = $1", k.expose_hex());
                }
                match &update.operator_key {
                    Some(OperatorKey::Op(op)) => {
                        set!("op = $1, opc = NULL", op.expose_hex());
                    }
                    Some(OperatorKey::Opc(opc)) => {
                        set!("opc = $1, op = NULL", opc.expose_hex());
                    }
                    None => {}
                }
                if let Some(amf) = &update.amf {
                    set!("amf = $1", amf.to_hex());
                }
                if let Some(sqn) = update.sqn {
                    set!("sqn = $1", sqn_db(sqn));
                }
                if let Some(s) = update.auth_schemes {
                    set!("auth_schemes = $1", s.to_db());
                }
                if let Some(r) = &update.digest_realm {
                    set!("digest_realm = $1", r.clone());
                }
                match &update.digest {
                    Some(Some(DigestSecret::Password(pw))) => {
                        set!("digest_password = $1, digest_ha1 = NULL", pw.clone());
                    }
                    Some(Some(DigestSecret::Ha1(h))) => {
                        set!("digest_ha1 = $1, digest_password = NULL", h.clone());
                    }
                    Some(None) => {
                        set!("digest_ha1 = $1, digest_password = NULL", None::<String>);
                    }
                    None => {}
                }
                if let Some(f) = &update.fixed_scscf {
                    set!("fixed_scscf = $1", f.clone());
                }
                if let Some(c) = &update.charging {
                    set!("ccf_primary = $1", c.ccf_primary.clone());
                    set!("ccf_secondary = $1", c.ccf_secondary.clone());
                    set!("ecf_primary = $1", c.ecf_primary.clone());
                    set!("ecf_secondary = $1", c.ecf_secondary.clone());
                }
                if let Some(impus) = &update.impus {
                    let states: Vec<(String, i64)> = sqlx::query_as(
                        "SELECT impu, reg_state FROM impus WHERE subscriber_id = $1",
                    )
                    .bind(id)
                    .fetch_all(&mut *tx)
                    .await
                    .map_err(Error::query(OP))?;
                    sqlx::query("DELETE FROM impus WHERE subscriber_id = $1")
                        .bind(id)
                        .execute(&mut *tx)
                        .await
                        .map_err(Error::query(OP))?;
                    for (pos, p) in impus.iter().enumerate() {
                        let state = states
                            .iter()
                            .find(|(i, _)| i == p.impu.as_str())
                            .map_or(0, |(_, s)| *s);
                        insert_impu!(&mut *tx, id, pos, p, state)?;
                    }
                }
                Ok::<(), Error>(())
            }
            .await
        })
    }

    /// Deletes the subscriber with `imsi` and its identities. Returns false when it did not exist.
    pub async fn delete(&self, imsi: &Imsi) -> Result<bool, Error> {
        let done = write!(self.store, |p| {
            sqlx::query("DELETE FROM subscribers WHERE imsi = $1")
                .bind(imsi.as_str())
                .execute(p)
                .await
                .map(|r| r.rows_affected())
        })
        .map_err(Error::query("subscribers.delete"))?;
        Ok(done > 0)
    }

    /// Atomically hands out the next `count` SQNs of `impi` and persists the advance before
    /// returning: no SQN is ever returned twice, across concurrent callers and process kills.
    ///
    /// The stored value is the last SQN handed out, SEQ ‖ IND with `ind_bits` of IND (TS 33.102
    /// Annex C.1.1, C.3.2). Each SQN increments SEQ by one and IND by one modulo 2^ind_bits, so a
    /// USIM with any IND array size accepts them in order. One `UPDATE … RETURNING` statement does
    /// the read and the write, so SQLite and PostgreSQL serialise it without an explicit lock.
    pub async fn next_sqns(
        &self,
        impi: &Impi,
        count: u32,
        ind_bits: u8,
    ) -> Result<Vec<Sqn>, Error> {
        const OP: &str = "subscribers.next_sqns";
        let ind_bits = ind_bits.min(16);
        if count == 0 {
            return Ok(Vec::new());
        }
        let mask = (1i64 << ind_bits) - 1;
        let seq_limit = 1i64 << (48 - u32::from(ind_bits));
        let new: Option<i64> = write!(self.store, |p| {
            sqlx::query_scalar(
                "UPDATE subscribers SET sqn = ((((sqn >> $2) + $3) << $2) | ((sqn + $3) & $4)) \
                 WHERE impi = $1 AND (sqn >> $2) + $3 < $5 RETURNING sqn",
            )
            .bind(impi.as_str())
            .bind(i32::from(ind_bits))
            .bind(i64::from(count))
            .bind(mask)
            .bind(seq_limit)
            .fetch_optional(p)
            .await
        })
        .map_err(Error::query(OP))?;
        match new.and_then(|v| u64::try_from(v).ok()) {
            Some(new) => Ok(batch_from_new(new, count, ind_bits)),
            None => {
                let exists = self
                    .get(&SubscriberKey::Impi(impi.clone()))
                    .await?
                    .is_some();
                Err(if exists {
                    Error::SqnExhausted {
                        impi: impi.to_string(),
                    }
                } else {
                    Error::NotFound {
                        what: "private identity",
                        key: impi.to_string(),
                    }
                })
            }
        }
    }

    /// Sets the last-handed-out SQN of `impi` (resynchronisation, TS 33.102 §6.3.5: SQN_HE :=
    /// SQN_MS). Returns false when `impi` does not exist.
    pub async fn set_sqn(&self, impi: &Impi, sqn: Sqn) -> Result<bool, Error> {
        let done = write!(self.store, |p| {
            sqlx::query("UPDATE subscribers SET sqn = $1 WHERE impi = $2")
                .bind(sqn_db(sqn))
                .bind(impi.as_str())
                .execute(p)
                .await
                .map(|r| r.rows_affected())
        })
        .map_err(Error::query("subscribers.set_sqn"))?;
        Ok(done > 0)
    }
}

pub(crate) fn sqn_db(sqn: Sqn) -> i64 {
    // Below 2^48 by construction.
    i64::try_from(sqn.value()).unwrap_or(i64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sqn_batch_increments_seq_and_ind() {
        // From SEQ=3, IND=30 (5 bits), three SQNs: IND wraps to 31, 0, 1.
        let old = (3u64 << 5) | 30;
        let new = ((3 + 3) << 5) | ((30 + 3) & 31);
        let got: Vec<u64> = batch_from_new(new, 3, 5)
            .into_iter()
            .map(Sqn::value)
            .collect();
        assert_eq!(got, vec![(4 << 5) | 31, 5 << 5, (6 << 5) | 1]);
        assert!(got.iter().all(|v| *v > old));
    }

    #[test]
    fn sqn_batch_without_ind_is_a_counter() {
        let got: Vec<u64> = batch_from_new(12, 2, 0)
            .into_iter()
            .map(Sqn::value)
            .collect();
        assert_eq!(got, vec![11, 12]);
    }
}
