//! witness: a vantage point of rds-failover outside the DR region (and the DR side's own prober).
//!
//! Why a function of its own rather than a mode of alarm-evaluator: it runs in another region,
//! with other permissions (PutMetricData into the DR region and the canary secret, nothing else:
//! no ledger, no bus, no RDS), on another cadence (every 10 s, not on alarm deliveries), and it
//! must keep running when the DR region's functions are throttled or paused. It shares the SQL
//! canary and its vote classification with the evaluator through `failover-adapters`, so both
//! vantages judge a live server the same way.

pub mod handler;
pub mod setup;
