//! `coffer-bench`: a closed-loop load generator for `secretsmanager.GetSecretValue`.
//!
//! Each of `--connections` workers owns one HTTP/1.1 keep-alive connection (hyper's connection
//! API, no pool in between) and sends one SigV4-signed JSON 1.1 request after another, exactly
//! what an AWS SDK sends: `POST /`, `Content-Type: application/x-amz-json-1.1`,
//! `X-Amz-Target: secretsmanager.GetSecretValue`, body `{"SecretId":"…"}`. Each worker signs
//! with `aws-sigv4` and re-signs every minute, well inside the 5-minute clock-skew window, so
//! signing is off the hot path yet every request carries a signature the server must verify.
//!
//! Requests started during `--warmup` are sent but not counted. The summary reports throughput,
//! latency percentiles (exact, from every sample) and errors, and ends with one JSON line.
//! Used by `bench/run.sh`; see docs/benchmarks.md.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use anyhow::{Context, Result, anyhow, bail};
use aws_credential_types::Credentials;
use aws_sigv4::http_request::{SignableBody, SignableRequest, SigningSettings, sign};
use aws_sigv4::sign::v4;
use bytes::Bytes;
use clap::Parser;
use http::{HeaderMap, HeaderName, HeaderValue, Method, Request};
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1::SendRequest;
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

const JSON_1_1: &str = "application/x-amz-json-1.1";
const RESIGN_EVERY: Duration = Duration::from_secs(60);

#[derive(Parser, Debug)]
#[command(about = "GetSecretValue load generator (SigV4, JSON 1.1, HTTP/1.1 keep-alive)")]
struct Args {
    /// Endpoint, plain http only: http://HOST:PORT
    #[arg(long, env = "AWS_ENDPOINT_URL")]
    endpoint: String,
    #[arg(long, env = "AWS_ACCESS_KEY_ID")]
    access_key_id: String,
    #[arg(long, env = "AWS_SECRET_ACCESS_KEY", hide_env_values = true)]
    secret_access_key: String,
    #[arg(long, env = "AWS_REGION", default_value = "us-east-1")]
    region: String,
    /// The secret every request reads.
    #[arg(long, default_value = "bench/secret")]
    secret_id: String,
    /// Create the secret first (an existing one is fine).
    #[arg(long)]
    create: bool,
    /// With --create: the KMS key (id, ARN or alias) the secret is encrypted under; the
    /// default is the AWS managed key alias/aws/secretsmanager.
    #[arg(long)]
    kms_key_id: Option<String>,
    /// Concurrent keep-alive connections, one request in flight on each.
    #[arg(long, default_value_t = 64)]
    connections: usize,
    /// Measured seconds.
    #[arg(long, default_value_t = 20.0)]
    duration: f64,
    /// Seconds of load before measuring starts.
    #[arg(long, default_value_t = 5.0)]
    warmup: f64,
    /// Tokio worker threads for the generator (default: all cores).
    #[arg(long)]
    threads: Option<usize>,
    /// Seconds to wait for the endpoint to accept connections.
    #[arg(long, default_value_t = 60.0)]
    wait_ready: f64,
    /// Name of the target in the summary (e.g. coffer, moto).
    #[arg(long, default_value = "coffer")]
    label: String,
    /// Also write the JSON summary to this file.
    #[arg(long)]
    json_out: Option<PathBuf>,
}

fn main() -> Result<()> {
    let args = Args::parse();
    let mut rt = tokio::runtime::Builder::new_multi_thread();
    if let Some(n) = args.threads {
        rt.worker_threads(n.max(1));
    }
    rt.enable_all().build()?.block_on(run(args))
}

/// What every worker needs to build a signed request.
struct Target {
    addr: SocketAddr,
    host: String,
    region: String,
    credentials: Credentials,
}

impl Target {
    /// Headers for one JSON 1.1 call, signed now.
    fn signed_headers(&self, operation: &str, body: &[u8]) -> Result<HeaderMap> {
        let target = format!("secretsmanager.{operation}");
        let unsigned = [
            ("host", self.host.as_str()),
            ("content-type", JSON_1_1),
            ("x-amz-target", target.as_str()),
        ];
        let identity = self.credentials.clone().into();
        let params = v4::SigningParams::builder()
            .identity(&identity)
            .region(&self.region)
            .name("secretsmanager")
            .time(SystemTime::now())
            .settings(SigningSettings::default())
            .build()?
            .into();
        let signable = SignableRequest::new(
            "POST",
            "/",
            unsigned.iter().copied(),
            SignableBody::Bytes(body),
        )?;
        let (instructions, _signature) = sign(signable, &params)?.into_parts();
        let mut headers = HeaderMap::new();
        let all = unsigned.iter().copied().chain(instructions.headers());
        for (name, value) in all {
            headers.insert(
                HeaderName::from_bytes(name.as_bytes())?,
                HeaderValue::from_str(value)?,
            );
        }
        headers.insert(
            http::header::CONTENT_LENGTH,
            HeaderValue::from(body.len() as u64),
        );
        Ok(headers)
    }

    fn request(&self, headers: &HeaderMap, body: &Bytes) -> Result<Request<Full<Bytes>>> {
        let mut req = Request::builder()
            .method(Method::POST)
            .uri("/")
            .body(Full::new(body.clone()))?;
        *req.headers_mut() = headers.clone();
        Ok(req)
    }

    async fn connect(&self) -> Result<SendRequest<Full<Bytes>>> {
        let stream = TcpStream::connect(self.addr).await?;
        stream.set_nodelay(true)?;
        let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
        tokio::spawn(async move {
            let _ = conn.await;
        });
        Ok(sender)
    }

    /// One call on a fresh connection, for set-up: (status, body).
    async fn call(&self, operation: &str, body: String) -> Result<(u16, String)> {
        let body = Bytes::from(body);
        let headers = self.signed_headers(operation, &body)?;
        let mut sender = self.connect().await?;
        let resp = sender.send_request(self.request(&headers, &body)?).await?;
        let status = resp.status().as_u16();
        let bytes = resp.into_body().collect().await?.to_bytes();
        Ok((status, String::from_utf8_lossy(&bytes).into_owned()))
    }
}

#[derive(Default)]
struct WorkerStats {
    /// Latency of every measured successful request, in microseconds.
    latencies_us: Vec<u32>,
    errors: u64,
    reconnects: u64,
    error_samples: Vec<String>,
}

impl WorkerStats {
    fn error(&mut self, measuring: bool, what: String) {
        if measuring {
            self.errors += 1;
            if self.error_samples.len() < 3 {
                self.error_samples.push(what);
            }
        }
    }
}

async fn run(args: Args) -> Result<()> {
    let host = args
        .endpoint
        .strip_prefix("http://")
        .ok_or_else(|| anyhow!("--endpoint must be http://HOST:PORT, got {}", args.endpoint))?
        .trim_end_matches('/')
        .to_owned();
    let addr = tokio::net::lookup_host(&host)
        .await?
        .next()
        .ok_or_else(|| anyhow!("{host} does not resolve"))?;
    let target = Arc::new(Target {
        addr,
        host,
        region: args.region.clone(),
        credentials: Credentials::new(
            &args.access_key_id,
            &args.secret_access_key,
            None,
            None,
            "coffer-bench",
        ),
    });

    wait_ready(addr, Duration::from_secs_f64(args.wait_ready)).await?;
    let secret_id = serde_json::to_string(&args.secret_id)?;
    if args.create {
        let value = serde_json::to_string(
            r#"{"username":"bench","password":"correct-horse-battery-staple-0123456789"}"#,
        )?;
        let kms = match &args.kms_key_id {
            Some(k) => format!(r#","KmsKeyId":{}"#, serde_json::to_string(k)?),
            None => String::new(),
        };
        let body = format!(
            r#"{{"Name":{secret_id},"SecretString":{value},"ClientRequestToken":"{}"{kms}}}"#,
            coffer_e2e::random_token()
        );
        let (status, text) = target.call("CreateSecret", body).await?;
        if status != 200 && !text.contains("ResourceExistsException") {
            bail!("CreateSecret failed: HTTP {status}: {text}");
        }
    }
    let get_body = Bytes::from(format!(r#"{{"SecretId":{secret_id}}}"#));
    let (status, text) = target
        .call(
            "GetSecretValue",
            String::from_utf8_lossy(&get_body).into_owned(),
        )
        .await?;
    if status != 200 || !text.contains("SecretString") {
        bail!("GetSecretValue probe failed: HTTP {status}: {text}");
    }

    let warmup = Duration::from_secs_f64(args.warmup);
    let duration = Duration::from_secs_f64(args.duration);
    let start = Instant::now();
    let measure_from = start + warmup;
    let stop_at = measure_from + duration;
    let workers: Vec<_> = (0..args.connections.max(1))
        .map(|_| {
            let target = Arc::clone(&target);
            let body = get_body.clone();
            tokio::spawn(async move { worker(target, body, measure_from, stop_at).await })
        })
        .collect();
    let mut latencies = Vec::new();
    let mut errors = 0;
    let mut reconnects = 0;
    let mut samples = Vec::new();
    for w in workers {
        let stats = w.await??;
        latencies.extend(stats.latencies_us);
        errors += stats.errors;
        reconnects += stats.reconnects;
        samples.extend(stats.error_samples);
    }
    latencies.sort_unstable();

    let secs = duration.as_secs_f64();
    let ms = |q: f64| percentile(&latencies, q) as f64 / 1000.0;
    let summary = serde_json::json!({
        "label": args.label,
        "operation": "GetSecretValue",
        "connections": args.connections,
        "duration_s": secs,
        "warmup_s": warmup.as_secs_f64(),
        "requests": latencies.len(),
        "errors": errors,
        "reconnects": reconnects,
        "rps": round2(latencies.len() as f64 / secs),
        "p50_ms": round2(ms(0.50)),
        "p90_ms": round2(ms(0.90)),
        "p99_ms": round2(ms(0.99)),
        "max_ms": round2(latencies.last().copied().unwrap_or(0) as f64 / 1000.0),
    });
    println!(
        "{label}: {n} ok, {errors} errors in {secs:.1} s over {c} connections\n  \
         {rps} req/s   p50 {p50} ms   p90 {p90} ms   p99 {p99} ms   max {max} ms",
        label = args.label,
        n = latencies.len(),
        c = args.connections,
        rps = summary["rps"],
        p50 = summary["p50_ms"],
        p90 = summary["p90_ms"],
        p99 = summary["p99_ms"],
        max = summary["max_ms"],
    );
    for s in samples.iter().take(3) {
        println!("  error sample: {s}");
    }
    let line = summary.to_string();
    if let Some(path) = &args.json_out {
        std::fs::write(path, format!("{line}\n"))
            .with_context(|| format!("writing {}", path.display()))?;
    }
    println!("{line}");
    Ok(())
}

async fn worker(
    target: Arc<Target>,
    body: Bytes,
    measure_from: Instant,
    stop_at: Instant,
) -> Result<WorkerStats> {
    let mut stats = WorkerStats {
        latencies_us: Vec::with_capacity(64 * 1024),
        ..WorkerStats::default()
    };
    let mut headers = target.signed_headers("GetSecretValue", &body)?;
    let mut signed_at = Instant::now();
    'connection: while Instant::now() < stop_at {
        let mut sender = match target.connect().await {
            Ok(s) => s,
            Err(e) => {
                stats.error(Instant::now() >= measure_from, format!("connect: {e}"));
                tokio::time::sleep(Duration::from_millis(10)).await;
                continue;
            }
        };
        loop {
            // A connection the server closed after a response (Connection: close, HTTP/1.0,
            // idle timeout) is not an error: open another.
            if sender.ready().await.is_err() {
                stats.reconnects += 1;
                continue 'connection;
            }
            let t0 = Instant::now();
            if t0 >= stop_at {
                break 'connection;
            }
            if signed_at.elapsed() > RESIGN_EVERY {
                headers = target.signed_headers("GetSecretValue", &body)?;
                signed_at = Instant::now();
            }
            let measuring = t0 >= measure_from;
            let outcome = match sender.send_request(target.request(&headers, &body)?).await {
                Ok(resp) => {
                    let status = resp.status();
                    match resp.into_body().collect().await {
                        Ok(_) if status.is_success() => Ok(()),
                        Ok(b) => Err(format!(
                            "HTTP {status}: {}",
                            String::from_utf8_lossy(&b.to_bytes()[..])
                                .chars()
                                .take(200)
                                .collect::<String>()
                        )),
                        Err(e) => Err(format!("reading body: {e}")),
                    }
                }
                Err(e) => Err(format!("request: {e}")),
            };
            match outcome {
                Ok(()) if measuring => {
                    let us = t0.elapsed().as_micros();
                    stats
                        .latencies_us
                        .push(u32::try_from(us).unwrap_or(u32::MAX));
                }
                Ok(()) => {}
                Err(e) => {
                    stats.error(measuring, e);
                    continue 'connection;
                }
            }
        }
    }
    Ok(stats)
}

async fn wait_ready(addr: SocketAddr, within: Duration) -> Result<()> {
    let deadline = Instant::now() + within;
    loop {
        match TcpStream::connect(addr).await {
            Ok(_) => return Ok(()),
            Err(e) if Instant::now() > deadline => {
                bail!("{addr} not accepting connections after {within:?}: {e}")
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
        }
    }
}

/// The sample at quantile `q` (nearest-rank) of sorted `v`; 0 when empty.
fn percentile(v: &[u32], q: f64) -> u32 {
    if v.is_empty() {
        return 0;
    }
    let rank = (q * v.len() as f64).ceil() as usize;
    v[rank.clamp(1, v.len()) - 1]
}

fn round2(x: f64) -> f64 {
    (x * 100.0).round() / 100.0
}
