//! The independent Python Cx client (tests/peer/cx_client.py) against the running HSS.

use std::process::Command;

use crate::support::*;

async fn run(backend: &str) {
    let (store, _db) = store(backend, "python_peer").await;
    provision(&store, 1).await;
    let (hss, addr, _events) = start_hss(store).await;
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/peer/cx_client.py");
    let args = [
        script.to_owned(),
        "--port".into(),
        addr.port().to_string(),
        "--realm".into(),
        REALM.into(),
        "--impi".into(),
        impi(1).to_string(),
        "--impu".into(),
        impu(1).to_string(),
        "--k".into(),
        K.into(),
        "--opc".into(),
        OPC.into(),
    ];
    let out = tokio::task::spawn_blocking(move || Command::new("python3").args(&args).output())
        .await
        .unwrap()
        .unwrap_or_else(|e| panic!("python3 is needed for the independent Cx client: {e}"));
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "the Python Cx client failed (it needs the PyPI package `cryptography`):\n{stdout}\n{stderr}"
    );
    assert!(stdout.contains("all checks passed"), "{stdout}");
    assert!(
        stdout.contains("MAC-A in AUTN verifies with our MILENAGE"),
        "{stdout}"
    );
    hss.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_client_registers_and_verifies_the_vector_on_sqlite() {
    run("sqlite").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_client_registers_and_verifies_the_vector_on_postgres() {
    run("postgres").await;
}
