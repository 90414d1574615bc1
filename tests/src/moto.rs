//! moto's server mode, which scripts/test.sh installs (in .venv), starts on a free loopback port
//! and stops again; it passes the address in `ENTRA_SYNC_MOTO_URL`. A test that needs moto and
//! runs without it fails, saying how to get it: nothing is skipped.
//!
//! [`EnforcingMoto`] is a server of one test's own, started from .venv with IAM enforcement
//! (the IAM policy test).

use std::sync::atomic::{AtomicU32, Ordering};

/// The variable scripts/test.sh sets.
pub const MOTO_URL_VAR: &str = "ENTRA_SYNC_MOTO_URL";

/// moto's address, e.g. `http://127.0.0.1:40123`. Panics with instructions when unset, and
/// refuses anything but a loopback address (tests never leave the machine).
pub fn endpoint() -> String {
    let url = std::env::var(MOTO_URL_VAR).unwrap_or_else(|_| {
        panic!(
            "{MOTO_URL_VAR} is not set: the AWS adapter tests need moto's server mode. Run \
             scripts/test.sh (it installs moto into .venv, starts it on a free loopback port \
             and sets {MOTO_URL_VAR}), or start `.venv/bin/python scripts/moto_server.py -H 127.0.0.1 -p \
             PORT` yourself and export {MOTO_URL_VAR}=http://127.0.0.1:PORT"
        )
    });
    assert!(
        url.starts_with("http://127.0.0.1:") || url.starts_with("http://localhost:"),
        "{MOTO_URL_VAR}={url} is not a loopback address"
    );
    url
}

/// A name no other test (or earlier run against the same moto) uses: tables and queues are
/// per test, so tests run in parallel against one moto without seeing each other.
pub fn unique_name(prefix: &str) -> String {
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    format!(
        "{prefix}-{}-{}-{nanos}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    )
}

/// A moto server of one test's own, started from the test virtualenv on a free loopback port
/// with IAM enforcement from its first request (moto's `INITIAL_NO_AUTH_ACTION_COUNT=0`): every
/// request must be signed by a known access key, and its action allowed by that key's user.
/// The IAM tests need a server of their own because enforcement is global to a server. It is
/// stopped when dropped.
pub struct EnforcingMoto {
    child: std::process::Child,
    port: u16,
    log: std::path::PathBuf,
}

impl EnforcingMoto {
    /// Start it and wait (bounded) until it answers; panics with its log if it does not.
    pub fn start() -> Self {
        // moto with DynamoDB requests one at a time (conditional writes atomic, as in
        // DynamoDB): scripts/moto_server.py.
        let program = crate::template::venv_program("python");
        let script = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("..")
            .join("scripts")
            .join("moto_server.py");
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map(|a| a.port())
            .expect("a free loopback port");
        let log = std::env::temp_dir().join(format!(
            "entra-sync-moto-iam-{}-{port}.log",
            std::process::id()
        ));
        let out = std::fs::File::create(&log).expect("creating the moto log");
        let child = std::process::Command::new(program)
            .arg(script)
            .args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .env("INITIAL_NO_AUTH_ACTION_COUNT", "0")
            .stdout(out.try_clone().expect("the moto log"))
            .stderr(out)
            .spawn()
            .expect("starting moto_server");
        let mut moto = EnforcingMoto { child, port, log };
        for _ in 0..300 {
            if let Ok(Some(status)) = moto.child.try_wait() {
                panic!("moto_server exited ({status}):\n{}", moto.log_text());
            }
            if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
                return moto;
            }
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
        let text = moto.log_text();
        let _ = moto.child.kill();
        panic!("moto_server did not start on port {port}:\n{text}");
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Turn IAM enforcement on (every request checked from now on) or off (set-up: moto
    /// accepts any request without looking at its signature), through `/moto-api/reset-auth`.
    pub fn enforce(&self, on: bool) {
        use std::io::{Read, Write};
        let body = if on { "0" } else { "inf" };
        let mut stream =
            std::net::TcpStream::connect(("127.0.0.1", self.port)).expect("connecting to moto");
        write!(
            stream,
            "POST /moto-api/reset-auth HTTP/1.1\r\nHost: 127.0.0.1:{}\r\n\
             Content-Type: text/plain\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            self.port,
            body.len()
        )
        .expect("writing to moto");
        let mut answer = String::new();
        stream.read_to_string(&mut answer).expect("reading moto");
        assert!(
            answer.starts_with("HTTP/1.1 200") || answer.starts_with("HTTP/1.0 200"),
            "moto refused reset-auth: {answer}"
        );
    }
}

impl Drop for EnforcingMoto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_file(&self.log);
    }
}
