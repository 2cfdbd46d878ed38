//! The functions' environment, parsed once at cold start into one typed struct.
//!
//! Variables (all functions):
//! - `FAILOVER_CONFIG` — the site configuration document itself (JSON or TOML), or
//! - `FAILOVER_CONFIG_PATH` — a path to it, or
//! - `FAILOVER_CONFIG_S3` — `s3://bucket/key`, an object in a versioned bucket, read at cold start
//!   and re-checked every `FAILOVER_CONFIG_REFRESH_SECS` (default 60) on warm invocations
//!   ([`crate::config_store::LiveConfig`]). Exactly one of the three;
//! - `LEDGER_TABLE` — the DynamoDB ledger table name;
//! - `EVENT_BUS_NAME` — the EventBridge bus carrying domain events;
//! - `RDS_FAILOVER_REPLAY_CLOCK` — optional RFC 3339 instant that pins "now", for replaying
//!   recorded events and drills. Never set it in production.
//!
//! The evaluator alone also reads `EVALUATOR_SITE_CONCURRENCY` and `EVALUATOR_SITE_BUDGET_SECS`
//! ([`Fanout`]).

use chrono::{DateTime, Utc};
use failover_policy::{Config, ConfigError};

use crate::config_store::{ConfigLoadError, LiveConfig, S3Location};
use crate::ports::ConfigStore;

#[derive(Debug, thiserror::Error)]
pub enum SettingsError {
    #[error("environment variable {var} is not set: {expected}")]
    Missing {
        var: &'static str,
        expected: &'static str,
    },
    #[error("environment variable {var}: expected {expected}, got `{got}`")]
    Invalid {
        var: &'static str,
        expected: &'static str,
        got: String,
    },
    #[error("set exactly one of FAILOVER_CONFIG (the document), FAILOVER_CONFIG_PATH (a file) and FAILOVER_CONFIG_S3 (s3://bucket/key); set: {set}")]
    BothConfigs { set: String },
    #[error("{location}: {source}")]
    Store {
        location: String,
        source: ConfigLoadError,
    },
    #[error("{var}: {source}")]
    Config {
        var: &'static str,
        source: ConfigError,
    },
}

#[derive(Debug, Clone)]
pub struct Settings {
    pub config: Config,
    pub ledger_table: String,
    pub event_bus: String,
    pub replay_clock: Option<DateTime<Utc>>,
}

impl Settings {
    pub fn from_env() -> Result<Self, SettingsError> {
        Self::from_lookup(|k| std::env::var(k).ok())
    }

    /// Parses from any lookup (the process environment, or a map in tests). The document comes
    /// from `FAILOVER_CONFIG` or `FAILOVER_CONFIG_PATH`; `FAILOVER_CONFIG_S3` needs the store, so
    /// it is read by [`Settings::load`] (here it is a typed error naming that).
    pub fn from_lookup(get: impl Fn(&str) -> Option<String>) -> Result<Self, SettingsError> {
        let config = match config_source(&get)? {
            ConfigSource::S3(loc) => {
                return Err(SettingsError::Invalid {
                    var: "FAILOVER_CONFIG_S3",
                    expected: "a source read through Settings::load (it needs an S3 client)",
                    got: loc.to_string(),
                })
            }
            other => other.read_local()?,
        };
        Self::with_config(get, config)
    }

    /// Cold start from any of the three sources. For `FAILOVER_CONFIG_S3` the document is read
    /// through `store` (the caller builds the S3 adapter) and the [`LiveConfig`] that re-checks it
    /// on warm invocations is returned too; an unreadable or invalid document is the typed error,
    /// exactly as for the other two sources, and the function refuses to run.
    pub async fn load(
        get: impl Fn(&str) -> Option<String>,
        store: impl FnOnce(&S3Location) -> std::sync::Arc<dyn ConfigStore>,
    ) -> Result<(Self, Option<LiveConfig>), SettingsError> {
        match config_source(&get)? {
            ConfigSource::S3(loc) => {
                let every = refresh_interval(&get)?;
                let live = LiveConfig::cold_start(store(&loc), every)
                    .await
                    .map_err(|source| SettingsError::Store {
                        location: loc.to_string(),
                        source,
                    })?;
                let config = live.current().config.clone();
                Ok((Self::with_config(get, config)?, Some(live)))
            }
            other => Ok((Self::with_config(get, other.read_local()?)?, None)),
        }
    }

    pub async fn load_from_env(
        store: impl FnOnce(&S3Location) -> std::sync::Arc<dyn ConfigStore>,
    ) -> Result<(Self, Option<LiveConfig>), SettingsError> {
        Self::load(|k| std::env::var(k).ok(), store).await
    }

    fn with_config(
        get: impl Fn(&str) -> Option<String>,
        config: Config,
    ) -> Result<Self, SettingsError> {
        let non_empty = |k: &str| get(k).filter(|v| !v.trim().is_empty());
        let ledger_table = non_empty("LEDGER_TABLE").ok_or(SettingsError::Missing {
            var: "LEDGER_TABLE",
            expected: "the DynamoDB ledger table name",
        })?;
        let table_ok = (3..=255).contains(&ledger_table.len())
            && ledger_table
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'));
        if !table_ok {
            return Err(SettingsError::Invalid {
                var: "LEDGER_TABLE",
                expected: "a DynamoDB table name (3-255 of A-Z a-z 0-9 _ - .)",
                got: ledger_table,
            });
        }
        let event_bus = non_empty("EVENT_BUS_NAME").ok_or(SettingsError::Missing {
            var: "EVENT_BUS_NAME",
            expected: "the EventBridge bus name for domain events",
        })?;
        let replay_clock = replay_clock(&get)?;
        Ok(Self {
            config,
            ledger_table,
            event_bus,
            replay_clock,
        })
    }
}

/// `RDS_FAILOVER_REPLAY_CLOCK`, accepted only where AWS is a local emulator (`AWS_ENDPOINT_URL`
/// on a loopback address, as replays, drills and `cargo lambda watch` use): set by mistake in
/// production it would freeze "now", so no sustained window, cooldown or deadline ever elapses.
pub fn replay_clock(
    get: impl Fn(&str) -> Option<String>,
) -> Result<Option<DateTime<Utc>>, SettingsError> {
    let Some(t) = get("RDS_FAILOVER_REPLAY_CLOCK").filter(|v| !v.trim().is_empty()) else {
        return Ok(None);
    };
    let endpoint = get("AWS_ENDPOINT_URL").unwrap_or_default();
    let host = endpoint
        .split("://")
        .nth(1)
        .and_then(|rest| rest.split(['/', '?']).next())
        .map(|authority| match authority.strip_prefix('[') {
            Some(v6) => v6.split(']').next().unwrap_or_default().to_string(),
            None => authority
                .rsplit_once(':')
                .map_or(authority, |(h, _)| h)
                .to_string(),
        })
        .unwrap_or_default();
    let loopback = host == "localhost"
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback());
    if !loopback {
        return Err(SettingsError::Invalid {
            var: "RDS_FAILOVER_REPLAY_CLOCK",
            expected: "unset outside replays: it pins \"now\" and is accepted only with AWS_ENDPOINT_URL on a loopback emulator",
            got: format!("{t} with AWS_ENDPOINT_URL `{endpoint}`"),
        });
    }
    DateTime::parse_from_rfc3339(&t)
        .map(|d| Some(d.with_timezone(&Utc)))
        .map_err(|_| SettingsError::Invalid {
            var: "RDS_FAILOVER_REPLAY_CLOCK",
            expected: "an RFC 3339 instant such as 2026-11-24T03:05:00Z",
            got: t,
        })
}

/// Where the site configuration comes from: exactly one of the three variables.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConfigSource {
    Inline(String),
    Path(String),
    S3(S3Location),
}

pub fn config_source(get: impl Fn(&str) -> Option<String>) -> Result<ConfigSource, SettingsError> {
    let non_empty = |k: &str| get(k).filter(|v| !v.trim().is_empty());
    let set: Vec<(&str, String)> = [
        "FAILOVER_CONFIG",
        "FAILOVER_CONFIG_PATH",
        "FAILOVER_CONFIG_S3",
    ]
    .into_iter()
    .filter_map(|k| non_empty(k).map(|v| (k, v)))
    .collect();
    match set.as_slice() {
        [] => Err(SettingsError::Missing {
            var: "FAILOVER_CONFIG",
            expected: "the site configuration (JSON or TOML), or FAILOVER_CONFIG_PATH naming a file, or FAILOVER_CONFIG_S3 naming s3://bucket/key",
        }),
        [(var, v)] => Ok(match *var {
            "FAILOVER_CONFIG" => ConfigSource::Inline(v.clone()),
            "FAILOVER_CONFIG_PATH" => ConfigSource::Path(v.clone()),
            _ => ConfigSource::S3(S3Location::parse(v).ok_or_else(|| SettingsError::Invalid {
                var: "FAILOVER_CONFIG_S3",
                expected: "s3://bucket/key (a bucket name of 3-63 of a-z 0-9 . -, and a key)",
                got: v.clone(),
            })?),
        }),
        several => Err(SettingsError::BothConfigs {
            set: several
                .iter()
                .map(|(k, _)| *k)
                .collect::<Vec<_>>()
                .join(", "),
        }),
    }
}

impl ConfigSource {
    /// The document of an inline or file source, parsed and validated.
    fn read_local(self) -> Result<Config, SettingsError> {
        let (var, text) = match self {
            ConfigSource::Inline(doc) => ("FAILOVER_CONFIG", doc),
            ConfigSource::Path(path) => (
                "FAILOVER_CONFIG_PATH",
                std::fs::read_to_string(&path).map_err(|e| SettingsError::Config {
                    var: "FAILOVER_CONFIG_PATH",
                    source: ConfigError::Unreadable {
                        source_name: path.clone(),
                        message: e.to_string(),
                    },
                })?,
            ),
            ConfigSource::S3(loc) => {
                return Err(SettingsError::Invalid {
                    var: "FAILOVER_CONFIG_S3",
                    expected: "a local source",
                    got: loc.to_string(),
                })
            }
        };
        Config::from_document(&text).map_err(|source| SettingsError::Config { var, source })
    }
}

/// `FAILOVER_CONFIG_REFRESH_SECS`: how often a warm function re-checks the S3 document (a
/// conditional GetObject). Default 60 s; 1 to 3600.
pub fn refresh_interval(
    get: impl Fn(&str) -> Option<String>,
) -> Result<std::time::Duration, SettingsError> {
    const VAR: &str = "FAILOVER_CONFIG_REFRESH_SECS";
    match get(VAR).filter(|v| !v.trim().is_empty()) {
        None => Ok(std::time::Duration::from_secs(60)),
        Some(v) => v
            .trim()
            .parse::<u64>()
            .ok()
            .filter(|n| (1..=3600).contains(n))
            .map(std::time::Duration::from_secs)
            .ok_or(SettingsError::Invalid {
                var: VAR,
                expected: "whole seconds from 1 to 3600",
                got: v,
            }),
    }
}

/// The notifier's environment. It needs no site configuration — every message is composed from
/// the domain event alone — only where to claim (the ledger table) and where to publish:
/// - `LEDGER_TABLE` — the DynamoDB ledger table (claims are `NOTIFIED#...` items in it);
/// - `TOPIC_ARN` — the SNS topic to publish to;
/// - `RDS_FAILOVER_REPLAY_CLOCK` — optional, as for every function.
#[derive(Debug, Clone)]
pub struct NotifierSettings {
    pub ledger_table: String,
    /// Where the notifier's dedupe claims live: `NOTICE_TABLE`, a table of its own in the
    /// template, so the notifier's role can write there and only read the ledger (it cannot
    /// touch a site's `STATE` item: IAM has no condition on the sort key). Defaults to the
    /// ledger table (the local emulated world).
    pub notice_table: String,
    pub topic_arn: String,
    pub replay_clock: Option<DateTime<Utc>>,
}

impl NotifierSettings {
    pub fn from_env() -> Result<Self, SettingsError> {
        Self::from_lookup(|k| std::env::var(k).ok())
    }

    pub fn from_lookup(get: impl Fn(&str) -> Option<String>) -> Result<Self, SettingsError> {
        let non_empty = |k: &str| get(k).filter(|v| !v.trim().is_empty());
        let ledger_table = non_empty("LEDGER_TABLE").ok_or(SettingsError::Missing {
            var: "LEDGER_TABLE",
            expected: "the DynamoDB ledger table name",
        })?;
        let table_ok = (3..=255).contains(&ledger_table.len())
            && ledger_table
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'));
        if !table_ok {
            return Err(SettingsError::Invalid {
                var: "LEDGER_TABLE",
                expected: "a DynamoDB table name (3-255 of A-Z a-z 0-9 _ - .)",
                got: ledger_table,
            });
        }
        let notice_table = non_empty("NOTICE_TABLE").unwrap_or_else(|| ledger_table.clone());
        let notice_ok = (3..=255).contains(&notice_table.len())
            && notice_table
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'));
        if !notice_ok {
            return Err(SettingsError::Invalid {
                var: "NOTICE_TABLE",
                expected: "a DynamoDB table name (3-255 of A-Z a-z 0-9 _ - .)",
                got: notice_table,
            });
        }
        let topic_arn = non_empty("TOPIC_ARN").ok_or(SettingsError::Missing {
            var: "TOPIC_ARN",
            expected: "the SNS topic ARN notifications are published to",
        })?;
        let parts: Vec<&str> = topic_arn.split(':').collect();
        let arn_ok = parts.len() == 6
            && parts[0] == "arn"
            && parts[2] == "sns"
            && parts[1..].iter().all(|p| !p.is_empty());
        if !arn_ok {
            return Err(SettingsError::Invalid {
                var: "TOPIC_ARN",
                expected:
                    "an SNS topic ARN such as arn:aws:sns:us-west-2:123456789012:rds-failover",
                got: topic_arn,
            });
        }
        let replay_clock = replay_clock(&get)?;
        Ok(Self {
            ledger_table,
            notice_table,
            topic_arn,
            replay_clock,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    const EXAMPLE: &str = include_str!("../../../infra/sites.example.json");

    fn with(pairs: &[(&str, &str)]) -> Result<Settings, SettingsError> {
        let m: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Settings::from_lookup(|k| m.get(k).cloned())
    }

    #[test]
    fn every_missing_or_bad_variable_is_named() {
        let base = [
            ("FAILOVER_CONFIG", EXAMPLE),
            ("LEDGER_TABLE", "rds-failover-ledger"),
            ("EVENT_BUS_NAME", "rds-failover"),
        ];
        assert!(with(&base).is_ok());
        let e = with(&base[1..]).unwrap_err().to_string();
        assert!(e.contains("FAILOVER_CONFIG"), "{e}");
        let e = with(&[base[0], base[2]]).unwrap_err().to_string();
        assert!(e.contains("LEDGER_TABLE"), "{e}");
        let e = with(&[base[0], base[1]]).unwrap_err().to_string();
        assert!(e.contains("EVENT_BUS_NAME"), "{e}");
        let e = with(&[base[0], ("LEDGER_TABLE", "no spaces allowed"), base[2]])
            .unwrap_err()
            .to_string();
        assert!(e.contains("LEDGER_TABLE"), "{e}");
        let e = with(&[
            base[0],
            base[1],
            base[2],
            ("RDS_FAILOVER_REPLAY_CLOCK", "yesterday"),
        ])
        .unwrap_err()
        .to_string();
        assert!(
            e.contains("RDS_FAILOVER_REPLAY_CLOCK") && e.contains("yesterday"),
            "{e}"
        );
        let e = with(&[base[0], base[1], base[2], ("FAILOVER_CONFIG_PATH", "/x")]).unwrap_err();
        assert!(matches!(e, SettingsError::BothConfigs { .. }));
        let e = with(&[
            ("FAILOVER_CONFIG_PATH", "/nonexistent/sites.json"),
            base[1],
            base[2],
        ])
        .unwrap_err()
        .to_string();
        assert!(e.contains("/nonexistent/sites.json"), "{e}");
        let e = with(&[
            ("FAILOVER_CONFIG", "{\"account_id\": \"1\"}"),
            base[1],
            base[2],
        ])
        .unwrap_err()
        .to_string();
        assert!(e.contains("FAILOVER_CONFIG"), "{e}");
    }

    #[test]
    fn the_replay_clock_is_refused_outside_a_loopback_emulator() {
        let get = |endpoint: Option<&'static str>| {
            move |k: &str| match k {
                "RDS_FAILOVER_REPLAY_CLOCK" => Some("2026-11-24T03:05:00Z".to_string()),
                "AWS_ENDPOINT_URL" => endpoint.map(str::to_string),
                _ => None,
            }
        };
        for bad in [
            None,
            Some("https://rds.us-east-1.amazonaws.com"),
            Some("http://10.0.0.5:5000"),
        ] {
            let e = replay_clock(get(bad)).unwrap_err().to_string();
            assert!(
                e.contains("RDS_FAILOVER_REPLAY_CLOCK") && e.contains("loopback"),
                "{e}"
            );
        }
        for ok in [
            "http://127.0.0.1:5000",
            "http://localhost:4566/",
            "http://[::1]:9000",
        ] {
            assert!(replay_clock(get(Some(ok))).unwrap().is_some(), "{ok}");
        }
    }

    #[test]
    fn config_path_and_replay_clock_load() {
        let s = with(&[
            (
                "FAILOVER_CONFIG_PATH",
                concat!(
                    env!("CARGO_MANIFEST_DIR"),
                    "/../../infra/sites.example.json"
                ),
            ),
            ("LEDGER_TABLE", "rds-failover-ledger"),
            ("EVENT_BUS_NAME", "rds-failover"),
            ("RDS_FAILOVER_REPLAY_CLOCK", "2026-11-24T03:05:00Z"),
            ("AWS_ENDPOINT_URL", "http://127.0.0.1:5000"),
        ])
        .unwrap();
        assert_eq!(s.config.sites.len(), 4);
        assert_eq!(
            s.replay_clock.unwrap().to_rfc3339(),
            "2026-11-24T03:05:00+00:00"
        );
    }

    #[test]
    fn notifier_settings_name_every_missing_or_bad_variable() {
        let env = |pairs: &[(&str, &str)]| {
            let m: HashMap<String, String> = pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect();
            NotifierSettings::from_lookup(|k| m.get(k).cloned())
        };
        let topic = (
            "TOPIC_ARN",
            "arn:aws:sns:us-west-2:123456789012:rds-failover",
        );
        let table = ("LEDGER_TABLE", "rds-failover-ledger");
        let s = env(&[topic, table]).unwrap();
        assert_eq!(s.topic_arn, topic.1);
        assert_eq!(
            s.notice_table, table.1,
            "claims default to the ledger table"
        );
        let s = env(&[topic, table, ("NOTICE_TABLE", "rds-failover-notices")]).unwrap();
        assert_eq!(s.notice_table, "rds-failover-notices");
        let e = env(&[topic, table, ("NOTICE_TABLE", "no spaces")])
            .unwrap_err()
            .to_string();
        assert!(e.contains("NOTICE_TABLE"), "{e}");
        let e = env(&[table]).unwrap_err().to_string();
        assert!(e.contains("TOPIC_ARN"), "{e}");
        let e = env(&[topic]).unwrap_err().to_string();
        assert!(e.contains("LEDGER_TABLE"), "{e}");
        let e = env(&[("TOPIC_ARN", "rds-failover"), table])
            .unwrap_err()
            .to_string();
        assert!(e.contains("TOPIC_ARN") && e.contains("rds-failover"), "{e}");
        let e = env(&[topic, table, ("RDS_FAILOVER_REPLAY_CLOCK", "noon")])
            .unwrap_err()
            .to_string();
        assert!(e.contains("RDS_FAILOVER_REPLAY_CLOCK"), "{e}");
    }
}

// ---------------------------------------------------------------- invocation time budget

/// The budget assumed when `RDS_FAILOVER_FALLBACK_BUDGET_SECS` is not set.
pub const DEFAULT_FALLBACK_BUDGET: std::time::Duration = std::time::Duration::from_secs(60);

/// `RDS_FAILOVER_FALLBACK_BUDGET_SECS`: the time budget of an invocation whose runtime reports no
/// usable deadline — none, or one already past when the invocation starts, as cargo-lambda's
/// emulator does. AWS Lambda always reports the real deadline, and then this is not used.
pub fn fallback_budget_from_env() -> Result<std::time::Duration, String> {
    const VAR: &str = "RDS_FAILOVER_FALLBACK_BUDGET_SECS";
    match std::env::var(VAR) {
        Err(_) => Ok(DEFAULT_FALLBACK_BUDGET),
        Ok(v) => match v.trim().parse::<u64>() {
            Ok(secs) if (5..=900).contains(&secs) => Ok(std::time::Duration::from_secs(secs)),
            _ => Err(format!(
                "{VAR}: expected whole seconds between 5 and 900, got `{v}`"
            )),
        },
    }
}

/// The time left in this invocation: until the runtime's deadline (milliseconds since the Unix
/// epoch), or `fallback` when the runtime gave none that lies in the future.
pub fn remaining_budget(
    deadline_ms: u64,
    now: std::time::SystemTime,
    fallback: std::time::Duration,
) -> std::time::Duration {
    let now_ms = now
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0);
    if deadline_ms <= now_ms {
        return fallback;
    }
    std::time::Duration::from_millis(deadline_ms - now_ms)
}

#[cfg(test)]
mod budget_tests {
    use std::time::{Duration, SystemTime, UNIX_EPOCH};

    use super::remaining_budget;

    #[test]
    fn a_future_deadline_is_used_and_a_missing_or_past_one_falls_back() {
        let now = UNIX_EPOCH + Duration::from_secs(1_000);
        let fb = Duration::from_secs(60);
        assert_eq!(
            remaining_budget(1_030_000, now, fb),
            Duration::from_secs(30)
        );
        assert_eq!(remaining_budget(0, now, fb), fb);
        assert_eq!(remaining_budget(999_000, now, fb), fb);
        assert!(remaining_budget(u64::MAX, SystemTime::now(), fb) > fb);
    }
}

/// How the evaluator fans a signal out over its sites:
/// - `EVALUATOR_SITE_CONCURRENCY` — at most this many sites evaluated at once (default 64,
///   1..=100): bounds the burst of reads one tick makes on RDS, CloudWatch and DynamoDB. When a
///   region goes dark, each of its sites holds a slot for one read's bound (15 s), so a tick of
///   N sites takes up to ⌈N ÷ concurrency⌉ such rounds: [`Fanout::check_sites`] refuses a
///   configuration that could not finish them inside the function's timeout;
/// - `EVALUATOR_SITE_BUDGET_SECS` — each site's own time budget (default 25, 20..=50). A site
///   that runs past it is that site's error (`Retryable.Timeout` naming it), never another's.
///   The floor keeps the budget above what a blackholed region costs one evidence read
///   ([`crate::aws::OPERATION_TIMEOUT`], every read of a site in flight at once, `crate::gather`),
///   so a site whose primary region is dark is decided on unknown evidence, not timed out; the
///   ceiling keeps it inside the function's 60 s timeout (infra/template.yaml).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Fanout {
    pub concurrency: usize,
    pub site_budget: std::time::Duration,
}

impl Default for Fanout {
    fn default() -> Self {
        Self {
            concurrency: 64,
            site_budget: std::time::Duration::from_secs(25),
        }
    }
}

/// The evaluator's timeout (infra/template.yaml `AlarmEvaluatorFunction.Timeout`).
pub const EVALUATOR_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(60);

impl Fanout {
    /// `sites` sites whose primaries all sit in one region that goes dark must still all be
    /// judged inside [`EVALUATOR_TIMEOUT`]: ⌈sites ÷ concurrency⌉ rounds of one dark read
    /// ([`crate::aws::OPERATION_TIMEOUT`]) plus 5 s for the rest of each site's work. A tick cut
    /// off by the timeout would leave its last sites unjudged, tick after tick.
    pub fn check_sites(&self, sites: usize) -> Result<(), SettingsError> {
        let rounds = sites.div_ceil(self.concurrency.max(1)) as u32;
        let worst = (crate::aws::OPERATION_TIMEOUT + std::time::Duration::from_secs(5)) * rounds;
        if worst >= EVALUATOR_TIMEOUT {
            return Err(SettingsError::Invalid {
                var: "EVALUATOR_SITE_CONCURRENCY",
                expected: "enough sites at once that every site is judged inside the 60 s timeout when one region is dark: at least half of the configured sites",
                got: format!("{} for {sites} sites ({rounds} rounds of up to 20 s)", self.concurrency),
            });
        }
        Ok(())
    }

    pub fn from_env() -> Result<Self, SettingsError> {
        Self::from_lookup(|k| std::env::var(k).ok())
    }

    pub fn from_lookup(get: impl Fn(&str) -> Option<String>) -> Result<Self, SettingsError> {
        let d = Self::default();
        let number =
            |var: &'static str, range: std::ops::RangeInclusive<u64>, expected| match get(var)
                .filter(|v| !v.trim().is_empty())
            {
                None => Ok(None),
                Some(v) => match v.trim().parse::<u64>() {
                    Ok(n) if range.contains(&n) => Ok(Some(n)),
                    _ => Err(SettingsError::Invalid {
                        var,
                        expected,
                        got: v,
                    }),
                },
            };
        let concurrency = number(
            "EVALUATOR_SITE_CONCURRENCY",
            1..=100,
            "a whole number of sites evaluated at once, 1 to 100",
        )?
        .map_or(d.concurrency, |n| n as usize);
        let site_budget = number(
            "EVALUATOR_SITE_BUDGET_SECS",
            20..=50,
            "whole seconds, 20 to 50 (above a blackholed read's 15 s, inside the 60 s function timeout)",
        )?
        .map_or(d.site_budget, std::time::Duration::from_secs);
        Ok(Self {
            concurrency,
            site_budget,
        })
    }
}

#[cfg(test)]
mod fanout_tests {
    use super::*;

    #[test]
    fn fanout_defaults_and_refuses_a_budget_a_blackholed_read_would_exceed() {
        assert_eq!(Fanout::from_lookup(|_| None).unwrap(), Fanout::default());
        let f = Fanout::from_lookup(|k| match k {
            "EVALUATOR_SITE_CONCURRENCY" => Some("8".into()),
            "EVALUATOR_SITE_BUDGET_SECS" => Some("30".into()),
            _ => None,
        })
        .unwrap();
        assert_eq!((f.concurrency, f.site_budget.as_secs()), (8, 30));
        for (var, bad) in [
            ("EVALUATOR_SITE_BUDGET_SECS", "10"),
            ("EVALUATOR_SITE_BUDGET_SECS", "90"),
            ("EVALUATOR_SITE_CONCURRENCY", "0"),
            ("EVALUATOR_SITE_CONCURRENCY", "many"),
        ] {
            let e = Fanout::from_lookup(|k| (k == var).then(|| bad.to_string())).unwrap_err();
            assert!(e.to_string().contains(var), "{e}");
        }
        // 100 sites in one dark region: two rounds at the default, inside the timeout; at 8 at
        // once, thirteen rounds would leave the last sites unjudged tick after tick.
        Fanout::default().check_sites(100).unwrap();
        let e = f.check_sites(100).unwrap_err();
        assert!(e.to_string().contains("EVALUATOR_SITE_CONCURRENCY"), "{e}");
        assert!(
            Fanout::default().site_budget > crate::aws::OPERATION_TIMEOUT,
            "a site whose primary region is dark must be decided, not timed out"
        );
    }
}
