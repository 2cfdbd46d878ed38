//! CloudWatch Embedded Metric Format (EMF) documents: one JSON object per log line, from which
//! CloudWatch Logs extracts metrics ("Specification: Embedded metric format", Amazon CloudWatch
//! User Guide).
//!
//! What the specification requires, and [`Document::to_line`] checks before anything is printed:
//! - the log event is exactly one JSON object, nothing before or after it;
//! - `_aws.Timestamp` is milliseconds since the epoch; `_aws.CloudWatchMetrics` is an array of
//!   directives, each with `Namespace`, `Dimensions` (an array of dimension sets) and `Metrics`;
//! - a directive names at most 100 metrics, a dimension set at most 30 keys (it may be empty);
//!   namespaces, metric names and dimension keys are 1 to 255 characters;
//! - every name a directive references is a member of the root: a dimension's value a string, a
//!   metric's value a number.
//!
//! Pure: the caller gives the time and prints the line.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde_json::{json, Map, Value};

pub const MAX_METRICS_PER_DIRECTIVE: usize = 100;
pub const MAX_DIMENSIONS_PER_SET: usize = 30;
pub const MAX_NAME_CHARS: usize = 255;

/// A CloudWatch unit the specification lists (the ones this project uses).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unit {
    Count,
    Seconds,
    Milliseconds,
    None,
}

impl Unit {
    fn as_str(self) -> &'static str {
        match self {
            Unit::Count => "Count",
            Unit::Seconds => "Seconds",
            Unit::Milliseconds => "Milliseconds",
            Unit::None => "None",
        }
    }
}

/// One `MetricDirective`: these metrics, under each of these dimension sets.
#[derive(Debug, Clone, PartialEq)]
pub struct Directive {
    pub dimension_sets: Vec<Vec<String>>,
    pub metrics: Vec<(String, Unit)>,
}

/// An EMF document being built: directives, the dimension values and metric values they
/// reference, and free properties (searchable in Logs Insights, never metrics).
#[derive(Debug, Clone, PartialEq)]
pub struct Document {
    pub namespace: String,
    pub timestamp: DateTime<Utc>,
    pub directives: Vec<Directive>,
    pub dimensions: BTreeMap<String, String>,
    pub values: BTreeMap<String, f64>,
    pub properties: BTreeMap<String, Value>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EmfError {
    #[error("EMF: a directive names {0} metrics (at most {MAX_METRICS_PER_DIRECTIVE})")]
    TooManyMetrics(usize),
    #[error("EMF: a dimension set has {0} keys (at most {MAX_DIMENSIONS_PER_SET})")]
    TooManyDimensions(usize),
    #[error("EMF: {what} {name:?} must be 1 to {MAX_NAME_CHARS} characters")]
    BadName { what: &'static str, name: String },
    #[error("EMF: dimension {0:?} is referenced but has no string value")]
    MissingDimension(String),
    #[error("EMF: metric {0:?} is referenced but has no finite numeric value")]
    MissingValue(String),
    #[error("EMF: member {0:?} is both a metric or dimension and a property")]
    Clash(String),
    #[error("EMF: a directive without metrics or without a dimension set")]
    EmptyDirective,
}

fn check_name(what: &'static str, name: &str) -> Result<(), EmfError> {
    let n = name.chars().count();
    if n == 0 || n > MAX_NAME_CHARS {
        return Err(EmfError::BadName {
            what,
            name: name.to_owned(),
        });
    }
    Ok(())
}

impl Document {
    pub fn new(namespace: &str, timestamp: DateTime<Utc>) -> Self {
        Self {
            namespace: namespace.to_owned(),
            timestamp,
            directives: vec![],
            dimensions: BTreeMap::new(),
            values: BTreeMap::new(),
            properties: BTreeMap::new(),
        }
    }

    /// Checks the document against the specification's limits and references.
    pub fn validate(&self) -> Result<(), EmfError> {
        check_name("namespace", &self.namespace)?;
        for d in &self.directives {
            if d.metrics.is_empty() || d.dimension_sets.is_empty() {
                return Err(EmfError::EmptyDirective);
            }
            if d.metrics.len() > MAX_METRICS_PER_DIRECTIVE {
                return Err(EmfError::TooManyMetrics(d.metrics.len()));
            }
            for set in &d.dimension_sets {
                if set.len() > MAX_DIMENSIONS_PER_SET {
                    return Err(EmfError::TooManyDimensions(set.len()));
                }
                for key in set {
                    check_name("dimension", key)?;
                    if !self.dimensions.contains_key(key) {
                        return Err(EmfError::MissingDimension(key.clone()));
                    }
                }
            }
            for (name, _) in &d.metrics {
                check_name("metric", name)?;
                if !self.values.get(name).is_some_and(|v| v.is_finite()) {
                    return Err(EmfError::MissingValue(name.clone()));
                }
            }
        }
        let clash = self
            .values
            .keys()
            .chain(self.dimensions.keys())
            .map(String::as_str)
            .chain(["_aws"])
            .find(|k| self.properties.contains_key(*k))
            .or_else(|| {
                self.values
                    .keys()
                    .map(String::as_str)
                    .find(|k| self.dimensions.contains_key(*k))
            });
        match clash {
            Some(k) => Err(EmfError::Clash(k.to_owned())),
            None => Ok(()),
        }
    }

    /// The document as one line of JSON, validated: what goes to stdout, unwrapped.
    pub fn to_line(&self) -> Result<String, EmfError> {
        self.validate()?;
        let directives: Vec<Value> = self
            .directives
            .iter()
            .map(|d| {
                let metrics: Vec<Value> = d
                    .metrics
                    .iter()
                    .map(|(n, u)| json!({"Name": n, "Unit": u.as_str()}))
                    .collect();
                json!({"Namespace": self.namespace, "Dimensions": d.dimension_sets, "Metrics": metrics})
            })
            .collect();
        let mut root = Map::new();
        root.insert(
            "_aws".into(),
            json!({"Timestamp": self.timestamp.timestamp_millis(), "CloudWatchMetrics": directives}),
        );
        for (k, v) in &self.dimensions {
            root.insert(k.clone(), Value::String(v.clone()));
        }
        for (k, v) in &self.values {
            root.insert(k.clone(), json!(v));
        }
        for (k, v) in &self.properties {
            root.insert(k.clone(), v.clone());
        }
        Ok(Value::Object(root).to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn doc() -> Document {
        let mut d = Document::new(
            "rds-failover",
            Utc.timestamp_millis_opt(1_800_000_000_123).unwrap(),
        );
        d.dimensions.insert("Site".into(), "orders".into());
        d.values.insert("Votes".into(), 2.0);
        d.directives.push(Directive {
            dimension_sets: vec![vec!["Site".into()], vec![]],
            metrics: vec![("Votes".into(), Unit::Count)],
        });
        d
    }

    #[test]
    fn a_document_is_one_json_object_with_the_specifications_shape() {
        let line = doc().to_line().unwrap();
        assert!(!line.contains('\n'), "one line: {line}");
        let v: Value = serde_json::from_str(&line).unwrap();
        assert_eq!(v["_aws"]["Timestamp"], json!(1_800_000_000_123_i64));
        let d = &v["_aws"]["CloudWatchMetrics"][0];
        assert_eq!(d["Namespace"], "rds-failover");
        assert_eq!(d["Dimensions"], json!([["Site"], []]));
        assert_eq!(d["Metrics"], json!([{"Name": "Votes", "Unit": "Count"}]));
        assert_eq!(v["Site"], "orders");
        assert!(v["Votes"].is_number());
    }

    #[test]
    fn more_than_100_metrics_in_a_directive_are_refused() {
        let mut d = doc();
        let dir = &mut d.directives[0];
        for i in 0..100 {
            let name = format!("M{i}");
            dir.metrics.push((name.clone(), Unit::None));
            d.values.insert(name, 1.0);
        }
        assert_eq!(d.to_line(), Err(EmfError::TooManyMetrics(101)));
        d.directives[0].metrics.pop();
        assert!(d.to_line().is_ok(), "exactly 100 is allowed");
    }

    #[test]
    fn more_than_30_dimensions_in_a_set_are_refused() {
        let mut d = doc();
        let keys: Vec<String> = (0..31).map(|i| format!("D{i}")).collect();
        for k in &keys {
            d.dimensions.insert(k.clone(), "x".into());
        }
        d.directives[0].dimension_sets = vec![keys.clone()];
        assert_eq!(d.to_line(), Err(EmfError::TooManyDimensions(31)));
        d.directives[0].dimension_sets = vec![keys[..30].to_vec()];
        assert!(d.to_line().is_ok(), "exactly 30 is allowed");
    }

    #[test]
    fn names_longer_than_255_characters_or_empty_are_refused() {
        let mut d = doc();
        let long = "é".repeat(256);
        d.values.insert(long.clone(), 1.0);
        d.directives[0].metrics.push((long.clone(), Unit::None));
        assert!(matches!(
            d.to_line(),
            Err(EmfError::BadName { what: "metric", .. })
        ));
        let mut d = doc();
        d.namespace = String::new();
        assert!(matches!(
            d.to_line(),
            Err(EmfError::BadName {
                what: "namespace",
                ..
            })
        ));
        let mut d = doc();
        let ok = "é".repeat(255);
        d.values.insert(ok.clone(), 1.0);
        d.directives[0].metrics.push((ok, Unit::None));
        assert!(d.to_line().is_ok(), "255 characters (not bytes) is allowed");
    }

    #[test]
    fn every_reference_has_a_value_of_the_right_kind() {
        let mut d = doc();
        d.directives[0].metrics.push(("Lag".into(), Unit::Seconds));
        assert_eq!(d.to_line(), Err(EmfError::MissingValue("Lag".into())));
        d.values.insert("Lag".into(), f64::NAN);
        assert_eq!(
            d.to_line(),
            Err(EmfError::MissingValue("Lag".into())),
            "NaN is not a JSON number"
        );
        let mut d = doc();
        d.directives[0].dimension_sets.push(vec!["Phase".into()]);
        assert_eq!(d.to_line(), Err(EmfError::MissingDimension("Phase".into())));
        let mut d = doc();
        d.properties.insert("Votes".into(), json!("two"));
        assert_eq!(d.to_line(), Err(EmfError::Clash("Votes".into())));
        let mut d = doc();
        d.directives.push(Directive {
            dimension_sets: vec![],
            metrics: vec![("Votes".into(), Unit::Count)],
        });
        assert_eq!(d.to_line(), Err(EmfError::EmptyDirective));
    }
}
