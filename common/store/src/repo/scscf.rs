//! S-CSCF registrar state that survives a restart: registrations with their profile, and contact
//! bindings (RFC 3261 §10.3, RFC 5626 §6).

use std::time::SystemTime;

use imslab_types::{Impi, Impu};
use serde::{Deserialize, Serialize};

use crate::backend::{from_unix_ms, read, transaction, unix_ms, write};
use crate::model::{ChargingInfo, RegState};
use crate::repo::{from_json_list, to_json_list};
use crate::{Error, Store};

/// A registration held by an S-CSCF: the registered identity, its implicit set and the profile
/// from the SAA.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ScscfRegistration {
    /// The identity the UE registered (or the one served while unregistered).
    pub impu: Impu,
    /// The private identity that registered it.
    pub impi: Impi,
    /// Registered, or unregistered (kept for terminating unregistered services).
    pub state: RegState,
    /// The implicit registration set, default identity first (P-Associated-URI order).
    pub implicit_set: Vec<Impu>,
    /// The SAA User-Data (IMSSubscription XML), as received.
    pub user_data: Option<String>,
    /// The SAA Charging-Information.
    pub charging: Option<ChargingInfo>,
}

/// One contact binding of a registered identity.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Binding {
    /// The address of record.
    pub impu: Impu,
    /// The private identity that registered it.
    pub impi: Impi,
    /// The Contact URI.
    pub contact: String,
    /// When it expires.
    pub expires_at: SystemTime,
    /// The q value times 1000, if given.
    pub q_milli: Option<i64>,
    /// The Path header values from the REGISTER, in order (RFC 3327).
    pub path: Vec<String>,
    /// `+sip.instance`, if given (RFC 5626 §4.1).
    pub instance_id: Option<String>,
    /// `reg-id`, if given (RFC 5626 §4.2).
    pub reg_id: Option<i64>,
    /// Call-ID of the REGISTER that created or refreshed it.
    pub call_id: String,
    /// CSeq of that REGISTER.
    pub cseq: i64,
    /// The P-CSCF flow this UE is reached through (flow token), if known.
    pub pcscf_flow: Option<String>,
    /// The source address the REGISTER came from, if recorded.
    pub received: Option<String>,
    /// User-Agent, for listings.
    pub user_agent: Option<String>,
    /// The remaining Contact parameters (feature tags), as one string.
    pub contact_params: Option<String>,
}

impl Binding {
    /// The key that identifies this binding within its AOR: `instance-id` + `reg-id` when both
    /// are present (RFC 5626 §6), else the instance id, else the Contact URI (RFC 3261 §10.3).
    pub fn key(&self) -> String {
        match (&self.instance_id, self.reg_id) {
            (Some(i), Some(r)) => format!("{i}#{r}"),
            (Some(i), None) => i.clone(),
            _ => self.contact.clone(),
        }
    }
}

#[derive(sqlx::FromRow)]
struct RegistrationRow {
    impu: String,
    impi: String,
    reg_state: i64,
    implicit_set: String,
    user_data: Option<String>,
    charging: Option<String>,
}

impl RegistrationRow {
    fn into_registration(self) -> Result<ScscfRegistration, Error> {
        let row = self.impu.clone();
        Ok(ScscfRegistration {
            impu: Impu::new(self.impu).map_err(|e| Error::corrupt("impu", row.clone(), e))?,
            impi: Impi::new(self.impi).map_err(|e| Error::corrupt("impi", row.clone(), e))?,
            state: RegState::from_db(self.reg_state)
                .ok_or_else(|| Error::corrupt("reg_state", row.clone(), self.reg_state))?,
            implicit_set: from_json_list::<Impu>("implicit_set", &row, &self.implicit_set)?,
            user_data: self.user_data,
            charging: self
                .charging
                .map(|c| serde_json::from_str(&c))
                .transpose()
                .map_err(|e| Error::corrupt("charging", row.clone(), e))?,
        })
    }
}

#[derive(sqlx::FromRow)]
struct BindingRow {
    impu: String,
    impi: String,
    contact: String,
    expires_at: i64,
    q_milli: Option<i64>,
    path: String,
    instance_id: Option<String>,
    reg_id: Option<i64>,
    call_id: String,
    cseq: i64,
    pcscf_flow: Option<String>,
    received: Option<String>,
    user_agent: Option<String>,
    contact_params: Option<String>,
}

impl BindingRow {
    fn into_binding(self) -> Result<Binding, Error> {
        let row = format!("{} {}", self.impu, self.contact);
        Ok(Binding {
            impu: Impu::new(self.impu).map_err(|e| Error::corrupt("impu", row.clone(), e))?,
            impi: Impi::new(self.impi).map_err(|e| Error::corrupt("impi", row.clone(), e))?,
            contact: self.contact,
            expires_at: from_unix_ms(self.expires_at),
            q_milli: self.q_milli,
            path: from_json_list("path", &row, &self.path)?,
            instance_id: self.instance_id,
            reg_id: self.reg_id,
            call_id: self.call_id,
            cseq: self.cseq,
            pcscf_flow: self.pcscf_flow,
            received: self.received,
            user_agent: self.user_agent,
            contact_params: self.contact_params,
        })
    }
}

const BINDING_COLUMNS: &str = "SELECT impu, impi, contact, expires_at, q_milli, path, instance_id, \
    reg_id, call_id, cseq, pcscf_flow, received, user_agent, contact_params FROM scscf_bindings";

/// The S-CSCF repository of one S-CSCF instance: `store.scscf(owner)`, where `owner` is that
/// S-CSCF's name (its SIP URI), so several S-CSCFs can share one database.
#[derive(Debug, Clone, Copy)]
pub struct Scscf<'a> {
    pub(crate) store: &'a Store,
    pub(crate) owner: &'a str,
}

impl Scscf<'_> {
    /// Creates or replaces the registration of `reg.impu`.
    pub async fn put_registration(
        &self,
        reg: &ScscfRegistration,
        now: SystemTime,
    ) -> Result<(), Error> {
        let charging = reg
            .charging
            .as_ref()
            .map(serde_json::to_string)
            .transpose()
            .map_err(|e| Error::corrupt("charging", reg.impu.to_string(), e))?;
        write!(self.store, |p| {
            sqlx::query(
                "INSERT INTO scscf_registrations (owner, impu, impi, reg_state, implicit_set, \
                 user_data, charging, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8) \
                 ON CONFLICT (owner, impu) DO UPDATE SET impi = excluded.impi, \
                 reg_state = excluded.reg_state, implicit_set = excluded.implicit_set, \
                 user_data = excluded.user_data, charging = excluded.charging, \
                 updated_at = excluded.updated_at",
            )
            .bind(self.owner)
            .bind(reg.impu.as_str())
            .bind(reg.impi.as_str())
            .bind(reg.state.to_db())
            .bind(to_json_list(&reg.implicit_set))
            .bind(reg.user_data.clone())
            .bind(charging)
            .bind(unix_ms(now))
            .execute(p)
            .await
            .map(|r| r.rows_affected())
        })
        .map_err(Error::query("scscf.put_registration"))?;
        Ok(())
    }

    /// The registration of `impu`.
    pub async fn registration(&self, impu: &Impu) -> Result<Option<ScscfRegistration>, Error> {
        let row: Option<RegistrationRow> = read!(self.store, |p| {
            sqlx::query_as(
                "SELECT impu, impi, reg_state, implicit_set, user_data, charging \
                 FROM scscf_registrations WHERE owner = $1 AND impu = $2",
            )
            .bind(self.owner)
            .bind(impu.as_str())
            .fetch_optional(p)
            .await
        })
        .map_err(Error::query("scscf.registration"))?;
        row.map(RegistrationRow::into_registration).transpose()
    }

    /// Every registration of this S-CSCF (to rebuild its state after a restart).
    pub async fn registrations(&self) -> Result<Vec<ScscfRegistration>, Error> {
        let rows: Vec<RegistrationRow> = read!(self.store, |p| {
            sqlx::query_as(
                "SELECT impu, impi, reg_state, implicit_set, user_data, charging \
                 FROM scscf_registrations WHERE owner = $1 ORDER BY impu",
            )
            .bind(self.owner)
            .fetch_all(p)
            .await
        })
        .map_err(Error::query("scscf.registrations"))?;
        rows.into_iter()
            .map(RegistrationRow::into_registration)
            .collect()
    }

    /// Deletes the registration of `impu` and all its bindings. Returns false when there was none.
    pub async fn delete_registration(&self, impu: &Impu) -> Result<bool, Error> {
        const OP: &str = "scscf.delete_registration";
        transaction!(self.store, OP, |tx| {
            async {
                sqlx::query("DELETE FROM scscf_bindings WHERE owner = $1 AND impu = $2")
                    .bind(self.owner)
                    .bind(impu.as_str())
                    .execute(&mut *tx)
                    .await
                    .map_err(Error::query(OP))?;
                let done =
                    sqlx::query("DELETE FROM scscf_registrations WHERE owner = $1 AND impu = $2")
                        .bind(self.owner)
                        .bind(impu.as_str())
                        .execute(&mut *tx)
                        .await
                        .map_err(Error::query(OP))?;
                Ok::<bool, Error>(done.rows_affected() > 0)
            }
            .await
        })
    }

    /// Creates or refreshes a binding, keyed by [`Binding::key`] within its AOR.
    pub async fn put_binding(&self, b: &Binding, now: SystemTime) -> Result<(), Error> {
        write!(self.store, |p| {
            sqlx::query(
                "INSERT INTO scscf_bindings (owner, impu, impi, binding_key, contact, expires_at, \
                 q_milli, path, instance_id, reg_id, call_id, cseq, pcscf_flow, received, \
                 user_agent, contact_params, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, \
                 $9, $10, $11, $12, $13, $14, $15, $16, $17) \
                 ON CONFLICT (owner, impu, binding_key) DO UPDATE SET impi = excluded.impi, \
                 contact = excluded.contact, expires_at = excluded.expires_at, \
                 q_milli = excluded.q_milli, path = excluded.path, \
                 instance_id = excluded.instance_id, reg_id = excluded.reg_id, \
                 call_id = excluded.call_id, cseq = excluded.cseq, \
                 pcscf_flow = excluded.pcscf_flow, received = excluded.received, \
                 user_agent = excluded.user_agent, contact_params = excluded.contact_params, \
                 updated_at = excluded.updated_at",
            )
            .bind(self.owner)
            .bind(b.impu.as_str())
            .bind(b.impi.as_str())
            .bind(b.key())
            .bind(b.contact.as_str())
            .bind(unix_ms(b.expires_at))
            .bind(b.q_milli)
            .bind(to_json_list(&b.path))
            .bind(b.instance_id.clone())
            .bind(b.reg_id)
            .bind(b.call_id.as_str())
            .bind(b.cseq)
            .bind(b.pcscf_flow.clone())
            .bind(b.received.clone())
            .bind(b.user_agent.clone())
            .bind(b.contact_params.clone())
            .bind(unix_ms(now))
            .execute(p)
            .await
            .map(|r| r.rows_affected())
        })
        .map_err(Error::query("scscf.put_binding"))?;
        Ok(())
    }

    /// The bindings of `impu`, ordered by contact.
    pub async fn bindings(&self, impu: &Impu) -> Result<Vec<Binding>, Error> {
        let rows: Vec<BindingRow> = read!(self.store, |p| {
            sqlx::query_as(sqlx::AssertSqlSafe(format!(
                "{BINDING_COLUMNS} WHERE owner = $1 AND impu = $2 ORDER BY contact"
            )))
            .bind(self.owner)
            .bind(impu.as_str())
            .fetch_all(p)
            .await
        })
        .map_err(Error::query("scscf.bindings"))?;
        rows.into_iter().map(BindingRow::into_binding).collect()
    }

    /// Every binding of this S-CSCF.
    pub async fn all_bindings(&self) -> Result<Vec<Binding>, Error> {
        let rows: Vec<BindingRow> = read!(self.store, |p| {
            sqlx::query_as(sqlx::AssertSqlSafe(format!(
                "{BINDING_COLUMNS} WHERE owner = $1 ORDER BY impu, contact"
            )))
            .bind(self.owner)
            .fetch_all(p)
            .await
        })
        .map_err(Error::query("scscf.all_bindings"))?;
        rows.into_iter().map(BindingRow::into_binding).collect()
    }

    /// Bindings whose expiry is at or before `now`.
    pub async fn expired_bindings(&self, now: SystemTime) -> Result<Vec<Binding>, Error> {
        let rows: Vec<BindingRow> = read!(self.store, |p| {
            sqlx::query_as(sqlx::AssertSqlSafe(format!(
                "{BINDING_COLUMNS} WHERE owner = $1 AND expires_at <= $2 ORDER BY expires_at"
            )))
            .bind(self.owner)
            .bind(unix_ms(now))
            .fetch_all(p)
            .await
        })
        .map_err(Error::query("scscf.expired_bindings"))?;
        rows.into_iter().map(BindingRow::into_binding).collect()
    }

    /// Removes the binding with `key` ([`Binding::key`]) from `impu`. Returns false if absent.
    pub async fn remove_binding(&self, impu: &Impu, key: &str) -> Result<bool, Error> {
        let done = write!(self.store, |p| {
            sqlx::query(
                "DELETE FROM scscf_bindings WHERE owner = $1 AND impu = $2 AND binding_key = $3",
            )
            .bind(self.owner)
            .bind(impu.as_str())
            .bind(key)
            .execute(p)
            .await
            .map(|r| r.rows_affected())
        })
        .map_err(Error::query("scscf.remove_binding"))?;
        Ok(done > 0)
    }

    /// Removes every binding of `impu`; returns how many there were.
    pub async fn remove_bindings(&self, impu: &Impu) -> Result<u64, Error> {
        let done = write!(self.store, |p| {
            sqlx::query("DELETE FROM scscf_bindings WHERE owner = $1 AND impu = $2")
                .bind(self.owner)
                .bind(impu.as_str())
                .execute(p)
                .await
                .map(|r| r.rows_affected())
        })
        .map_err(Error::query("scscf.remove_bindings"))?;
        Ok(done)
    }
}
