//! The witness's ports: probing a primary from a vantage point, and publishing what it saw into
//! the DR region as high-resolution CloudWatch metrics.
//!
//! When the primary's region is lost, the DR side alone cannot tell that from a partition between
//! the DR region and the primary. A second vantage point in a third region can: the `witness`
//! function runs the same SQL canary (plus a TCP connect) against every site's primary every 10 s
//! and puts one datapoint per site and vantage into the DR region (`PrimaryUp`, dimensions `Site`
//! and `Vantage`, `StorageResolution: 1`). Alarms in the DR region on that metric are ordinary
//! availability voters of the site, readable when the primary's region is dark.
//!
//! The value is 1 (answered), 0 (did not answer) or *nothing* (the probe could not tell): with
//! the alarm's `TreatMissingData: missing` a witness whose region went dark, or that could not
//! resolve the name, leaves the alarm INSUFFICIENT_DATA — unknown, never up and never down.
//! ("missing — If all data points in the alarm evaluation range are missing, the alarm
//! transitions to INSUFFICIENT_DATA", CloudWatch User Guide, "Configuring how CloudWatch alarms
//! treat missing data"; high-resolution metrics take `StorageResolution: 1` and alarms on them
//! may use a 10 s period, "High-resolution metrics" in the same guide.)
// Imports and helpers that only the fakes below use are unused when they are compiled out.
#![cfg_attr(
    not(any(test, feature = "test-util")),
    allow(unused_imports, dead_code)
)]

use std::sync::Mutex;
use std::time::Duration;

use async_trait::async_trait;
use aws_sdk_cloudwatch::types::{Dimension, MetricDatum, StandardUnit};
use chrono::{DateTime, Utc};
use failover_policy::config::SiteConfig;
use failover_policy::evidence::CanaryResult;
use failover_policy::vantage::probe_value;

use crate::aws::{port_error, AwsClients};
#[cfg(any(test, feature = "test-util"))]
use crate::fakes::Faults;
use crate::ports::{ErrorKind, PortError};

/// The CloudWatch namespace of the witness's metrics.
pub const NAMESPACE: &str = "rds-failover/Witness";
/// 1 = the primary answered (SQL, or TCP when SQL could not try), 0 = it did not.
pub const METRIC_UP: &str = "PrimaryUp";
/// 1 = a TCP connection to the primary's port was accepted, 0 = refused or timed out.
pub const METRIC_TCP: &str = "PrimaryTcpConnect";

/// What one vantage saw of one site's primary at one instant.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct ProbeSample {
    pub site: String,
    pub vantage: String,
    pub at: DateTime<Utc>,
    pub sql: CanaryResult,
    pub tcp: CanaryResult,
}

impl ProbeSample {
    /// The `PrimaryUp` value, or `None`: publish nothing (unknown).
    pub fn up(&self) -> Option<f64> {
        probe_value(&self.sql, &self.tcp)
    }

    /// The `PrimaryTcpConnect` value, or `None` when the connect could not be tried.
    pub fn tcp_connected(&self) -> Option<f64> {
        probe_value(
            &self.tcp,
            &CanaryResult::Unknown {
                reason: String::new(),
            },
        )
    }
}

/// A TCP connect to the site's canary endpoint.
#[async_trait]
pub trait TcpProbe: Send + Sync {
    async fn connect(&self, site: &SiteConfig) -> CanaryResult;
}

/// [`TcpProbe`] over a real socket, bounded by the canary's connect timeout.
pub struct TcpConnect;

#[async_trait]
impl TcpProbe for TcpConnect {
    async fn connect(&self, site: &SiteConfig) -> CanaryResult {
        match &site.canary {
            None => CanaryResult::Unknown {
                reason: failover_policy::evidence::NO_CANARY.into(),
            },
            Some(c) => {
                crate::mysql::tcp_connect(&c.endpoint, Duration::from_millis(c.connect_timeout_ms))
                    .await
            }
        }
    }
}

/// Where the witness puts its samples: the DR region's CloudWatch.
#[async_trait]
pub trait ProbeSink: Send + Sync {
    async fn publish(&self, region: &str, samples: &[ProbeSample]) -> Result<(), PortError>;
}

/// The metric data one sample becomes (nothing for an unknown).
pub fn datums(s: &ProbeSample) -> Vec<MetricDatum> {
    let dims = [("Site", s.site.as_str()), ("Vantage", s.vantage.as_str())]
        .map(|(n, v)| Dimension::builder().name(n).value(v).build());
    let at = aws_smithy_types::DateTime::from_millis(s.at.timestamp_millis());
    [(METRIC_UP, s.up()), (METRIC_TCP, s.tcp_connected())]
        .into_iter()
        .filter_map(|(name, value)| {
            value.map(|v| {
                MetricDatum::builder()
                    .metric_name(name)
                    .set_dimensions(Some(dims.to_vec()))
                    .timestamp(at)
                    .value(v)
                    .unit(StandardUnit::Count)
                    // High resolution: the DR-region alarm evaluates 10 s periods.
                    .storage_resolution(1)
                    .build()
            })
        })
        .collect()
}

/// [`ProbeSink`] over CloudWatch `PutMetricData` in the DR region.
pub struct CloudWatchProbeSink {
    clients: Option<AwsClients>,
    fixed: Option<aws_sdk_cloudwatch::Client>,
}

impl CloudWatchProbeSink {
    pub fn new(clients: AwsClients) -> Self {
        Self {
            clients: Some(clients),
            fixed: None,
        }
    }

    /// Uses `client` whatever the region (tests with a mocked client).
    pub fn from_client(client: aws_sdk_cloudwatch::Client) -> Self {
        Self {
            clients: None,
            fixed: Some(client),
        }
    }

    fn client(&self, region: &str) -> aws_sdk_cloudwatch::Client {
        match (&self.fixed, &self.clients) {
            (Some(c), _) => c.clone(),
            (None, Some(clients)) => clients.cloudwatch(region),
            (None, None) => unreachable!("built with clients or a client"),
        }
    }
}

/// PutMetricData takes at most 1000 datums per call.
const MAX_DATUMS: usize = 1000;

#[async_trait]
impl ProbeSink for CloudWatchProbeSink {
    async fn publish(&self, region: &str, samples: &[ProbeSample]) -> Result<(), PortError> {
        const OP: &str = "PutMetricData";
        let all: Vec<MetricDatum> = samples.iter().flat_map(datums).collect();
        for chunk in all.chunks(MAX_DATUMS) {
            self.client(region)
                .put_metric_data()
                .namespace(NAMESPACE)
                .set_metric_data(Some(chunk.to_vec()))
                .send()
                .await
                .map_err(|e| port_error(OP, &e))?;
        }
        Ok(())
    }
}

// ---------------------------------------------------------------- fakes

#[cfg(any(test, feature = "test-util"))]
/// The TCP connect's answer per site; sites not set are refused.
#[derive(Default)]
pub struct FakeTcpProbe {
    pub results: Mutex<std::collections::HashMap<String, CanaryResult>>,
    /// How long each connect takes to give its answer (a dark host: the connect timeout).
    pub delay: Mutex<std::time::Duration>,
}

#[cfg(any(test, feature = "test-util"))]
impl FakeTcpProbe {
    pub fn set(&self, site: &str, r: CanaryResult) {
        self.results.lock().unwrap().insert(site.into(), r);
    }
}

#[cfg(any(test, feature = "test-util"))]
#[async_trait]
impl TcpProbe for FakeTcpProbe {
    async fn connect(&self, site: &SiteConfig) -> CanaryResult {
        let delay = *self.delay.lock().unwrap();
        tokio::time::sleep(delay).await;
        self.results
            .lock()
            .unwrap()
            .get(&site.id)
            .cloned()
            .unwrap_or(CanaryResult::Unreachable {
                error: "connection refused".into(),
            })
    }
}

/// One datum as CloudWatch would store it: (region, site, vantage, metric, value, at).
pub type StoredDatum = (String, String, String, &'static str, f64, DateTime<Utc>);

#[cfg(any(test, feature = "test-util"))]
/// CloudWatch in the DR region as the witness sees it: datapoints land, or the region (or the
/// path to it) is dark and every call times out.
#[derive(Default)]
pub struct FakeProbeSink {
    pub datapoints: Mutex<Vec<StoredDatum>>,
    pub dead_regions: Mutex<Vec<String>>,
    /// How long each publish takes to answer (a blackholed path holds it for the SDK's timeout).
    pub delay: Mutex<std::time::Duration>,
    pub faults: Faults,
}

#[cfg(any(test, feature = "test-util"))]
impl FakeProbeSink {
    /// The values of `metric` for `site` from `vantage`, oldest first.
    pub fn values(&self, site: &str, vantage: &str, metric: &str) -> Vec<f64> {
        self.datapoints
            .lock()
            .unwrap()
            .iter()
            .filter(|d| d.1 == site && d.2 == vantage && d.3 == metric)
            .map(|d| d.4)
            .collect()
    }
}

#[cfg(any(test, feature = "test-util"))]
#[async_trait]
impl ProbeSink for FakeProbeSink {
    async fn publish(&self, region: &str, samples: &[ProbeSample]) -> Result<(), PortError> {
        let delay = *self.delay.lock().unwrap();
        tokio::time::sleep(delay).await;
        self.faults.check("PutMetricData")?;
        if self
            .dead_regions
            .lock()
            .unwrap()
            .iter()
            .any(|r| r == region)
        {
            return Err(PortError::new(
                ErrorKind::Timeout,
                "PutMetricData",
                format!("{region} endpoint timed out"),
            ));
        }
        let mut g = self.datapoints.lock().unwrap();
        for s in samples {
            for (metric, v) in [(METRIC_UP, s.up()), (METRIC_TCP, s.tcp_connected())] {
                if let Some(v) = v {
                    g.push((
                        region.into(),
                        s.site.clone(),
                        s.vantage.clone(),
                        metric,
                        v,
                        s.at,
                    ));
                }
            }
        }
        Ok(())
    }
}
