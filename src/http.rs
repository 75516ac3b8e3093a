//! A minimal HTTP/1.1 client for the CLI commands that talk to a running lab's REST API.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use anyhow::Context;

/// Largest answer read.
const MAX_BODY: u64 = 16 << 20;

/// GETs `path` from the lab's web listener; fails with the API's error message on a non-2xx.
pub(crate) fn get(addr: SocketAddr, path: &str, token: Option<&str>) -> anyhow::Result<String> {
    request(addr, "GET", path, token)
}

/// POSTs an empty body to `path`; fails with the API's error message on a non-2xx.
pub(crate) fn post(addr: SocketAddr, path: &str, token: Option<&str>) -> anyhow::Result<String> {
    request(addr, "POST", path, token)
}

fn request(
    addr: SocketAddr,
    method: &str,
    path: &str,
    token: Option<&str>,
) -> anyhow::Result<String> {
    let mut stream = TcpStream::connect_timeout(&addr, Duration::from_secs(3)).with_context(|| {
        format!("cannot reach the lab's REST API at {addr}: is `imslab up` (or `imslab web`) running?")
    })?;
    stream.set_read_timeout(Some(Duration::from_secs(30)))?;
    let auth = token
        .map(|t| format!("Authorization: Bearer {t}\r\n"))
        .unwrap_or_default();
    write!(
        stream,
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n{auth}Content-Length: 0\r\n\r\n"
    )?;
    let mut raw = Vec::new();
    stream.take(MAX_BODY).read_to_end(&mut raw)?;
    let text = String::from_utf8_lossy(&raw);
    let (head, body) = text
        .split_once("\r\n\r\n")
        .context("malformed HTTP answer")?;
    let status: u16 = head
        .get(9..12)
        .and_then(|s| s.parse().ok())
        .context("malformed HTTP status")?;
    let body = if head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked")
    {
        dechunk(body)
    } else {
        body.to_owned()
    };
    if !(200..300).contains(&status) {
        let msg = serde_json::from_str::<serde_json::Value>(&body)
            .ok()
            .and_then(|v| v["error"].as_str().map(str::to_owned))
            .unwrap_or(body);
        anyhow::bail!("the lab answered {status}: {msg}");
    }
    Ok(body)
}

/// Joins a chunked body (RFC 9112 §7.1).
fn dechunk(mut s: &str) -> String {
    let mut out = String::new();
    while let Some((size, rest)) = s.split_once("\r\n") {
        let Ok(n) = usize::from_str_radix(size.trim(), 16) else {
            break;
        };
        let (Some(chunk), Some(after)) = (rest.get(..n), rest.get(n..)) else {
            break;
        };
        if n == 0 {
            break;
        }
        out.push_str(chunk);
        s = after.trim_start_matches("\r\n");
    }
    out
}
