//! A real HTTP proxy between keyhook and moto, on loopback. It names every
//! AWS operation that passes (so tests can count calls), injects faults on
//! chosen operations (throttling, 5xx, dropped connections, delays, answers
//! lost after moto applied the call), and can paginate `GetApiKeys` the way
//! AWS does (moto returns everything at once). DynamoDB calls reach moto
//! one at a time ([`dynamodb::turns`]).

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use http_body_util::{BodyExt, Full};
use hyper::body::{Bytes, Incoming};
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use serde_json::Value;

use super::dynamodb;

/// The message an injected `AccessDenied` carries, as AWS words it: with the
/// role ARN and the account id, which no answer of keyhook may repeat.
pub const DENIED_MESSAGE: &str = "User: arn:aws:sts::123456789012:assumed-role/keyhook/x \
     is not authorized to perform: apigateway:POST on resource: \
     arn:aws:apigateway:us-east-1::/apikeys";

/// What every other injected error says: the account too, so every fault
/// test also checks that AWS's words stay out of the answer.
pub const FAULT_MESSAGE: &str =
    "injected by the test proxy for arn:aws:iam::123456789012:role/keyhook";

/// The status and JSON body of `response`, after checking that the body
/// repeats nothing of an injected AWS message.
pub async fn answer_without_aws_words(response: reqwest::Response) -> (reqwest::StatusCode, Value) {
    let status = response.status();
    let text = response.text().await.unwrap();
    for leak in ["arn:", "123456789012", "not authorized", "Exception"] {
        assert!(!text.contains(leak), "{leak:?} in {text}");
    }
    (status, serde_json::from_str(&text).unwrap())
}

#[derive(Debug, Clone)]
pub enum Fault {
    /// Answer with this status and `x-amzn-ErrorType`.
    Status(u16, &'static str),
    /// Close the connection without answering; the call never reaches moto.
    Drop,
    /// Forward the call to moto (so it is applied), then close the
    /// connection without answering: the answer lost on its way back, as
    /// when a connection resets after AWS did the work.
    Lost,
    /// Wait this long before forwarding.
    Delay(Duration),
    /// Answer a DynamoDB transaction 400 `TransactionCanceledException`
    /// with these cancellation reason codes, one per item, as DynamoDB does
    /// when another transaction on one of its items is under way
    /// (`TransactionConflict`): moto applies transactions one at a time
    /// here and never answers so.
    Cancelled(&'static [&'static str]),
}

struct Rule {
    operation: &'static str,
    fault: Fault,
    /// How many more matching calls it applies to.
    remaining: usize,
}

/// One request keyhook sent, as the proxy saw it: enough to tell which IAM
/// action and resource AWS would authorize it as.
#[derive(Debug, Clone)]
pub struct Call {
    pub operation: String,
    /// The status the proxy answered (0: the connection was dropped, or the
    /// answer lost).
    pub status: u16,
    pub method: String,
    pub path: String,
    /// Cognito's or DynamoDB's `X-Amz-Target` operation
    /// (`CreateUserPoolClient`, `PutItem`).
    pub target: Option<String>,
    /// Cognito's `UserPoolId`, from the JSON body.
    pub user_pool_id: Option<String>,
    /// DynamoDB's `TableName`, from the JSON body (a transaction's: its
    /// first item's).
    pub table_name: Option<String>,
    /// A DynamoDB transaction's items, as the actions IAM authorizes them
    /// as (`PutItem`, `UpdateItem`...), each with its table.
    pub transact_items: Vec<(String, String)>,
    /// API Gateway request bodies carrying `tags` (a create that tags).
    pub tagged: bool,
}

#[derive(Default)]
struct State {
    calls: Vec<Call>,
    /// Calls a fault was injected into, on arrival (a held call its caller
    /// abandons is recorded nowhere else).
    faulted: Vec<String>,
    rules: Vec<Rule>,
    page_size: Option<usize>,
    pages_served: usize,
    quota: Option<Quota>,
}

/// An account-wide quota, as AWS enforces per account and region: a token
/// bucket every call draws from, whatever its operation.
struct Quota {
    rate: f64,
    burst: f64,
    tokens: f64,
    last: std::time::Instant,
}

impl Quota {
    fn take(&mut self) -> bool {
        let now = std::time::Instant::now();
        let elapsed = now.duration_since(self.last).as_secs_f64();
        self.tokens = (self.tokens + elapsed * self.rate).min(self.burst);
        self.last = now;
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

#[derive(Clone)]
pub struct Proxy {
    pub endpoint: String,
    state: Arc<Mutex<State>>,
    /// Held while a DynamoDB call is at moto (see [`dynamodb::turns`]).
    dynamodb: Arc<tokio::sync::Mutex<()>>,
}

/// The AWS operation a request is, from its Cognito target header or its
/// API Gateway method and path.
pub fn operation(method: &str, path: &str, target: Option<&str>) -> String {
    if let Some(target) = target {
        return target.rsplit('.').next().unwrap_or(target).to_string();
    }
    let parts: Vec<&str> = path.trim_matches('/').split('/').collect();
    let name = match (method, parts.as_slice()) {
        ("GET", ["apikeys"]) => "GetApiKeys",
        ("POST", ["apikeys"]) => "CreateApiKey",
        ("GET", ["apikeys", _]) => "GetApiKey",
        ("PATCH", ["apikeys", _]) => "UpdateApiKey",
        ("DELETE", ["apikeys", _]) => "DeleteApiKey",
        ("GET", ["usageplans"]) => "GetUsagePlans",
        ("POST", ["usageplans"]) => "CreateUsagePlan",
        ("GET", ["usageplans", _]) => "GetUsagePlan",
        ("GET", ["usageplans", _, "keys"]) => "GetUsagePlanKeys",
        ("POST", ["usageplans", _, "keys"]) => "CreateUsagePlanKey",
        ("DELETE", ["usageplans", _, "keys", _]) => "DeleteUsagePlanKey",
        ("POST", ["restapis"]) => "CreateRestApi",
        _ => return format!("{method} {path}"),
    };
    name.to_string()
}

impl Proxy {
    /// Starts a proxy to `upstream` on a free loopback port.
    pub async fn start(upstream: &str) -> Proxy {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let endpoint = format!("http://{}", listener.local_addr().unwrap());
        let upstream = upstream.trim_end_matches('/').to_string();
        let proxy = Proxy {
            endpoint,
            state: Arc::default(),
            dynamodb: dynamodb::turns(&upstream),
        };
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(30))
            .build()
            .unwrap();
        let server = proxy.clone();
        tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    return;
                };
                let server = server.clone();
                let client = client.clone();
                let upstream = upstream.clone();
                tokio::spawn(async move {
                    let service = service_fn(move |request| {
                        let server = server.clone();
                        let client = client.clone();
                        let upstream = upstream.clone();
                        async move { server.handle(request, &client, &upstream).await }
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        proxy
    }

    /// Injects `fault` into the next `times` calls of `operation`.
    pub fn fail(&self, operation: &'static str, fault: Fault, times: usize) {
        self.state.lock().unwrap().rules.push(Rule {
            operation,
            fault,
            remaining: times,
        });
    }

    /// Enforces an account-wide quota of `rate` calls/s with bursts of
    /// `burst`: a call over it is answered 429 `TooManyRequestsException`,
    /// as API Gateway does, and recorded with status 429.
    pub fn quota(&self, rate: f64, burst: f64) {
        self.state.lock().unwrap().quota = Some(Quota {
            rate,
            burst,
            tokens: burst,
            last: std::time::Instant::now(),
        });
    }

    /// Calls answered 429 so far (quota or injected throttling).
    pub fn throttled(&self) -> usize {
        self.calls().iter().filter(|(_, s)| *s == 429).count()
    }

    pub fn clear_faults(&self) {
        self.state.lock().unwrap().rules.clear();
    }

    /// Serves `GetApiKeys` in pages of `size`, following `position`.
    pub fn paginate_api_keys(&self, size: usize) {
        self.state.lock().unwrap().page_size = Some(size);
    }

    pub fn pages_served(&self) -> usize {
        self.state.lock().unwrap().pages_served
    }

    /// Every operation seen so far, with the status the proxy answered.
    pub fn calls(&self) -> Vec<(String, u16)> {
        self.requests()
            .into_iter()
            .map(|c| (c.operation, c.status))
            .collect()
    }

    /// Every request seen so far, in full.
    pub fn requests(&self) -> Vec<Call> {
        self.state.lock().unwrap().calls.clone()
    }

    /// How many times each operation was called.
    pub fn counts(&self) -> BTreeMap<String, usize> {
        let mut counts = BTreeMap::new();
        for (op, _) in self.calls() {
            *counts.entry(op).or_default() += 1;
        }
        counts
    }

    /// How many calls of `operation` a fault was injected into.
    pub fn faulted(&self, operation: &str) -> usize {
        let state = self.state.lock().unwrap();
        state.faulted.iter().filter(|op| *op == operation).count()
    }

    pub fn count(&self, operation: &str) -> usize {
        self.calls()
            .iter()
            .filter(|(op, _)| op == operation)
            .count()
    }

    pub fn reset_calls(&self) {
        let mut state = self.state.lock().unwrap();
        state.calls.clear();
        state.faulted.clear();
    }

    async fn handle(
        &self,
        request: Request<Incoming>,
        client: &reqwest::Client,
        upstream: &str,
    ) -> Result<Response<Full<Bytes>>, std::io::Error> {
        let (parts, body) = request.into_parts();
        let body = body
            .collect()
            .await
            .map_err(std::io::Error::other)?
            .to_bytes();
        let method = parts.method.as_str().to_string();
        let path = parts.uri.path().to_string();
        let target = parts
            .headers
            .get("x-amz-target")
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        let op = operation(&method, &path, target.as_deref());
        let json: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
        let transact_items = dynamodb::transact_items(&json);
        let seen = Call {
            operation: op.clone(),
            status: 0,
            target: target.as_ref().map(|t| operation(&method, &path, Some(t))),
            user_pool_id: json["UserPoolId"].as_str().map(str::to_string),
            table_name: json["TableName"]
                .as_str()
                .or_else(|| transact_items.first().map(|(_, table)| table.as_str()))
                .map(str::to_string),
            transact_items: transact_items.clone(),
            tagged: target.is_none() && json["tags"].as_object().is_some_and(|t| !t.is_empty()),
            method,
            path,
        };
        let over_quota = {
            let mut state = self.state.lock().unwrap();
            state.quota.as_mut().is_some_and(|quota| !quota.take())
        };
        if over_quota {
            self.record(&seen, 429);
            return Ok(Response::builder()
                .status(429)
                .header("content-type", "application/json")
                .header("x-amzn-ErrorType", "TooManyRequestsException")
                .body(Full::new(Bytes::from_static(
                    br#"{"message":"Too Many Requests"}"#,
                )))
                .unwrap());
        }
        let fault = {
            let mut state = self.state.lock().unwrap();
            let fault = state
                .rules
                .iter_mut()
                .find(|r| r.operation == op && r.remaining > 0)
                .map(|rule| {
                    rule.remaining -= 1;
                    rule.fault.clone()
                });
            if fault.is_some() {
                state.faulted.push(op.clone());
            }
            fault
        };
        match fault {
            Some(Fault::Status(status, error_type)) => {
                self.record(&seen, status);
                let message = match error_type.contains("AccessDenied") {
                    true => DENIED_MESSAGE,
                    false => FAULT_MESSAGE,
                };
                let body = serde_json::json!({"message": message, "__type": error_type});
                return Ok(Response::builder()
                    .status(status)
                    .header("content-type", "application/json")
                    .header("x-amzn-ErrorType", error_type)
                    .body(Full::new(Bytes::from(body.to_string())))
                    .unwrap());
            }
            Some(Fault::Cancelled(codes)) => {
                self.record(&seen, 400);
                return Ok(dynamodb::cancelled(codes));
            }
            Some(Fault::Drop) => {
                self.record(&seen, 0);
                // An error from the service makes hyper close the connection
                // without an answer.
                return Err(std::io::Error::other("dropped by the test proxy"));
            }
            Some(Fault::Delay(delay)) => tokio::time::sleep(delay).await,
            Some(Fault::Lost) | None => {}
        }
        let lose = matches!(fault, Some(Fault::Lost));

        let query = parts.uri.query().map(str::to_string);
        let headers = parts.headers;
        let method = &seen.method;
        let page_size = self.state.lock().unwrap().page_size;
        let paginate = op == "GetApiKeys" && page_size.is_some();
        let mut url = reqwest::Url::parse(&format!("{upstream}{}", seen.path)).unwrap();
        if let Some(query) = &query {
            url.set_query(Some(query));
        }
        let mut params: Vec<(String, String)> = url.query_pairs().into_owned().collect();
        let position: usize = params
            .iter()
            .find(|(k, _)| k == "position")
            .and_then(|(_, v)| v.parse().ok())
            .unwrap_or(0);
        if paginate {
            params.retain(|(k, _)| k != "position" && k != "limit");
        }
        url.set_query(None);
        if !params.is_empty() {
            url.query_pairs_mut().extend_pairs(&params);
        }
        let mut forward =
            client.request(reqwest::Method::from_bytes(method.as_bytes()).unwrap(), url);
        for (name, value) in &headers {
            if name != "host" && name != "content-length" {
                forward = forward.header(name.as_str(), value.as_bytes());
            }
        }
        let dynamodb = target
            .as_deref()
            .is_some_and(|t| t.starts_with("DynamoDB_"));
        let _turn = match dynamodb {
            true => Some(self.dynamodb.lock().await),
            false => None,
        };
        let answer = match forward.body(body.to_vec()).send().await {
            Ok(answer) => answer,
            Err(err) => {
                self.record(&seen, 502);
                return Ok(Response::builder()
                    .status(502)
                    .body(Full::new(Bytes::from(err.to_string())))
                    .unwrap());
            }
        };
        let status = answer.status().as_u16();
        let mut response = Response::builder().status(status);
        for (name, value) in answer.headers() {
            if name != "content-length" && name != "transfer-encoding" {
                response = response.header(name.as_str(), value.as_bytes());
            }
        }
        let mut bytes = answer.bytes().await.map_err(std::io::Error::other)?;
        if lose {
            // moto has applied the call; its answer goes nowhere.
            self.record(&seen, 0);
            return Err(std::io::Error::other("answer lost by the test proxy"));
        }
        if paginate && status == 200 {
            bytes = self.page(&bytes, position, page_size.unwrap_or(usize::MAX));
        }
        self.record(&seen, status);
        Ok(response.body(Full::new(bytes)).unwrap())
    }

    fn page(&self, bytes: &Bytes, position: usize, size: usize) -> Bytes {
        let Ok(mut doc) = serde_json::from_slice::<Value>(bytes) else {
            return bytes.clone();
        };
        let items: Vec<Value> = doc["item"].as_array().cloned().unwrap_or_default();
        let end = (position + size).min(items.len());
        let page: Vec<Value> = items.get(position..end).unwrap_or(&[]).to_vec();
        doc["item"] = Value::Array(page);
        if end < items.len() {
            doc["position"] = Value::String(end.to_string());
        } else if let Some(map) = doc.as_object_mut() {
            map.remove("position");
        }
        self.state.lock().unwrap().pages_served += 1;
        Bytes::from(doc.to_string())
    }

    fn record(&self, seen: &Call, status: u16) {
        self.state.lock().unwrap().calls.push(Call {
            status,
            ..seen.clone()
        });
    }
}
