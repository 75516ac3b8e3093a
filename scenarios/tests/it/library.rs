//! The scenario library loads with the typed loader and validates against the JSON Schema
//! (checked structurally by the small validator below: type, properties, required,
//! additionalProperties, enum, pattern, bounds, items, oneOf, $ref).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use imslab_scenarios::scenario::{parse, substitute};
use serde_json::Value;

const SCHEMA: &str = include_str!("../../scenario.schema.json");

fn builtins() -> BTreeMap<String, String> {
    BTreeMap::from([
        (
            "domain".to_owned(),
            "ims.mnc001.mcc001.3gppnetwork.org".to_owned(),
        ),
        ("pcscf".to_owned(), "127.0.0.1:5060".to_owned()),
        ("pcscf_ip".to_owned(), "127.0.0.1".to_owned()),
        ("ipsec".to_owned(), "true".to_owned()),
    ])
}

pub(crate) fn library_files() -> Vec<PathBuf> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("library");
    let mut out = Vec::new();
    for dir in [root.clone(), root.join("pending")] {
        for e in std::fs::read_dir(&dir).unwrap() {
            let p = e.unwrap().path();
            if p.extension().is_some_and(|x| x == "yaml") {
                out.push(p);
            }
        }
    }
    out.sort();
    out
}

fn resolve<'a>(root: &'a Value, r: &str) -> &'a Value {
    let name = r.strip_prefix("#/$defs/").expect("local $ref");
    &root["$defs"][name]
}

fn type_ok(t: &str, v: &Value) -> bool {
    match t {
        "object" => v.is_object(),
        "array" => v.is_array(),
        "string" => v.is_string(),
        "boolean" => v.is_boolean(),
        "integer" => v.is_i64() || v.is_u64(),
        "number" => v.is_number(),
        "null" => v.is_null(),
        other => panic!("schema uses unknown type {other}"),
    }
}

/// Errors of `v` against `s`, with JSON-pointer-ish paths.
fn validate(root: &Value, s: &Value, v: &Value, path: &str, errs: &mut Vec<String>) {
    if let Some(r) = s.get("$ref").and_then(Value::as_str) {
        validate(root, resolve(root, r), v, path, errs);
        return;
    }
    if let Some(alts) = s.get("oneOf").and_then(Value::as_array) {
        let ok = alts
            .iter()
            .filter(|a| {
                let mut e = Vec::new();
                validate(root, a, v, path, &mut e);
                e.is_empty()
            })
            .count();
        if ok != 1 {
            errs.push(format!("{path}: matches {ok} of the oneOf alternatives"));
        }
        return;
    }
    match s.get("type") {
        Some(Value::String(t)) if !type_ok(t, v) => {
            errs.push(format!("{path}: not a {t}"));
            return;
        }
        Some(Value::Array(ts)) if !ts.iter().any(|t| type_ok(t.as_str().unwrap(), v)) => {
            errs.push(format!("{path}: wrong type"));
            return;
        }
        _ => {}
    }
    if let Some(e) = s.get("enum").and_then(Value::as_array)
        && !e.contains(v)
    {
        errs.push(format!("{path}: {v} not in {e:?}"));
    }
    if let (Some(p), Some(text)) = (s.get("pattern").and_then(Value::as_str), v.as_str())
        && !regex::Regex::new(p).unwrap().is_match(text)
    {
        errs.push(format!("{path}: {text:?} does not match /{p}/"));
    }
    if let Some(n) = v.as_f64() {
        if s.get("minimum")
            .and_then(Value::as_f64)
            .is_some_and(|m| n < m)
        {
            errs.push(format!("{path}: below minimum"));
        }
        if s.get("maximum")
            .and_then(Value::as_f64)
            .is_some_and(|m| n > m)
        {
            errs.push(format!("{path}: above maximum"));
        }
        if s.get("exclusiveMinimum")
            .and_then(Value::as_f64)
            .is_some_and(|m| n <= m)
        {
            errs.push(format!("{path}: not above exclusiveMinimum"));
        }
    }
    if let Some(obj) = v.as_object() {
        let props = s.get("properties").and_then(Value::as_object);
        for r in s
            .get("required")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            if !obj.contains_key(r.as_str().unwrap()) {
                errs.push(format!("{path}: missing {r}"));
            }
        }
        if s.get("minProperties")
            .and_then(Value::as_u64)
            .is_some_and(|m| (obj.len() as u64) < m)
        {
            errs.push(format!("{path}: too few properties"));
        }
        if s.get("maxProperties")
            .and_then(Value::as_u64)
            .is_some_and(|m| (obj.len() as u64) > m)
        {
            errs.push(format!("{path}: too many properties"));
        }
        for (k, val) in obj {
            let sub = format!("{path}/{k}");
            match props.and_then(|p| p.get(k)) {
                Some(ps) => validate(root, ps, val, &sub, errs),
                None => match s.get("additionalProperties") {
                    Some(Value::Bool(false)) => errs.push(format!("{sub}: unknown key")),
                    Some(ap @ Value::Object(_)) => validate(root, ap, val, &sub, errs),
                    _ => {}
                },
            }
        }
    }
    if let (Some(items), Some(arr)) = (s.get("items"), v.as_array()) {
        for (i, it) in arr.iter().enumerate() {
            validate(root, items, it, &format!("{path}/{i}"), errs);
        }
    }
}

fn schema_errors(yaml: &str) -> Vec<String> {
    let root: Value = serde_json::from_str(SCHEMA).unwrap();
    let doc: Value = serde_saphyr::from_str(yaml).unwrap();
    let mut errs = Vec::new();
    validate(&root, &root, &doc, "", &mut errs);
    errs
}

fn expanded(path: &Path) -> String {
    let text = std::fs::read_to_string(path).unwrap();
    let mut vars = builtins();
    let sc = parse(&text, path, &builtins()).unwrap_or_else(|e| panic!("{e}"));
    for (k, v) in sc.variables {
        vars.insert(k, v.to_string());
    }
    substitute(&text, &vars)
}

#[test]
fn every_library_scenario_loads_and_validates_against_the_json_schema() {
    let files = library_files();
    assert!(files.len() >= 20, "{files:?}");
    for f in &files {
        let errs = schema_errors(&expanded(f));
        assert!(errs.is_empty(), "{}: {errs:#?}", f.display());
    }
}

#[test]
fn the_library_covers_every_ipsec_suite() {
    let names: Vec<String> = library_files()
        .iter()
        .map(|p| p.file_stem().unwrap().to_string_lossy().into_owned())
        .collect();
    for alg in ["sha1", "md5"] {
        for ealg in ["null", "aes-cbc", "des-ede3-cbc"] {
            let n = format!("aka-ipsec-{alg}-{ealg}");
            assert!(names.contains(&n), "{n} missing");
        }
    }
}

#[test]
fn schema_refuses_what_the_loader_refuses() {
    let ok = "name: x\nues: {a: {imsi: \"001010000000001\"}}\nsteps: [{register: {ue: a}}]\n";
    assert!(schema_errors(ok).is_empty(), "{:?}", schema_errors(ok));
    for bad in [
        "name: x\nues: {a: {imsi: \"001010000000001\", colour: red}}\nsteps: []\n",
        "name: x\nues: {a: {imsi: \"001010000000001\"}}\nsteps: [{register: {ue: a}, wait: 1s}]\n",
        "name: x\nues: {a: {imsi: \"001010000000001\"}}\nsteps: [{teleport: {ue: a}}]\n",
        "name: x\nues: {a: {imsi: \"001010000000001\", ipsec: {alg: hmac-sha-256}}}\nsteps: []\n",
        "name: x\nues: {a: {imsi: \"001010000000001\"}}\nsteps: [{wait: soon}]\n",
    ] {
        assert!(!schema_errors(bad).is_empty(), "schema accepted {bad}");
        assert!(
            parse(bad, Path::new("bad.yaml"), &builtins()).is_err(),
            "loader accepted {bad}"
        );
    }
}
