//! `DynamoStore::create_table` returns only when the new table and its index are ACTIVE. Real
//! DynamoDB (and emulators other than moto) answer CreateTable with the table still CREATING and
//! refuse reads and writes until it is ACTIVE. A DynamoDB stub on loopback answers CREATING
//! twice (the index still CREATING the third time) before ACTIVE.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::{Arc, Mutex};

use axum::Router;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use entra_sync_aws::{DynamoStore, sdk_config_for_endpoint};
use serde_json::{Value, json};

/// What the stub answered, in order: the operation and the table status it reported.
type Log = Arc<Mutex<Vec<(String, String)>>>;

fn description(table: &str, status: &str, index: &str) -> Value {
    json!({
        "TableName": table,
        "TableStatus": status,
        "GlobalSecondaryIndexes": [{"IndexName": "gsi1", "IndexStatus": index}],
    })
}

/// CreateTable: CREATING. DescribeTable: CREATING, CREATING, ACTIVE with the index CREATING,
/// then ACTIVE throughout.
async fn stub(log: Log) -> String {
    let app = Router::new().route(
        "/",
        post(move |headers: HeaderMap, body: String| {
            let log = log.clone();
            async move {
                let target = headers
                    .get("x-amz-target")
                    .and_then(|t| t.to_str().ok())
                    .unwrap_or_default();
                let op = target.rsplit('.').next().unwrap_or_default().to_owned();
                let request: Value = serde_json::from_str(&body).unwrap_or(Value::Null);
                let table = request["TableName"].as_str().unwrap_or_default().to_owned();
                let mut log = log.lock().unwrap();
                let describes = log.iter().filter(|(o, _)| o == "DescribeTable").count();
                let (answer, status) = match op.as_str() {
                    "CreateTable" => (
                        json!({"TableDescription": description(&table, "CREATING", "CREATING")}),
                        "CREATING",
                    ),
                    "DescribeTable" => match describes {
                        0 | 1 => (
                            json!({"Table": description(&table, "CREATING", "CREATING")}),
                            "CREATING",
                        ),
                        2 => (
                            json!({"Table": description(&table, "ACTIVE", "CREATING")}),
                            "ACTIVE, index CREATING",
                        ),
                        _ => (
                            json!({"Table": description(&table, "ACTIVE", "ACTIVE")}),
                            "ACTIVE",
                        ),
                    },
                    _ => (json!({"__type": "UnknownOperationException"}), "?"),
                };
                log.push((op, status.to_owned()));
                (
                    StatusCode::OK,
                    [("content-type", "application/x-amz-json-1.0")],
                    answer.to_string(),
                )
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    format!("http://{addr}")
}

#[tokio::test]
async fn create_table_returns_once_the_table_and_its_index_are_active() {
    let log: Log = Arc::default();
    let endpoint = stub(log.clone()).await;
    let config = sdk_config_for_endpoint(&endpoint).await;
    let store = DynamoStore::new(aws_sdk_dynamodb::Client::new(&config), "entra-sync-stub");
    store.create_table().await.unwrap();
    let log = log.lock().unwrap().clone();
    let seen: Vec<&str> = log.iter().map(|(_, status)| status.as_str()).collect();
    assert_eq!(
        log.iter().map(|(op, _)| op.as_str()).collect::<Vec<_>>(),
        [
            "CreateTable",
            "DescribeTable",
            "DescribeTable",
            "DescribeTable",
            "DescribeTable"
        ],
        "it polled until everything was ACTIVE: {seen:?}"
    );
    assert_eq!(log.last().unwrap().1, "ACTIVE");
}
