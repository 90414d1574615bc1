//! Fault injection and resource-unit throttling.

mod common;

use std::time::{Duration, Instant};

use common::Fx;
use entra_sync_emulator::{
    EmulatorConfig, Fault, FaultKind, RouteMatch, TenantSpec, ThrottleBudget,
};
use reqwest::StatusCode;

#[tokio::test]
async fn over_budget_requests_get_429_with_retry_after() {
    let config = EmulatorConfig {
        read_budget: Some(ThrottleBudget::new(5, Duration::from_secs(10))),
        ..EmulatorConfig::default()
    };
    let fx = Fx::new(config, TenantSpec::new(51, 10, 2)).await;
    let token = fx.token().await;
    let url = fx.graph("organization");
    for _ in 0..5 {
        let (status, headers, _) = fx.get(&url, &token).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(headers["x-ms-resource-unit"], "1");
    }
    let (status, headers, body) = fx.get(&url, &token).await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS);
    let retry: u32 = headers["retry-after"].to_str().unwrap().parse().unwrap();
    assert!((1..=10).contains(&retry), "{retry}");
    assert!(
        headers["x-ms-throttle-scope"]
            .to_str()
            .unwrap()
            .contains(&fx.tenant.tenant_id)
    );
    assert_eq!(body["error"]["code"], "TooManyRequests");
    // Members lists cost 3 RU: refill enough for one.
    fx.emu.advance_clock(Duration::from_secs(6));
    let gid = fx.handle().group_ids()[0].clone();
    let (status, headers, _) = fx
        .get(&fx.graph(&format!("groups/{gid}/members")), &token)
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(headers["x-ms-resource-unit"], "3");
    let c = fx.emu.counters();
    assert_eq!(c.throttled_429, 1);
    assert_eq!(c.per_tenant[&fx.tenant.tenant_id].throttled_429, 1);
    let log = fx.emu.request_log();
    assert!(
        log.iter()
            .any(|r| r.status == 429 && r.retry_after == Some(retry))
    );
}

#[tokio::test]
async fn budgets_are_per_tenant() {
    let config = EmulatorConfig {
        read_budget: Some(ThrottleBudget::new(2, Duration::from_secs(10))),
        ..EmulatorConfig::default()
    };
    let fx = Fx::new(config, TenantSpec::new(52, 10, 2)).await;
    let other = fx.emu.add_tenant(&TenantSpec {
        name: "Other".into(),
        domains: vec![],
        ..TenantSpec::new(53, 5, 1)
    });
    let token = fx.token().await;
    let other_token = fx.token_for(&other.tenant_id).await;
    let url = fx.graph("organization");
    fx.get(&url, &token).await;
    fx.get(&url, &token).await;
    assert_eq!(fx.get(&url, &token).await.0, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(fx.get(&url, &other_token).await.0, StatusCode::OK);
}

#[tokio::test]
async fn scripted_throttle_and_outage_faults() {
    let fx = Fx::small().await;
    let token = fx.token().await;
    let url = fx.graph("users/delta");
    let faults = fx.emu.faults();
    faults.inject(
        Fault::new(
            RouteMatch::UsersDelta,
            FaultKind::Throttle {
                retry_after_secs: 3,
            },
        )
        .after(1)
        .times(2),
    );
    assert_eq!(fx.get(&url, &token).await.0, StatusCode::OK);
    for _ in 0..2 {
        let (status, headers, _) = fx.get(&url, &token).await;
        assert_eq!(status, StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(headers["retry-after"], "3");
        assert!(headers.get("request-id").is_some());
    }
    assert_eq!(fx.get(&url, &token).await.0, StatusCode::OK);
    assert_eq!(faults.pending(), 0);

    faults.inject(Fault::new(
        RouteMatch::Any,
        FaultKind::Unavailable {
            status: 503,
            retry_after_secs: None,
        },
    ));
    let (status, headers, body) = fx.get(&url, &token).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert!(headers.get("retry-after").is_none());
    assert!(body["error"]["innerError"]["request-id"].is_string());
    faults.inject(Fault::new(
        RouteMatch::PathPrefix("/v1.0/organization".into()),
        FaultKind::Unavailable {
            status: 504,
            retry_after_secs: Some(2),
        },
    ));
    assert_eq!(fx.get(&url, &token).await.0, StatusCode::OK);
    let (status, headers, _) = fx.get(&fx.graph("organization"), &token).await;
    assert_eq!(status, StatusCode::GATEWAY_TIMEOUT);
    assert_eq!(headers["retry-after"], "2");
    assert_eq!(fx.emu.counters().injected_faults, 4);
}

#[tokio::test]
async fn token_endpoint_faults() {
    let fx = Fx::small().await;
    fx.emu.faults().inject(Fault::new(
        RouteMatch::Token,
        FaultKind::Throttle {
            retry_after_secs: 1,
        },
    ));
    let (status, _) = fx
        .token_response(&fx.tenant.tenant_id, &fx.emu.app().client_secret)
        .await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS);
    fx.token().await;
}

#[tokio::test]
async fn dropped_connection_yields_a_transport_error() {
    let fx = Fx::small().await;
    let token = fx.token().await;
    fx.emu.faults().inject(Fault::new(
        RouteMatch::Organization,
        FaultKind::DropConnection,
    ));
    let err = fx
        .http
        .get(fx.graph("organization"))
        .bearer_auth(&token)
        .send()
        .await;
    assert!(err.is_err(), "{err:?}");
    // The next request on a new connection works.
    assert_eq!(
        fx.get(&fx.graph("organization"), &token).await.0,
        StatusCode::OK
    );
}

#[tokio::test]
async fn resync_faults_only_hit_token_bearing_delta_requests() {
    let fx = Fx::small().await;
    let token = fx.token().await;
    let url = fx.graph("users/delta?$select=displayName,mail");
    let faults = fx.emu.faults();
    faults.inject(Fault::new(RouteMatch::UsersDelta, FaultKind::ResyncGone));
    // The initial request carries no token: not affected.
    let (_, link) = fx.round(&url, &token).await;
    let (status, headers, body) = fx.get(&link, &token).await;
    assert_eq!(status, StatusCode::GONE, "{body}");
    assert_eq!(
        headers["location"],
        fx.graph("users/delta?$select=displayName,mail").as_str()
    );
    faults.inject(Fault::new(
        RouteMatch::UsersDelta,
        FaultKind::ExpireDeltaTokens,
    ));
    let (status, _, body) = fx.get(&link, &token).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["error"]["code"], "syncStateNotFound");
    faults.inject(Fault::new(
        RouteMatch::UsersDelta,
        FaultKind::ResyncRequired,
    ));
    let (status, _, body) = fx.get(&link, &token).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["error"]["code"], "resyncRequired");
    // Spent: the link works again.
    assert_eq!(fx.get(&link, &token).await.0, StatusCode::OK);
}

#[tokio::test]
async fn latency_is_added_and_changeable() {
    let fx = Fx::small().await;
    let token = fx.token().await;
    fx.emu.set_latency(Duration::from_millis(80));
    let start = Instant::now();
    fx.get(&fx.graph("organization"), &token).await;
    assert!(start.elapsed() >= Duration::from_millis(80));
    fx.emu.set_latency(Duration::ZERO);
    fx.emu.faults().inject(Fault::new(
        RouteMatch::Organization,
        FaultKind::Latency(Duration::from_millis(60)),
    ));
    let start = Instant::now();
    let (status, _, _) = fx.get(&fx.graph("organization"), &token).await;
    assert_eq!(status, StatusCode::OK);
    assert!(start.elapsed() >= Duration::from_millis(60));
}

#[tokio::test]
async fn random_faults_are_seeded_and_clearable() {
    let fx = Fx::small().await;
    let token = fx.token().await;
    let faults = fx.emu.faults();
    faults.inject_random(
        5,
        0.5,
        vec![FaultKind::Unavailable {
            status: 503,
            retry_after_secs: Some(1),
        }],
    );
    let mut failed = 0;
    for _ in 0..40 {
        if fx.get(&fx.graph("organization"), &token).await.0 != StatusCode::OK {
            failed += 1;
        }
    }
    assert!((5..=35).contains(&failed), "{failed}");
    faults.clear();
    for _ in 0..5 {
        assert_eq!(
            fx.get(&fx.graph("organization"), &token).await.0,
            StatusCode::OK
        );
    }
}

#[tokio::test(start_paused = true)]
async fn latency_works_with_paused_time() {
    let fx = Fx::small().await;
    let token = fx.token().await;
    fx.emu.set_latency(Duration::from_secs(30));
    let start = tokio::time::Instant::now();
    let (status, _, _) = fx.get(&fx.graph("organization"), &token).await;
    assert_eq!(status, StatusCode::OK);
    assert!(start.elapsed() >= Duration::from_secs(30));
    let (items, _) = fx.round_items(&fx.graph("users/delta"), &token).await;
    assert_eq!(items.len(), 120);
}
