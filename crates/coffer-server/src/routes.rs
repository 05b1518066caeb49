//! From an HTTP request to a response: which route it is, reading the body within the limit,
//! and the server's own small answers (health, 404, 413, the dev admin routes). Everything
//! else is the AWS endpoint's business.
//!
//! Per-request cost matters here (the target is tens of thousands of signed calls a second on
//! two cores): routing is a `match`, the fixed answers are static bytes, and only error paths
//! allocate.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use coffer_core::Coffer;
use coffer_core::clock::{Clock, ManualClock};
use coffer_protocol::Endpoint;
use http::header::{CONTENT_TYPE, EXPECT, HeaderValue};
use http::{HeaderMap, Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full, LengthLimitError, Limited};
use hyper::body::{Body, Incoming};

pub(crate) type ResponseBody = Full<Bytes>;

const JSON: HeaderValue = HeaderValue::from_static("application/json");
/// The AWS JSON 1.1 content type, so an SDK that receives one of our errors parses `__type`.
const AMZ_JSON: HeaderValue = HeaderValue::from_static("application/x-amz-json-1.1");

/// Paths under this prefix belong to coffer, never to the AWS endpoint, whether or not the
/// admin routes are enabled: a client cannot reach the endpoint through them by accident.
const ADMIN_PREFIX: &str = "/_coffer/";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Route {
    Health,
    Aws,
    AdvanceClock,
    RunTasks,
    NotFound,
}

impl Route {
    fn of(method: &Method, path: &str) -> Self {
        if method == Method::POST {
            match path {
                "/_coffer/clock/advance" => Self::AdvanceClock,
                "/_coffer/tasks/run" => Self::RunTasks,
                "/_coffer" => Self::NotFound,
                _ if path.starts_with(ADMIN_PREFIX) => Self::NotFound,
                // AWS SDKs post to `/`; the endpoint decides what other paths mean.
                _ => Self::Aws,
            }
        } else if method == Method::GET && path == "/health" {
            Self::Health
        } else {
            Self::NotFound
        }
    }
}

/// What every connection shares.
pub(crate) struct App {
    pub(crate) endpoint: Endpoint,
    pub(crate) coffer: Arc<Coffer>,
    /// Present only in `--dev --manual-clock`; the admin routes exist only then.
    pub(crate) manual_clock: Option<Arc<ManualClock>>,
    pub(crate) max_body_bytes: usize,
}

impl App {
    pub(crate) async fn respond(
        &self,
        request: Request<Incoming>,
        peer: IpAddr,
    ) -> Response<ResponseBody> {
        match Route::of(request.method(), request.uri().path()) {
            Route::Health => fixed(StatusCode::OK, JSON, br#"{"status":"ok"}"#),
            Route::Aws => self.aws(request, peer).await,
            Route::AdvanceClock => match &self.manual_clock {
                Some(clock) => self.advance_clock(clock, request).await,
                None => not_found(),
            },
            Route::RunTasks => match &self.manual_clock {
                Some(_) => self.run_tasks().await,
                None => not_found(),
            },
            Route::NotFound => not_found(),
        }
    }

    async fn aws(&self, request: Request<Incoming>, peer: IpAddr) -> Response<ResponseBody> {
        let (parts, body) = request.into_parts();
        let body = match read_body(&parts.headers, body, self.max_body_bytes).await {
            Ok(body) => body,
            Err(response) => {
                // Refused unread, but still a call: it gets its event (and a request id).
                return match self
                    .endpoint
                    .record_refused(&parts, peer, response.status().as_u16())
                    .await
                {
                    Ok(request_id) => with_request_id(response, &request_id),
                    Err(failed) => failed.map(Full::new),
                };
            }
        };
        self.endpoint
            .handle(Request::from_parts(parts, body), peer)
            .await
            .map(Full::new)
    }

    async fn advance_clock(
        &self,
        clock: &ManualClock,
        request: Request<Incoming>,
    ) -> Response<ResponseBody> {
        #[derive(serde::Deserialize)]
        #[serde(deny_unknown_fields)]
        struct Advance {
            seconds: i64,
        }
        let (parts, body) = request.into_parts();
        let body = match read_body(&parts.headers, body, self.max_body_bytes).await {
            Ok(body) => body,
            Err(response) => return response,
        };
        let millis = serde_json::from_slice::<Advance>(&body)
            .ok()
            .and_then(|advance| advance.seconds.checked_mul(1000));
        let Some(millis) = millis else {
            return json_error(
                StatusCode::BAD_REQUEST,
                "ValidationException",
                r#"expected {"seconds": N} with N a whole number of seconds"#,
            );
        };
        clock.advance(millis);
        let now_millis = clock.now_millis();
        tracing::info!(
            advanced_by_millis = millis,
            now_millis,
            "manual clock advanced"
        );
        json(
            StatusCode::OK,
            &serde_json::json!({ "now_millis": now_millis }),
        )
    }

    async fn run_tasks(&self) -> Response<ResponseBody> {
        let outcome = async {
            let purged = self.coffer.purge_due().await?;
            let rotated = self.coffer.settle_due_rotations().await?;
            Ok::<_, coffer_core::CoreError>((purged, rotated))
        };
        match outcome.await {
            Ok((purged, rotated)) => json(
                StatusCode::OK,
                &serde_json::json!({ "purged": purged, "rotations": rotated }),
            ),
            Err(e) => {
                tracing::warn!(error = %e, "purge requested through /_coffer/tasks/run failed");
                json_error(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "InternalFailure",
                    &e.to_string(),
                )
            }
        }
    }
}

fn with_request_id(
    mut response: Response<ResponseBody>,
    request_id: &str,
) -> Response<ResponseBody> {
    if let Ok(v) = hyper::header::HeaderValue::from_str(request_id) {
        response.headers_mut().insert("x-amzn-requestid", v);
    }
    response
}

/// Reads the whole body, refusing one over `limit` bytes: by its declared length before
/// reading it, otherwise as soon as the bytes received pass the limit.
async fn read_body(
    headers: &HeaderMap,
    body: Incoming,
    limit: usize,
) -> Result<Bytes, Response<ResponseBody>> {
    let too_large = || {
        json_error(
            StatusCode::PAYLOAD_TOO_LARGE,
            "SerializationException",
            &format!("Request body too large: the limit is {limit} bytes"),
        )
    };
    let declared = body.size_hint().lower();
    if declared > u64::try_from(limit).unwrap_or(u64::MAX) {
        // Answering before the client has sent its body makes many clients report a broken
        // pipe (HTTP/1.1) or a stream error (curl over h2) instead of the 413. A client that
        // asked `Expect: 100-continue` is waiting for us and sends nothing; any other is
        // sending, so a modest excess is read and thrown away first.
        if !expects_continue(headers) && declared <= DRAIN_MAX_BYTES {
            let _ = tokio::time::timeout(DRAIN_TIMEOUT, drain(body)).await;
        }
        return Err(too_large());
    }
    match Limited::new(body, limit).collect().await {
        Ok(collected) => Ok(collected.to_bytes()),
        Err(e) if e.is::<LengthLimitError>() => Err(too_large()),
        Err(e) => {
            tracing::debug!(error = %e, "could not read a request body");
            Err(json_error(
                StatusCode::BAD_REQUEST,
                "SerializationException",
                "Could not read the request body",
            ))
        }
    }
}

/// Bodies declared larger than this are refused without being read (the connection closes).
const DRAIN_MAX_BYTES: u64 = 16 * 1024 * 1024;
const DRAIN_TIMEOUT: Duration = Duration::from_secs(10);

async fn drain(mut body: Incoming) {
    while let Some(Ok(_)) = body.frame().await {}
}

fn expects_continue(headers: &HeaderMap) -> bool {
    headers
        .get(EXPECT)
        .is_some_and(|value| value.as_bytes().eq_ignore_ascii_case(b"100-continue"))
}

fn fixed(
    status: StatusCode,
    content_type: HeaderValue,
    body: &'static [u8],
) -> Response<ResponseBody> {
    let mut response = Response::new(Full::new(Bytes::from_static(body)));
    *response.status_mut() = status;
    response.headers_mut().insert(CONTENT_TYPE, content_type);
    response
}

fn not_found() -> Response<ResponseBody> {
    fixed(
        StatusCode::NOT_FOUND,
        JSON,
        br#"{"__type":"NotFound","message":"No such route. The AWS APIs are at POST /; health is at GET /health."}"#,
    )
}

fn json(status: StatusCode, value: &serde_json::Value) -> Response<ResponseBody> {
    let mut response = Response::new(Full::new(Bytes::from(value.to_string())));
    *response.status_mut() = status;
    response.headers_mut().insert(CONTENT_TYPE, JSON);
    response
}

fn json_error(status: StatusCode, kind: &str, message: &str) -> Response<ResponseBody> {
    let body = serde_json::json!({ "__type": kind, "message": message });
    let mut response = json(status, &body);
    response.headers_mut().insert(CONTENT_TYPE, AMZ_JSON);
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routing_table() {
        let cases = [
            (Method::GET, "/health", Route::Health),
            (Method::POST, "/", Route::Aws),
            (Method::POST, "/health", Route::Aws),
            (Method::POST, "/anything/else", Route::Aws),
            (Method::POST, "/_coffer/clock/advance", Route::AdvanceClock),
            (Method::POST, "/_coffer/tasks/run", Route::RunTasks),
            (Method::POST, "/_coffer/unknown", Route::NotFound),
            (Method::POST, "/_coffer", Route::NotFound),
            (Method::GET, "/_coffer/tasks/run", Route::NotFound),
            (Method::GET, "/", Route::NotFound),
            (Method::GET, "/health/", Route::NotFound),
            (Method::HEAD, "/health", Route::NotFound),
            (Method::PUT, "/", Route::NotFound),
            (Method::DELETE, "/", Route::NotFound),
            (Method::OPTIONS, "/", Route::NotFound),
        ];
        for (method, path, route) in cases {
            assert_eq!(Route::of(&method, path), route, "{method} {path}");
        }
    }
}
