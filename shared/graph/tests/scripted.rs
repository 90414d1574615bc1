//! GraphClient against a scripted loopback server: paging, tokens, retries, error mapping.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use common::{CLIENT_ID, CLIENT_SECRET, FakeServer, Reply};
use entra_sync_core::error::DirectoryError;
use entra_sync_core::model::{Stream, TenantId};
use entra_sync_core::page::{PageItems, PageLink, PageRequest};
use entra_sync_core::ports::DirectoryReader;
use entra_sync_graph::{GraphClient, RetryPolicy};
use futures::StreamExt;
use serde_json::json;
use tokio::time::Instant;

const TENANT: &str = "0d3c6d6e-7a3b-4a52-9d53-1b2f7c9d7e11";

fn tenant() -> TenantId {
    TenantId::new(TENANT)
}

async fn setup() -> (FakeServer, GraphClient) {
    let server = FakeServer::start().await;
    let client = GraphClient::new(server.config()).unwrap();
    (server, client)
}

fn user_ids(items: &PageItems) -> Vec<String> {
    match items {
        PageItems::Users(users) => users.iter().map(|u| u.id().to_string()).collect(),
        PageItems::Groups(_) => panic!("expected users"),
    }
}

#[tokio::test]
async fn full_round_follows_next_links_with_one_token() {
    let (server, client) = setup().await;
    server.push_graph(server.users_page(
        &["a", "b"],
        Some("/v1.0/users/delta?$skiptoken=p2"),
        None,
    ));
    server.push_graph(server.users_page(&[], Some("/v1.0/users/delta?$skiptoken=p3"), None));
    server.push_graph(server.users_page(&["c"], None, Some("/v1.0/users/delta?$deltatoken=d1")));

    let tenant = tenant();
    let pages: Vec<_> = client
        .delta_pages(&tenant, Stream::Users, PageRequest::Initial)
        .collect()
        .await;
    let pages: Vec<_> = pages.into_iter().map(Result::unwrap).collect();
    assert_eq!(pages.len(), 3);
    assert_eq!(user_ids(&pages[0].items), vec!["a", "b"]);
    assert!(
        pages[1].items.is_empty(),
        "empty page with a nextLink is followed"
    );
    assert_eq!(
        pages[2].link,
        PageLink::Delta(format!("{}/v1.0/users/delta?$deltatoken=d1", server.base))
    );

    let token_requests = server.token_requests();
    assert_eq!(token_requests.len(), 1, "token cached across pages");
    let token = &token_requests[0];
    assert_eq!(token.method, "POST");
    assert_eq!(token.target, format!("/{TENANT}/oauth2/v2.0/token"));
    assert!(token.body.contains("grant_type=client_credentials"));
    assert!(token.body.contains(&format!("client_id={CLIENT_ID}")));
    let scope = url::form_urlencoded::parse(token.body.as_bytes())
        .find(|(k, _)| k == "scope")
        .map(|(_, v)| v.into_owned());
    assert_eq!(scope, Some(format!("{}/.default", server.base)));

    let graph = server.graph_requests();
    assert_eq!(graph.len(), 3);
    assert!(graph[0].target.starts_with(
        "/v1.0/users/delta?$select=id,displayName,givenName,surname,mail,userPrincipalName,"
    ));
    assert_eq!(graph[1].target, "/v1.0/users/delta?$skiptoken=p2");
    assert_eq!(graph[2].target, "/v1.0/users/delta?$skiptoken=p3");
    for request in &graph {
        assert_eq!(request.method, "GET");
        assert_eq!(request.header("authorization"), Some("Bearer token-1"));
        assert_eq!(request.header("x-ms-throttle-priority"), Some("low"));
        assert!(
            request
                .header("client-request-id")
                .is_some_and(|v| v.len() >= 32)
        );
    }
    let ids: std::collections::HashSet<_> = graph
        .iter()
        .map(|r| r.header("client-request-id"))
        .collect();
    assert_eq!(ids.len(), 3, "a fresh client-request-id per request");

    let reader: &dyn DirectoryReader = &client;
    assert_eq!(reader.requests_sent(&tenant), 4);
    assert_eq!(reader.requests_sent(&TenantId::new("other")), 0);
}

#[tokio::test]
async fn groups_initial_request_selects_members_and_parses_member_slices() {
    let (server, client) = setup().await;
    server.push_graph(Reply::json(
        200,
        json!({
            "@odata.deltaLink": format!("{}/v1.0/groups/delta?$deltatoken=g", server.base),
            "value": [{"id": "g1", "displayName": "Eng", "members@delta": [
                {"@odata.type": "#microsoft.graph.user", "id": "u1"},
                {"@odata.type": "#microsoft.graph.user", "id": "u2", "@removed": {"reason": "deleted"}}
            ]}]
        }),
    ));
    let page = client
        .fetch_page(&tenant(), Stream::Groups, &PageRequest::Initial)
        .await
        .unwrap();
    let PageItems::Groups(groups) = page.items else {
        panic!("expected groups")
    };
    assert_eq!(groups.len(), 1);
    let target = &server.graph_requests()[0].target;
    assert!(
        target.starts_with("/v1.0/groups/delta?$select="),
        "{target}"
    );
    assert!(target.ends_with(",members"), "{target}");
}

#[tokio::test(start_paused = true)]
async fn retry_after_is_honoured_before_retrying() {
    let (server, client) = setup().await;
    server.push_graph(Reply::graph_error(429, "TooManyRequests").header("Retry-After", "7"));
    server.push_graph(server.users_page(&["a"], None, Some("/v1.0/users/delta?$deltatoken=d")));

    let page = client
        .fetch_page(&tenant(), Stream::Users, &PageRequest::Initial)
        .await
        .unwrap();
    assert_eq!(user_ids(&page.items), vec!["a"]);

    let graph = server.graph_requests();
    assert_eq!(graph.len(), 2);
    let waited = graph[1].at - graph[0].at;
    assert!(waited >= Duration::from_secs(7), "waited only {waited:?}");
    assert!(
        waited < Duration::from_secs(8),
        "waited too long: {waited:?}"
    );
    assert_eq!(client.throttled_responses(&tenant()), 1);
    assert_eq!(client.requests_sent(&tenant()), 3);
}

#[tokio::test(start_paused = true)]
async fn retry_after_http_date_is_honoured() {
    let (server, client) = setup().await;
    let at = chrono::Utc::now() + chrono::Duration::seconds(10);
    let date = at.format("%a, %d %b %Y %H:%M:%S GMT").to_string();
    server.push_graph(Reply::graph_error(503, "serviceNotAvailable").header("Retry-After", &date));
    server.push_graph(server.users_page(&[], None, Some("/d")));

    client
        .fetch_page(&tenant(), Stream::Users, &PageRequest::Initial)
        .await
        .unwrap();
    let graph = server.graph_requests();
    let waited = graph[1].at - graph[0].at;
    // The date has one-second resolution and wall time moves on while the test runs.
    assert!(waited >= Duration::from_secs(8), "waited only {waited:?}");
    assert!(waited <= Duration::from_secs(10), "waited {waited:?}");
}

#[tokio::test(start_paused = true)]
async fn persistent_throttling_returns_throttled_after_max_attempts() {
    let (server, client) = setup().await;
    for _ in 0..6 {
        server.push_graph(Reply::graph_error(429, "TooManyRequests").header("Retry-After", "2"));
    }
    let started = Instant::now();
    let err = client
        .fetch_page(&tenant(), Stream::Users, &PageRequest::Initial)
        .await
        .unwrap_err();
    assert!(
        matches!(err, DirectoryError::Throttled { retry_after: Some(d) } if d == Duration::from_secs(2)),
        "{err:?}"
    );
    assert!(err.is_retryable());
    assert_eq!(
        server.graph_requests().len(),
        6,
        "max_attempts = 6 by default"
    );
    assert_eq!(client.throttled_responses(&tenant()), 6);
    assert_eq!(started.elapsed(), Duration::from_secs(10), "5 waits of 2 s");
}

#[tokio::test(start_paused = true)]
async fn retry_after_beyond_policy_is_returned_not_slept() {
    let (server, client) = setup().await;
    server.push_graph(Reply::graph_error(429, "TooManyRequests").header("Retry-After", "600"));
    let started = Instant::now();
    let err = client
        .fetch_page(&tenant(), Stream::Users, &PageRequest::Initial)
        .await
        .unwrap_err();
    assert!(
        matches!(err, DirectoryError::Throttled { retry_after: Some(d) } if d == Duration::from_secs(600)),
        "{err:?}"
    );
    assert_eq!(server.graph_requests().len(), 1);
    assert!(started.elapsed() < Duration::from_secs(1));
}

#[tokio::test(start_paused = true)]
async fn server_errors_back_off_with_bounded_delays() {
    let (server, client) = setup().await;
    for _ in 0..5 {
        server.push_graph(Reply::graph_error(503, "serviceNotAvailable"));
    }
    server.push_graph(server.users_page(&["a"], None, Some("/d")));
    let started = Instant::now();
    client
        .fetch_page(&tenant(), Stream::Users, &PageRequest::Initial)
        .await
        .unwrap();
    let graph = server.graph_requests();
    assert_eq!(graph.len(), 6);
    // Full jitter: retry n waits at most min(60 s, 1 s * 2^(n-1)).
    for (n, pair) in graph.windows(2).enumerate() {
        let cap = Duration::from_secs(1 << n);
        let waited = pair[1].at - pair[0].at;
        assert!(
            waited <= cap + Duration::from_millis(1),
            "retry {n}: {waited:?} > {cap:?}"
        );
    }
    assert!(started.elapsed() <= Duration::from_secs(31) + Duration::from_millis(5));
}

#[tokio::test(start_paused = true)]
async fn exhausted_server_errors_are_transient() {
    let (server, client) = setup().await;
    for _ in 0..6 {
        server.push_graph(Reply::graph_error(500, "generalException"));
    }
    let err = client
        .fetch_page(&tenant(), Stream::Users, &PageRequest::Initial)
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            DirectoryError::Transient {
                status: Some(500),
                ..
            }
        ),
        "{err:?}"
    );
    assert_eq!(server.graph_requests().len(), 6);
}

#[tokio::test(start_paused = true)]
async fn max_delay_caps_each_backoff_step() {
    let server = FakeServer::start().await;
    let mut config = server.config();
    config.retry = RetryPolicy {
        max_attempts: 4,
        base_delay: Duration::from_secs(10),
        max_delay: Duration::from_secs(15),
        max_retry_after: Duration::from_secs(120),
        ..RetryPolicy::default()
    };
    let client = GraphClient::new(config).unwrap();
    for _ in 0..4 {
        server.push_graph(Reply::graph_error(502, "badGateway"));
    }
    let started = Instant::now();
    let err = client
        .fetch_page(&tenant(), Stream::Users, &PageRequest::Initial)
        .await
        .unwrap_err();
    assert!(matches!(
        err,
        DirectoryError::Transient {
            status: Some(502),
            ..
        }
    ));
    assert_eq!(server.graph_requests().len(), 4);
    assert!(started.elapsed() <= Duration::from_secs(10 + 15 + 15) + Duration::from_millis(5));
}

#[tokio::test(start_paused = true)]
async fn dropped_connection_is_retried() {
    let (server, client) = setup().await;
    server.push_graph(Reply::drop_connection());
    server.push_graph(server.users_page(&["a"], None, Some("/d")));
    let page = client
        .fetch_page(&tenant(), Stream::Users, &PageRequest::Initial)
        .await
        .unwrap();
    assert_eq!(user_ids(&page.items), vec!["a"]);
    assert_eq!(server.graph_requests().len(), 2);
}

#[tokio::test]
async fn gone_requires_full_resync_without_retry() {
    let (server, client) = setup().await;
    server.push_graph(Reply::raw(410, "").header(
        "Location",
        &format!("{}/v1.0/users/delta?$deltaToken=", server.base),
    ));
    let link = format!("{}/v1.0/users/delta?$deltatoken=old", server.base);
    let err = client
        .fetch_page(&tenant(), Stream::Users, &PageRequest::Link(link.clone()))
        .await
        .unwrap_err();
    assert!(
        matches!(err, DirectoryError::ResyncRequired { .. }),
        "{err:?}"
    );
    let graph = server.graph_requests();
    assert_eq!(graph.len(), 1);
    assert_eq!(
        graph[0].target, "/v1.0/users/delta?$deltatoken=old",
        "link replayed verbatim"
    );
}

#[tokio::test]
async fn expired_delta_token_requires_resync() {
    let (server, client) = setup().await;
    server.push_graph(Reply::graph_error(400, "syncStateNotFound"));
    let err = client
        .fetch_page(
            &tenant(),
            Stream::Users,
            &PageRequest::Link(format!("{}/v1.0/users/delta?$deltatoken=x", server.base)),
        )
        .await
        .unwrap_err();
    assert!(
        matches!(&err, DirectoryError::ResyncRequired { code } if code == "syncStateNotFound"),
        "{err:?}"
    );

    server.push_graph(Reply::json(
        400,
        json!({"error": {"code": "badRequest", "innerError": {"code": "resyncRequired"}}}),
    ));
    let err = client
        .fetch_page(
            &tenant(),
            Stream::Groups,
            &PageRequest::Link(format!("{}/v1.0/groups/delta?$deltatoken=x", server.base)),
        )
        .await
        .unwrap_err();
    assert!(
        matches!(&err, DirectoryError::ResyncRequired { code } if code == "resyncRequired"),
        "{err:?}"
    );
}

#[tokio::test]
async fn missing_permission_names_the_permission() {
    let (server, client) = setup().await;
    server.push_graph(Reply::graph_error(403, "Authorization_RequestDenied"));
    server.push_graph(Reply::graph_error(403, "Authorization_RequestDenied"));
    server.push_graph(Reply::graph_error(
        403,
        "Authentication_RequestFromNonPremiumTenantOrB2CTenant",
    ));
    let users = client
        .fetch_page(&tenant(), Stream::Users, &PageRequest::Initial)
        .await
        .unwrap_err();
    assert!(
        matches!(&users, DirectoryError::InsufficientPrivileges { permission: Some(p) } if p == "User.Read.All"),
        "{users:?}"
    );
    let groups = client
        .fetch_page(&tenant(), Stream::Groups, &PageRequest::Initial)
        .await
        .unwrap_err();
    assert!(
        matches!(&groups, DirectoryError::InsufficientPrivileges { permission: Some(p) } if p == "GroupMember.Read.All"),
        "{groups:?}"
    );
    let premium = client
        .fetch_page(&tenant(), Stream::Users, &PageRequest::Initial)
        .await
        .unwrap_err();
    assert!(
        matches!(&premium, DirectoryError::Permanent { status: 403, code } if code == "Authentication_RequestFromNonPremiumTenantOrB2CTenant"),
        "{premium:?}"
    );
    assert_eq!(server.graph_requests().len(), 3, "no retries of 403");
}

#[tokio::test]
async fn not_found_and_other_client_errors() {
    let (server, client) = setup().await;
    server.push_graph(Reply::graph_error(404, "Request_ResourceNotFound"));
    server.push_graph(Reply::graph_error(400, "Request_UnsupportedQuery"));
    let err = client
        .fetch_page(&tenant(), Stream::Users, &PageRequest::Initial)
        .await
        .unwrap_err();
    assert!(matches!(err, DirectoryError::NotFound), "{err:?}");
    let err = client
        .fetch_page(&tenant(), Stream::Users, &PageRequest::Initial)
        .await
        .unwrap_err();
    assert!(
        matches!(&err, DirectoryError::Permanent { status: 400, code } if code == "Request_UnsupportedQuery"),
        "{err:?}"
    );
}

#[tokio::test]
async fn revoked_consent_needs_reauthorization() {
    let (server, client) = setup().await;
    server.push_token(Reply::token_error(401, "invalid_client", 7000229));
    let err = client
        .fetch_page(&tenant(), Stream::Users, &PageRequest::Initial)
        .await
        .unwrap_err();
    assert!(
        matches!(&err, DirectoryError::NeedsReauthorization { code } if code == "AADSTS7000229"),
        "{err:?}"
    );
    assert!(!err.is_retryable());
    assert!(
        server.graph_requests().is_empty(),
        "no Graph call without a token"
    );
    assert_eq!(
        server.token_requests().len(),
        1,
        "no retry of a consent error"
    );
}

#[tokio::test]
async fn token_errors_classified_by_aadsts_code() {
    let (server, client) = setup().await;
    // Code only in the description (no error_codes array).
    server.push_token(Reply::json(
        400,
        json!({"error": "unauthorized_client",
               "error_description": "AADSTS700016: Application with identifier 'x' was not found"}),
    ));
    server.push_token(Reply::token_error(400, "invalid_request", 90002));
    server.push_token(Reply::token_error(401, "invalid_client", 7000215));
    server.push_token(Reply::token_error(401, "invalid_client", 7000222));
    server.push_token(Reply::token_error(400, "invalid_scope", 70011));

    let mut errors = Vec::new();
    for _ in 0..5 {
        errors.push(
            client
                .fetch_page(&tenant(), Stream::Users, &PageRequest::Initial)
                .await
                .unwrap_err(),
        );
    }
    assert!(matches!(&errors[0], DirectoryError::Misconfigured { code } if code == "AADSTS700016"));
    assert!(matches!(&errors[1], DirectoryError::Misconfigured { code } if code == "AADSTS90002"));
    assert!(
        matches!(&errors[2], DirectoryError::Permanent { status: 401, code } if code == "AADSTS7000215")
    );
    assert!(
        matches!(&errors[3], DirectoryError::Permanent { status: 401, code } if code == "AADSTS7000222")
    );
    assert!(
        matches!(&errors[4], DirectoryError::Permanent { status: 400, code } if code == "AADSTS70011")
    );
    assert!(server.graph_requests().is_empty());
}

#[tokio::test(start_paused = true)]
async fn login_outage_is_retried() {
    let (server, client) = setup().await;
    server.push_token(Reply::json(
        503,
        json!({"error": "temporarily_unavailable"}),
    ));
    server.push_token(Reply::drop_connection());
    server.push_graph(server.users_page(&["a"], None, Some("/d")));
    client
        .fetch_page(&tenant(), Stream::Users, &PageRequest::Initial)
        .await
        .unwrap();
    assert_eq!(server.token_requests().len(), 3);
    assert_eq!(client.requests_sent(&tenant()), 4);
}

#[tokio::test]
async fn foreign_origin_links_are_refused_before_any_request() {
    let (server, client) = setup().await;
    // Same machine, different origin: `localhost` vs `127.0.0.1`, and another port.
    for link in [
        format!(
            "http://localhost:{}/v1.0/users/delta?$skiptoken=x",
            server.port
        ),
        format!(
            "http://127.0.0.1:{}/v1.0/users/delta",
            server.port.wrapping_add(1)
        ),
        "https://evil.example/v1.0/users/delta?$skiptoken=x".to_string(),
    ] {
        let err = client
            .fetch_page(&tenant(), Stream::Users, &PageRequest::Link(link.clone()))
            .await
            .unwrap_err();
        assert!(
            matches!(err, DirectoryError::UnusableLink { .. }),
            "{link}: {err:?}"
        );
    }
    assert!(
        server.requests().is_empty(),
        "nothing sent, not even a token request"
    );

    // A page whose nextLink leaves the Graph host ends the round with an error.
    server.push_graph(Reply::json(
        200,
        json!({"@odata.nextLink": format!("http://localhost:{}/steal", server.port), "value": []}),
    ));
    let tenant = tenant();
    let results: Vec<_> = client
        .delta_pages(&tenant, Stream::Users, PageRequest::Initial)
        .collect()
        .await;
    assert_eq!(results.len(), 2);
    assert!(results[0].is_ok());
    assert!(matches!(
        results[1],
        Err(DirectoryError::UnusableLink { .. })
    ));
    assert_eq!(server.graph_requests().len(), 1);
}

#[tokio::test]
async fn rejected_token_is_refreshed_once() {
    let (server, client) = setup().await;
    server.push_graph(server.users_page(&["a"], None, Some("/d")));
    server.push_graph(Reply::graph_error(401, "InvalidAuthenticationToken"));
    server.push_graph(server.users_page(&["b"], None, Some("/d")));

    for _ in 0..2 {
        client
            .fetch_page(&tenant(), Stream::Users, &PageRequest::Initial)
            .await
            .unwrap();
    }
    let graph = server.graph_requests();
    assert_eq!(graph.len(), 3);
    assert_eq!(graph[0].header("authorization"), Some("Bearer token-1"));
    assert_eq!(graph[1].header("authorization"), Some("Bearer token-1"));
    assert_eq!(graph[2].header("authorization"), Some("Bearer token-2"));
    assert_eq!(server.token_requests().len(), 2);
}

#[tokio::test]
async fn token_rejected_twice_is_permanent() {
    let (server, client) = setup().await;
    server.push_graph(Reply::graph_error(401, "InvalidAuthenticationToken"));
    server.push_graph(Reply::graph_error(401, "InvalidAuthenticationToken"));
    let err = client
        .fetch_page(&tenant(), Stream::Users, &PageRequest::Initial)
        .await
        .unwrap_err();
    assert!(
        matches!(&err, DirectoryError::Permanent { status: 401, code } if code == "InvalidAuthenticationToken"),
        "{err:?}"
    );
    assert_eq!(server.token_requests().len(), 2);
    assert_eq!(server.graph_requests().len(), 2);
}

#[tokio::test(start_paused = true)]
async fn token_refreshed_shortly_before_expiry() {
    let (server, client) = setup().await;
    for _ in 0..3 {
        server.push_graph(server.users_page(&[], None, Some("/d")));
    }
    let tenant = tenant();
    let fetch = || client.fetch_page(&tenant, Stream::Users, &PageRequest::Initial);
    fetch().await.unwrap();
    tokio::time::advance(Duration::from_secs(3000)).await;
    fetch().await.unwrap();
    assert_eq!(
        server.token_requests().len(),
        1,
        "still fresh at 3000 s of 3599 s"
    );
    tokio::time::advance(Duration::from_secs(300)).await;
    fetch().await.unwrap();
    assert_eq!(
        server.token_requests().len(),
        2,
        "refreshed within 5 min of expiry"
    );
    assert_eq!(
        server.graph_requests()[2].header("authorization"),
        Some("Bearer token-2")
    );
}

#[tokio::test]
async fn concurrent_fetches_share_one_token_request() {
    let (server, client) = setup().await;
    for _ in 0..8 {
        server.push_graph(server.users_page(&["a"], None, Some("/d")));
    }
    let tenant = tenant();
    let fetches = (0..8).map(|_| client.fetch_page(&tenant, Stream::Users, &PageRequest::Initial));
    let results = futures::future::join_all(fetches).await;
    assert!(results.iter().all(Result::is_ok));
    assert_eq!(server.token_requests().len(), 1);
    assert_eq!(client.requests_sent(&tenant), 9);
}

#[tokio::test]
async fn tenants_have_separate_tokens_and_counters() {
    let (server, client) = setup().await;
    server.push_graph(server.users_page(&[], None, Some("/d")));
    server.push_graph(server.users_page(&[], None, Some("/d")));
    let other = TenantId::new("contoso.onmicrosoft.com");
    client
        .fetch_page(&tenant(), Stream::Users, &PageRequest::Initial)
        .await
        .unwrap();
    client
        .fetch_page(&other, Stream::Users, &PageRequest::Initial)
        .await
        .unwrap();
    let tokens = server.token_requests();
    assert_eq!(tokens.len(), 2);
    assert_eq!(
        tokens[1].target,
        "/contoso.onmicrosoft.com/oauth2/v2.0/token"
    );
    assert_eq!(client.requests_sent(&tenant()), 2);
    assert_eq!(client.requests_sent(&other), 2);

    let err = client
        .fetch_page(
            &TenantId::new("../evil"),
            Stream::Users,
            &PageRequest::Initial,
        )
        .await
        .unwrap_err();
    assert!(matches!(err, DirectoryError::Permanent { status: 400, .. }));
    assert_eq!(server.requests().len(), 4);
}

#[tokio::test]
async fn malformed_pages_are_invalid_responses_without_retry() {
    let (server, client) = setup().await;
    server.push_graph(Reply::raw(200, "{\"value\": [ {\"id\": \"a\""));
    server.push_graph(Reply::json(200, json!({"value": [{"id": "a"}]})));
    server.push_graph(Reply::json(
        200,
        json!({"@odata.deltaLink": "x", "value": [{"displayName": "no id"}]}),
    ));
    server.push_graph(Reply::raw(200, "<html>proxy login</html>"));
    for _ in 0..4 {
        let err = client
            .fetch_page(&tenant(), Stream::Users, &PageRequest::Initial)
            .await
            .unwrap_err();
        assert!(matches!(err, DirectoryError::InvalidResponse(_)), "{err:?}");
    }
    assert_eq!(server.graph_requests().len(), 4);
}

#[tokio::test]
async fn redirects_are_not_followed() {
    let (server, client) = setup().await;
    server.push_graph(
        Reply::raw(302, "").header("Location", &format!("http://localhost:{}/x", server.port)),
    );
    let err = client
        .fetch_page(&tenant(), Stream::Users, &PageRequest::Initial)
        .await
        .unwrap_err();
    assert!(
        matches!(err, DirectoryError::Permanent { status: 302, .. }),
        "{err:?}"
    );

    let (server, client) = setup().await;
    server.push_token(
        Reply::raw(307, "").header("Location", &format!("http://localhost:{}/t", server.port)),
    );
    let err = client
        .fetch_page(&tenant(), Stream::Users, &PageRequest::Initial)
        .await
        .unwrap_err();
    assert!(
        matches!(err, DirectoryError::Permanent { status: 307, .. }),
        "{err:?}"
    );
    assert_eq!(
        server.requests().len(),
        1,
        "the redirect target is never requested"
    );
}

#[tokio::test]
async fn organization_returns_verified_domains() {
    let (server, client) = setup().await;
    server.push_graph(Reply::json(
        200,
        json!({"value": [{"id": TENANT, "displayName": "Contoso", "verifiedDomains": [
            {"name": "contoso.onmicrosoft.com", "isDefault": false, "isInitial": true,
             "type": "Managed", "capabilities": "Email, OfficeCommunicationsOnlineService"},
            {"name": "contoso.com", "isDefault": true, "isInitial": false,
             "type": "Managed", "capabilities": "Email"}]}]}),
    ));
    server.push_graph(Reply::graph_error(403, "Authorization_RequestDenied"));
    let org = client.organization(&tenant()).await.unwrap();
    assert_eq!(org.id, TENANT);
    assert_eq!(org.display_name.as_deref(), Some("Contoso"));
    assert_eq!(org.verified_domains.len(), 2);
    assert_eq!(server.graph_requests()[0].target, "/v1.0/organization");
    let err = client.organization(&tenant()).await.unwrap_err();
    assert!(
        matches!(&err, DirectoryError::InsufficientPrivileges { permission: Some(p) } if p == "Organization.Read.All")
    );
}

#[tokio::test(start_paused = true)]
async fn secret_and_token_never_appear_in_errors() {
    let (server, client) = setup().await;
    // A hostile login endpoint echoing our secret in its description.
    server.push_token(Reply::json(
        401,
        json!({"error": "invalid_client", "error_codes": [7000215],
               "error_description": format!("AADSTS7000215: Invalid client secret {CLIENT_SECRET}")}),
    ));
    server.push_token(Reply::raw(400, &format!("not json {CLIENT_SECRET}")));
    server.push_token(Reply::raw(
        200,
        &format!("{{\"access_token\": 5, \"x\": \"{CLIENT_SECRET}\"}}"),
    ));
    for _ in 0..6 {
        server.push_token(Reply::drop_connection());
    }
    server.push_graph(Reply::raw(
        200,
        "{\"value\": [{\"id\": \"token-4\", \"displayName\": 7}]",
    ));
    server.push_graph(Reply::graph_error(401, "InvalidAuthenticationToken"));
    server.push_graph(Reply::graph_error(401, "InvalidAuthenticationToken"));

    let mut errors = Vec::new();
    for _ in 0..6 {
        if let Err(e) = client
            .fetch_page(&tenant(), Stream::Users, &PageRequest::Initial)
            .await
        {
            errors.push(e);
        }
    }
    assert!(errors.len() >= 5, "{errors:?}");
    for err in &errors {
        let mut text = format!("{err} {err:?}");
        let mut source = std::error::Error::source(err);
        while let Some(s) = source {
            text.push_str(&format!(" {s} {s:?}"));
            source = s.source();
        }
        assert!(!text.contains(CLIENT_SECRET), "secret leaked: {text}");
        assert!(!text.contains("token-"), "access token leaked: {text}");
    }
    let debug = format!("{client:?} {:?}", client.config());
    assert!(!debug.contains(CLIENT_SECRET), "{debug}");
    assert!(debug.contains("***"));
    // The secret does reach the login endpoint, in the form body.
    assert!(server.token_requests()[0].body.contains("client_secret="));
}

#[tokio::test]
async fn a_closed_port_fails_fast_naming_the_url_and_the_os_error() {
    // A port nothing listens on: bind one, then close it.
    let port = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap().port()
    };
    let base = url::Url::parse(&format!("http://127.0.0.1:{port}")).unwrap();
    let mut config = entra_sync_graph::GraphConfig::new(
        base.clone(),
        base,
        CLIENT_ID,
        entra_sync_core::ports::Secret::new(CLIENT_SECRET),
    );
    // Quick steps, but as many attempts as a transient failure gets.
    config.retry = RetryPolicy {
        base_delay: Duration::from_millis(20),
        ..RetryPolicy::default()
    };
    assert!(config.retry.max_attempts > config.retry.max_connect_attempts);
    let client = GraphClient::new(config).unwrap();
    let err = client
        .fetch_page(&tenant(), Stream::Users, &PageRequest::Initial)
        .await
        .unwrap_err();
    assert!(err.is_retryable(), "{err:?}");
    let text = err.to_string();
    assert!(
        text.contains(&format!(
            "http://127.0.0.1:{port}/{TENANT}/oauth2/v2.0/token"
        )),
        "names the URL: {text}"
    );
    assert!(
        !text.contains("None") && !text.contains("Some("),
        "no debug text: {text}"
    );
    let cause = err.root_cause().unwrap_or_default();
    assert!(
        cause.to_lowercase().contains("refused"),
        "names the OS error: {cause}"
    );
    // A refused connection gets one more chance, not the whole backoff series.
    assert_eq!(client.requests_sent(&tenant()), 2);
}

#[tokio::test]
async fn a_graph_url_with_the_api_version_is_not_doubled() {
    let server = FakeServer::start().await;
    for graph in [
        format!("{}/v1.0", server.base),
        format!("{}/v1.0/", server.base),
        format!("{}/", server.base),
    ] {
        let mut config = server.config();
        config.graph_base_url = url::Url::parse(&graph).unwrap();
        config.login_base_url = url::Url::parse(&format!("{}/", server.base)).unwrap();
        let client = GraphClient::new(config).unwrap();
        server.push_graph(server.users_page(&["a"], None, Some("/d")));
        client
            .fetch_page(&tenant(), Stream::Users, &PageRequest::Initial)
            .await
            .unwrap();
        let sent = server.graph_requests();
        let last = sent.last().unwrap();
        assert!(
            last.target.starts_with("/v1.0/users/delta?"),
            "{graph}: {}",
            last.target
        );
        let token = server.token_requests();
        assert_eq!(
            token.last().unwrap().target,
            format!("/{TENANT}/oauth2/v2.0/token"),
            "{graph}"
        );
    }
}
