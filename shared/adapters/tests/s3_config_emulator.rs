//! The real S3 adapter ([`S3ConfigStore`], the AWS SDK) under [`LiveConfig`], against the
//! emulator: driven by tests/test_emulator.py, which starts moto, creates a versioned bucket,
//! uploads a generated 100-site document and passes its location and a bad second version here.
//! Ignored by a plain `cargo test` (no emulator); the pytest scenario runs it with `--ignored`.

use std::sync::Arc;
use std::time::{Duration, Instant};

use failover_adapters::aws::AwsClients;
use failover_adapters::config_store::{LiveConfig, Refresh, S3ConfigStore, S3Location};

fn env(k: &str) -> String {
    std::env::var(k).unwrap_or_else(|_| panic!("{k} is set by tests/test_emulator.py"))
}

#[tokio::test]
#[ignore = "needs the emulator: tests/test_emulator.py runs it"]
async fn a_hundred_sites_load_from_versioned_s3_and_a_bad_second_version_leaves_the_first() {
    let at = S3Location::parse(&env("FAILOVER_CONFIG_S3")).expect("s3://bucket/key");
    let bad = std::fs::read_to_string(env("RDS_FAILOVER_BAD_CONFIG")).unwrap();
    let clients = AwsClients::from_env().await;
    let store = Arc::new(S3ConfigStore::new(&clients, &at));

    let started = Instant::now();
    let live = LiveConfig::cold_start(store, Duration::from_secs(60))
        .await
        .expect("the first version is valid");
    let cold_ms = started.elapsed().as_millis();
    let first = live.current();
    assert_eq!(first.config.sites.len(), 100);
    let v1 = first
        .version
        .object_version
        .clone()
        .expect("a versioned bucket gives a VersionId");

    // Unchanged: S3 answers the conditional GetObject with 304, and nothing is parsed.
    let t0 = Instant::now();
    let t = Instant::now();
    assert!(matches!(
        live.refresh_at(t0 + Duration::from_secs(61)).await,
        Refresh::NotModified
    ));
    let not_modified_ms = t.elapsed().as_millis();
    assert_eq!(live.parses(), 1);

    // A bad second version, uploaded as an operator would (PutObject on the same key).
    let s3 = aws_sdk_s3::Client::from_conf(
        aws_sdk_s3::config::Builder::from(clients.sdk_config())
            .force_path_style(true)
            .build(),
    );
    let put = s3
        .put_object()
        .bucket(&at.bucket)
        .key(&at.key)
        .body(aws_sdk_s3::primitives::ByteStream::from(bad.into_bytes()))
        .send()
        .await
        .unwrap();
    let v2 = put.version_id.expect("the second version's VersionId");
    assert_ne!(v1, v2);
    match live.refresh_at(t0 + Duration::from_secs(122)).await {
        Refresh::Rejected { version, error } => {
            assert_eq!(version.as_deref(), Some(v2.as_str()));
            assert!(error.to_string().contains("duplicate"), "{error}");
        }
        other => panic!("expected the bad version rejected, got {other:?}"),
    }
    let kept = live.current();
    assert_eq!(
        kept.version, first.version,
        "the first version stays in force"
    );
    assert_eq!(kept.config.sites.len(), 100);
    // The rejected version is not parsed (nor reported) again: its ETag answers 304.
    assert!(matches!(
        live.refresh_at(t0 + Duration::from_secs(183)).await,
        Refresh::NotModified
    ));
    assert_eq!(live.parses(), 2);
    println!(
        "S3CONFIG {{\"v1\": \"{v1}\", \"v2\": \"{v2}\", \"hash\": \"{}\", \"cold_start_ms\": {cold_ms}, \"not_modified_ms\": {not_modified_ms}}}",
        first.version.hash
    );
}
