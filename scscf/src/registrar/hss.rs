//! Requests from the HSS: Registration-Termination (TS 29.228 §6.1.3, TS 24.229 §5.4.1.5) and
//! Push-Profile (TS 29.228 §6.1.4), and network-initiated de-registration.

use imslab_diameter::ExperimentalResultCode as Exp;
use imslab_diameter::ResultCode;
use imslab_diameter::cx::{CxResult, Ppa, Ppr, Rta, Rtr};
use imslab_diameter::enums::ReasonCode;
use imslab_store::ChargingInfo;
use imslab_types::{Impu, Outcome};

use super::register::SarKind;
use super::{AnswerId, Contact, Now, Output, Persist, Registrar};
use crate::ifc::ImsSubscription;
use crate::reg_event::ContactEvent;

impl Registrar {
    /// Ends the registration holding `impu` on the network's initiative: terminated NOTIFYs
    /// with `event` (deactivated: register again; rejected: do not) and `reason`.
    pub(super) fn network_deregister(
        &mut self,
        now: Now,
        impu: &Impu,
        event: ContactEvent,
        reason: &str,
        why: String,
    ) -> bool {
        let Some(key) = self.alias.get(impu).cloned() else {
            return false;
        };
        let Some(aor) = self.aors.get(&key).cloned() else {
            return false;
        };
        let terminated: Vec<(Contact, ContactEvent)> =
            aor.contacts.iter().cloned().map(|c| (c, event)).collect();
        self.event(
            now,
            Some(&aor.impi),
            Some(&key),
            "deregistered",
            Outcome::Info,
            Some(why),
        );
        self.end_registration(now, &key, &terminated, Some(reason));
        self.start_sar(
            now,
            SarKind::AdministrativeDeregistration,
            None,
            Some(key),
            Some(aor.impi),
        );
        true
    }

    /// A Registration-Termination-Request: de-register the identities it names (or every
    /// registration of its private identity), NOTIFY `terminated` with event `rejected` for
    /// PERMANENT_TERMINATION and `deactivated` otherwise (TS 24.229 §5.4.1.5), answer RTA.
    pub fn handle_rtr(&mut self, now: Now, id: AnswerId, rtr: Rtr) {
        let code = rtr.deregistration_reason.reason_code;
        let (event, reason) = if code == ReasonCode::PERMANENT_TERMINATION {
            (ContactEvent::Rejected, "rejected")
        } else {
            (ContactEvent::Deactivated, "deactivated")
        };
        let mut impis = vec![rtr.user_name.clone()];
        impis.extend(rtr.associated_identities.iter().flatten().cloned());
        let targets: Vec<Impu> = if rtr.public_identities.is_empty() {
            self.aors
                .values()
                .filter(|a| impis.contains(&a.impi))
                .map(|a| a.impu.clone())
                .collect()
        } else {
            rtr.public_identities.clone()
        };
        let info = rtr
            .deregistration_reason
            .reason_info
            .clone()
            .map(|i| format!(": {i}"))
            .unwrap_or_default();
        let mut done = 0;
        for impu in &targets {
            let why = format!("HSS Registration-Termination, Reason-Code {}{info}", code.0);
            // The HSS already cleared its side: no SAR back.
            if let Some(key) = self.alias.get(impu).cloned()
                && let Some(aor) = self.aors.get(&key).cloned()
            {
                let terminated: Vec<(Contact, ContactEvent)> =
                    aor.contacts.iter().cloned().map(|c| (c, event)).collect();
                self.event(
                    now,
                    Some(&aor.impi),
                    Some(&key),
                    "deregistered",
                    Outcome::Info,
                    Some(why),
                );
                self.third_party(now, &aor, None, 2, 0);
                self.end_registration(now, &key, &terminated, Some(reason));
                done += 1;
            }
        }
        for impi in &impis {
            self.auth.remove(impi);
        }
        self.event(
            now,
            Some(&rtr.user_name),
            targets.first(),
            "rtr",
            Outcome::Ok,
            Some(format!("{done} registration(s) ended ({reason})")),
        );
        let rta = Rta::new(&rtr, &self.s.origin, CxResult::SUCCESS);
        self.out.push_back(Output::Answer {
            id,
            answer: rta.to_message(),
        });
    }

    /// A Push-Profile-Request: new User-Data (profile, implicit set), Charging-Information or
    /// SIP Digest data for a registered user; answer PPA.
    pub fn handle_ppr(&mut self, now: Now, id: AnswerId, ppr: Ppr) {
        let keys: Vec<Impu> = self
            .aors
            .values()
            .filter(|a| a.impi == ppr.user_name)
            .map(|a| a.impu.clone())
            .collect();
        let answer = |this: &mut Self, result: CxResult| {
            let ppa = Ppa::new(&ppr, &this.s.origin, result);
            this.out.push_back(Output::Answer {
                id,
                answer: ppa.to_message(),
            });
        };
        if keys.is_empty() {
            self.event(
                now,
                Some(&ppr.user_name),
                None,
                "ppr",
                Outcome::Failed,
                Some("Push-Profile for a user not registered here".into()),
            );
            answer(
                self,
                CxResult::experimental(Exp::DIAMETER_ERROR_USER_UNKNOWN),
            );
            return;
        }
        let profile = match ppr.user_data.as_ref() {
            None => None,
            Some(ud) => {
                let text = String::from_utf8_lossy(ud).into_owned();
                match ImsSubscription::parse(&text) {
                    Ok(p) => Some((text, p)),
                    Err(e) => {
                        self.event(
                            now,
                            Some(&ppr.user_name),
                            None,
                            "ppr",
                            Outcome::Failed,
                            Some(e.to_string()),
                        );
                        answer(self, CxResult::Base(ResultCode::DIAMETER_UNABLE_TO_COMPLY));
                        return;
                    }
                }
            }
        };
        let charging = ppr.charging_information.as_ref().map(|c| ChargingInfo {
            ccf_primary: c
                .primary_charging_collection_function_name
                .as_ref()
                .map(ToString::to_string),
            ccf_secondary: c
                .secondary_charging_collection_function_name
                .as_ref()
                .map(ToString::to_string),
            ecf_primary: c
                .primary_event_charging_function_name
                .as_ref()
                .map(ToString::to_string),
            ecf_secondary: c
                .secondary_event_charging_function_name
                .as_ref()
                .map(ToString::to_string),
        });
        if ppr.sip_auth_data_item.is_some() {
            // New SIP Digest data: the next REGISTER gets a fresh challenge.
            self.auth.remove(&ppr.user_name);
        }
        for key in &keys {
            let Some(aor) = self.aors.get_mut(key) else {
                continue;
            };
            if let Some((text, prof)) = &profile {
                let implicit: Vec<(Impu, bool)> = prof
                    .identities()
                    .filter_map(|i| Impu::new(i.identity.clone()).ok().map(|u| (u, i.barred)))
                    .collect();
                if !implicit.is_empty() {
                    aor.implicit = implicit;
                }
                aor.user_data = Some(text.clone());
                aor.profile = prof.clone().with_ifcs();
            }
            if charging.is_some() {
                aor.charging.clone_from(&charging);
            }
            let snapshot = aor.clone();
            self.index(&snapshot);
            self.persist(Persist::PutRegistration(snapshot.record()));
            if profile.is_some() {
                // The implicit set may have changed: tell the watchers.
                self.notify_all(now, key, &[], None);
            }
        }
        self.event(
            now,
            Some(&ppr.user_name),
            keys.first(),
            "ppr",
            Outcome::Ok,
            Some(format!(
                "profile pushed to {} registration(s){}{}",
                keys.len(),
                if charging.is_some() {
                    ", charging updated"
                } else {
                    ""
                },
                if ppr.sip_auth_data_item.is_some() {
                    ", digest data replaced"
                } else {
                    ""
                }
            )),
        );
        answer(self, CxResult::SUCCESS);
    }
}
