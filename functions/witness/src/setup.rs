//! Cold-start setup: environment → typed settings → clients → [`Deps`].
//!
//! Variables:
//! - `FAILOVER_CONFIG` or `FAILOVER_CONFIG_PATH` — the same site configuration the DR deployment
//!   runs with (the canary endpoints, users, credentials and TLS of every site);
//! - `WITNESS_VANTAGE` — this vantage point's name, the metric's `Vantage` dimension: the
//!   witness's region (e.g. `us-east-2`), or `dr` for the DR side's own prober;
//! - `WITNESS_METRICS_REGION` — where the samples go (default: the configuration's `region`, the
//!   DR region);
//! - `WITNESS_ROUNDS` (default 6) and `WITNESS_INTERVAL_SECS` (default 10): rounds per
//!   invocation and the time between them; `rounds × interval` must fit the one-minute schedule.

use std::sync::Arc;
use std::time::Duration;

use failover_adapters::aws::{AwsClients, SecretsManagerCredentials};
use failover_adapters::mysql::MysqlCanary;
use failover_adapters::ports::SystemClock;
use failover_adapters::witness::{CloudWatchProbeSink, TcpConnect};
use failover_policy::{Config, ConfigError};

use crate::handler::Deps;

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum WitnessSettingsError {
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
    #[error("{var}: {source}")]
    Config {
        var: &'static str,
        source: ConfigError,
    },
}

#[derive(Debug, Clone)]
pub struct WitnessSettings {
    pub config: Config,
    pub vantage: String,
    pub metrics_region: String,
    pub rounds: u32,
    pub interval: Duration,
}

impl WitnessSettings {
    pub fn from_lookup(get: impl Fn(&str) -> Option<String>) -> Result<Self, WitnessSettingsError> {
        use WitnessSettingsError::*;
        let non_empty = |k: &str| get(k).filter(|v| !v.trim().is_empty());
        let (var, doc) = match (
            non_empty("FAILOVER_CONFIG"),
            non_empty("FAILOVER_CONFIG_PATH"),
        ) {
            (Some(_), Some(_)) => {
                return Err(Invalid {
                    var: "FAILOVER_CONFIG_PATH",
                    expected: "exactly one of FAILOVER_CONFIG and FAILOVER_CONFIG_PATH",
                    got: "both set".into(),
                })
            }
            (Some(doc), None) => ("FAILOVER_CONFIG", doc),
            (None, Some(path)) => {
                let text = std::fs::read_to_string(&path).map_err(|e| Config {
                    var: "FAILOVER_CONFIG_PATH",
                    source: ConfigError::Unreadable {
                        source_name: path.clone(),
                        message: e.to_string(),
                    },
                })?;
                ("FAILOVER_CONFIG_PATH", text)
            }
            (None, None) => {
                return Err(Missing {
                    var: "FAILOVER_CONFIG",
                    expected: "the site configuration (JSON or TOML), or FAILOVER_CONFIG_PATH",
                })
            }
        };
        let config = failover_policy::Config::from_document(&doc)
            .map_err(|source| Config { var, source })?;
        let vantage = non_empty("WITNESS_VANTAGE").ok_or(Missing {
            var: "WITNESS_VANTAGE",
            expected: "this vantage point's name (its region, e.g. us-east-2, or `dr`)",
        })?;
        let vantage_ok = vantage.len() <= 64
            && vantage
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
        if !vantage_ok {
            return Err(Invalid {
                var: "WITNESS_VANTAGE",
                expected: "1-64 letters, digits, `-` or `_`",
                got: vantage,
            });
        }
        let metrics_region =
            non_empty("WITNESS_METRICS_REGION").unwrap_or_else(|| config.region.clone());
        let number = |var: &'static str, default: u64, range: std::ops::RangeInclusive<u64>| {
            match non_empty(var) {
                None => Ok(default),
                Some(v) => v
                    .parse::<u64>()
                    .ok()
                    .filter(|n| range.contains(n))
                    .ok_or(Invalid {
                        var,
                        expected: "a whole number in range (rounds 1-12, interval 1-60 s)",
                        got: v,
                    }),
            }
        };
        let rounds = number("WITNESS_ROUNDS", 6, 1..=12)? as u32;
        let interval = number("WITNESS_INTERVAL_SECS", 10, 1..=60)?;
        if u64::from(rounds - 1) * interval >= 60 {
            return Err(Invalid {
                var: "WITNESS_ROUNDS",
                expected: "rounds whose last starts within the one-minute schedule ((rounds - 1) × interval < 60 s)",
                got: format!("{rounds} rounds {interval} s apart"),
            });
        }
        Ok(Self {
            config,
            vantage,
            metrics_region,
            rounds,
            interval: Duration::from_secs(interval),
        })
    }
}

pub async fn deps_from_env() -> Result<Deps, lambda_runtime::Error> {
    let settings = WitnessSettings::from_lookup(|k| std::env::var(k).ok())?;
    let clients = AwsClients::from_env().await;
    let credentials = Arc::new(SecretsManagerCredentials::new(&clients));
    Ok(Deps {
        canary: Arc::new(MysqlCanary::new(credentials)),
        tcp: Arc::new(TcpConnect),
        sink: Arc::new(CloudWatchProbeSink::new(clients)),
        clock: Arc::new(SystemClock),
        vantage: settings.vantage,
        metrics_region: settings.metrics_region,
        rounds: settings.rounds,
        interval: settings.interval,
        cfg: settings.config,
    })
}
