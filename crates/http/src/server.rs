//! The server under the routers: what a client may hold and ask before any
//! handler runs. Connections are capped (in all and per client address), a
//! request's headers must arrive within `header_timeout_ms` and its body
//! within `body_timeout_ms`, requests in flight are capped, each client
//! address has a rate, and a request must name this host (`Host`) and, when
//! it changes something, come from no foreign page (`Origin`). Every refusal
//! is JSON naming what was refused.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Bytes;
use axum::extract::{ConnectInfo, Request, State};
use axum::http::{HeaderValue, Method, Request as HttpRequest, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use hyper::body::Incoming;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use super::ApiError;
use powerplug_roles::role::config::HttpLimits;

/// What the checks of every request share.
struct Guard {
    limits: HttpLimits,
    /// `host:port` names (lower case) a request may carry in `Host`; empty: any.
    hosts: Vec<String>,
    in_flight: Arc<Semaphore>,
    rate: Option<Rates>,
}

/// A token bucket per client: `burst` requests at once, refilled at
/// `per_second`. (governor would do the same, but its default features
/// change those of a hash map wasmtime uses, rebuilding all of wasmtime.)
struct Rates {
    per_second: f64,
    burst: f64,
    /// Client → (requests it may still make, when that was worked out).
    clients: Mutex<HashMap<IpAddr, (f64, Instant)>>,
}

/// Clients the table holds before it forgets those whose bucket is full
/// again (indistinguishable from a client never seen).
const RATE_CLIENTS: usize = 65_536;

impl Rates {
    /// Takes one request from `key`'s bucket, or says how long until one is there.
    fn take(&self, key: IpAddr) -> Result<(), Duration> {
        let now = Instant::now();
        let mut clients = self.clients.lock().unwrap_or_else(|e| e.into_inner());
        let (per_second, burst) = (self.per_second, self.burst);
        let refilled = |(left, at): (f64, Instant)| {
            (left + now.duration_since(at).as_secs_f64() * per_second).min(burst)
        };
        if clients.len() >= RATE_CLIENTS {
            clients.retain(|_, bucket| refilled(*bucket) < burst);
        }
        let bucket = clients.entry(key).or_insert((burst, now));
        let left = refilled(*bucket);
        if left >= 1.0 {
            *bucket = (left - 1.0, now);
            Ok(())
        } else {
            *bucket = (left, now);
            Err(Duration::from_secs_f64((1.0 - left) / per_second))
        }
    }
}

/// The key a client is limited under: its address, an IPv6 client by its
/// /64 (one host commonly holds a whole /64, so single addresses are free).
fn client_key(ip: IpAddr) -> IpAddr {
    match ip.to_canonical() {
        IpAddr::V6(v6) => {
            let bits = u128::from(v6) & !((1u128 << 64) - 1);
            IpAddr::V6(bits.into())
        }
        v4 => v4,
    }
}

impl Guard {
    fn new(limits: &HttpLimits, local: SocketAddr) -> Self {
        let port = local.port();
        let mut hosts = Vec::new();
        if !limits.allowed_hosts.iter().any(|h| h == "*") {
            let listen = match local.ip() {
                IpAddr::V6(v6) => format!("[{v6}]:{port}"),
                ip => format!("{ip}:{port}"),
            };
            hosts.push(listen);
            for name in ["localhost", "127.0.0.1", "[::1]"] {
                hosts.push(format!("{name}:{port}"));
            }
            for name in &limits.allowed_hosts {
                let name = name.to_ascii_lowercase();
                // A name without a port: on this port, or on the default
                // port of a proxy in front (no port in `Host`).
                if name
                    .rsplit_once(':')
                    .is_none_or(|(_, p)| p.parse::<u16>().is_err())
                    || name.ends_with(']')
                {
                    hosts.push(format!("{name}:{port}"));
                }
                hosts.push(name);
            }
        }
        let rate = (limits.rate_per_second > 0).then(|| Rates {
            per_second: f64::from(limits.rate_per_second),
            burst: f64::from(limits.rate_burst.max(1)),
            clients: Mutex::default(),
        });
        Self {
            limits: limits.clone(),
            hosts,
            in_flight: Arc::new(Semaphore::new(limits.max_requests_in_flight.max(1))),
            rate,
        }
    }

    fn limited(&self, ip: IpAddr) -> bool {
        !self.limits.unlimited_clients.contains(&ip.to_canonical())
    }

    fn host_allowed(&self, host: &str) -> bool {
        self.hosts.is_empty() || self.hosts.iter().any(|h| h.eq_ignore_ascii_case(host))
    }

    /// A browser's `Origin` is `scheme://host[:port]`: allowed when its host
    /// part is one this host answers to.
    fn origin_allowed(&self, origin: &str) -> bool {
        let Some((scheme, rest)) = origin.split_once("://") else {
            return false;
        };
        if !matches!(scheme, "http" | "https") || rest.contains('/') {
            return false;
        }
        self.host_allowed(rest)
    }
}

/// The answer to a request a check refused.
fn refuse(status: StatusCode, field: &str, message: impl ToString) -> Response {
    ApiError::new(status, field, message).into_response()
}

/// The checks every request passes before its route sees it.
async fn check(State(guard): State<Arc<Guard>>, request: Request, next: Next) -> Response {
    let read = Arc::new(AtomicBool::new(http_body::Body::is_end_stream(
        request.body(),
    )));
    let mut response = screen(&guard, request, next, read.clone()).await;
    // Refused before its body was read (a wrong token, a foreign page): the
    // rest of the body is still on its way on this connection, which can
    // carry no other request and is closed. Saying so keeps a client from
    // sending its next request on it.
    if !read.load(Ordering::Relaxed) {
        response
            .headers_mut()
            .insert(header::CONNECTION, HeaderValue::from_static("close"));
    }
    response
}

async fn screen(guard: &Guard, request: Request, next: Next, read: Arc<AtomicBool>) -> Response {
    let peer = request
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0.ip());

    // DNS rebinding: a page of another site that resolves its own name to
    // this host still sends its own name.
    let host = request
        .headers()
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .map(str::to_owned)
        .or_else(|| request.uri().authority().map(|a| a.to_string()));
    match host {
        Some(host) if guard.host_allowed(&host) => {}
        Some(host) => {
            return refuse(
                StatusCode::FORBIDDEN,
                "host",
                format!("this host does not answer to `{host}` (see `http.allowed_hosts`)"),
            );
        }
        None if guard.hosts.is_empty() => {}
        None => return refuse(StatusCode::BAD_REQUEST, "host", "a `Host` header is needed"),
    }

    // Tokens end up in logs, histories and referrers from a URL.
    if let Some(query) = request.uri().query()
        && form_urlencoded::parse(query.as_bytes())
            .any(|(k, _)| matches!(&*k, "token" | "access_token" | "credential"))
    {
        return refuse(
            StatusCode::BAD_REQUEST,
            "token",
            "a token is never taken from the URL: send `Authorization: Bearer <token>` (a browser: the login prompt, any user name, the token as password)",
        );
    }

    // A foreign page may make a browser send a request that changes
    // something; only a browser sends `Origin`, and it cannot forge it.
    let safe = matches!(
        *request.method(),
        Method::GET | Method::HEAD | Method::OPTIONS
    );
    if !safe && let Some(origin) = request.headers().get(header::ORIGIN) {
        let origin = origin.to_str().unwrap_or("");
        if !guard.origin_allowed(origin) {
            return refuse(
                StatusCode::FORBIDDEN,
                "origin",
                format!("requests from pages of `{origin}` may not change anything here"),
            );
        }
    }

    if let (Some(rate), Some(ip)) = (&guard.rate, peer)
        && guard.limited(ip)
        && let Err(wait) = rate.take(client_key(ip))
    {
        let mut response = refuse(
            StatusCode::TOO_MANY_REQUESTS,
            "rate",
            format!(
                "too many requests from {ip}: at most {} a second, {} at once; retry in {} ms",
                guard.limits.rate_per_second,
                guard.limits.rate_burst,
                wait.as_millis().max(1)
            ),
        );
        let seconds = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
        if let Ok(v) = HeaderValue::from_str(&seconds.max(1).to_string()) {
            response.headers_mut().insert(header::RETRY_AFTER, v);
        }
        return response;
    }

    let Ok(permit) = guard.in_flight.clone().try_acquire_owned() else {
        return refuse(
            StatusCode::SERVICE_UNAVAILABLE,
            "requests",
            format!(
                "this host is answering {} requests already; try again shortly",
                guard.limits.max_requests_in_flight
            ),
        );
    };
    let deadline = Duration::from_millis(guard.limits.body_timeout_ms.max(1));
    let request = request.map(|body| axum::body::Body::new(Deadline::new(body, deadline, read)));
    let response = next.run(request).await;
    drop::<OwnedSemaphorePermit>(permit);
    response
}

/// A request body that fails once `deadline` has passed since its headers:
/// a client that trickles its body holds no handler for longer.
struct Deadline {
    inner: axum::body::Body,
    sleep: Pin<Box<tokio::time::Sleep>>,
    after: Duration,
    /// Set once the body was read to its end.
    read: Arc<AtomicBool>,
}

impl Deadline {
    fn new(inner: axum::body::Body, after: Duration, read: Arc<AtomicBool>) -> Self {
        Self {
            inner,
            sleep: Box::pin(tokio::time::sleep(after)),
            after,
            read,
        }
    }
}

/// The body error of a request whose body came too slowly.
#[derive(Debug)]
pub struct BodyTimeout(pub Duration);

impl std::fmt::Display for BodyTimeout {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "the body did not arrive within {} ms",
            self.0.as_millis()
        )
    }
}

impl std::error::Error for BodyTimeout {}

impl http_body::Body for Deadline {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Bytes>, axum::Error>>> {
        let this = self.get_mut();
        if this.sleep.as_mut().poll(cx).is_ready() {
            return Poll::Ready(Some(Err(axum::Error::new(BodyTimeout(this.after)))));
        }
        let frame = Pin::new(&mut this.inner).poll_frame(cx);
        if matches!(frame, Poll::Ready(None)) || this.inner.is_end_stream() {
            this.read.store(true, Ordering::Relaxed);
        }
        frame
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.inner.size_hint()
    }
}

/// Connections open per client address.
#[derive(Default)]
struct Clients(Mutex<HashMap<IpAddr, usize>>);

/// One open connection of a limited client; counted down when it closes.
struct Slot {
    clients: Arc<Clients>,
    key: IpAddr,
}

impl Clients {
    fn enter(self: &Arc<Self>, key: IpAddr, most: usize) -> Option<Slot> {
        let mut open = self.0.lock().unwrap_or_else(|e| e.into_inner());
        let n = open.entry(key).or_default();
        if *n >= most {
            return None;
        }
        *n += 1;
        Some(Slot {
            clients: self.clone(),
            key,
        })
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut open = self.clients.0.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(n) = open.get_mut(&self.key) {
            *n -= 1;
            if *n == 0 {
                open.remove(&self.key);
            }
        }
    }
}

/// Serves `router` on `listener` under `limits` until `stop` is set; then
/// stops accepting and waits for the connections to finish their requests.
pub async fn serve(
    listener: tokio::net::TcpListener,
    router: Router,
    stop: tokio_util::sync::CancellationToken,
    limits: HttpLimits,
) -> anyhow::Result<()> {
    use hyper_util::rt::{TokioIo, TokioTimer};
    use tower::ServiceExt;

    let local = listener.local_addr()?;
    let guard = Arc::new(Guard::new(&limits, local));
    let router = router.layer(axum::middleware::from_fn_with_state(guard.clone(), check));
    let connections = Arc::new(Semaphore::new(limits.max_connections.max(1)));
    let clients = Arc::new(Clients::default());
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(Duration::from_millis(limits.header_timeout_ms.max(1)));

    let stopped = stop.cancelled();
    tokio::pin!(stopped);
    let mut open = tokio::task::JoinSet::new();
    loop {
        let (stream, peer) = tokio::select! {
            // Forget connections that ended.
            Some(_) = open.join_next(), if !open.is_empty() => continue,
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                // Out of file descriptors and the like: wait, do not spin.
                Err(_) => {
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = &mut stopped => break,
        };
        // Beyond a cap the connection is closed at once, unanswered: it
        // costs nothing to hold, and the client learns at its first read.
        let Ok(permit) = connections.clone().try_acquire_owned() else {
            continue;
        };
        let slot = if guard.limited(peer.ip()) {
            match clients.enter(client_key(peer.ip()), limits.max_connections_per_client) {
                Some(slot) => Some(slot),
                None => continue,
            }
        } else {
            None
        };
        let _ = stream.set_nodelay(true);
        let router = router.clone();
        let service = hyper::service::service_fn(move |request: HttpRequest<Incoming>| {
            let mut request = request.map(axum::body::Body::new);
            request.extensions_mut().insert(ConnectInfo(peer));
            router.clone().oneshot(request)
        });
        let connection = graceful.watch(http.serve_connection(TokioIo::new(stream), service));
        open.spawn(async move {
            // A connection ends in an error when the client goes away or
            // times out; either way there is nobody to tell.
            let _ = connection.await;
            drop((permit, slot));
        });
    }
    drop(listener);
    // Requests under way finish; idle connections close now. A client in the
    // middle of its headers is cut at its header timeout, anything at 10 s.
    let wait = Duration::from_millis(limits.header_timeout_ms.max(limits.body_timeout_ms))
        .min(Duration::from_secs(10));
    let _ = tokio::time::timeout(wait, graceful.shutdown()).await;
    // Whatever is left is cut, so that no connection keeps the role (and its
    // database) alive after a stop.
    open.abort_all();
    while open.join_next().await.is_some() {}
    Ok(())
}
