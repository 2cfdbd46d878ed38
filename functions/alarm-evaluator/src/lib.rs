//! alarm-evaluator: decides whether a protected database site is really down and whether to fail
//! over, and answers with the verdict and every reason behind it.

pub mod door;
pub mod fence;
pub mod handler;
pub mod reprotect;
pub mod setup;
pub mod switchover;
