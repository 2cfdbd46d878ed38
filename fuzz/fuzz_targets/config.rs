//! Fuzz target `config`: arbitrary bytes as the site configuration document (JSON or TOML), the
//! way `FAILOVER_CONFIG` / `FAILOVER_CONFIG_PATH` reach `Config::from_document` at cold start.
//!
//! A document that validates is then used the way the functions use it (site lookup, owned
//! resources and regions, the canary endpoint split that validation promises cannot fail,
//! maintenance windows), so a check that validation skipped shows up as a panic here.
#![no_main]

use chrono::{DateTime, Duration, Utc};
use failover_policy::Config;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    match Config::from_document(text) {
        Err(e) => {
            let _ = e.to_string();
        }
        Ok(cfg) => {
            let t0 = DateTime::parse_from_rfc3339("2026-11-23T00:00:00Z")
                .expect("fixed clock")
                .with_timezone(&Utc);
            for site in &cfg.sites {
                assert!(cfg.site(&site.id).is_some());
                let _ = site.resource_ids();
                let _ = site.regions();
                if let Some(c) = &site.canary {
                    let _ = c.host_port();
                }
                for alarm in site.availability_alarms() {
                    assert!(site.owns_alarm(&alarm.name));
                }
                for h in 0..(7 * 24) {
                    let _ = site.in_maintenance(t0 + Duration::hours(h));
                }
            }
        }
    }
});
