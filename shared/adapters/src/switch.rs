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
use aws_sdk_cloudwatch::types::{AlarmType, Dimension, MetricDatum, StandardUnit};
use failover_policy::config::SwitchMetric;
use failover_policy::signal::AlarmState;

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

    /// The state of the switch alarm (`metric.alarm`, in the metric's region): one
    /// `DescribeAlarms` naming it. An alarm that does not exist is `NotFound`.
    async fn alarm_state(&self, metric: &SwitchMetric) -> Result<AlarmState, PortError>;
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

impl CloudWatchSwitch {
    /// One region's client (the adapter's tests inject a mocked one).
    pub fn from_client(region: impl Into<String>, client: aws_sdk_cloudwatch::Client) -> Self {
        Self {
            clients: HashMap::from([(region.into(), client)]),
        }
    }

    fn client(
        &self,
        op: &'static str,
        region: &str,
    ) -> Result<&aws_sdk_cloudwatch::Client, PortError> {
        self.clients.get(region).ok_or_else(|| {
            PortError::new(
                ErrorKind::Other,
                op,
                format!("no CloudWatch client for {region} (not in the configuration)"),
            )
        })
    }
}

#[async_trait]
impl MetricSwitch for CloudWatchSwitch {
    async fn alarm_state(&self, metric: &SwitchMetric) -> Result<AlarmState, PortError> {
        const OP: &str = "DescribeAlarms";
        let out = self
            .client(OP, &metric.region)?
            .describe_alarms()
            .alarm_names(&metric.alarm)
            .alarm_types(AlarmType::MetricAlarm)
            .send()
            .await
            .map_err(|e| port_error(OP, &e))?;
        let alarm = out
            .metric_alarms()
            .iter()
            .find(|a| a.alarm_name() == Some(metric.alarm.as_str()))
            .ok_or_else(|| {
                PortError::new(
                    ErrorKind::NotFound,
                    OP,
                    format!(
                        "no metric alarm named {} in {} (dns.mode.metric.alarm)",
                        metric.alarm, metric.region
                    ),
                )
            })?;
        let state = alarm.state_value().map(|s| s.as_str()).unwrap_or_default();
        AlarmState::parse(state).ok_or_else(|| {
            PortError::new(
                ErrorKind::Other,
                OP,
                format!("alarm {} has state `{state}`", metric.alarm),
            )
        })
    }

    async fn put(&self, metric: &SwitchMetric, value: f64) -> Result<(), PortError> {
        const OP: &str = "PutMetricData";
        let client = self.client(OP, &metric.region)?;
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
/// to its alarm. The alarm is "M out of N" in puts: it follows once `datapoints_to_alarm` puts in
/// a row are on the same side of the threshold (≥ 1: ALARM; < 1: OK; 1 by default), and the
/// health check follows the alarm after `dns.health_lag` (ALARM: `health_check` unhealthy, Route 53 then answers the
/// SECONDARY). No datapoint, no change.
pub struct FakeSwitch {
    pub dns: Arc<FakeDns>,
    pub health_check: String,
    pub faults: Faults,
    /// Every datapoint accepted: (metric, value).
    pub puts: Mutex<Vec<(SwitchMetric, f64)>>,
    /// Regions whose CloudWatch does not answer.
    pub dark: Mutex<HashSet<String>>,
    /// Puts in a row on one side before the alarm follows (`u32::MAX`: it never does).
    pub datapoints_to_alarm: Mutex<u32>,
    /// The alarm's state and the current run of puts: (breaching side, length).
    pub alarm: Mutex<(AlarmState, Option<(bool, u32)>)>,
    /// Every `alarm_state` read, with what it answered.
    pub reads: Mutex<Vec<AlarmState>>,
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
            datapoints_to_alarm: Mutex::new(1),
            alarm: Mutex::new((AlarmState::Ok, None)),
            reads: Mutex::default(),
        }
    }

    fn answers(&self, op: &'static str, region: &str) -> Result<(), PortError> {
        self.faults.check(op)?;
        if self.dark.lock().unwrap().contains(region) {
            return Err(PortError::new(
                ErrorKind::Unavailable,
                op,
                format!("CloudWatch in {region} does not answer"),
            ));
        }
        Ok(())
    }
}

#[cfg(any(test, feature = "test-util"))]
#[async_trait]
impl MetricSwitch for FakeSwitch {
    async fn put(&self, metric: &SwitchMetric, value: f64) -> Result<(), PortError> {
        self.answers("PutMetricData", &metric.region)?;
        self.puts.lock().unwrap().push((metric.clone(), value));
        let breaching = value >= failover_policy::config::SWITCH_TO_SECONDARY;
        let m = *self.datapoints_to_alarm.lock().unwrap();
        let mut alarm = self.alarm.lock().unwrap();
        let run = match alarm.1 {
            Some((side, n)) if side == breaching => n.saturating_add(1),
            _ => 1,
        };
        alarm.1 = Some((breaching, run));
        if run >= m {
            alarm.0 = if breaching {
                AlarmState::Alarm
            } else {
                AlarmState::Ok
            };
        }
        let state = alarm.0;
        drop(alarm);
        // The check polls the alarm on its own schedule: it follows after `dns.health_lag`.
        self.dns
            .health_follows(&self.health_check, state == AlarmState::Alarm);
        Ok(())
    }

    async fn alarm_state(&self, metric: &SwitchMetric) -> Result<AlarmState, PortError> {
        self.answers("DescribeAlarms", &metric.region)?;
        let state = self.alarm.lock().unwrap().0;
        self.reads.lock().unwrap().push(state);
        Ok(state)
    }
}
