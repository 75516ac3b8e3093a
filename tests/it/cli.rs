//! The command line and `imslab up` as a new user meets them.

use std::io::Read;
use std::net::SocketAddr;
use std::time::Duration;

use crate::support::{Lab, Ports, stop_cleanly, terminate, wait_exit, wait_listening};

fn stderr(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn default_config_round_trips_through_config_check() {
    let lab = Lab::new();
    let out = lab.run(&["config", "default"]);
    assert!(out.status.success());
    let yaml = String::from_utf8(out.stdout).unwrap();
    assert!(
        yaml.contains("# "),
        "the default configuration is commented"
    );
    lab.write("lab.yaml", &yaml);
    let check = lab.run(&["config", "check", "lab.yaml"]);
    assert!(check.status.success(), "{}", stderr(&check));
}

#[test]
fn config_check_names_a_misspelled_key_and_its_line() {
    let lab = Lab::new();
    let yaml = String::from_utf8(lab.run(&["config", "default"]).stdout).unwrap();
    let line = yaml
        .lines()
        .position(|l| l.trim_start().starts_with("port_c:"))
        .unwrap()
        + 1;
    lab.write("bad.yaml", &yaml.replacen("port_c:", "port_cc:", 1));
    let out = lab.run(&["config", "check", "bad.yaml"]);
    assert!(!out.status.success());
    let err = stderr(&out);
    assert!(err.contains("port_cc"), "{err}");
    assert!(
        err.contains(&format!("line {line}")),
        "line {line} not named: {err}"
    );
}

#[test]
fn every_subcommand_has_help() {
    let lab = Lab::new();
    for cmd in [
        "up",
        "hss",
        "icscf",
        "scscf",
        "pcscf",
        "pgw",
        "web",
        "subscriber",
        "replay",
        "config",
    ] {
        let out = lab.run(&[cmd, "--help"]);
        assert!(out.status.success(), "{cmd} --help failed");
        assert!(
            String::from_utf8_lossy(&out.stdout).contains("Usage"),
            "{cmd} --help"
        );
    }
}

/// The acceptance case: `imslab up` with no configuration in an empty directory serves on the
/// default ports. The only test that uses them.
#[test]
fn up_in_an_empty_directory_serves_defaults_until_sigterm_then_exits_zero() {
    let lab = Lab::new();
    let web = SocketAddr::from(([127, 0, 0, 1], 8080));
    let mut child = lab.spawn(&["up"]);
    let ready = wait_listening(web, Duration::from_secs(10));
    assert!(ready.is_some(), "imslab up did not listen on {web}");
    assert!(
        lab.path().join("imslab-data").is_dir(),
        "data directory created"
    );
    terminate(&child);
    let status = wait_exit(&mut child, Duration::from_secs(5)).expect("exits after SIGTERM");
    assert!(status.success(), "exit status {status}");
    let mut err = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut err)
        .unwrap();
    assert!(
        err.contains(&web.to_string()),
        "banner lists the web address: {err}"
    );
}

#[test]
fn second_up_fails_fast_naming_the_port_in_use() {
    let lab = Lab::new();
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap();
    let ports = Ports {
        web: addr,
        ..Ports::new()
    };
    lab.write("lab.yaml", &ports.yaml());
    let mut child = lab.spawn(&["--config", "lab.yaml", "up"]);
    let status = wait_exit(&mut child, Duration::from_secs(5)).expect("fails fast");
    assert!(!status.success());
    let mut err = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut err)
        .unwrap();
    assert!(
        err.contains(&addr.to_string()) && err.contains("in use"),
        "{err}"
    );
}

#[test]
fn data_dir_and_log_filter_come_from_the_environment() {
    let lab = Lab::new();
    let ports = Ports::new();
    let web = ports.web;
    lab.write("lab.yaml", &ports.yaml());
    let mut child = lab
        .command(&["--config", "lab.yaml", "up"])
        .env("IMSLAB_DATA_DIR", lab.path().join("elsewhere"))
        .env("IMSLAB_LOG", "not a valid filter ===")
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let status = wait_exit(&mut child, Duration::from_secs(5)).expect("exits");
    assert!(!status.success(), "an invalid IMSLAB_LOG is refused");
    let mut err = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut err)
        .unwrap();
    assert!(err.contains("log filter"), "{err}");

    let mut child = lab
        .command(&["--config", "lab.yaml", "up"])
        .env("IMSLAB_DATA_DIR", lab.path().join("elsewhere"))
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    assert!(wait_listening(web, Duration::from_secs(10)).is_some());
    assert!(lab.path().join("elsewhere").is_dir());
    stop_cleanly(&mut child);
}
