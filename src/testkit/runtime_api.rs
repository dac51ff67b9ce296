//! A minimal Lambda Runtime API on loopback, to run a function's real `bootstrap` binary the way
//! Lambda does: the binary polls for the next invocation, gets the fixture event, and posts its
//! response or error back. Also measures cold start: process start to first response.

use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue};
use axum::routing::{get, post};
use axum::Router;
use tokio::sync::Notify;

#[derive(Default)]
struct Shared {
    event: Mutex<Option<String>>,
    outcome: Mutex<Option<(String, String)>>,
    done: Notify,
}

/// The function's answer: `kind` is `response`, `error` or `init-error`.
#[derive(Debug)]
pub struct Outcome {
    pub kind: String,
    pub body: serde_json::Value,
    pub cold_start: Duration,
}

async fn next(State(s): State<Arc<Shared>>) -> (HeaderMap, String) {
    let event = s.event.lock().unwrap().take();
    match event {
        Some(body) => {
            let deadline = SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .unwrap()
                .as_millis()
                + 120_000;
            let mut h = HeaderMap::new();
            h.insert(
                "lambda-runtime-aws-request-id",
                HeaderValue::from_static("fixture-request"),
            );
            h.insert(
                "lambda-runtime-deadline-ms",
                HeaderValue::from_str(&deadline.to_string()).unwrap(),
            );
            h.insert(
                "lambda-runtime-invoked-function-arn",
                HeaderValue::from_static("arn:aws:lambda:us-east-1:123456789012:function:tally"),
            );
            h.insert(
                "lambda-runtime-trace-id",
                HeaderValue::from_static("Root=1-00000000-000000000000000000000000"),
            );
            (h, body)
        }
        // One invocation per process: later polls wait until the test ends the process.
        None => std::future::pending().await,
    }
}

async fn finish(s: &Shared, kind: &str, body: String) {
    *s.outcome.lock().unwrap() = Some((kind.to_string(), body));
    s.done.notify_one();
}

/// Runs `binary` under the runtime API with `env`, hands it `event`, and returns what it answered.
pub async fn invoke(binary: &str, env: &[(&str, String)], event: &str) -> Outcome {
    let shared = Arc::new(Shared::default());
    *shared.event.lock().unwrap() = Some(event.to_string());
    let app = Router::new()
        .route("/2018-06-01/runtime/invocation/next", get(next))
        .route(
            "/2018-06-01/runtime/invocation/{id}/response",
            post(
                |State(s): State<Arc<Shared>>, Path(_id): Path<String>, body: String| async move {
                    finish(&s, "response", body).await
                },
            ),
        )
        .route(
            "/2018-06-01/runtime/invocation/{id}/error",
            post(
                |State(s): State<Arc<Shared>>, Path(_id): Path<String>, body: String| async move {
                    finish(&s, "error", body).await
                },
            ),
        )
        .route(
            "/2018-06-01/runtime/init/error",
            post(|State(s): State<Arc<Shared>>, body: String| async move {
                finish(&s, "init-error", body).await
            }),
        )
        .with_state(shared.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let server = tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });

    let started = Instant::now();
    let mut child = tokio::process::Command::new(binary)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("AWS_LAMBDA_RUNTIME_API", addr.to_string())
        .env("AWS_LAMBDA_FUNCTION_NAME", "tally-test")
        .env("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST")
        .env("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "512")
        .env("AWS_LAMBDA_LOG_GROUP_NAME", "/aws/lambda/tally-test")
        .env("AWS_LAMBDA_LOG_STREAM_NAME", "test")
        .envs(env.iter().map(|(k, v)| (k.to_string(), v.clone())))
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {binary}: {e}"));
    let mut stderr = child.stderr.take().unwrap();
    let log = tokio::spawn(async move {
        let mut text = String::new();
        tokio::io::AsyncReadExt::read_to_string(&mut stderr, &mut text)
            .await
            .ok();
        text
    });
    let exited = tokio::select! {
        _ = shared.done.notified() => None,
        status = child.wait() => Some(status.unwrap()),
        _ = tokio::time::sleep(Duration::from_secs(120)) => panic!("{binary} gave no answer in 120 s"),
    };
    let cold_start = started.elapsed();
    child.start_kill().ok();
    child.wait().await.ok();
    server.abort();
    let log = log.await.unwrap_or_default();
    // A process that stops before answering (a configuration error at start) reports through its exit and log.
    let (kind, body) = match (exited, shared.outcome.lock().unwrap().take()) {
        (_, Some(outcome)) => outcome,
        (Some(status), None) => ("exit".to_string(), format!("{status}: {log}")),
        (None, None) => unreachable!("notified without an outcome"),
    };
    let body = serde_json::from_str(&body).unwrap_or(serde_json::Value::String(body));
    Outcome {
        kind,
        body,
        cold_start,
    }
}

pub fn fixture(name: &str) -> String {
    std::fs::read_to_string(format!(
        "{}/tests/fixtures/{name}",
        env!("CARGO_MANIFEST_DIR")
    ))
    .unwrap()
}

pub fn aws_env(endpoint: &str) -> Vec<(&'static str, String)> {
    vec![
        ("AWS_ENDPOINT_URL", endpoint.to_string()),
        ("AWS_REGION", "us-east-1".into()),
        ("AWS_ACCESS_KEY_ID", "test".into()),
        ("AWS_SECRET_ACCESS_KEY", "test".into()),
        ("AWS_ALLOW_HTTP", "true".into()),
    ]
}
