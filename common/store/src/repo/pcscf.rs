//! P-CSCF registrations that survive a restart (TS 24.229 §5.2.2.5): what the P-CSCF learnt from
//! the 200 OK to a REGISTER.

use std::time::SystemTime;

use imslab_types::{Impi, Impu};
use serde::{Deserialize, Serialize};

use crate::backend::{from_unix_ms, read, unix_ms, write};
use crate::repo::{from_json_list, to_json_list};
use crate::{Error, Store};

/// One registered UE contact at the P-CSCF.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PcscfRegistration {
    /// The registered public identity (the REGISTER's To).
    pub impu: Impu,
    /// The private identity, if the P-CSCF learnt it (Authorization username).
    pub impi: Option<Impi>,
    /// The UE's Contact URI.
    pub contact: String,
    /// The flow the UE registered over (flow token / connection id), to reach it again.
    pub flow: Option<String>,
    /// The UE's source address (`received`/`rport`), if recorded.
    pub received: Option<String>,
    /// Service-Route from the 200 OK, in order.
    pub service_route: Vec<String>,
    /// P-Associated-URI from the 200 OK, default identity first.
    pub associated_uris: Vec<String>,
    /// Security association state (sec-agree), opaque to the store (JSON, owned by the P-CSCF).
    pub sa_info: Option<String>,
    /// The REGISTER's Call-ID.
    pub call_id: Option<String>,
    /// When the registration expires.
    pub expires_at: SystemTime,
}

#[derive(sqlx::FromRow)]
struct Row {
    impu: String,
    impi: Option<String>,
    contact: String,
    flow: Option<String>,
    received: Option<String>,
    service_route: String,
    associated_uris: String,
    sa_info: Option<String>,
    call_id: Option<String>,
    expires_at: i64,
}

impl Row {
    fn into_registration(self) -> Result<PcscfRegistration, Error> {
        let row = format!("{} {}", self.impu, self.contact);
        Ok(PcscfRegistration {
            impu: Impu::new(self.impu).map_err(|e| Error::corrupt("impu", row.clone(), e))?,
            impi: self
                .impi
                .map(Impi::new)
                .transpose()
                .map_err(|e| Error::corrupt("impi", row.clone(), e))?,
            contact: self.contact,
            flow: self.flow,
            received: self.received,
            service_route: from_json_list("service_route", &row, &self.service_route)?,
            associated_uris: from_json_list("associated_uris", &row, &self.associated_uris)?,
            sa_info: self.sa_info,
            call_id: self.call_id,
            expires_at: from_unix_ms(self.expires_at),
        })
    }
}

const SELECT: &str = "SELECT impu, impi, contact, flow, received, service_route, associated_uris, \
    sa_info, call_id, expires_at FROM pcscf_registrations";

/// The P-CSCF repository of one P-CSCF instance: `store.pcscf(owner)`.
#[derive(Debug, Clone, Copy)]
pub struct Pcscf<'a> {
    pub(crate) store: &'a Store,
    pub(crate) owner: &'a str,
}

impl Pcscf<'_> {
    /// Creates or replaces the registration of (`reg.impu`, `reg.contact`).
    pub async fn put(&self, reg: &PcscfRegistration, now: SystemTime) -> Result<(), Error> {
        write!(self.store, |p| {
            sqlx::query(
                "INSERT INTO pcscf_registrations (owner, impu, impi, contact, flow, received, \
                 service_route, associated_uris, sa_info, call_id, expires_at, updated_at) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12) \
                 ON CONFLICT (owner, impu, contact) DO UPDATE SET impi = excluded.impi, \
                 flow = excluded.flow, received = excluded.received, \
                 service_route = excluded.service_route, associated_uris = excluded.associated_uris, \
                 sa_info = excluded.sa_info, call_id = excluded.call_id, \
                 expires_at = excluded.expires_at, updated_at = excluded.updated_at",
            )
            .bind(self.owner)
            .bind(reg.impu.as_str())
            .bind(reg.impi.as_ref().map(|i| i.as_str().to_owned()))
            .bind(reg.contact.as_str())
            .bind(reg.flow.clone())
            .bind(reg.received.clone())
            .bind(to_json_list(&reg.service_route))
            .bind(to_json_list(&reg.associated_uris))
            .bind(reg.sa_info.clone())
            .bind(reg.call_id.clone())
            .bind(unix_ms(reg.expires_at))
            .bind(unix_ms(now))
            .execute(p)
            .await
            .map(|r| r.rows_affected())
        })
        .map_err(Error::query("pcscf.put"))?;
        Ok(())
    }

    /// The registration of `impu` with `contact`.
    pub async fn get(
        &self,
        impu: &Impu,
        contact: &str,
    ) -> Result<Option<PcscfRegistration>, Error> {
        let row: Option<Row> = read!(self.store, |p| {
            sqlx::query_as(sqlx::AssertSqlSafe(format!(
                "{SELECT} WHERE owner = $1 AND impu = $2 AND contact = $3"
            )))
            .bind(self.owner)
            .bind(impu.as_str())
            .bind(contact)
            .fetch_optional(p)
            .await
        })
        .map_err(Error::query("pcscf.get"))?;
        row.map(Row::into_registration).transpose()
    }

    /// Every contact registered for `impu`.
    pub async fn for_impu(&self, impu: &Impu) -> Result<Vec<PcscfRegistration>, Error> {
        self.select("pcscf.for_impu", "impu = $2", impu.as_str())
            .await
    }

    /// Every registration made over `flow`.
    pub async fn for_flow(&self, flow: &str) -> Result<Vec<PcscfRegistration>, Error> {
        self.select("pcscf.for_flow", "flow = $2", flow).await
    }

    /// Every registration whose P-Associated-URI list or IMPU is `impu` (a request from the UE may
    /// use any identity of its implicit set).
    pub async fn for_associated(&self, impu: &Impu) -> Result<Vec<PcscfRegistration>, Error> {
        let all = self.all().await?;
        Ok(all
            .into_iter()
            .filter(|r| &r.impu == impu || r.associated_uris.iter().any(|u| u == impu.as_str()))
            .collect())
    }

    async fn select(
        &self,
        op: &'static str,
        cond: &'static str,
        v: &str,
    ) -> Result<Vec<PcscfRegistration>, Error> {
        let rows: Vec<Row> = read!(self.store, |p| {
            sqlx::query_as(sqlx::AssertSqlSafe(format!(
                "{SELECT} WHERE owner = $1 AND {cond} ORDER BY impu, contact"
            )))
            .bind(self.owner)
            .bind(v)
            .fetch_all(p)
            .await
        })
        .map_err(Error::query(op))?;
        rows.into_iter().map(Row::into_registration).collect()
    }

    /// Every registration of this P-CSCF (to rebuild its state after a restart).
    pub async fn all(&self) -> Result<Vec<PcscfRegistration>, Error> {
        let rows: Vec<Row> = read!(self.store, |p| {
            sqlx::query_as(sqlx::AssertSqlSafe(format!(
                "{SELECT} WHERE owner = $1 ORDER BY impu, contact"
            )))
            .bind(self.owner)
            .fetch_all(p)
            .await
        })
        .map_err(Error::query("pcscf.all"))?;
        rows.into_iter().map(Row::into_registration).collect()
    }

    /// Registrations that expired at or before `now`.
    pub async fn expired(&self, now: SystemTime) -> Result<Vec<PcscfRegistration>, Error> {
        let rows: Vec<Row> = read!(self.store, |p| {
            sqlx::query_as(sqlx::AssertSqlSafe(format!(
                "{SELECT} WHERE owner = $1 AND expires_at <= $2 ORDER BY expires_at"
            )))
            .bind(self.owner)
            .bind(unix_ms(now))
            .fetch_all(p)
            .await
        })
        .map_err(Error::query("pcscf.expired"))?;
        rows.into_iter().map(Row::into_registration).collect()
    }

    /// Removes the registration of `impu` with `contact`. Returns false if absent.
    pub async fn remove(&self, impu: &Impu, contact: &str) -> Result<bool, Error> {
        let done = write!(self.store, |p| {
            sqlx::query(
                "DELETE FROM pcscf_registrations WHERE owner = $1 AND impu = $2 AND contact = $3",
            )
            .bind(self.owner)
            .bind(impu.as_str())
            .bind(contact)
            .execute(p)
            .await
            .map(|r| r.rows_affected())
        })
        .map_err(Error::query("pcscf.remove"))?;
        Ok(done > 0)
    }

    /// Removes every registration of `impu`; returns how many there were.
    pub async fn remove_impu(&self, impu: &Impu) -> Result<u64, Error> {
        let done = write!(self.store, |p| {
            sqlx::query("DELETE FROM pcscf_registrations WHERE owner = $1 AND impu = $2")
                .bind(self.owner)
                .bind(impu.as_str())
                .execute(p)
                .await
                .map(|r| r.rows_affected())
        })
        .map_err(Error::query("pcscf.remove_impu"))?;
        Ok(done)
    }
}
