//! moto's server mode, which scripts/test.sh installs (in .venv), starts on a free loopback port
//! and stops again; it passes the address in `ENTRA_SYNC_MOTO_URL`. A test that needs moto and
//! runs without it fails, saying how to get it: nothing is skipped.

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
             and sets {MOTO_URL_VAR}), or start `.venv/bin/moto_server -H 127.0.0.1 -p PORT` \
             yourself and export {MOTO_URL_VAR}=http://127.0.0.1:PORT"
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
