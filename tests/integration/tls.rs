//! The `tally` binary's two HTTPS clients, the AWS SDK's (SQS here; DynamoDB shares it) and
//! `object_store`'s (S3), over real TLS: the emulator behind an HTTPS endpoint whose certificate
//! only the test's own authority signs (`tests/support/tls_aws.py`, started by `make test`). Both
//! read their roots from `SSL_CERT_FILE`: with the authority in it they reach the emulator, without
//! it they refuse the certificate, so nothing here can pass over plain HTTP.

use std::process::{Command, Output};

use tally::testkit::moto;

/// `tally args` with every AWS client pointed at the HTTPS endpoint, trusting the roots in `roots`.
fn tally_over_tls(roots: &str, args: &[&str]) -> Output {
    let data = tempfile::tempdir().unwrap();
    Command::new(env!("CARGO_BIN_EXE_tally"))
        .arg("--data")
        .arg(data.path())
        .args(args)
        .env("AWS_ENDPOINT_URL", moto::tls_endpoint().0)
        .env("AWS_REGION", "us-east-1")
        .env("AWS_ACCESS_KEY_ID", "test")
        .env("AWS_SECRET_ACCESS_KEY", "test")
        .env("SSL_CERT_FILE", roots)
        .env_remove("AWS_ALLOW_HTTP")
        .env_remove("AWS_ENDPOINT_URL_S3")
        .output()
        .unwrap()
}

#[tokio::test]
async fn the_sdk_and_object_store_speak_tls_and_check_the_certificate() {
    let (_, with_authority) = moto::tls_endpoint();
    let dir = tempfile::tempdir().unwrap();
    // The system's roots alone (or none) do not include the test's authority.
    let without_authority = dir.path().join("system-roots.pem");
    std::fs::write(
        &without_authority,
        std::fs::read("/etc/ssl/certs/ca-certificates.crt").unwrap_or_default(),
    )
    .unwrap();
    let without_authority = without_authority.to_str().unwrap();

    // SQS through the SDK's client: every line arrives, read back over plain HTTP.
    let sqs = aws_sdk_sqs::Client::new(&moto::sdk().await);
    let queue = sqs
        .create_queue()
        .queue_name(moto::unique("tls"))
        .send()
        .await
        .unwrap();
    let queue_url = queue.queue_url().unwrap();
    let events = dir.path().join("events.ndjson");
    std::fs::write(
        &events,
        "{\"event_id\":\"t1\",\"event_type\":\"sign-in\",\"occurred_at\":\"2026-08-01T10:00:00Z\"}\n\
         {\"event_id\":\"t2\",\"event_type\":\"sign-in\",\"occurred_at\":\"2026-08-01T11:00:00Z\"}\n",
    )
    .unwrap();
    let send = ["send", "--queue-url", queue_url, events.to_str().unwrap()];
    let refused = tally_over_tls(without_authority, &send);
    assert!(
        !refused.status.success(),
        "sent without trusting the certificate"
    );
    let why = String::from_utf8_lossy(&refused.stderr);
    assert!(why.contains("invalid peer certificate"), "{why}");
    let sent = tally_over_tls(&with_authority, &send);
    assert!(
        sent.status.success(),
        "{}",
        String::from_utf8_lossy(&sent.stderr)
    );
    let summary: serde_json::Value = serde_json::from_slice(&sent.stdout).unwrap();
    assert_eq!(summary["events"], 2, "{summary}");
    let received = sqs
        .receive_message()
        .queue_url(queue_url)
        .max_number_of_messages(10)
        .send()
        .await
        .unwrap();
    let bodies: Vec<&str> = received
        .messages()
        .iter()
        .filter_map(|m| m.body())
        .collect();
    let text = bodies.concat();
    assert!(
        text.contains("\"t1\"") && text.contains("\"t2\""),
        "{bodies:?}"
    );

    // S3 through object_store's client: a catalog deployed over TLS is in the bucket.
    let bucket = moto::unique("tls");
    let plain = moto::s3_storage(&bucket);
    let sql = concat!(env!("CARGO_MANIFEST_DIR"), "/sql");
    let deploy = ["--sql", sql, "sql", "--bucket", &bucket, "deploy"];
    let refused = tally_over_tls(without_authority, &deploy);
    assert!(
        !refused.status.success(),
        "deployed without trusting the certificate"
    );
    assert!(plain.list("_catalog").await.unwrap().is_empty());
    let deployed = tally_over_tls(&with_authority, &deploy);
    assert!(
        deployed.status.success(),
        "{}",
        String::from_utf8_lossy(&deployed.stderr)
    );
    assert!(
        !plain.list("_catalog").await.unwrap().is_empty(),
        "no catalog in the bucket"
    );
}
