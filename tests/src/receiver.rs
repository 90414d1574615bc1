//! An outbound webhook receiver on 127.0.0.1 for the AWS tests: records every POST (headers
//! and body) and answers with the status it is set to.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU16, Ordering};
use std::sync::{Arc, Mutex};

/// One POST as received.
#[derive(Clone, Debug)]
pub struct Received {
    pub headers: HashMap<String, String>,
    pub body: Vec<u8>,
    pub answered: u16,
}

/// The receiver's state: what it answers and what it got.
#[derive(Clone)]
pub struct Receiver {
    answer: Arc<AtomicU16>,
    got: Arc<Mutex<Vec<Received>>>,
    /// `http://127.0.0.1:<port>/hook`.
    pub url: String,
}

impl Receiver {
    /// Listen on a free loopback port, answering `status` until told otherwise.
    pub async fn start(status: u16) -> Self {
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", 0))
            .await
            .expect("bind a loopback port");
        let port = listener.local_addr().expect("local address").port();
        let r = Receiver {
            answer: Arc::new(AtomicU16::new(status)),
            got: Arc::new(Mutex::new(Vec::new())),
            url: format!("http://127.0.0.1:{port}/hook"),
        };
        let state = r.clone();
        let app = axum::Router::new().route(
            "/hook",
            axum::routing::post(
                move |headers: axum::http::HeaderMap, body: axum::body::Bytes| {
                    let state = state.clone();
                    async move {
                        let answered = state.answer.load(Ordering::SeqCst);
                        let headers = headers
                            .iter()
                            .filter_map(|(k, v)| Some((k.to_string(), v.to_str().ok()?.to_owned())))
                            .collect();
                        state
                            .got
                            .lock()
                            .unwrap_or_else(std::sync::PoisonError::into_inner)
                            .push(Received {
                                headers,
                                body: body.to_vec(),
                                answered,
                            });
                        axum::http::StatusCode::from_u16(answered)
                            .unwrap_or(axum::http::StatusCode::INTERNAL_SERVER_ERROR)
                    }
                },
            ),
        );
        tokio::spawn(async move { axum::serve(listener, app).await });
        r
    }

    /// Answer `status` from now on.
    pub fn answer(&self, status: u16) {
        self.answer.store(status, Ordering::SeqCst);
    }

    /// Every POST so far, in order.
    pub fn got(&self) -> Vec<Received> {
        self.got
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }
}
