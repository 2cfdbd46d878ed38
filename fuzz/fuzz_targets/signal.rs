//! Fuzz target `signal`: arbitrary bytes through the evaluator's own input path.
//!
//! The Lambda runtime deserializes the invoke payload into a `serde_json::Value` and the
//! evaluator hands it to `failover_policy::parse_signal`; this target does the same, then routes
//! any signal that parsed against the example configuration (the pure allowlist and event-age
//! guards, with their date arithmetic). `parse_bytes` (the size-checked byte entry point) is run
//! on the same input. Any panic is a bug: bad input must be a typed `SignalError` or an ignore.
#![no_main]

use std::sync::OnceLock;

use chrono::{DateTime, Utc};
use failover_policy::{parse_bytes, parse_signal, route, Config};
use libfuzzer_sys::fuzz_target;

fn config() -> &'static Config {
    static CFG: OnceLock<Config> = OnceLock::new();
    CFG.get_or_init(|| {
        Config::from_document(include_str!("../../infra/sites.example.json"))
            .expect("the example configuration is valid")
    })
}

fn now() -> DateTime<Utc> {
    DateTime::parse_from_rfc3339("2026-11-24T03:05:00Z")
        .expect("fixed clock")
        .with_timezone(&Utc)
}

fuzz_target!(|data: &[u8]| {
    let by_bytes = parse_bytes(data);
    if let Ok(v) = serde_json::from_slice::<serde_json::Value>(data) {
        let parsed = parse_signal(&v);
        if let Ok(signal) = &parsed {
            let _ = route(config(), signal, now());
            // The Display of every part must not panic either (it is what gets logged).
            let _ = format!("{signal:?}");
        }
        if let Err(e) = &parsed {
            let _ = e.to_string();
        }
        // Same bytes, same answer: the byte entry point must agree with the Value one unless it
        // refused the input on size.
        if !matches!(by_bytes, Err(failover_policy::SignalError::TooLarge(_))) {
            assert_eq!(
                by_bytes.is_ok(),
                parsed.is_ok(),
                "parse_bytes and parse_signal disagree"
            );
        }
    }
});
