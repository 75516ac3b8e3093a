//! The Cx User-Data: the IMSSubscription XML document of TS 29.228 Annex B and Annex E
//! (schema `CxDataType`), built from the stored subscription.
//!
//! One `ServiceProfile` is written per service profile used by the identities sent, with those
//! identities as its `PublicIdentity` elements (TS 29.228 Annex B.2.1); identities without a
//! profile share one `ServiceProfile` without iFCs. The default identity comes first.

use std::fmt::Write as _;

use imslab_store::model::{
    InitialFilterCriteria, PublicIdentity, ServicePointTrigger, SptKind, TriggerPoint,
};
use imslab_store::{ServiceProfile, Subscription};

/// Escapes text for XML element content.
fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            c => out.push(c),
        }
    }
    out
}

fn elem(out: &mut String, name: &str, value: &str) {
    let _ = write!(out, "<{name}>{}</{name}>", esc(value));
}

fn public_identity(out: &mut String, p: &PublicIdentity) {
    out.push_str("<PublicIdentity>");
    if p.barred {
        elem(out, "BarringIndication", "1");
    }
    elem(out, "Identity", p.impu.as_str());
    // IdentityType 0: a distinct public user identity (TS 29.228 Annex E tIdentityType).
    out.push_str("<Extension><IdentityType>0</IdentityType></Extension>");
    out.push_str("</PublicIdentity>");
}

fn spt(out: &mut String, s: &ServicePointTrigger) {
    out.push_str("<SPT>");
    elem(
        out,
        "ConditionNegated",
        if s.condition_negated { "1" } else { "0" },
    );
    for g in &s.groups {
        elem(out, "Group", &g.to_string());
    }
    match &s.kind {
        SptKind::RequestUri(r) => elem(out, "RequestURI", r),
        SptKind::Method(m) => elem(out, "Method", m),
        SptKind::SipHeader { header, content } => {
            out.push_str("<SIPHeader>");
            elem(out, "Header", header);
            if let Some(c) = content {
                elem(out, "Content", c);
            }
            out.push_str("</SIPHeader>");
        }
        SptKind::SessionCase(c) => elem(out, "SessionCase", &c.code().to_string()),
        SptKind::SessionDescription { line, content } => {
            out.push_str("<SessionDescription>");
            elem(out, "Line", line);
            if let Some(c) = content {
                elem(out, "Content", c);
            }
            out.push_str("</SessionDescription>");
        }
    }
    if !s.registration_types.is_empty() {
        out.push_str("<Extension>");
        for t in &s.registration_types {
            elem(out, "RegistrationType", &t.to_string());
        }
        out.push_str("</Extension>");
    }
    out.push_str("</SPT>");
}

fn trigger_point(out: &mut String, tp: &TriggerPoint) {
    out.push_str("<TriggerPoint>");
    elem(
        out,
        "ConditionTypeCNF",
        if tp.condition_type_cnf { "1" } else { "0" },
    );
    for s in &tp.spts {
        spt(out, s);
    }
    out.push_str("</TriggerPoint>");
}

fn ifc(out: &mut String, i: &InitialFilterCriteria) {
    out.push_str("<InitialFilterCriteria>");
    elem(out, "Priority", &i.priority.to_string());
    if let Some(tp) = &i.trigger_point {
        trigger_point(out, tp);
    }
    let a = &i.application_server;
    out.push_str("<ApplicationServer>");
    elem(out, "ServerName", &a.server_name);
    elem(
        out,
        "DefaultHandling",
        &a.default_handling.code().to_string(),
    );
    if let Some(si) = &a.service_info {
        elem(out, "ServiceInfo", si);
    }
    if a.include_register_request || a.include_register_response {
        // TS 29.228 Annex E tApplicationServerExtension (Rel-9).
        out.push_str("<Extension>");
        if a.include_register_request {
            out.push_str("<IncludeRegisterRequest/>");
        }
        if a.include_register_response {
            out.push_str("<IncludeRegisterResponse/>");
        }
        out.push_str("</Extension>");
    }
    out.push_str("</ApplicationServer>");
    if let Some(p) = i.profile_part_indicator {
        elem(out, "ProfilePartIndicator", &p.code().to_string());
    }
    out.push_str("</InitialFilterCriteria>");
}

fn service_profile(out: &mut String, ids: &[&PublicIdentity], profile: Option<&ServiceProfile>) {
    out.push_str("<ServiceProfile>");
    for p in ids {
        public_identity(out, p);
    }
    if let Some(p) = profile {
        if let Some(smp) = p.subscribed_media_profile_id {
            out.push_str("<CoreNetworkServicesAuthorization>");
            elem(out, "SubscribedMediaProfileId", &smp.to_string());
            out.push_str("</CoreNetworkServicesAuthorization>");
        }
        let mut ifcs: Vec<&InitialFilterCriteria> = p.ifcs.iter().collect();
        ifcs.sort_by_key(|i| i.priority);
        for i in ifcs {
            ifc(out, i);
        }
    }
    out.push_str("</ServiceProfile>");
}

/// The IMSSubscription document for `identities` of `sub` (normally one implicit registration
/// set, default identity first).
pub fn ims_subscription(sub: &Subscription, identities: &[&PublicIdentity]) -> String {
    let mut out = String::with_capacity(1024);
    out.push_str(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\
         <IMSSubscription xmlns:xsi=\"http://www.w3.org/2001/XMLSchema-instance\" \
         xsi:noNamespaceSchemaLocation=\"CxDataType.xsd\">",
    );
    elem(&mut out, "PrivateID", sub.subscriber.impi.as_str());
    // Group identities by profile, keeping first-appearance order.
    let mut groups: Vec<(Option<&str>, Vec<&PublicIdentity>)> = Vec::new();
    for p in identities {
        let key = p.profile.as_deref().filter(|n| sub.profile(n).is_some());
        match groups.iter_mut().find(|(k, _)| *k == key) {
            Some((_, v)) => v.push(p),
            None => groups.push((key, vec![p])),
        }
    }
    for (key, ids) in &groups {
        service_profile(&mut out, ids, key.and_then(|n| sub.profile(n)));
    }
    out.push_str("</IMSSubscription>");
    out
}

/// Whether `p` has services for the unregistered state: an iFC in its profile that applies to
/// the unregistered part (ProfilePartIndicator absent or UNREGISTERED, TS 29.228 Annex B.2.2).
pub fn has_unregistered_services(sub: &Subscription, p: &PublicIdentity) -> bool {
    use imslab_store::model::ProfilePartIndicator;
    p.profile
        .as_deref()
        .and_then(|n| sub.profile(n))
        .is_some_and(|prof| {
            prof.ifcs.iter().any(|i| {
                !matches!(
                    i.profile_part_indicator,
                    Some(ProfilePartIndicator::Registered)
                )
            })
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escaping_covers_markup_characters() {
        assert_eq!(esc("a<b>&\"c'"), "a&lt;b&gt;&amp;&quot;c&apos;");
    }
}
