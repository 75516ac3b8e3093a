//! CSV import and export.
//!
//! Two layouts are read:
//! - a header row naming the columns (ours, and pySim's `--read-csv` / card key files): `imsi`,
//!   `k` or `ki`, `opc` or `op`, and optionally `impi`, `msisdn`, `amf`, `sqn`, `auth_schemes`,
//!   `password`, `ha1`, `digest_realm`, `impus`, `profile`, `fixed_scscf`. Names are matched
//!   case-insensitively; other columns (`iccid`, `acc`, `pin_adm`...) are ignored and reported.
//! - pySim-prog's `--write-csv` rows, which have no header:
//!   `name,iccid,mcc,mnc,imsi,smsp,ki,opc`.
//!
//! Lists (`impus`, `auth_schemes`) are separated by `|`. An identity may carry attributes after
//! `#`: `sip:bob@ims.example#irs=2,default,barred,profile=mmtel`.

use std::collections::HashMap;
use std::fmt;
use std::time::SystemTime;

use crate::model::{AuthScheme, DigestSecret, OperatorKey, Subscriber};
use crate::provision::input::{
    FieldError, ImpuInput, NewSubscriber, ProvisionDefaults, SubscriberInput,
};
use crate::{Error, Store};

/// The layout of an imported file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CsvFormat {
    /// A header row names the columns.
    Header,
    /// pySim-prog `--write-csv`: `name,iccid,mcc,mnc,imsi,smsp,ki,opc` without a header.
    PySimProg,
}

/// One bad line of an import.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LineError {
    /// 1-based line number in the file.
    pub line: usize,
    /// The IMSI on that line, if readable.
    pub imsi: Option<String>,
    /// What is wrong.
    pub errors: Vec<FieldError>,
}

impl fmt::Display for LineError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "line {}", self.line)?;
        if let Some(i) = &self.imsi {
            write!(f, " ({i})")?;
        }
        let msgs: Vec<String> = self.errors.iter().map(ToString::to_string).collect();
        write!(f, ": {}", msgs.join(", "))
    }
}

/// What an import did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImportReport {
    /// The layout detected.
    pub format: CsvFormat,
    /// Subscribers added.
    pub imported: usize,
    /// Header columns that were not used (for example `iccid`).
    pub ignored_columns: Vec<String>,
}

/// Splits CSV text (RFC 4180: `,` separated, `"` quoted with `""` escapes, LF or CRLF) into
/// records with the 1-based line each starts on. Blank lines and lines starting with `#` are
/// skipped.
pub fn parse_csv_records(text: &str) -> Result<Vec<(usize, Vec<String>)>, Error> {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let mut out = Vec::new();
    let mut chars = text.chars().peekable();
    let mut line = 1usize;
    while chars.peek().is_some() {
        let start = line;
        if chars.peek() == Some(&'#') {
            for c in chars.by_ref() {
                if c == '\n' {
                    line += 1;
                    break;
                }
            }
            continue;
        }
        let mut fields = Vec::new();
        let mut field = String::new();
        let mut quoted = false;
        let mut was_quoted = false;
        loop {
            let Some(c) = chars.next() else {
                if quoted {
                    return Err(Error::CsvFormat {
                        line: start,
                        message: "a quoted field is not closed".into(),
                    });
                }
                break;
            };
            if quoted {
                match c {
                    '"' if chars.peek() == Some(&'"') => {
                        chars.next();
                        field.push('"');
                    }
                    '"' => quoted = false,
                    '\n' => {
                        line += 1;
                        field.push(c);
                    }
                    _ => field.push(c),
                }
                continue;
            }
            match c {
                '"' if field.trim().is_empty() && !was_quoted => {
                    field.clear();
                    quoted = true;
                    was_quoted = true;
                }
                ',' => {
                    fields.push(std::mem::take(&mut field));
                    was_quoted = false;
                }
                '\r' if chars.peek() == Some(&'\n') => {}
                '\n' => {
                    line += 1;
                    break;
                }
                _ => field.push(c),
            }
        }
        fields.push(field);
        if fields.iter().all(|f| f.trim().is_empty()) {
            continue;
        }
        out.push((
            start,
            fields.into_iter().map(|f| f.trim().to_owned()).collect(),
        ));
    }
    Ok(out)
}

/// Which [`SubscriberInput`] field a header names.
fn column_field(name: &str) -> Option<&'static str> {
    Some(
        match name
            .trim()
            .to_ascii_lowercase()
            .replace(['-', ' '], "_")
            .as_str()
        {
            "imsi" => "imsi",
            "impi" => "impi",
            "msisdn" => "msisdn",
            "k" | "ki" | "key" => "k",
            "op" => "op",
            "opc" => "opc",
            "amf" => "amf",
            "sqn" => "sqn",
            "auth_schemes" | "auth_scheme" | "schemes" => "auth_schemes",
            "password" => "password",
            "ha1" => "ha1",
            "digest_realm" => "digest_realm",
            "impus" | "impu" => "impus",
            "profile" => "profile",
            "fixed_scscf" | "scscf" => "fixed_scscf",
            _ => return None,
        },
    )
}

fn parse_impu_item(item: &str) -> Result<ImpuInput, String> {
    let Some((uri, attrs)) = item.split_once('#') else {
        return Ok(ImpuInput::Uri(item.to_owned()));
    };
    let (mut irs, mut default, mut barred, mut profile) = (None, None, None, None);
    for a in attrs.split(',').map(str::trim).filter(|a| !a.is_empty()) {
        match a.split_once('=') {
            None if a == "default" => default = Some(true),
            None if a == "barred" => barred = Some(true),
            Some(("irs", v)) => {
                irs = Some(
                    v.parse()
                        .map_err(|_| format!("irs must be a number, got {v:?}"))?,
                );
            }
            Some(("profile", v)) => profile = Some(v.to_owned()),
            _ => {
                return Err(format!(
                    "unknown identity attribute {a:?}: use irs=N, default, barred, profile=NAME"
                ));
            }
        }
    }
    Ok(ImpuInput::Detailed {
        uri: uri.to_owned(),
        irs,
        default,
        barred,
        profile,
    })
}

fn input_from_columns(
    cols: &HashMap<&'static str, String>,
) -> Result<SubscriberInput, Vec<FieldError>> {
    let get = |f: &str| cols.get(f).filter(|v| !v.is_empty()).cloned();
    let mut errors = Vec::new();
    let impus = match get("impus") {
        Some(list) => list
            .split('|')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .filter_map(|item| match parse_impu_item(item) {
                Ok(i) => Some(i),
                Err(message) => {
                    errors.push(FieldError {
                        field: "impus",
                        message,
                    });
                    None
                }
            })
            .collect(),
        None => Vec::new(),
    };
    if !errors.is_empty() {
        return Err(errors);
    }
    Ok(SubscriberInput {
        imsi: get("imsi").unwrap_or_default(),
        impi: get("impi"),
        msisdn: get("msisdn"),
        k: get("k").unwrap_or_default(),
        op: get("op"),
        opc: get("opc"),
        amf: get("amf"),
        sqn: get("sqn"),
        auth_schemes: get("auth_schemes").map(|s| vec![s]),
        password: get("password"),
        ha1: get("ha1"),
        digest_realm: get("digest_realm"),
        impus,
        profile: get("profile"),
        fixed_scscf: get("fixed_scscf"),
        charging: None,
    })
}

/// Parses and validates a whole file without touching a store: every line is checked, including
/// duplicates between lines. Returns the subscribers in file order.
pub fn parse_import(
    text: &str,
    defaults: &ProvisionDefaults,
) -> Result<(Vec<(usize, NewSubscriber)>, ImportReport), Error> {
    let records = parse_csv_records(text)?;
    let Some((first_line, first)) = records.first() else {
        return Err(Error::CsvFormat {
            line: 1,
            message: "the file has no rows".into(),
        });
    };
    let has_header = first.iter().any(|f| f.eq_ignore_ascii_case("imsi"));
    let (format, mapping, body, ignored) = if has_header {
        let mapping: Vec<Option<&'static str>> = first.iter().map(|h| column_field(h)).collect();
        let mut seen = HashMap::new();
        for (h, m) in first.iter().zip(&mapping) {
            if let Some(f) = m
                && let Some(prev) = seen.insert(*f, h.clone())
            {
                return Err(Error::CsvFormat {
                    line: *first_line,
                    message: format!("columns {prev:?} and {h:?} both give {f}"),
                });
            }
        }
        for needed in ["imsi", "k"] {
            if !seen.contains_key(needed) {
                return Err(Error::CsvFormat {
                    line: *first_line,
                    message: format!("the header has no {needed} column"),
                });
            }
        }
        let ignored = first
            .iter()
            .zip(&mapping)
            .filter(|(_, m)| m.is_none())
            .map(|(h, _)| h.clone())
            .collect();
        (CsvFormat::Header, mapping, &records[1..], ignored)
    } else if first.len() == 8 {
        let mapping = vec![
            None,
            None,
            None,
            None,
            Some("imsi"),
            None,
            Some("k"),
            Some("opc"),
        ];
        (CsvFormat::PySimProg, mapping, &records[..], Vec::new())
    } else {
        return Err(Error::CsvFormat {
            line: *first_line,
            message: "no header row (a column named imsi) and not the 8-column pySim-prog \
                      layout name,iccid,mcc,mnc,imsi,smsp,ki,opc"
                .into(),
        });
    };

    let mut good = Vec::new();
    let mut bad: Vec<LineError> = Vec::new();
    let mut seen_keys: HashMap<String, usize> = HashMap::new();
    for (line, fields) in body {
        let mut cols = HashMap::new();
        if fields.len() > mapping.len() {
            bad.push(LineError {
                line: *line,
                imsi: None,
                errors: vec![FieldError {
                    field: "line",
                    message: format!("{} fields, the header has {}", fields.len(), mapping.len()),
                }],
            });
            continue;
        }
        for (v, m) in fields.iter().zip(&mapping) {
            if let Some(f) = m {
                cols.insert(*f, v.clone());
            }
        }
        let imsi = cols.get("imsi").filter(|v| !v.is_empty()).cloned();
        let parsed = input_from_columns(&cols).and_then(|input| {
            NewSubscriber::from_input(&input, defaults).map_err(|e| match e {
                Error::InvalidSubscriber { errors } => errors,
                other => vec![FieldError {
                    field: "line",
                    message: other.to_string(),
                }],
            })
        });
        match parsed {
            Ok(new) => {
                let mut errors = Vec::new();
                let keys = std::iter::once(("imsi", new.imsi.to_string()))
                    .chain(std::iter::once(("impi", new.impi.to_string())))
                    .chain(new.impus.iter().map(|p| ("impus", p.impu.to_string())));
                for (field, key) in keys {
                    if let Some(prev) = seen_keys.insert(key.clone(), *line) {
                        errors.push(FieldError {
                            field,
                            message: format!("{key} is already on line {prev}"),
                        });
                    }
                }
                if errors.is_empty() {
                    good.push((*line, new));
                } else {
                    bad.push(LineError {
                        line: *line,
                        imsi,
                        errors,
                    });
                }
            }
            Err(errors) => bad.push(LineError {
                line: *line,
                imsi,
                errors,
            }),
        }
    }
    if !bad.is_empty() {
        return Err(Error::InvalidImport { lines: bad });
    }
    let report = ImportReport {
        format,
        imported: good.len(),
        ignored_columns: ignored,
    };
    Ok((good, report))
}

/// Imports a CSV file: validates every line (including against subscribers already stored) and
/// then inserts all of them in one transaction. With any bad line nothing changes and
/// [`Error::InvalidImport`] lists every bad line.
pub async fn import_csv(
    store: &Store,
    text: &str,
    defaults: &ProvisionDefaults,
    now: SystemTime,
) -> Result<ImportReport, Error> {
    let (subs, report) = parse_import(text, defaults)?;
    let mut bad = Vec::new();
    for (line, new) in &subs {
        let mut errors = Vec::new();
        let repo = store.subscribers();
        use crate::repo::subscribers::SubscriberKey as Key;
        if repo.get(&Key::Imsi(new.imsi.clone())).await?.is_some() {
            errors.push(FieldError {
                field: "imsi",
                message: format!("{} already exists", new.imsi),
            });
        } else if repo.get(&Key::Impi(new.impi.clone())).await?.is_some() {
            errors.push(FieldError {
                field: "impi",
                message: format!("{} already exists", new.impi),
            });
        }
        for p in &new.impus {
            if let Some(owner) = repo.owner_of(&p.impu).await? {
                errors.push(FieldError {
                    field: "impus",
                    message: format!("{} already belongs to {owner}", p.impu),
                });
            }
        }
        for name in new.impus.iter().filter_map(|p| p.profile.as_deref()) {
            if store.profiles().get(name).await?.is_none() {
                errors.push(FieldError {
                    field: "profile",
                    message: format!("no service profile named {name:?}"),
                });
            }
        }
        if !errors.is_empty() {
            bad.push(LineError {
                line: *line,
                imsi: Some(new.imsi.to_string()),
                errors,
            });
        }
    }
    if !bad.is_empty() {
        return Err(Error::InvalidImport { lines: bad });
    }
    let news: Vec<NewSubscriber> = subs.into_iter().map(|(_, n)| n).collect();
    store.subscribers().insert_all(&news, now).await?;
    Ok(report)
}

pub(crate) fn csv_field(s: &str) -> String {
    if s.contains([',', '"', '\n', '\r'])
        || s.starts_with(|c: char| c.is_whitespace() || c == '#' || c == '\u{feff}')
        || s.ends_with(char::is_whitespace)
    {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_owned()
    }
}

/// The export header, in the order [`export_csv`] writes columns.
pub const EXPORT_COLUMNS: &str = "imsi,impi,msisdn,k,op,opc,amf,sqn,auth_schemes,password,ha1,\
                                  digest_realm,impus,fixed_scscf";

/// Writes `subscribers` in the header layout that [`import_csv`] reads. K, OP, OPc, password and
/// HA1 are written only when `include_secrets` is true; otherwise those cells are empty.
pub fn export_csv(subscribers: &[Subscriber], include_secrets: bool) -> String {
    let mut out = String::from(EXPORT_COLUMNS);
    out.push('\n');
    for s in subscribers {
        let secret = |v: String| if include_secrets { v } else { String::new() };
        let (op, opc) = match &s.operator_key {
            OperatorKey::Op(op) => (secret(op.expose_hex()), String::new()),
            OperatorKey::Opc(opc) => (String::new(), secret(opc.expose_hex())),
        };
        let (password, ha1) = match &s.digest {
            Some(DigestSecret::Password(p)) => (secret(p.clone()), String::new()),
            Some(DigestSecret::Ha1(h)) => (String::new(), secret(h.clone())),
            None => (String::new(), String::new()),
        };
        let schemes: Vec<&str> = s.auth_schemes.iter().map(AuthScheme::cx_name).collect();
        let impus: Vec<String> = s
            .impus
            .iter()
            .map(|p| {
                let mut attrs = vec![format!("irs={}", p.irs)];
                if p.is_default {
                    attrs.push("default".into());
                }
                if p.barred {
                    attrs.push("barred".into());
                }
                if let Some(prof) = &p.profile {
                    attrs.push(format!("profile={prof}"));
                }
                format!("{}#{}", p.impu, attrs.join(","))
            })
            .collect();
        let digest_realm = s.digest_realm.clone().unwrap_or_default();
        let row = [
            s.imsi.to_string(),
            s.impi.to_string(),
            s.msisdn
                .as_ref()
                .map(ToString::to_string)
                .unwrap_or_default(),
            secret(s.k.expose_hex()),
            op,
            opc,
            s.amf.to_hex(),
            s.sqn.value().to_string(),
            schemes.join("|"),
            password,
            ha1,
            digest_realm,
            impus.join("|"),
            s.fixed_scscf.clone().unwrap_or_default(),
        ];
        let cells: Vec<String> = row.iter().map(|c| csv_field(c)).collect();
        out.push_str(&cells.join(","));
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use imslab_types::Realm;

    use super::*;

    fn defaults() -> ProvisionDefaults {
        ProvisionDefaults::new(Realm::new("ims.mnc001.mcc001.3gppnetwork.org").unwrap())
    }

    #[test]
    fn csv_records_handle_quotes_crlf_comments_and_blank_lines() {
        let text = "\u{feff}a,\"b,c\",\"d\"\"e\"\r\n\n# comment\nx,\"multi\nline\",z\n";
        let r = parse_csv_records(text).unwrap();
        assert_eq!(
            r,
            vec![
                (1, vec!["a".to_owned(), "b,c".into(), "d\"e".into()]),
                (4, vec!["x".to_owned(), "multi\nline".into(), "z".into()]),
            ]
        );
        assert!(matches!(
            parse_csv_records("a,\"open\n"),
            Err(Error::CsvFormat { line: 1, .. })
        ));
    }

    #[test]
    fn pysim_prog_rows_without_header_are_read() {
        let text = "card1,8988211000000000001,001,01,001010000000001,,465b5ce8b199b49faa5f0a2ee238a6bc,cd63cb71954a9f4e48a5994e37a02baf\n";
        let (subs, report) = parse_import(text, &defaults()).unwrap();
        assert_eq!(report.format, CsvFormat::PySimProg);
        assert_eq!(subs[0].1.imsi.as_str(), "001010000000001");
        assert!(matches!(subs[0].1.operator_key, OperatorKey::Opc(_)));
    }

    #[test]
    fn pysim_header_files_ignore_card_only_columns() {
        let text = "ICCID,IMSI,KI,OPC,ADM1\n8988211000000000001,001010000000002,465b5ce8b199b49faa5f0a2ee238a6bc,cd63cb71954a9f4e48a5994e37a02baf,12345678\n";
        let (subs, report) = parse_import(text, &defaults()).unwrap();
        assert_eq!(report.format, CsvFormat::Header);
        assert_eq!(report.ignored_columns, ["ICCID", "ADM1"]);
        assert_eq!(subs[0].1.imsi.as_str(), "001010000000002");
    }

    #[test]
    fn every_bad_line_is_reported_with_its_number() {
        let text = "imsi,k,opc\n\
                    001010000000001,465b5ce8b199b49faa5f0a2ee238a6bc,cd63cb71954a9f4e48a5994e37a02baf\n\
                    12345,465b5ce8b199b49faa5f0a2ee238a6bc,cd63cb71954a9f4e48a5994e37a02baf\n\
                    001010000000003,nothex,cd63cb71954a9f4e48a5994e37a02baf\n\
                    001010000000001,465b5ce8b199b49faa5f0a2ee238a6bc,cd63cb71954a9f4e48a5994e37a02baf\n";
        let Err(Error::InvalidImport { lines }) = parse_import(text, &defaults()) else {
            panic!("expected InvalidImport");
        };
        let shown: Vec<String> = lines.iter().map(ToString::to_string).collect();
        assert_eq!(
            shown,
            [
                "line 3 (12345): imsi: IMSI must be 6 to 15 decimal digits, got 5 characters",
                "line 4 (001010000000003): k: must be 32 hex digits, got 6 characters",
                "line 5 (001010000000001): imsi: 001010000000001 is already on line 2, \
                 impi: 001010000000001@ims.mnc001.mcc001.3gppnetwork.org is already on line 2, \
                 impus: sip:001010000000001@ims.mnc001.mcc001.3gppnetwork.org is already on line 2",
            ]
        );
    }

    #[test]
    fn files_without_layout_are_refused() {
        assert!(matches!(
            parse_import("a,b,c\n1,2,3\n", &defaults()),
            Err(Error::CsvFormat { line: 1, .. })
        ));
        assert!(matches!(
            parse_import("imsi,opc\n001010000000001,00\n", &defaults()),
            Err(Error::CsvFormat { message, .. }) if message == "the header has no k column"
        ));
    }

    #[test]
    fn impu_attributes_parse() {
        assert_eq!(
            parse_impu_item("sip:b@x#irs=2,default,barred,profile=mmtel").unwrap(),
            ImpuInput::Detailed {
                uri: "sip:b@x".into(),
                irs: Some(2),
                default: Some(true),
                barred: Some(true),
                profile: Some("mmtel".into()),
            }
        );
        assert!(parse_impu_item("sip:b@x#color=red").is_err());
    }
}
