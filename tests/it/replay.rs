//! `imslab replay --spawn` with the scenario library: the soft UE (USIM, sec-agree, userspace
//! ESP) registers through a lab the command starts, and its capture decodes in tshark.

use crate::support::{Lab, Ports};

fn library(name: &str) -> String {
    format!("{}/scenarios/library/{name}", env!("CARGO_MANIFEST_DIR"))
}

#[test]
fn replay_spawns_a_lab_and_runs_library_scenarios() {
    let lab = Lab::new();
    let yaml = Ports::new().yaml();
    lab.write("ipsec.yaml", &yaml);
    let plain = yaml.replacen("\npcscf:\n", "\npcscf:\n  ipsec: {mode: off}\n", 1);
    assert!(plain.contains("ipsec: {mode: off}"), "{plain}");
    lab.write("plain.yaml", &plain);
    let csv = library("subscribers.csv");
    let import = lab.run(&["--config", "ipsec.yaml", "subscriber", "import", &csv]);
    assert!(
        import.status.success(),
        "{}",
        String::from_utf8_lossy(&import.stderr)
    );
    for (config, scenario) in [
        ("ipsec.yaml", "aka-ipsec-sha1-aes-cbc.yaml"),
        ("ipsec.yaml", "aka-ipsec-md5-null.yaml"),
        ("plain.yaml", "aka-no-ipsec.yaml"),
        ("plain.yaml", "md5-digest.yaml"),
        // Calls and messages take the whole chain P → S → I → S → P of `imslab up`.
        ("plain.yaml", "call-basic.yaml"),
        ("plain.yaml", "message-text.yaml"),
        ("ipsec.yaml", "call-basic.yaml"),
    ] {
        let file = library(scenario);
        let out = lab.run(&[
            "--config", config, "replay", "--spawn", "--pcap", "run.pcap", "--junit", "run.xml",
            &file,
        ]);
        let log = String::from_utf8_lossy(&out.stdout);
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "{scenario}:\n{log}\n{err}");
        assert!(log.contains("PASSED"), "{scenario}: {log}");
        let junit = std::fs::read_to_string(lab.path().join("run.xml")).unwrap();
        assert!(
            junit.contains("<testsuite") && junit.contains("failures=\"0\""),
            "{junit}"
        );
        let pcap = lab.path().join("run.pcap");
        let packets = imslab_test_support::tshark_check(&pcap, &[], &["sip.Method"]);
        assert!(
            packets.iter().any(|p| p.fields[0] == "REGISTER"),
            "{scenario}: {packets:?}"
        );
    }
}

#[test]
fn replay_of_an_invalid_file_names_the_line_and_exits_2() {
    let lab = Lab::new();
    lab.write("lab.yaml", &Ports::new().yaml());
    lab.write(
        "bad.yaml",
        "name: x\nues:\n  ue:\n    imsi: \"001010000000101\"\nsteps:\n  - regster: {ue: ue}\n",
    );
    let out = lab.run(&["--config", "lab.yaml", "replay", "bad.yaml"]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("line 6") || err.contains(":6:"), "{err}");
}
