//! Service profiles and their initial filter criteria (TS 29.228 Annex B.2).

use std::time::SystemTime;

use crate::backend::{read, transaction, unix_ms};
use crate::model::{
    ApplicationServer, DefaultHandling, InitialFilterCriteria, ProfilePartIndicator,
    ServiceProfile, TriggerPoint,
};
use crate::{Error, Store};

#[derive(sqlx::FromRow)]
struct IfcRow {
    priority: i64,
    trigger_point: Option<String>,
    server_name: String,
    default_handling: i64,
    service_info: Option<String>,
    include_register_request: bool,
    include_register_response: bool,
    profile_part_indicator: Option<i64>,
}

impl IfcRow {
    fn into_ifc(self, profile: &str) -> Result<InitialFilterCriteria, Error> {
        let trigger_point = self
            .trigger_point
            .map(|tp| serde_json::from_str::<TriggerPoint>(&tp))
            .transpose()
            .map_err(|e| Error::corrupt("ifcs.trigger_point", profile, e))?;
        Ok(InitialFilterCriteria {
            priority: self.priority,
            trigger_point,
            application_server: ApplicationServer {
                server_name: self.server_name,
                default_handling: DefaultHandling::from_code(self.default_handling).ok_or_else(
                    || Error::corrupt("ifcs.default_handling", profile, self.default_handling),
                )?,
                service_info: self.service_info,
                include_register_request: self.include_register_request,
                include_register_response: self.include_register_response,
            },
            profile_part_indicator: self
                .profile_part_indicator
                .map(|v| {
                    ProfilePartIndicator::from_code(v)
                        .ok_or_else(|| Error::corrupt("ifcs.profile_part_indicator", profile, v))
                })
                .transpose()?,
        })
    }
}

/// Service profile repository: `store.profiles()`.
#[derive(Debug, Clone, Copy)]
pub struct Profiles<'a> {
    pub(crate) store: &'a Store,
}

impl Profiles<'_> {
    /// The profile named `name` with its iFCs in priority order.
    pub async fn get(&self, name: &str) -> Result<Option<ServiceProfile>, Error> {
        const OP: &str = "profiles.get";
        let head: Option<(i64, Option<i64>)> = read!(self.store, |p| {
            sqlx::query_as(
                "SELECT id, subscribed_media_profile_id FROM service_profiles WHERE name = $1",
            )
            .bind(name)
            .fetch_optional(p)
            .await
        })
        .map_err(Error::query(OP))?;
        let Some((id, smp)) = head else {
            return Ok(None);
        };
        let rows: Vec<IfcRow> = read!(self.store, |p| {
            sqlx::query_as(
                "SELECT priority, trigger_point, server_name, default_handling, service_info, \
                 include_register_request, include_register_response, profile_part_indicator \
                 FROM ifcs WHERE profile_id = $1 ORDER BY priority",
            )
            .bind(id)
            .fetch_all(p)
            .await
        })
        .map_err(Error::query(OP))?;
        let ifcs = rows
            .into_iter()
            .map(|r| r.into_ifc(name))
            .collect::<Result<_, _>>()?;
        Ok(Some(ServiceProfile {
            name: name.to_owned(),
            subscribed_media_profile_id: smp,
            ifcs,
        }))
    }

    /// Every profile name, sorted.
    pub async fn names(&self) -> Result<Vec<String>, Error> {
        read!(self.store, |p| {
            sqlx::query_scalar("SELECT name FROM service_profiles ORDER BY name")
                .fetch_all(p)
                .await
        })
        .map_err(Error::query("profiles.names"))
    }

    /// Creates or replaces the profile `profile.name` (its iFCs are replaced as a whole; identities
    /// using it keep using it).
    pub async fn put(&self, profile: &ServiceProfile, now: SystemTime) -> Result<(), Error> {
        const OP: &str = "profiles.put";
        let mut priorities: Vec<i64> = profile.ifcs.iter().map(|i| i.priority).collect();
        priorities.sort_unstable();
        if let Some(w) = priorities.windows(2).find(|w| w[0] == w[1]) {
            return Err(Error::Duplicate {
                what: "iFC priority",
                key: format!("{} in profile {}", w[0], profile.name),
            });
        }
        let tps = profile
            .ifcs
            .iter()
            .map(|i| {
                i.trigger_point
                    .as_ref()
                    .map(serde_json::to_string)
                    .transpose()
            })
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| Error::corrupt("ifcs.trigger_point", profile.name.clone(), e))?;
        transaction!(self.store, OP, |tx| {
            async {
                let existing: Option<i64> =
                    sqlx::query_scalar("SELECT id FROM service_profiles WHERE name = $1")
                        .bind(profile.name.as_str())
                        .fetch_optional(&mut *tx)
                        .await
                        .map_err(Error::query(OP))?;
                let id = match existing {
                    Some(id) => {
                        sqlx::query(
                            "UPDATE service_profiles SET subscribed_media_profile_id = $1 WHERE id = $2",
                        )
                        .bind(profile.subscribed_media_profile_id)
                        .bind(id)
                        .execute(&mut *tx)
                        .await
                        .map_err(Error::query(OP))?;
                        sqlx::query("DELETE FROM ifcs WHERE profile_id = $1")
                            .bind(id)
                            .execute(&mut *tx)
                            .await
                            .map_err(Error::query(OP))?;
                        id
                    }
                    None => sqlx::query_scalar(
                        "INSERT INTO service_profiles (name, subscribed_media_profile_id, created_at) \
                         VALUES ($1, $2, $3) RETURNING id",
                    )
                    .bind(profile.name.as_str())
                    .bind(profile.subscribed_media_profile_id)
                    .bind(unix_ms(now))
                    .fetch_one(&mut *tx)
                    .await
                    .map_err(Error::query(OP))?,
                };
                for (ifc, tp) in profile.ifcs.iter().zip(&tps) {
                    let a = &ifc.application_server;
                    sqlx::query(
                        "INSERT INTO ifcs (profile_id, priority, trigger_point, server_name, \
                         default_handling, service_info, include_register_request, \
                         include_register_response, profile_part_indicator) \
                         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
                    )
                    .bind(id)
                    .bind(ifc.priority)
                    .bind(tp.clone())
                    .bind(a.server_name.as_str())
                    .bind(a.default_handling.code())
                    .bind(a.service_info.clone())
                    .bind(a.include_register_request)
                    .bind(a.include_register_response)
                    .bind(ifc.profile_part_indicator.map(ProfilePartIndicator::code))
                    .execute(&mut *tx)
                    .await
                    .map_err(Error::query(OP))?;
                }
                Ok::<(), Error>(())
            }
            .await
        })
    }

    /// Deletes the profile `name`; identities using it are left without a profile. Returns false
    /// when it did not exist.
    pub async fn delete(&self, name: &str) -> Result<bool, Error> {
        const OP: &str = "profiles.delete";
        transaction!(self.store, OP, |tx| {
            async {
                // Explicit, so the outcome does not depend on SQLite's foreign_keys pragma.
                sqlx::query(
                    "UPDATE impus SET profile_id = NULL WHERE profile_id = \
                     (SELECT id FROM service_profiles WHERE name = $1)",
                )
                .bind(name)
                .execute(&mut *tx)
                .await
                .map_err(Error::query(OP))?;
                let done = sqlx::query("DELETE FROM service_profiles WHERE name = $1")
                    .bind(name)
                    .execute(&mut *tx)
                    .await
                    .map_err(Error::query(OP))?;
                Ok::<bool, Error>(done.rows_affected() > 0)
            }
            .await
        })
    }
}
