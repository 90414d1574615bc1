//! The admin API in `entra-sync serve`: the `entra-sync-http` API router on the embedded
//! adapters, behind a bearer API key.
//!
//! The key is 32 random bytes, created at the first `serve` of a data directory and printed
//! once; only its SHA-256 digest is kept (`api-key.sha256` in the data directory, readable by
//! its owner only). `entra-sync api-key rotate` replaces it and prints the new one. A key of 256
//! random bits cannot be guessed, so a fast hash is enough (a slow password hash protects keys
//! people choose).
//!
//! "Sync now" requests run in this process: each one runs the local sync of the directory (the
//! same fetch and reconcile as `entra-sync sync`) under the run the API already recorded.

use std::path::PathBuf;
use std::sync::Arc;

use async_trait::async_trait;
use axum::Router;
use entra_sync_core::error::QueueError;
use entra_sync_core::model::AccountId;
use entra_sync_core::outbound::OutboundPolicy;
use entra_sync_core::ports::{DirectoryReader, FetchRequest, FetchRequests, RunStore};
use entra_sync_core::run::{RunStatus, RunUpdate};
use entra_sync_core::services::FetchOptions;
use entra_sync_core::services::sync_now::SyncNowDeps;
use entra_sync_http::api::auth::{ApiKey, Caller};
use entra_sync_http::api::outbound::OutboundApi;
use entra_sync_http::api::{self, ApiState};
use entra_sync_http::connect::ConnectConfig;
use entra_sync_http::console::{self, ConsoleLogin, ConsoleState};
use rand::RngCore;
use tracing::{info, warn};

use crate::runtime::{DataDir, LocalApp, LocalError, SyncSettings};

fn key_file(dir: &DataDir) -> PathBuf {
    dir.root.join("api-key.sha256")
}

fn write_digest(dir: &DataDir, digest: &str) -> Result<(), LocalError> {
    let path = key_file(dir);
    let io = |source| LocalError::DataDir {
        path: path.clone(),
        source,
    };
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, format!("{digest}\n")).map_err(io)?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(0o600)).map_err(io)?;
    }
    std::fs::rename(&tmp, &path).map_err(io)
}

fn new_key() -> (String, ApiKey) {
    let mut random = [0u8; 32];
    rand::rng().fill_bytes(&mut random);
    ApiKey::generate(random)
}

/// The data directory's API key: the stored one, or a new one (returned once, to print).
pub fn api_key(dir: &DataDir) -> Result<(ApiKey, Option<String>), LocalError> {
    let path = key_file(dir);
    match std::fs::read_to_string(&path) {
        Ok(text) => ApiKey::from_digest_hex(&text)
            .map(|k| (k, None))
            .ok_or_else(|| {
                LocalError::Failed(format!(
                    "{} is not an API key digest; run `{}` for a new key",
                    path.display(),
                    crate::cli::Hints::new(&dir.root).command("api-key rotate")
                ))
            }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let (key, auth) = new_key();
            write_digest(dir, &ApiKey::digest_hex(&key))?;
            Ok((auth, Some(key)))
        }
        Err(source) => Err(LocalError::DataDir { path, source }),
    }
}

/// Replace the API key; returns the new key (the old one stops working at the next `serve`).
/// Only in a data directory that holds a store: a mistyped `--data-dir` is refused instead of
/// getting a key nobody's `serve` reads.
pub fn rotate_api_key(dir: &DataDir) -> Result<String, LocalError> {
    dir.require_store()?;
    let (key, _) = new_key();
    write_digest(dir, &ApiKey::digest_hex(&key))?;
    Ok(key)
}

/// "Sync now" in this process: each request runs one local sync in the background.
pub struct LocalSyncs {
    app: LocalApp,
    directory: Arc<dyn DirectoryReader>,
}

impl LocalSyncs {
    pub fn new(app: LocalApp, directory: Arc<dyn DirectoryReader>) -> Self {
        Self { app, directory }
    }
}

#[async_trait]
impl FetchRequests for LocalSyncs {
    async fn request_fetches(
        &self,
        requests: Vec<(FetchRequest, std::time::Duration)>,
    ) -> Result<(), QueueError> {
        for (request, delay) in requests {
            let app = self.app.clone();
            let directory = self.directory.clone();
            tokio::spawn(async move {
                tokio::time::sleep(delay).await;
                let options = FetchOptions {
                    trigger: request.trigger,
                    force_full: request.force_full,
                    run_id: request.run_id.clone(),
                    ..FetchOptions::default()
                };
                let tenant = request.tenant_id.clone();
                match app
                    .sync(
                        directory,
                        &tenant,
                        &options,
                        &SyncSettings::default(),
                        |_| {},
                    )
                    .await
                {
                    Ok(run) => info!(tenant = %tenant, run_id = %run.run_id, "sync now finished"),
                    Err(e) => {
                        warn!(tenant = %tenant, error = %e, "sync now failed");
                        // The recorded run would otherwise stay running (unless the fetch
                        // already finished it, saying why).
                        let unfinished = match &request.run_id {
                            Some(id) => matches!(
                                app.store.get_run(&tenant, id).await,
                                Ok(Some(run)) if !run.is_finished()
                            ),
                            None => false,
                        };
                        if let (true, Some(id)) = (unfinished, &request.run_id) {
                            let finish = RunUpdate::Finish {
                                status: RunStatus::Failed {
                                    error: format!("The sync failed: {e}"),
                                },
                                at: app.clock.now(),
                            };
                            if let Err(e) = app.store.update_run(&tenant, id, &finish).await {
                                warn!(tenant = %tenant, error = %e, "failed sync not recorded");
                            }
                        }
                    }
                }
            });
        }
        Ok(())
    }
}

/// The API's state on a local data directory.
pub fn api_state(
    app: &LocalApp,
    connect: entra_sync_core::services::ConnectDeps,
    config: ConnectConfig,
    directory: Arc<dyn DirectoryReader>,
    actions: entra_sync_core::services::actions::ActionDeps,
    hr_api: Arc<dyn entra_sync_core::webhooks::ports::HrDirectory>,
    key: ApiKey,
) -> ApiState {
    ApiState {
        connect,
        connect_config: Arc::new(config),
        project: app.project_deps(),
        sync: SyncNowDeps {
            connections: app.store.clone(),
            runs: app.store.clone(),
            requests: Arc::new(LocalSyncs::new(app.clone(), directory)),
            clock: app.clock.clone(),
        },
        hr: entra_sync_http::api::hr::HrApi {
            endpoints: crate::hooks_worker::endpoint_deps(app),
            process: crate::hooks_worker::process_deps(app, actions.clone(), hr_api),
        },
        actions,
        // Strict URLs; `serve` replaces it with its own policy (the local test setting).
        outbound: Some(outbound_api(app, OutboundPolicy::default())),
        auth: Arc::new(key),
        console: entra_sync_http::console::ConsoleSessions::in_memory(app.clock.clone()),
    }
}

/// The outbound webhook routes' deps on a data directory (`policy.urls` says whether the
/// local test setting allows http to loopback).
pub fn outbound_api(app: &LocalApp, policy: OutboundPolicy) -> OutboundApi {
    OutboundApi {
        store: app.store.clone(),
        vault: app.vault.clone(),
        resolver: Arc::new(crate::outbound::SystemResolver),
        policy,
        clock: app.clock.clone(),
    }
}

/// The API's routes on a local data directory (to merge before the stack).
pub fn api_routes(
    app: &LocalApp,
    connect: entra_sync_core::services::ConnectDeps,
    config: ConnectConfig,
    directory: Arc<dyn DirectoryReader>,
    actions: entra_sync_core::services::actions::ActionDeps,
    hr_api: Arc<dyn entra_sync_core::webhooks::ports::HrDirectory>,
    key: ApiKey,
) -> Router {
    api::routes(api_state(
        app, connect, config, directory, actions, hr_api, key,
    ))
}

/// The API's routes and the admin console's on the same state (to merge before the stack),
/// with the console's one-time login token (to print as `/console/login?token=<token>`). The
/// console's sessions act for every account, as the API key does; `/console/` opens the
/// account `local`.
pub fn api_and_console_routes(state: ApiState) -> (Router, String) {
    let (login, token) = ConsoleLogin::new(Caller::AllAccounts);
    let console = console::routes(ConsoleState {
        api: state.clone(),
        login: Some(login),
        default_account: AccountId("local".to_owned()),
        // `serve` listens on plain http on this machine.
        secure_cookie: false,
    });
    (api::routes(state).merge(console), token)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    #[tokio::test]
    async fn the_api_on_sqlite_needs_the_key_and_answers_with_it() {
        use axum::body::Body;
        use axum::http::{Request, StatusCode, header};
        use entra_sync_core::ports::Secret;
        use entra_sync_graph::{GraphClient, GraphConfig, GraphTenantDirectory};
        use tower::ServiceExt;
        use url::Url;

        let tmp = tempfile::tempdir().unwrap();
        let dir = DataDir::new(tmp.path());
        let app = LocalApp::open(&dir, &SyncSettings::default()).unwrap();
        let login = Url::parse("https://login.microsoftonline.com").unwrap();
        let graph = GraphClient::new(GraphConfig::new(
            Url::parse("https://graph.microsoft.com").unwrap(),
            login.clone(),
            "app".to_owned(),
            Secret::new("not used"),
        ))
        .unwrap();
        let connect = entra_sync_core::services::ConnectDeps {
            consent_states: app.store.clone(),
            connections: app.store.clone(),
            directory: Arc::new(GraphTenantDirectory(graph.clone())),
            vault: app.vault.clone(),
            clock: app.clock.clone(),
        };
        let config = ConnectConfig {
            login_base_url: login,
            client_id: "app".into(),
            redirect_uri: Some(Url::parse("http://127.0.0.1:8080/connect/callback").unwrap()),
            scope: "https://graph.microsoft.com/.default".into(),
            state_ttl: chrono::Duration::minutes(10),
            return_url: None,
        };
        let (key, shown) = api_key(&dir).unwrap();
        let shown = shown.unwrap();
        let actions = app.actions(Arc::new(graph.clone())).unwrap().deps;
        let routes = entra_sync_http::app(api_routes(
            &app,
            connect,
            config,
            Arc::new(graph),
            actions,
            Arc::new(entra_sync_core::webhooks::memory::MemoryHrDirectory::new()),
            key,
        ));
        let get = |auth: Option<String>| {
            let mut r = Request::get("/v1/accounts/local/connections");
            if let Some(a) = auth {
                r = r.header(header::AUTHORIZATION, a);
            }
            r.body(Body::empty()).unwrap()
        };
        let resp = routes.clone().oneshot(get(None)).await.unwrap();
        assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
        let resp = routes
            .clone()
            .oneshot(get(Some("Bearer esk_wrong".into())))
            .await
            .unwrap();
        assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
        let resp = routes
            .oneshot(get(Some(format!("Bearer {shown}"))))
            .await
            .unwrap();
        assert_eq!(resp.status(), StatusCode::OK);
    }

    #[test]
    fn the_key_is_made_once_stored_as_a_digest_and_rotated() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = DataDir::new(tmp.path());
        let (first, shown) = api_key(&dir).unwrap();
        let key = shown.expect("a new key is shown once");
        let stored = std::fs::read_to_string(key_file(&dir)).unwrap();
        assert!(!stored.contains(&key), "only the digest is stored");
        assert_eq!(stored.trim(), ApiKey::digest_hex(&key));
        let (again, shown) = api_key(&dir).unwrap();
        assert!(shown.is_none(), "never shown again");
        let _ = (first, again);
        // Not a data directory yet (no store): refused, nothing written there.
        let typo = DataDir::new(tmp.path().join("typo"));
        let err = rotate_api_key(&typo).unwrap_err().to_string();
        assert!(err.starts_with("no data directory at "), "{err}");
        assert!(!typo.root.exists(), "a mistyped --data-dir is not created");
        let err = rotate_api_key(&dir).unwrap_err().to_string();
        assert!(err.contains("holds no entra-sync store"), "{err}");
        drop(LocalApp::open(&dir, &SyncSettings::default()).unwrap());
        let rotated = rotate_api_key(&dir).unwrap();
        assert_ne!(rotated, key);
        assert_eq!(
            std::fs::read_to_string(key_file(&dir)).unwrap().trim(),
            ApiKey::digest_hex(&rotated)
        );
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(key_file(&dir))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o077, 0, "owner only");
        }
    }
}
