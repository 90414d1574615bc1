//! A scripted HTTP/1.1 server on loopback for the odd cases: each request gets the next
//! scripted reply (token requests and Graph requests have separate scripts) and is recorded
//! with its arrival time (tokio's clock, so paused-time tests can assert waits).

#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

use entra_sync_core::ports::Secret;
use entra_sync_graph::GraphConfig;
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::time::Instant;
use url::Url;

pub const CLIENT_ID: &str = "11111111-2222-3333-4444-555555555555";
pub const CLIENT_SECRET: &str = "SUPER-SECRET-VALUE-do-not-log";

#[derive(Clone, Debug)]
pub struct Reply {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: String,
    /// Close the connection without answering.
    pub drop: bool,
}

impl Reply {
    pub fn json(status: u16, body: Value) -> Self {
        Self {
            status,
            headers: vec![("content-type".into(), "application/json".into())],
            body: body.to_string(),
            drop: false,
        }
    }

    pub fn raw(status: u16, body: &str) -> Self {
        Self {
            status,
            headers: vec![("content-type".into(), "application/json".into())],
            body: body.into(),
            drop: false,
        }
    }

    pub fn header(mut self, name: &str, value: &str) -> Self {
        self.headers.push((name.into(), value.into()));
        self
    }

    pub fn drop_connection() -> Self {
        Self {
            status: 0,
            headers: Vec::new(),
            body: String::new(),
            drop: true,
        }
    }

    pub fn token(access_token: &str, expires_in: u64) -> Self {
        Self::json(
            200,
            json!({"token_type": "Bearer", "expires_in": expires_in,
                   "ext_expires_in": expires_in, "access_token": access_token}),
        )
    }

    /// A Graph error envelope.
    pub fn graph_error(status: u16, code: &str) -> Self {
        Self::json(
            status,
            json!({"error": {"code": code, "message": "scripted",
                "innerError": {"date": "2025-01-01T00:00:00", "request-id": "req-1",
                               "client-request-id": "c"}}}),
        )
        .header("request-id", "req-1")
    }

    /// A login error body as Entra sends it.
    pub fn token_error(status: u16, error: &str, code: u64) -> Self {
        Self::json(
            status,
            json!({"error": error,
                   "error_description": format!("AADSTS{code}: scripted. Trace ID: t Correlation ID: c Timestamp: 2025-01-01 00:00:00Z"),
                   "error_codes": [code], "timestamp": "2025-01-01 00:00:00Z",
                   "trace_id": "t", "correlation_id": "c",
                   "error_uri": format!("https://login.microsoftonline.com/error?code={code}")}),
        )
    }
}

#[derive(Clone, Debug)]
pub struct Recorded {
    pub at: Instant,
    pub method: String,
    /// Path and query, as sent.
    pub target: String,
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl Recorded {
    pub fn is_token(&self) -> bool {
        self.target.ends_with("/oauth2/v2.0/token")
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

#[derive(Default)]
struct Script {
    token: VecDeque<Reply>,
    graph: VecDeque<Reply>,
    tokens_issued: u32,
    log: Vec<Recorded>,
}

#[derive(Clone)]
pub struct FakeServer {
    pub base: String,
    pub port: u16,
    script: Arc<Mutex<Script>>,
}

impl FakeServer {
    pub async fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let script = Arc::new(Mutex::new(Script::default()));
        let shared = Arc::clone(&script);
        tokio::spawn(async move {
            while let Ok((socket, _)) = listener.accept().await {
                tokio::spawn(serve(socket, Arc::clone(&shared)));
            }
        });
        Self {
            base: format!("http://127.0.0.1:{port}"),
            port,
            script,
        }
    }

    /// Graph and login both on this server; the default retry policy.
    pub fn config(&self) -> GraphConfig {
        GraphConfig::new(
            Url::parse(&self.base).unwrap(),
            Url::parse(&self.base).unwrap(),
            CLIENT_ID,
            Secret::new(CLIENT_SECRET),
        )
    }

    pub fn push_graph(&self, reply: Reply) {
        self.script.lock().unwrap().graph.push_back(reply);
    }

    pub fn push_token(&self, reply: Reply) {
        self.script.lock().unwrap().token.push_back(reply);
    }

    pub fn requests(&self) -> Vec<Recorded> {
        self.script.lock().unwrap().log.clone()
    }

    pub fn graph_requests(&self) -> Vec<Recorded> {
        self.requests()
            .into_iter()
            .filter(|r| !r.is_token())
            .collect()
    }

    pub fn token_requests(&self) -> Vec<Recorded> {
        self.requests()
            .into_iter()
            .filter(Recorded::is_token)
            .collect()
    }

    /// A users page body with the given ids and link.
    pub fn users_page(&self, ids: &[&str], next: Option<&str>, delta: Option<&str>) -> Reply {
        let mut body = json!({
            "@odata.context": format!("{}/v1.0/$metadata#users", self.base),
            "value": ids.iter().map(|id| json!({"id": id, "displayName": format!("User {id}"),
                "accountEnabled": true})).collect::<Vec<_>>(),
        });
        if let Some(next) = next {
            body["@odata.nextLink"] = json!(format!("{}{next}", self.base));
        }
        if let Some(delta) = delta {
            body["@odata.deltaLink"] = json!(format!("{}{delta}", self.base));
        }
        Reply::json(200, body).header("request-id", "req-ok")
    }
}

async fn serve(mut socket: TcpStream, script: Arc<Mutex<Script>>) {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    let header_end = loop {
        if let Some(pos) = find(&buf, b"\r\n\r\n") {
            break pos;
        }
        match socket.read(&mut chunk).await {
            Ok(0) | Err(_) => return,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
    };
    let head = String::from_utf8_lossy(&buf[..header_end]).to_string();
    let mut lines = head.split("\r\n");
    let request_line = lines.next().unwrap_or_default();
    let mut parts = request_line.split(' ');
    let method = parts.next().unwrap_or_default().to_string();
    let target = parts.next().unwrap_or_default().to_string();
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    let length: usize = headers
        .iter()
        .find(|(k, _)| k == "content-length")
        .and_then(|(_, v)| v.parse().ok())
        .unwrap_or(0);
    let mut body = buf[header_end + 4..].to_vec();
    while body.len() < length {
        match socket.read(&mut chunk).await {
            Ok(0) | Err(_) => return,
            Ok(n) => body.extend_from_slice(&chunk[..n]),
        }
    }
    let recorded = Recorded {
        at: Instant::now(),
        method,
        target,
        headers,
        body: String::from_utf8_lossy(&body).to_string(),
    };
    let reply = {
        let mut script = script.lock().unwrap();
        let reply = if recorded.is_token() {
            match script.token.pop_front() {
                Some(reply) => reply,
                None => {
                    script.tokens_issued += 1;
                    Reply::token(&format!("token-{}", script.tokens_issued), 3599)
                }
            }
        } else {
            script
                .graph
                .pop_front()
                .unwrap_or_else(|| Reply::graph_error(418, "scriptExhausted"))
        };
        script.log.push(recorded);
        reply
    };
    if reply.drop {
        return;
    }
    let mut out = format!("HTTP/1.1 {} Scripted\r\n", reply.status);
    for (k, v) in &reply.headers {
        out.push_str(&format!("{k}: {v}\r\n"));
    }
    out.push_str(&format!(
        "content-length: {}\r\nconnection: close\r\n\r\n",
        reply.body.len()
    ));
    out.push_str(&reply.body);
    let _ = socket.write_all(out.as_bytes()).await;
    let _ = socket.shutdown().await;
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}
