//! JUnit XML for CI: one test suite per scenario, one test case per step run.

use std::fmt::Write as _;
use std::path::Path;

use super::ReplayReport;
use crate::Error;

fn esc(s: &str) -> String {
    let mut o = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => o.push_str("&amp;"),
            '<' => o.push_str("&lt;"),
            '>' => o.push_str("&gt;"),
            '"' => o.push_str("&quot;"),
            '\'' => o.push_str("&apos;"),
            c if (c as u32) < 0x20 && !matches!(c, '\n' | '\r' | '\t') => {}
            c => o.push(c),
        }
    }
    o
}

/// The report as JUnit XML.
pub fn render(r: &ReplayReport) -> String {
    let failures = r.steps.iter().filter(|s| !s.passed).count();
    let mut x = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
    let _ = writeln!(
        x,
        "<testsuites tests=\"{}\" failures=\"{failures}\" time=\"{:.3}\">",
        r.steps.len(),
        r.seconds
    );
    let _ = writeln!(
        x,
        "  <testsuite name=\"{}\" tests=\"{}\" failures=\"{failures}\" time=\"{:.3}\">",
        esc(&r.name),
        r.steps.len(),
        r.seconds
    );
    for s in &r.steps {
        let _ = write!(
            x,
            "    <testcase classname=\"{}\" name=\"{} (line {})\" time=\"{:.3}\"",
            esc(&r.name),
            esc(&s.label),
            s.line,
            s.seconds
        );
        match &s.message {
            Some(m) if !s.passed => {
                let _ = writeln!(
                    x,
                    ">\n      <failure message=\"{}\">{}</failure>\n    </testcase>",
                    esc(m),
                    esc(m)
                );
            }
            _ => x.push_str("/>\n"),
        }
    }
    let _ = writeln!(x, "    <system-out>{}</system-out>", esc(&r.log.join("\n")));
    x.push_str("  </testsuite>\n</testsuites>\n");
    x
}

/// Writes the report to `path`.
pub fn write(path: &Path, r: &ReplayReport) -> Result<(), Error> {
    std::fs::write(path, render(r)).map_err(|source| Error::Write {
        path: path.to_owned(),
        source,
    })
}
