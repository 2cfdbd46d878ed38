//! # failover-adapters
//!
//! Everything between the pure policy and the world: the ports (one small trait per capability),
//! the in-memory fakes that model AWS semantics for tests, evidence gathering over the ports, and
//! the real adapters — AWS SDK clients (`aws`) and a MySQL client (`mysql`) for the canary.

pub mod aws;
pub mod catchup;
pub mod config_store;
pub mod control;
pub mod dns;
#[cfg(any(test, feature = "test-util"))]
pub mod fakes;
pub mod fence;
#[cfg(any(test, feature = "test-util"))]
pub mod figures;
pub mod gather;
#[cfg(any(test, feature = "test-util"))]
pub mod interleave;
pub mod mysql;
pub mod notify;
pub mod ports;
pub mod recheck;
pub mod resolve;
pub mod runtime;
pub mod settings;
pub mod switch;
pub mod witness;

pub use ports::{
    Canary, Clock, Credentials, DatabaseTopology, ErrorKind, EventBus, Ledger, Metrics, PortError,
};
