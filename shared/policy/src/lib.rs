//! # failover-policy
//!
//! The pure heart of rds-failover: everything that decides, nothing that does I/O. No AWS SDK, no
//! network, no clock (time is an argument), so every rule is a fast, deterministic test.
//!
//! One incident flows through it like this:
//! [`signal::parse_bytes`] turns whatever was delivered into a [`Signal`]; [`decide::route`] drops
//! stale, foreign and forged signals and names the site(s) before any AWS call; the function
//! gathers [`Evidence`] through its ports and reads the site's [`SiteState`] from the ledger;
//! [`decide::decide`] returns a [`Verdict`] with every guard explained, the next ledger record
//! (fenced by its version and epoch) and the [`DomainEvent`]s to emit.

pub mod abort;
pub mod answer;
pub mod complete;
pub mod config;
pub mod dataplane;
pub mod deadline;
pub mod decide;
pub mod drill;
pub mod emf;
pub mod events;
pub mod evidence;
pub mod failback;
pub mod fence;
pub mod flap;
pub mod gtid;
pub mod incident;
pub mod notice;
pub mod pace;
pub mod pin;
pub mod promote;
pub mod provenance;
pub mod recheck;
pub mod recovery;
pub mod reprotect;
pub mod secondary;
pub mod selfwatch;
pub mod signal;
pub mod switchover;
pub mod topology;
pub mod unpin;
pub mod vantage;
pub mod verdict;
pub mod whatif;

pub use config::{Config, ConfigError, SiteConfig};
pub use decide::{decide, needs_evidence, route, Decision, Routing};
pub use events::{DomainEvent, EventType};
pub use evidence::Evidence;
pub use incident::{Phase, SiteState, TransitionError};
pub use signal::{parse_bytes, parse_signal, Signal, SignalError, SignalKind};
pub use verdict::{Guard, GuardResult, Outcome, Verdict};
