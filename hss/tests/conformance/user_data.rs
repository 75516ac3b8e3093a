//! The User-Data XML against the TS 29.228 Annex E schema, with xmllint (Debian libxml2-utils).

use std::process::Command;

use imslab_hss::user_data::ims_subscription;
use imslab_store::PublicIdentity;

use crate::common::*;

const SCHEMA: &str = include_str!("../../testdata/CxDataType_Rel7.xsd");

/// Runs xmllint; `Err` carries its complaint. A missing xmllint fails the test.
fn xmllint(xml: &str) -> Result<(), String> {
    let dir = tempfile::tempdir().unwrap();
    let xsd = dir.path().join("CxDataType.xsd");
    let doc = dir.path().join("user-data.xml");
    std::fs::write(&xsd, SCHEMA).unwrap();
    std::fs::write(&doc, xml).unwrap();
    let out = Command::new("xmllint")
        .arg("--noout")
        .arg("--schema")
        .arg(&xsd)
        .arg(&doc)
        .output()
        .unwrap_or_else(|e| {
            panic!("xmllint is needed to validate User-Data: install the Debian package libxml2-utils ({e})")
        });
    if out.status.success() {
        Ok(())
    } else {
        Err(String::from_utf8_lossy(&out.stderr).into_owned())
    }
}

fn validate(xml: &str) {
    if let Err(e) = xmllint(xml) {
        panic!("User-Data does not validate against CxDataType:\n{e}\n{xml}");
    }
}

#[test]
fn user_data_for_every_identity_validates_against_the_annex_e_schema() {
    let sub = subscription();
    let all: Vec<&PublicIdentity> = sub.subscriber.impus.iter().collect();
    let xml = ims_subscription(&sub, &all);
    validate(&xml);
    // Identities sharing a profile share one ServiceProfile; the others get their own.
    assert_eq!(xml.matches("<ServiceProfile>").count(), 3, "{xml}");
    assert!(xml.contains(
        "<BarringIndication>1</BarringIndication><Identity>sip:barred@ims.example</Identity>"
    ));
    assert!(xml.contains("<Content>&lt;spam &amp; &quot;eggs&quot;&gt;</Content>"));
    // iFCs in priority order: 5 before 10.
    assert!(
        xml.find("<Priority>5</Priority>").unwrap() < xml.find("<Priority>10</Priority>").unwrap()
    );
    assert!(xml.contains("<Extension><RegistrationType>0</RegistrationType><RegistrationType>2</RegistrationType></Extension>"));
    assert!(xml.contains("<SubscribedMediaProfileId>7</SubscribedMediaProfileId>"));
}

#[test]
fn user_data_without_profiles_validates() {
    let mut sub = subscription();
    sub.profiles.clear();
    let first: Vec<&PublicIdentity> = sub.subscriber.impus.iter().take(1).collect();
    validate(&ims_subscription(&sub, &first));
}

#[test]
fn schema_check_rejects_a_document_out_of_order() {
    // The validator itself works: a PublicIdentity after an iFC is refused.
    let bad = "<?xml version=\"1.0\"?><IMSSubscription><PrivateID>a@b</PrivateID><ServiceProfile>\
               <InitialFilterCriteria><Priority>0</Priority><ApplicationServer><ServerName>sip:as</ServerName>\
               </ApplicationServer></InitialFilterCriteria><PublicIdentity><Identity>sip:a@b</Identity>\
               </PublicIdentity></ServiceProfile></IMSSubscription>";
    let complaint = xmllint(bad).expect_err("an invalid document must not validate");
    assert!(complaint.contains("PublicIdentity"), "{complaint}");
}
