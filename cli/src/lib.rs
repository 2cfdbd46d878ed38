//! `rds-failover`: the operator's command line for a deployment of this workspace.
//!
//! Reads go to the ledger table directly (DynamoDB, read-only); everything the evaluator decides
//! — the live evidence of `status`, every operator command — goes to the evaluator, so the CLI
//! never judges or writes anything itself. A deployed stack is reached through its `AWS_IAM`
//! function URLs, signed with the caller's credentials ([`url`]), so the ledger records the
//! caller's IAM principal; without URLs (the local world) the evaluator is invoked directly. `validate` and `what-if` run the policy crate's
//! own code locally: the same validation as a cold start, the same `decide`.

pub mod args;
pub mod command;
pub mod history;
pub mod invoke;
pub mod ledger;
pub mod status;
pub mod target;
pub mod url;
pub mod validate;
pub mod whatif;

/// What went wrong, and the exit code it maps to.
#[derive(Debug, thiserror::Error)]
pub enum CliError {
    /// The evaluator (or the local validation) said no: the message says why.
    #[error("{0}")]
    Refused(String),
    #[error("{0}")]
    Usage(String),
    #[error("{what}: {error}")]
    Aws { what: String, error: String },
    #[error("not confirmed: {0}")]
    NotConfirmed(String),
}

impl CliError {
    pub fn exit_code(&self) -> i32 {
        match self {
            CliError::Refused(_) => 1,
            CliError::Usage(_) => 2,
            CliError::Aws { .. } => 3,
            CliError::NotConfirmed(_) => 4,
        }
    }
}

pub fn aws_error(what: impl Into<String>, e: impl std::error::Error) -> CliError {
    // The SDK's Display is one word ("service error"); the chain has the code and message.
    let mut msg = e.to_string();
    let mut src = e.source();
    while let Some(s) = src {
        msg.push_str(": ");
        msg.push_str(&s.to_string());
        src = s.source();
    }
    CliError::Aws {
        what: what.into(),
        error: msg,
    }
}
