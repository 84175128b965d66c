//! Serving one listener (main, TLS or metrics) with keyhook's timeouts, so a
//! slow or silent client can neither hold a connection nor hold up shutdown.
//!
//! - Headers: hyper's `header_read_timeout`, and axum-server's first-request
//!   timeout for the bytes before hyper knows the protocol (and the TLS
//!   handshake, on the TLS listener). The connection is closed.
//! - Body: [`BodyDeadline`] cuts a request whose body is still incomplete
//!   after the request timeout; the connection is closed without an answer.
//!   Once the body is in, the handler runs to its end: a slow backend is
//!   bounded by the AWS timeout, not here.
//! - Shutdown ([`Stage`]): stop accepting, close idle connections, let
//!   requests finish; at the deadline a request still waiting for its body
//!   is cut, one whose body is in (a write under way) finishes and is
//!   answered, bounded by `drain`; then every connection left is closed.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::body::{Body, HttpBody};
use axum::extract::Request;
use axum::response::Response;
use axum::Router;
use axum_server::tls_rustls::{RustlsAcceptor, RustlsConfig};
use axum_server::Handle;
use hyper::body::{Frame, Incoming, SizeHint};
use tokio::sync::watch;
use tower::Service;

/// The time limits every listener applies.
#[derive(Debug, Clone, Copy)]
pub struct Timeouts {
    /// Until a request's headers (and TLS handshake) are in.
    pub header: Duration,
    /// Until a request's body is in, from its headers.
    pub request: Duration,
    /// From the shutdown signal until requests still reading are cut.
    pub shutdown: Duration,
    /// After `shutdown`, what a write under way may still take (the AWS
    /// timeout) before every connection is closed.
    pub drain: Duration,
}

/// Where shutdown stands; every listener watches it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Stage {
    Serving,
    /// Signalled: stop accepting, finish what is in flight.
    Draining,
    /// The shutdown timeout has passed.
    Deadline,
}

/// A request cut because its body did not arrive in time; hyper closes the
/// connection on it.
#[derive(Debug, thiserror::Error)]
#[error("request body not received in time")]
pub struct BodyTimeout;

/// Serves `router` on `listener` (over TLS with `tls`) until `stage` says
/// so; see the module documentation for the timeouts.
pub async fn serve(
    listener: tokio::net::TcpListener,
    tls: Option<RustlsConfig>,
    router: Router,
    timeouts: Timeouts,
    stage: watch::Receiver<Stage>,
) -> std::io::Result<()> {
    let handle = Handle::new();
    let in_flight = Arc::new(AtomicUsize::new(0));
    tokio::spawn(stop(
        handle.clone(),
        stage.clone(),
        Arc::clone(&in_flight),
        timeouts.drain,
    ));
    let service = tower::make::Shared::new(BodyDeadline {
        inner: router,
        timeout: timeouts.request,
        stage,
        in_flight,
    });
    let mut server = axum_server::from_tcp(listener.into_std()?)?
        .handle(handle)
        .first_request_timeout(timeouts.header);
    server
        .http_builder()
        .http1()
        .header_read_timeout(timeouts.header);
    match tls {
        None => server.serve(service).await,
        Some(tls) => {
            let acceptor = RustlsAcceptor::new(tls).handshake_timeout(timeouts.header);
            server.acceptor(acceptor).serve(service).await
        }
    }
}

/// Stops the server `handle` drives as `stage` moves on: gracefully when
/// signalled; at the deadline, once no answer is being made (or `drain` has
/// passed), for good.
async fn stop(
    handle: Handle<std::net::SocketAddr>,
    mut stage: watch::Receiver<Stage>,
    in_flight: Arc<AtomicUsize>,
    drain: Duration,
) {
    // A dropped sender also means stop.
    drop(stage.wait_for(|s| *s >= Stage::Draining).await);
    handle.graceful_shutdown(None);
    drop(stage.wait_for(|s| *s == Stage::Deadline).await);
    // Requests still reading their body are being cut (`BodyDeadline`);
    // what is left in flight is a write under way.
    let until = tokio::time::Instant::now() + drain;
    while in_flight.load(Ordering::Acquire) > 0 && tokio::time::Instant::now() < until {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    handle.shutdown();
}

/// One request from its headers until its answer has been handed to the
/// connection (its body dropped).
struct InFlight(Arc<AtomicUsize>);

impl InFlight {
    fn new(count: &Arc<AtomicUsize>) -> InFlight {
        count.fetch_add(1, Ordering::AcqRel);
        InFlight(Arc::clone(count))
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

/// Cuts a request whose body is incomplete at the request timeout or at the
/// shutdown deadline; a request whose body is in is left alone.
#[derive(Clone)]
struct BodyDeadline {
    inner: Router,
    timeout: Duration,
    stage: watch::Receiver<Stage>,
    in_flight: Arc<AtomicUsize>,
}

impl Service<hyper::Request<Incoming>> for BodyDeadline {
    type Response = Response;
    type Error = BodyTimeout;
    type Future = Pin<Box<dyn Future<Output = Result<Response, BodyTimeout>> + Send>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), BodyTimeout>> {
        // A Router is always ready.
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: hyper::Request<Incoming>) -> Self::Future {
        let in_flight = InFlight::new(&self.in_flight);
        let (parts, body) = request.into_parts();
        let received = Arc::new(AtomicBool::new(body.is_end_stream()));
        let body = Body::new(Watched {
            inner: body,
            received: Arc::clone(&received),
            _in_flight: None,
        });
        let answer = self.inner.call(Request::from_parts(parts, body));
        let timeout = self.timeout;
        let mut stage = self.stage.clone();
        Box::pin(async move {
            // Until the connection drops the answer's body, it is still
            // being written.
            let hand_over = |answer: Result<Response, std::convert::Infallible>| {
                let answer = answer.unwrap_or_else(|never| match never {});
                answer.map(|body| {
                    Body::new(Watched {
                        inner: body,
                        received: Arc::new(AtomicBool::new(false)),
                        _in_flight: Some(in_flight),
                    })
                })
            };
            if received.load(Ordering::Acquire) {
                return Ok(hand_over(answer.await));
            }
            let stalled = async {
                tokio::select! {
                    () = tokio::time::sleep(timeout) => {}
                    passed = async { stage.wait_for(|s| *s == Stage::Deadline).await.is_ok() } => {
                        if !passed {
                            std::future::pending::<()>().await;
                        }
                    }
                }
                if received.load(Ordering::Acquire) {
                    // The write is under way: let it finish.
                    std::future::pending::<()>().await;
                }
            };
            tokio::select! {
                biased;
                answer = answer => Ok(hand_over(answer)),
                () = stalled => {
                    tracing::info!(
                        timeout_secs = timeout.as_secs(),
                        "request body not received in time (KEYHOOK_REQUEST_TIMEOUT_SECS or shutdown); connection closed"
                    );
                    Err(BodyTimeout)
                }
            }
        })
    }
}

/// A body that records when it has been read to its end, and holds the
/// request's [`InFlight`] while it lives.
struct Watched<B> {
    inner: B,
    received: Arc<AtomicBool>,
    /// Held, never read.
    _in_flight: Option<InFlight>,
}

impl<B: HttpBody + Unpin> HttpBody for Watched<B> {
    type Data = B::Data;
    type Error = B::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        let frame = Pin::new(&mut self.inner).poll_frame(cx);
        if matches!(frame, Poll::Ready(None)) || self.inner.is_end_stream() {
            self.received.store(true, Ordering::Release);
        }
        frame
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}
