//! The HiBob client against the emulator on loopback: the fields HiBob's v2 events lack are
//! read with the endpoint's service-user credential; failures are classified.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use chrono::{NaiveDate, TimeZone, Utc};
use entra_sync_core::model::{AccountId, TenantId};
use entra_sync_core::ports::Secret;
use entra_sync_core::webhooks::Source;
use entra_sync_core::webhooks::endpoint::{EndpointKey, WebhookEndpoint};
use entra_sync_core::webhooks::ports::{HrDirectory, HrDirectoryError};
use entra_sync_hr::emulator::{EmulatedEmployee, HiBobEmulator};
use entra_sync_hr::{HiBobClient, HiBobConfig};

fn endpoint(source: Source) -> WebhookEndpoint {
    WebhookEndpoint::new(
        EndpointKey {
            account_id: AccountId("acct-a".into()),
            source,
        },
        TenantId::new("t"),
        Utc.with_ymd_and_hms(2026, 12, 1, 9, 0, 0).unwrap(),
    )
}

async fn setup() -> (HiBobEmulator, HiBobClient) {
    let emu = HiBobEmulator::new();
    emu.add_service_user("SERVICE-1", "tok-1");
    emu.put_employee(EmulatedEmployee {
        id: "3332883854254932743".into(),
        email: Some("Ann@Contoso.com".into()),
        employee_id_in_company: Some("E100".into()),
        start_date: Some("2026-12-14".into()),
        department: Some("Sales".into()),
        reports_to_email: Some("boss@contoso.com".into()),
        termination_date: Some("2027-01-15".into()),
    });
    let (base_url, _h) = emu.start().await.unwrap();
    let client = HiBobClient::new(HiBobConfig {
        base_url,
        ..Default::default()
    })
    .unwrap();
    (emu, client)
}

#[tokio::test]
async fn reads_the_fields_hibob_events_lack() {
    let (emu, client) = setup().await;
    let e = client
        .employee(
            &endpoint(Source::HiBob),
            &Secret::new("SERVICE-1:tok-1"),
            "3332883854254932743",
        )
        .await
        .unwrap()
        .unwrap();
    assert_eq!(e.employee_number.as_deref(), Some("E100"));
    assert_eq!(e.work_email.as_deref(), Some("Ann@Contoso.com"));
    assert_eq!(e.start_date, NaiveDate::from_ymd_opt(2026, 12, 14));
    assert_eq!(e.termination_date, NaiveDate::from_ymd_opt(2027, 1, 15));
    assert_eq!(e.department.as_deref(), Some("Sales"));
    assert_eq!(e.manager.as_deref(), Some("boss@contoso.com"));
    assert_eq!(emu.requests(), 1);
}

#[tokio::test]
async fn an_unknown_employee_is_none_and_a_bad_credential_is_unauthorized() {
    let (_emu, client) = setup().await;
    let ep = endpoint(Source::HiBob);
    assert!(
        client
            .employee(&ep, &Secret::new("SERVICE-1:tok-1"), "999")
            .await
            .unwrap()
            .is_none()
    );
    let e = client
        .employee(&ep, &Secret::new("SERVICE-1:wrong"), "3332883854254932743")
        .await
        .unwrap_err();
    assert!(
        matches!(e, HrDirectoryError::Unauthorized { status: 401 }),
        "{e:?}"
    );
    assert!(!e.is_retryable());
    // An id that is not HiBob-shaped is never put in a URL.
    assert!(
        client
            .employee(&ep, &Secret::new("SERVICE-1:tok-1"), "../admin")
            .await
            .unwrap()
            .is_none()
    );
}

#[tokio::test]
async fn throttling_and_server_errors_are_retryable() {
    let (emu, client) = setup().await;
    emu.fail_next(429, 1);
    emu.fail_next(503, 1);
    let ep = endpoint(Source::HiBob);
    let cred = Secret::new("SERVICE-1:tok-1");
    for status in [429, 503] {
        let e = client
            .employee(&ep, &cred, "3332883854254932743")
            .await
            .unwrap_err();
        assert!(
            matches!(e, HrDirectoryError::Unavailable { status: Some(s), .. } if s == status),
            "{e:?}"
        );
        assert!(e.is_retryable());
    }
    assert!(
        client
            .employee(&ep, &cred, "3332883854254932743")
            .await
            .unwrap()
            .is_some()
    );
}

#[tokio::test]
async fn a_closed_port_is_unavailable() {
    // Bind and drop a listener to get a port with nothing behind it.
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let client = HiBobClient::new(HiBobConfig {
        base_url: format!("http://127.0.0.1:{port}"),
        ..Default::default()
    })
    .unwrap();
    let e = client
        .employee(&endpoint(Source::HiBob), &Secret::new("a:b"), "1")
        .await
        .unwrap_err();
    assert!(e.is_retryable(), "{e:?}");
}
