//! The command line, as clap parses it.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(
    name = "rds-failover",
    version,
    about = "Operate an rds-failover deployment: status, history, validate, what-if, and the operator commands",
    after_help = "Exit codes: 0 done; 1 refused (by the evaluator, or a configuration that does not validate); \
2 bad usage; 3 AWS or transport failure; 4 not confirmed."
)]
pub struct Cli {
    #[command(flatten)]
    pub target: TargetArgs,
    /// Print JSON instead of a table (for scripts).
    #[arg(long, global = true)]
    pub json: bool,
    /// Do not ask for confirmation (scripts). Without it, a command that changes anything asks
    /// on a terminal and is refused when there is no terminal to ask on.
    #[arg(long, short = 'y', global = true)]
    pub yes: bool,
    #[command(subcommand)]
    pub cmd: Cmd,
}

/// Which deployment: a CloudFormation stack (its ledger table and evaluator are looked up), or
/// names given directly (the local emulated world).
#[derive(Debug, Clone, Args)]
pub struct TargetArgs {
    /// The deployed stack's name (`sam deploy --stack-name`).
    #[arg(long, env = "RDS_FAILOVER_STACK", global = true)]
    pub stack: Option<String>,
    /// The region the stack is deployed in (default: the SDK's, e.g. AWS_REGION).
    #[arg(long, global = true)]
    pub region: Option<String>,
    /// An AWS endpoint for every service (an emulator such as the one `make demo` starts).
    #[arg(long, env = "AWS_ENDPOINT_URL", global = true)]
    pub endpoint_url: Option<String>,
    /// Where the evaluator's Invoke API is served when it is not `--endpoint-url`
    /// (`cargo lambda watch`'s address in the local world).
    #[arg(long, env = "RDS_FAILOVER_LAMBDA_ENDPOINT", global = true)]
    pub lambda_endpoint_url: Option<String>,
    /// The ledger table (default: the stack's `LedgerTable`).
    #[arg(long, env = "RDS_FAILOVER_LEDGER_TABLE", global = true)]
    pub ledger_table: Option<String>,
    /// The evaluator function (default: the stack's `AlarmEvaluator`).
    #[arg(long, env = "RDS_FAILOVER_EVALUATOR", global = true)]
    pub evaluator: Option<String>,
    /// The evaluator's read-only function URL, where `status` is sent signed (default: the
    /// stack's `OperatorReadUrl` output). Give both URLs, or neither.
    #[arg(
        long,
        env = "RDS_FAILOVER_READ_URL",
        global = true,
        requires = "operate_url"
    )]
    pub read_url: Option<String>,
    /// The evaluator's operate function URL, where every mutating command is sent signed
    /// (default: the stack's `OperatorActionsUrl` output).
    #[arg(
        long,
        env = "RDS_FAILOVER_OPERATE_URL",
        global = true,
        requires = "read_url"
    )]
    pub operate_url: Option<String>,
}

#[derive(Debug, Subcommand)]
pub enum Cmd {
    /// Every site (or one): phase, epoch, live votes, candidates' lag against the RPO, fence,
    /// pause and approval, the last incident's timeline.
    Status {
        site: Option<String>,
        /// The ledger only: do not ask the evaluator for live evidence.
        #[arg(long)]
        no_live: bool,
    },
    /// A site's audit trail, newest first, one line per step with durations.
    History {
        site: String,
        #[arg(long, default_value_t = 50)]
        limit: usize,
    },
    /// Validate a site configuration as the functions do at cold start, then (unless
    /// `--offline`) check it against AWS: instances exist, parameter groups can be fenced,
    /// hosted zones and records exist.
    Validate {
        config: PathBuf,
        #[arg(long)]
        offline: bool,
    },
    /// Re-decide every observation recorded in the site's audit trail under another
    /// configuration, and list the decisions that would differ.
    WhatIf {
        site: String,
        #[arg(long)]
        config: PathBuf,
        #[arg(long, default_value_t = 500)]
        limit: usize,
    },
    #[command(flatten)]
    Op(crate::command::OpCommand),
}
