use std::path::Path;

use super::*;

fn parse(text: &str) -> Result<Config, Error> {
    Config::from_yaml(text, Path::new("lab.yaml"))
}

fn keys(v: &serde_json::Value, prefix: &str, out: &mut Vec<String>) {
    if let serde_json::Value::Object(map) = v {
        for (k, child) in map {
            let path = if prefix.is_empty() {
                k.clone()
            } else {
                format!("{prefix}.{k}")
            };
            out.push(path.clone());
            keys(child, &path, out);
        }
    }
}

#[test]
fn default_yaml_parses_to_the_default_config() {
    assert_eq!(parse(&Config::default_yaml()).unwrap(), Config::default());
}

#[test]
fn default_yaml_documents_every_key() {
    let yaml = Config::default_yaml();
    let lines: Vec<&str> = yaml.lines().collect();
    let mut all = Vec::new();
    keys(
        &serde_json::to_value(Config::default()).unwrap(),
        "",
        &mut all,
    );
    for path in all {
        let leaf = path.rsplit('.').next().unwrap();
        let depth = path.matches('.').count();
        let at = lines.iter().position(|l| {
            let t = l.trim_start().trim_start_matches("- ");
            l.len() - l.trim_start().len() >= 2 * depth && t.starts_with(&format!("{leaf}:"))
        });
        let Some(at) = at else {
            panic!("default YAML lacks key {path}")
        };
        // The key, or the group of keys it belongs to, is introduced by a comment.
        let documented = lines[..at]
            .iter()
            .rev()
            .take_while(|l| !l.trim().is_empty())
            .any(|l| l.trim_start().starts_with('#'));
        assert!(documented, "key {path} has no comment above it");
    }
}

#[test]
fn empty_file_means_all_defaults() {
    assert_eq!(parse("").unwrap(), Config::default());
    assert_eq!(parse("# nothing\n\n").unwrap(), Config::default());
}

#[test]
fn a_file_needs_only_the_keys_that_differ() {
    let cfg = parse("pcscf: {ipsec: {mode: off}}\n").unwrap();
    assert_eq!(cfg.pcscf.ipsec.mode, IpsecMode::Off);
    let mut expected = Config::default();
    expected.pcscf.ipsec.mode = IpsecMode::Off;
    assert_eq!(cfg, expected);
}

#[test]
fn misspelled_key_is_refused_with_its_name_and_line() {
    let text = "network:\n  mcc: \"001\"\npcscf:\n  listen: 127.0.0.1:5060\n  port_cc: 5100\n";
    let err = parse(text).unwrap_err().to_string();
    assert!(err.contains("port_cc"), "{err}");
    assert!(err.contains("lab.yaml"), "{err}");
    assert!(err.contains("line 5"), "line not named: {err}");
}

#[test]
fn bad_address_is_refused() {
    let err = parse("hss:\n  listen: 127.0.0.1:99999\n")
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("line 2") && err.contains("socket address"),
        "{err}"
    );
}

#[test]
fn wrong_type_is_refused() {
    assert!(parse("scscf:\n  auth_vectors: many\n").is_err());
    assert!(parse("pcscf:\n  ipsec:\n    mode: sometimes\n").is_err());
}

#[test]
fn equal_protected_ports_are_refused() {
    let err = parse("pcscf: {port_c: 5100, port_s: 5100}\n")
        .unwrap_err()
        .to_string();
    assert!(err.contains("port_c"), "{err}");
}

#[test]
fn debug_output_redacts_trunk_password_and_api_token() {
    let cfg = parse(
        "scscf: {breakout: 'sip:trunk.example.net', breakout_username: lab, \
         breakout_password: hunter2-trunk}\nweb: {token: s3cret-api-token}\n",
    )
    .unwrap();
    let shown = format!("{cfg:?}");
    assert!(!shown.contains("hunter2-trunk"), "{shown}");
    assert!(!shown.contains("s3cret-api-token"), "{shown}");
    assert!(shown.contains("<redacted>"));
    let password = cfg.scscf.breakout_password.as_ref().map(Secret::expose);
    assert_eq!(password, Some("hunter2-trunk"));
    assert_eq!(
        cfg.web.token.as_ref().map(String::from).as_deref(),
        Some("s3cret-api-token")
    );
}
