//! The consent-state contract (`ConsentStateStore`): every adapter (memory, SQLite, DynamoDB)
//! stores a pending consent and gives it back exactly once.

use chrono::{DateTime, Duration, Utc};
use entra_sync_core::model::{AccountId, TenantId};
use entra_sync_core::ports::{ConsentStateStore, PendingConsent, Secret};

fn pending(state: &str, expected: Option<&str>) -> PendingConsent {
    let at: DateTime<Utc> = DateTime::from_timestamp(1_770_113_700, 0).unwrap();
    PendingConsent {
        state: Secret::new(state),
        account_id: AccountId("acct-1".into()),
        label: "Contoso \"HQ\" <east>".into(),
        expected_tenant: expected.map(TenantId::new),
        created_at: at,
        expires_at: at + Duration::minutes(10),
    }
}

/// Put, take once, take again (nothing), unknown state (nothing), two states independent.
pub async fn take_once<S: ConsentStateStore>(store: &S) {
    let a = pending("state-a-0123456789abcdef", None);
    let b = pending(
        "state-b-0123456789abcdef",
        Some("6e9f0c7a-3b8d-4d2e-9a6f-0c4b7d21e9a3"),
    );
    store.put_consent_state(&a).await.unwrap();
    store.put_consent_state(&b).await.unwrap();
    assert_eq!(
        store.take_consent_state("unknown-state").await.unwrap(),
        None,
        "a state never stored is absent"
    );
    assert_eq!(
        store.take_consent_state(a.state.expose()).await.unwrap(),
        Some(a.clone()),
        "the pending consent comes back whole"
    );
    assert_eq!(
        store.take_consent_state(a.state.expose()).await.unwrap(),
        None,
        "a second take of the same state gets nothing"
    );
    assert_eq!(
        store.take_consent_state(b.state.expose()).await.unwrap(),
        Some(b),
        "taking one state leaves the others"
    );
    // A prefix of a stored state is not that state.
    let c = pending("state-c-0123456789abcdef", None);
    store.put_consent_state(&c).await.unwrap();
    assert_eq!(store.take_consent_state("state-c-").await.unwrap(), None);
    assert!(
        store
            .take_consent_state(c.state.expose())
            .await
            .unwrap()
            .is_some()
    );
}

/// Many concurrent takes of one state: exactly one wins.
pub async fn concurrent_takes<S: ConsentStateStore>(store: &S) {
    let p = pending("state-race-0123456789abcdef", None);
    store.put_consent_state(&p).await.unwrap();
    let key = p.state.expose();
    let results = tokio::join!(
        store.take_consent_state(key),
        store.take_consent_state(key),
        store.take_consent_state(key),
        store.take_consent_state(key),
    );
    let won = [results.0, results.1, results.2, results.3]
        .into_iter()
        .map(|r| r.unwrap())
        .filter(Option::is_some)
        .count();
    assert_eq!(won, 1, "exactly one of the concurrent takes gets the state");
}
