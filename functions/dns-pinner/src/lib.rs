//! dns-pinner: points the writer DNS name at the promoted primary and pins it there (seed 002: the
//! PRIMARY failover record itself is rewritten, so the old primary can never win traffic back),
//! fenced by the incident epoch, and waits for Route 53 to report the change `INSYNC`.

pub mod handler;
pub mod setup;
pub mod unpin;
