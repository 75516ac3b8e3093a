//! Requests other than REGISTER and reg-event SUBSCRIBE: delivery to the registered contacts
//! of the Request-URI (TS 24.229 §5.4.3.3, RFC 3327 Path), anything else along its route.

use imslab_sip::proxy::{Decision, ForkMode, RecordRoute, Target};
use imslab_sip::{HeaderName, Message, Method, StatusCode, Uri};
use imslab_types::Outcome;

use super::register::{aor_of, respond};
use super::{Now, Registrar, ReqId};

impl Registrar {
    /// Whether the Request-URI names this S-CSCF (its URI's host and port, no user part).
    fn is_own_uri(&self, msg: &Message) -> bool {
        let (Some(ruri), Ok(own)) = (
            msg.request_uri_str().and_then(|u| Uri::parse(u).ok()),
            Uri::parse(&self.s.uri),
        ) else {
            return false;
        };
        match (ruri.as_sip(), own.as_sip()) {
            (Some(r), Some(o)) => {
                r.user.is_none()
                    && r.host.to_string().eq_ignore_ascii_case(&o.host.to_string())
                    && r.port_or_default() == o.port_or_default()
            }
            _ => false,
        }
    }

    /// Routes a request that is not a REGISTER nor a reg-event SUBSCRIBE:
    ///
    /// - a request for a public identity registered here goes to every contact of its
    ///   registration that shares the most recent contact's Path, with that Path as Route
    ///   (parallel forking, Record-Route for dialog-creating methods);
    /// - a request for the home domain whose identity is known but has no contact: 480;
    ///   unknown here: 404;
    /// - anything else (in-dialog requests, other domains) follows its own next hop.
    pub fn handle_request(&mut self, now: Now, req: ReqId, mut msg: Message, stateless: bool) {
        if !stateless && msg.routes().next().is_none() && self.is_own_uri(&msg) {
            // Addressed to the S-CSCF itself: OPTIONS is a keep-alive probe (RFC 3261 §11).
            let r = if msg.method() == Some(&Method::Options) {
                let mut ok = respond(&msg, StatusCode::OK, None);
                let _ = ok.push_header(
                    HeaderName::ALLOW,
                    "REGISTER, SUBSCRIBE, NOTIFY, INVITE, ACK, BYE, CANCEL, OPTIONS, MESSAGE, \
                     PRACK, UPDATE, INFO, REFER",
                );
                ok
            } else {
                respond(&msg, StatusCode::NOT_FOUND, Some("No such user here"))
            };
            self.decide(req, Decision::Respond(r));
            return;
        }
        let target = msg
            .request_uri_str()
            .and_then(|u| Uri::parse(u).ok())
            .and_then(|u| aor_of(&u));
        let in_dialog = msg.to_header().ok().is_some_and(|t| t.tag().is_some());
        let key = target.as_ref().and_then(|t| self.alias.get(t)).cloned();
        let Some(key) = key.filter(|_| !in_dialog && !stateless) else {
            let home = target.as_ref().is_some_and(|t| {
                t.as_str()
                    .rsplit_once('@')
                    .is_some_and(|(_, h)| h.eq_ignore_ascii_case(&self.s.home_realm))
            });
            if home && !in_dialog && !stateless && msg.routes().next().is_none() {
                self.event(
                    now,
                    None,
                    target.as_ref(),
                    "terminating",
                    Outcome::Failed,
                    Some("request for an identity not registered here".into()),
                );
                let r = respond(&msg, StatusCode::NOT_FOUND, Some("Not registered here"));
                self.decide(req, Decision::Respond(r));
                return;
            }
            self.decide(req, Decision::forward(msg, Target::next_hop()));
            return;
        };
        let Some(aor) = self.aors.get(&key) else {
            let r = respond(&msg, StatusCode::TEMPORARILY_UNAVAILABLE, None);
            self.decide(req, Decision::Respond(r));
            return;
        };
        let Some(latest) = aor.contacts.iter().max_by_key(|c| c.expires) else {
            let r = respond(&msg, StatusCode::TEMPORARILY_UNAVAILABLE, None);
            self.decide(req, Decision::Respond(r));
            return;
        };
        let path = latest.binding.path.clone();
        let targets: Vec<Target> = aor
            .contacts
            .iter()
            .filter(|c| c.binding.path == path)
            .map(|c| Target::uri(c.binding.contact.clone()))
            .collect();
        for p in path.iter().rev() {
            let _ = msg.prepend_header(HeaderName::ROUTE, p.clone());
        }
        let dialog = matches!(
            msg.method(),
            Some(Method::Invite | Method::Subscribe | Method::Refer)
        );
        self.decide(
            req,
            Decision::Forward {
                request: msg,
                targets,
                mode: ForkMode::Parallel,
                record_route: dialog.then(|| RecordRoute {
                    user: Some("term".to_owned()),
                }),
            },
        );
    }
}
