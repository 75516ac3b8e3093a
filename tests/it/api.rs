//! The REST API of a running `imslab up`, and the CLI writing to the same store meanwhile.

use std::net::SocketAddr;
use std::time::Duration;

use crate::support::{Lab, Ports, http, stop_cleanly, wait_listening};

#[test]
fn api_and_cli_provision_the_same_running_lab() {
    let lab = Lab::new();
    let ports = Ports::new();
    lab.write("lab.yaml", &ports.yaml());
    let mut child = lab.spawn(&["--config", "lab.yaml", "up"]);
    assert!(wait_listening(ports.web, Duration::from_secs(10)).is_some());

    let body = r#"{"imsi":"001010000000001","k":"465b5ce8b199b49faa5f0a2ee238a6bc","opc":"cd63cb71954a9f4e48a5994e37a02baf"}"#;
    let (status, resp) = http(ports.web, "POST", "/api/v1/subscribers", body);
    assert_eq!(status, 201, "{resp}");
    assert!(!resp.contains("465b5ce8"), "K is write-only: {resp}");

    // The CLI sees the API's subscriber and adds one the API then sees: one store, live.
    let list = lab.run(&["--config", "lab.yaml", "subscriber", "list"]);
    assert!(String::from_utf8_lossy(&list.stdout).contains("001010000000001"));
    let add = lab.run(&[
        "--config",
        "lab.yaml",
        "subscriber",
        "add",
        "--imsi",
        "001010000000002",
        "--k",
        "465b5ce8b199b49faa5f0a2ee238a6bc",
        "--opc",
        "cd63cb71954a9f4e48a5994e37a02baf",
    ]);
    assert!(
        add.status.success(),
        "{}",
        String::from_utf8_lossy(&add.stderr)
    );
    let (status, resp) = http(ports.web, "GET", "/api/v1/subscribers/001010000000002", "");
    assert_eq!(status, 200, "{resp}");

    let (status, resp) = http(ports.web, "GET", "/api/v1/openapi.json", "");
    assert_eq!(status, 200);
    assert!(resp.contains("\"openapi\""));

    stop_cleanly(&mut child);
}

#[test]
fn api_on_a_public_address_without_a_token_is_refused() {
    let lab = Lab::new();
    let ports = Ports {
        web: SocketAddr::from(([0, 0, 0, 0], 0)),
        ..Ports::new()
    };
    lab.write("lab.yaml", &ports.yaml());
    let out = lab.run(&["--config", "lab.yaml", "up"]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("web.token"), "{err}");
}
