//! The witness's handler: every `interval`, probe every site's primary (SQL canary and TCP
//! connect, concurrently) and publish one sample per site into the DR region.
//!
//! One invocation per minute (EventBridge Scheduler has one-minute precision) runs `rounds`
//! rounds `interval` apart — six rounds 10 s apart by default — so the DR-region alarms see a
//! datapoint every 10 s. The payload decides nothing: the witness probes the configured sites
//! whatever it is sent, so no input can steer it at another host; input that is not a JSON
//! object is refused as `BadInput`.
//!
//! A failed publish (the DR region unreachable from here) is logged and the rounds go on: the
//! DR side then sees missing data, which its alarms treat as missing (unknown), never as up.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use failover_adapters::ports::{Canary, Clock};
use failover_adapters::witness::{ProbeSample, ProbeSink, TcpProbe};
use failover_policy::evidence::CanaryResult;
use failover_policy::Config;
use lambda_runtime::Diagnostic;
use serde::Serialize;
use serde_json::Value;
use tracing::{info, warn};

/// Everything the handler talks to, built once at cold start.
pub struct Deps {
    pub cfg: Config,
    /// This vantage point's name, the metric's `Vantage` dimension (e.g. `us-east-2`, `dr`).
    pub vantage: String,
    /// Where the samples go: the DR region (the region the evaluator runs in).
    pub metrics_region: String,
    pub canary: Arc<dyn Canary>,
    pub tcp: Arc<dyn TcpProbe>,
    pub sink: Arc<dyn ProbeSink>,
    pub clock: Arc<dyn Clock>,
    pub rounds: u32,
    pub interval: Duration,
}

#[derive(Debug, thiserror::Error)]
pub enum WitnessError {
    #[error("bad input: {0}")]
    BadInput(String),
}

impl From<WitnessError> for Diagnostic {
    fn from(e: WitnessError) -> Self {
        Diagnostic {
            error_type: "BadInput".into(),
            error_message: e.to_string(),
        }
    }
}

/// One site's probe in one round, as the response (and the logs) show it.
#[derive(Debug, Serialize)]
pub struct SampleSummary {
    pub site: String,
    /// The `PrimaryUp` value published, or `None` (unknown: nothing published).
    pub up: Option<f64>,
    pub tcp: Option<f64>,
    pub sql: CanaryResult,
}

#[derive(Debug, Serialize)]
pub struct Round {
    pub at: DateTime<Utc>,
    pub samples: Vec<SampleSummary>,
    /// Why the round's samples could not be published, if they could not.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub publish_error: Option<String>,
}

#[derive(Debug, Serialize)]
pub struct Response {
    pub vantage: String,
    pub metrics_region: String,
    pub rounds: Vec<Round>,
}

fn check_input(payload: &Value) -> Result<(), WitnessError> {
    let Some(obj) = payload.as_object() else {
        return Err(WitnessError::BadInput(
            "expected a JSON object (a scheduled event)".into(),
        ));
    };
    if let Some(why) = obj.get(failover_policy::signal::REFUSED_INPUT_KEY) {
        return Err(WitnessError::BadInput(why.as_str().unwrap_or("").into()));
    }
    Ok(())
}

/// Publishes one round's samples, given up at the end of the round's slot (the probes' time
/// included): a path to the DR region
/// that hangs (the SDK waits up to its 15 s operation timeout) must not stretch the 10 s cadence
/// or push the last rounds past the function's timeout. A sample given up is missing data on the
/// DR side (unknown), never up.
async fn publish(
    deps: &Deps,
    samples: &[ProbeSample],
    slot_end: tokio::time::Instant,
) -> Result<(), String> {
    let region = &deps.metrics_region;
    let sent = tokio::time::timeout_at(slot_end, deps.sink.publish(region, samples));
    let why = match sent.await {
        Ok(Ok(())) => return Ok(()),
        Ok(Err(e)) => e.to_string(),
        Err(_) => format!(
            "PutMetricData to {region} not answered by the end of the round's {} s slot; given up",
            deps.interval.as_secs()
        ),
    };
    warn!(error = %why, region = %region, "could not publish the round; the DR side sees missing data (unknown)");
    Err(why)
}

/// One round: every site probed concurrently, the samples published together.
pub async fn round(deps: &Deps, slot_end: tokio::time::Instant) -> Round {
    let at = deps.clock.now();
    let probes = deps.cfg.sites.iter().map(|site| async move {
        let (sql, tcp) = tokio::join!(deps.canary.probe(site), deps.tcp.connect(site));
        ProbeSample {
            site: site.id.clone(),
            vantage: deps.vantage.clone(),
            at,
            sql,
            tcp,
        }
    });
    let samples: Vec<ProbeSample> = futures::future::join_all(probes).await;
    let publish_error = publish(deps, &samples, slot_end).await.err();
    for s in &samples {
        info!(site = %s.site, vantage = %s.vantage, up = ?s.up(), tcp = ?s.tcp_connected(), "probe");
    }
    Round {
        at,
        samples: samples
            .into_iter()
            .map(|s| SampleSummary {
                up: s.up(),
                tcp: s.tcp_connected(),
                site: s.site,
                sql: s.sql,
            })
            .collect(),
        publish_error,
    }
}

pub async fn handle(deps: &Deps, payload: Value) -> Result<Response, WitnessError> {
    check_input(&payload)?;
    let start = tokio::time::Instant::now();
    let mut rounds = vec![];
    for n in 0..deps.rounds {
        // Rounds keep their slots (0 s, 10 s, ...) however long a probe took.
        tokio::time::sleep_until(start + deps.interval * n).await;
        rounds.push(round(deps, start + deps.interval * (n + 1)).await);
    }
    Ok(Response {
        vantage: deps.vantage.clone(),
        metrics_region: deps.metrics_region.clone(),
        rounds,
    })
}

#[cfg(test)]
mod tests;
