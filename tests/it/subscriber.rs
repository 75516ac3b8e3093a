//! `imslab subscriber …` against the real binary and its SQLite store.

use crate::support::Lab;

const K: &str = "465b5ce8b199b49faa5f0a2ee238a6bc";
const OPC: &str = "cd63cb71954a9f4e48a5994e37a02baf";

fn ok(out: &std::process::Output) -> String {
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn err(out: &std::process::Output) -> String {
    assert!(
        !out.status.success(),
        "expected failure: {}",
        String::from_utf8_lossy(&out.stdout)
    );
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn added_subscriber_is_listed_without_its_keys() {
    let lab = Lab::new();
    let add = [
        "subscriber",
        "add",
        "--imsi",
        "001010000000001",
        "--msisdn",
        "15550001",
    ];
    ok(&lab.run(&[&add[..], &["--k", K, "--opc", OPC]].concat()));
    let list = ok(&lab.run(&["subscriber", "list"]));
    assert!(
        list.contains("001010000000001") && list.contains("tel:+15550001"),
        "{list}"
    );
    let show = ok(&lab.run(&["subscriber", "show", "001010000000001"]));
    for shown in [&list, &show] {
        assert!(
            !shown.contains(K) && !shown.contains(OPC),
            "keys leaked: {shown}"
        );
    }
    let export = ok(&lab.run(&["subscriber", "export"]));
    assert!(
        !export.contains(K),
        "export shows keys only with --with-keys"
    );
    let export = ok(&lab.run(&["subscriber", "export", "--with-keys"]));
    assert!(export.contains(K) && export.contains(OPC));
    assert!(lab.path().join("imslab-data/imslab.db").is_file());
}

#[test]
fn bad_input_is_refused_with_every_problem_named() {
    let lab = Lab::new();
    let e = err(&lab.run(&[
        "subscriber",
        "add",
        "--imsi",
        "0010",
        "--k",
        "zz",
        "--opc",
        OPC,
    ]));
    assert!(
        e.contains("imsi: IMSI must be 6 to 15") && e.contains("k: must be 32 hex"),
        "{e}"
    );
    ok(&lab.run(&[
        "subscriber",
        "add",
        "--imsi",
        "001010000000001",
        "--k",
        K,
        "--opc",
        OPC,
    ]));
    let e = err(&lab.run(&[
        "subscriber",
        "add",
        "--imsi",
        "001010000000001",
        "--k",
        K,
        "--opc",
        OPC,
    ]));
    assert!(e.contains("already exists"), "{e}");
}

#[test]
fn import_with_one_bad_line_changes_nothing() {
    let lab = Lab::new();
    lab.write(
        "subs.csv",
        &format!("imsi,k,opc\n001010000000002,{K},{OPC}\n001010000000003,xx,{OPC}\n"),
    );
    let e = err(&lab.run(&["subscriber", "import", "subs.csv"]));
    assert!(e.contains("line 3") && e.contains("001010000000003"), "{e}");
    let list = ok(&lab.run(&["subscriber", "list"]));
    assert!(!list.contains("001010000000002"), "partial import: {list}");
    lab.write(
        "good.csv",
        &format!("imsi,k,opc\n001010000000002,{K},{OPC}\n"),
    );
    ok(&lab.run(&["subscriber", "import", "good.csv"]));
    assert!(ok(&lab.run(&["subscriber", "list"])).contains("001010000000002"));
}

#[test]
fn update_and_delete_take_effect() {
    let lab = Lab::new();
    ok(&lab.run(&[
        "subscriber",
        "add",
        "--imsi",
        "001010000000001",
        "--k",
        K,
        "--opc",
        OPC,
    ]));
    ok(&lab.run(&[
        "subscriber",
        "update",
        "--imsi",
        "001010000000001",
        "--msisdn",
        "15559999",
    ]));
    assert!(ok(&lab.run(&["subscriber", "show", "001010000000001"])).contains("15559999"));
    ok(&lab.run(&["subscriber", "delete", "001010000000001"]));
    let e = err(&lab.run(&["subscriber", "show", "001010000000001"]));
    assert!(e.contains("no subscriber"), "{e}");
}
