//! replica-promoter: carries out a decided failover — fenced by the incident epoch, re-checked,
//! sent to RDS at most once, judged complete by the topology and by a real write check — and
//! hands the result on as `ReplicaPromoted` or `FailoverFailed`.

pub mod handler;
pub mod setup;
