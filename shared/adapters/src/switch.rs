//! The data-plane switch port: one CloudWatch `PutMetricData` in the DR region moves a
//! `data-plane-switch` site's traffic (`failover_policy::dataplane`).
//!
//! CloudWatch facts this port and its fake are built around:
//! - `PutMetricData` is regional and is served by the metric's region alone (no us-east-1
//!   dependency), which is the point;
//! - a standard-resolution datapoint is evaluated by the alarm at its period (60 s at least), so
//!   the move takes the alarm's period × evaluation periods plus the health check's interval ×
//!   failure threshold: a few minutes, not seconds.
// Imports and helpers that only the fakes below use are unused when they are compiled out.
#![cfg_attr(
    not(any(test, feature = "test-util")),
    allow(unused_imports, dead_code)
)]

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use aws_sdk_cloudwatch::types::{Dimension, MetricDatum, StandardUnit};
use failover_policy::config::SwitchMetric;

use crate::aws::{port_error, AwsClients};
#[cfg(any(test, feature = "test-util"))]
use crate::dns::FakeDns;
#[cfg(any(test, feature = "test-util"))]
use crate::fakes::Faults;
use crate::ports::{ErrorKind, PortError};

/// The switch a `data-plane-switch` site's alarm watches.
#[async_trait]
pub trait MetricSwitch: Send + Sync {
    /// Puts one datapoint `value` of `metric`, in the metric's region. The pinner puts
    /// `SWITCH_TO_SECONDARY` to fail over; unpin (issue 13's command) puts `SWITCH_TO_PRIMARY`,
    /// explicitly: a missing datapoint changes nothing.
    async fn put(&self, metric: &SwitchMetric, value: f64) -> Result<(), PortError>;
}

/// CloudWatch in the metric's region: one client per region the sites' switch metrics name,
/// built at cold start.
pub struct CloudWatchSwitch {
    clients: HashMap<String, aws_sdk_cloudwatch::Client>,
}

impl CloudWatchSwitch {
    pub fn new<'a>(clients: &AwsClients, regions: impl IntoIterator<Item = &'a str>) -> Self {
        Self {
            clients: regions
                .into_iter()
                .map(|r| (r.to_owned(), clients.cloudwatch(r)))
                .collect(),
        }
    }
}

#[async_trait]
impl MetricSwitch for CloudWatchSwitch {
    async fn put(&self, metric: &SwitchMetric, value: f64) -> Result<(), PortError> {
        const OP: &str = "PutMetricData";
        let client = self.clients.get(&metric.region).ok_or_else(|| {
            PortError::new(
                ErrorKind::Other,
                OP,
                format!(
                    "no CloudWatch client for {} (not in the configuration)",
                    metric.region
                ),
            )
        })?;
        let mut datum = MetricDatum::builder()
            .metric_name(&metric.name)
            .value(value)
            .unit(StandardUnit::Count)
            .timestamp(aws_smithy_types::DateTime::from(
                std::time::SystemTime::now(),
            ));
        for (k, v) in &metric.dimensions {
            datum = datum.dimensions(Dimension::builder().name(k).value(v).build());
        }
        client
            .put_metric_data()
            .namespace(&metric.namespace)
            .metric_data(datum.build())
            .send()
            .await
            .map_err(|e| port_error(OP, &e))?;
        Ok(())
    }
}

#[cfg(any(test, feature = "test-util"))]
/// A switch wired to a [`FakeDns`] health check, as Route 53 wires a `CLOUDWATCH_METRIC` check
/// to its alarm: a datapoint ≥ 1 makes `health_check` unhealthy (Route 53 then answers with the
/// SECONDARY), a datapoint < 1 healthy again; no datapoint, no change.
pub struct FakeSwitch {
    pub dns: Arc<FakeDns>,
    pub health_check: String,
    pub faults: Faults,
    /// Every datapoint accepted: (metric, value).
    pub puts: Mutex<Vec<(SwitchMetric, f64)>>,
    /// Regions whose CloudWatch does not answer.
    pub dark: Mutex<HashSet<String>>,
}

#[cfg(any(test, feature = "test-util"))]
impl FakeSwitch {
    pub fn new(dns: Arc<FakeDns>, health_check: impl Into<String>) -> Self {
        Self {
            dns,
            health_check: health_check.into(),
            faults: Faults::default(),
            puts: Mutex::default(),
            dark: Mutex::default(),
        }
    }
}

#[cfg(any(test, feature = "test-util"))]
#[async_trait]
impl MetricSwitch for FakeSwitch {
    async fn put(&self, metric: &SwitchMetric, value: f64) -> Result<(), PortError> {
        const OP: &str = "PutMetricData";
        self.faults.check(OP)?;
        if self.dark.lock().unwrap().contains(&metric.region) {
            return Err(PortError::new(
                ErrorKind::Unavailable,
                OP,
                format!("CloudWatch in {} does not answer", metric.region),
            ));
        }
        self.puts.lock().unwrap().push((metric.clone(), value));
        let mut unhealthy = self.dns.unhealthy.lock().unwrap();
        if value >= failover_policy::config::SWITCH_TO_SECONDARY {
            unhealthy.insert(self.health_check.clone());
        } else {
            unhealthy.remove(&self.health_check);
        }
        Ok(())
    }
}
