//! DynamoDB as the proxy serves it to keyhook: what moto does differently
//! from DynamoDB, restored or emulated narrowly (calls one at a time, a
//! transaction cancelled by a concurrent one), and a transaction's items as
//! IAM authorizes them.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use http_body_util::Full;
use hyper::body::Bytes;
use hyper::Response;
use serde_json::{json, Value};

/// One lock per moto server, shared by every proxy in front of it: a
/// DynamoDB call is forwarded only while no other is at that moto. moto's
/// threaded server applies its writes without a lock: a conditional
/// `PutItem` checks then writes (measured: 7 double wins of one claim in
/// 300 simultaneous pairs), and a `TransactWriteItems` copies the table,
/// checks the conditions, and restores the copy if one fails, undoing what
/// another thread wrote meanwhile; so two racing replicas could both win
/// one claim, where DynamoDB applies each write atomically. The proxy
/// restores that, and nothing else: calls of other services go through as
/// they come.
pub fn turns(upstream: &str) -> Arc<tokio::sync::Mutex<()>> {
    static TURNS: std::sync::OnceLock<Mutex<BTreeMap<String, Arc<tokio::sync::Mutex<()>>>>> =
        std::sync::OnceLock::new();
    let turns = TURNS.get_or_init(Mutex::default);
    let mut turns = turns.lock().unwrap();
    Arc::clone(turns.entry(upstream.to_string()).or_default())
}

/// A DynamoDB `TransactWriteItems` body's items, as IAM authorizes each:
/// `Put` as `PutItem`, `Update` as `UpdateItem`, `Delete` as `DeleteItem`,
/// `ConditionCheck` as `ConditionCheckItem`; with its table.
pub fn transact_items(json: &Value) -> Vec<(String, String)> {
    let items = json["TransactItems"].as_array().into_iter().flatten();
    items
        .filter_map(|item| {
            let (kind, op) = item.as_object()?.iter().next()?;
            let action = match kind.as_str() {
                "ConditionCheck" => "ConditionCheckItem".to_string(),
                other => format!("{other}Item"),
            };
            Some((action, op["TableName"].as_str()?.to_string()))
        })
        .collect()
}

/// DynamoDB's answer to a transaction it cancelled, with `codes` as the
/// cancellation reasons of its items (`None`, `TransactionConflict`...).
pub fn cancelled(codes: &[&str]) -> Response<Full<Bytes>> {
    let reasons: Vec<Value> = codes.iter().map(|code| json!({"Code": code})).collect();
    let body = json!({
        "__type": "com.amazonaws.dynamodb.v20120810#TransactionCanceledException",
        "message": format!(
            "Transaction cancelled, please refer cancellation reasons for specific reasons [{}]",
            codes.join(", ")
        ),
        "CancellationReasons": reasons,
    });
    Response::builder()
        .status(400)
        .header("content-type", "application/x-amz-json-1.0")
        .body(Full::new(Bytes::from(body.to_string())))
        .unwrap()
}
