//! The operator commands: what each will do, confirmation, the evaluator's verdict.
//!
//! Each subcommand maps onto the evaluator's own [`OperatorCommand`] (the policy crate's type,
//! serialised as the evaluator parses it), so a new action (issue 13's switchover, reprotect,
//! failback, unpin, drill) is one variant here and one arm in each of [`OpCommand::site`],
//! [`OpCommand::to_command`] and [`OpCommand::describe`] (the compiler lists any arm missed).

use clap::Subcommand;
use failover_policy::signal::{OperatorAction, OperatorCommand};

#[derive(Debug, Clone, Subcommand)]
pub enum OpCommand {
    /// Stop automatic failovers of a site (alarms are still judged and recorded).
    Pause {
        site: String,
        #[arg(long)]
        reason: Option<String>,
    },
    /// Let automation act on the site again.
    Resume {
        site: String,
        #[arg(long)]
        reason: Option<String>,
    },
    /// Approve the failover the evaluator is waiting on, for one incident.
    Approve {
        site: String,
        #[arg(long)]
        epoch: u64,
        #[arg(long)]
        reason: Option<String>,
        #[arg(long)]
        override_cooldown: bool,
        /// The number of the drill this approves (a drill's approval names it; see `status`).
        #[arg(long)]
        drill: Option<u64>,
    },
    /// Ask for a failover now (the guards still apply unless overridden, with a reason).
    Failover {
        site: String,
        #[arg(long)]
        reason: Option<String>,
        /// Promote although the replica lags more than the RPO (accepts data loss).
        #[arg(long)]
        override_rpo: bool,
        #[arg(long)]
        candidate: Option<String>,
        /// Proceed although the primary answers (it is fenced first).
        #[arg(long)]
        force: bool,
        #[arg(long)]
        override_cooldown: bool,
    },
    /// Close a pinned failover: the ledger then owns the new topology.
    Complete {
        site: String,
        #[arg(long)]
        epoch: u64,
        #[arg(long)]
        reason: String,
        /// The writer now, when it is not the one DNS was pinned to.
        #[arg(long)]
        primary: Option<String>,
    },
    /// Abandon an epoch whose promotion was never asked of RDS.
    Abort {
        site: String,
        #[arg(long)]
        epoch: u64,
        #[arg(long)]
        reason: String,
    },
    /// A planned switchover to a candidate (RPO 0): the primary is fenced, the target applies
    /// every transaction it committed, then is promoted and DNS moves; rolled back (writes given
    /// back, DNS untouched) if the target has not caught up within `--max-wait-secs`.
    Switchover {
        site: String,
        /// The candidate to promote (Multi-AZ: the primary's own id, its standby takes over).
        #[arg(long)]
        candidate: String,
        #[arg(long)]
        reason: String,
        /// The longest writes pause (fence → caught up), seconds; the evaluator's default
        /// (180) when not given, 1..=540.
        #[arg(long)]
        max_wait_secs: Option<u64>,
    },
    /// Restore the writer name's record set recorded before the pin (after a failback).
    Unpin {
        site: String,
        #[arg(long)]
        reason: String,
    },
    /// Back to the original region once it is re-protected there: a switchover (RPO 0, rolled
    /// back if the target has not caught up) to the site's replica in its original region, then
    /// the writer name back to the record set recorded before the pins.
    Failback {
        site: String,
        #[arg(long)]
        reason: String,
        /// The longest writes pause (fence → caught up), seconds; the evaluator's default
        /// (180) when not given, 1..=540.
        #[arg(long)]
        max_wait_secs: Option<u64>,
    },
    /// Create a new replica of the ledger's primary (after a failover), as the site's
    /// `reprotect` section configures it; the scheduled tick carries it out.
    Reprotect {
        site: String,
        #[arg(long)]
        reason: String,
    },
    /// A DR drill: a switchover to `--target` and back (rds-replica: re-protected into the
    /// original region in between), each leg's RTO and RPO recorded in the ledger; inside one of
    /// the site's maintenance windows unless `--outside-window` (with the reason recorded).
    Drill {
        site: String,
        /// The DR candidate the out leg switches over to.
        #[arg(long)]
        target: String,
        #[arg(long)]
        reason: String,
        /// Run outside every maintenance window of the site (the reason is recorded).
        #[arg(long)]
        outside_window: bool,
        /// The longest writes pause in each leg, seconds (1..=540; 180 when not given).
        #[arg(long)]
        max_wait_secs: Option<u64>,
    },
}

impl OpCommand {
    pub fn site(&self) -> &str {
        match self {
            Self::Pause { site, .. }
            | Self::Resume { site, .. }
            | Self::Approve { site, .. }
            | Self::Failover { site, .. }
            | Self::Complete { site, .. }
            | Self::Abort { site, .. }
            | Self::Switchover { site, .. }
            | Self::Unpin { site, .. }
            | Self::Reprotect { site, .. }
            | Self::Failback { site, .. }
            | Self::Drill { site, .. } => site,
        }
    }

    /// The command as the evaluator parses it. `operator` is left empty: who sent it is the
    /// caller's credentials, not a name typed here.
    pub fn to_command(&self) -> OperatorCommand {
        let mut c = OperatorCommand {
            command: OperatorAction::Status,
            site: self.site().to_string(),
            reason: None,
            operator: None,
            override_rpo: false,
            epoch: None,
            candidate: None,
            force: false,
            override_cooldown: false,
            primary: None,
            max_wait_secs: None,
            outside_window: false,
            principal: None,
            drill: None,
        };
        match self.clone() {
            Self::Pause { reason, .. } => {
                c.command = OperatorAction::Pause;
                c.reason = reason;
            }
            Self::Resume { reason, .. } => {
                c.command = OperatorAction::Resume;
                c.reason = reason;
            }
            Self::Approve {
                epoch,
                reason,
                override_cooldown,
                drill,
                ..
            } => {
                c.command = OperatorAction::Approve;
                c.drill = drill;
                c.epoch = Some(epoch);
                c.reason = reason;
                c.override_cooldown = override_cooldown;
            }
            Self::Failover {
                reason,
                override_rpo,
                candidate,
                force,
                override_cooldown,
                ..
            } => {
                c.command = OperatorAction::Failover;
                c.reason = reason;
                c.override_rpo = override_rpo;
                c.candidate = candidate;
                c.force = force;
                c.override_cooldown = override_cooldown;
            }
            Self::Complete {
                epoch,
                reason,
                primary,
                ..
            } => {
                c.command = OperatorAction::Complete;
                c.epoch = Some(epoch);
                c.reason = Some(reason);
                c.primary = primary;
            }
            Self::Abort { epoch, reason, .. } => {
                c.command = OperatorAction::Abort;
                c.epoch = Some(epoch);
                c.reason = Some(reason);
            }
            Self::Switchover {
                candidate,
                reason,
                max_wait_secs,
                ..
            } => {
                c.command = OperatorAction::Switchover;
                c.candidate = Some(candidate);
                c.reason = Some(reason);
                c.max_wait_secs = max_wait_secs;
            }
            Self::Unpin { reason, .. } => {
                c.command = OperatorAction::Unpin;
                c.reason = Some(reason);
            }
            Self::Reprotect { reason, .. } => {
                c.command = OperatorAction::Reprotect;
                c.reason = Some(reason);
            }
            Self::Failback {
                reason,
                max_wait_secs,
                ..
            } => {
                c.command = OperatorAction::Failback;
                c.reason = Some(reason);
                c.max_wait_secs = max_wait_secs;
            }
            Self::Drill {
                target,
                reason,
                outside_window,
                max_wait_secs,
                ..
            } => {
                c.command = OperatorAction::Drill;
                c.candidate = Some(target);
                c.reason = Some(reason);
                c.outside_window = outside_window;
                c.max_wait_secs = max_wait_secs;
            }
        }
        c
    }

    /// What the command will do, in the words the confirmation prompt shows.
    pub fn describe(&self) -> Vec<String> {
        let site = self.site();
        let mut lines = match self {
            Self::Pause { .. } => vec![format!(
                "pause site {site}: no automatic failover until `resume` (alarms are still judged and recorded)"
            )],
            Self::Resume { .. } => vec![format!(
                "resume site {site}: automation may fail it over again"
            )],
            Self::Approve {
                epoch,
                drill: Some(n),
                ..
            } => vec![format!(
                "approve DRILL {n} of site {site} (its out leg opens epoch {epoch}): writes pause while it switches over; the approver must not be its requester"
            )],
            Self::Approve { epoch, .. } => vec![format!(
                "approve the failover of site {site}, epoch {epoch}: the promoter will ask RDS to promote the candidate"
            )],
            Self::Failover { candidate, .. } => vec![format!(
                "fail site {site} over now{}: the evaluator re-checks every guard, then the promoter asks RDS to promote",
                candidate.as_deref().map(|c| format!(" to {c}")).unwrap_or_default()
            )],
            Self::Complete { epoch, primary, .. } => vec![format!(
                "complete epoch {epoch} of site {site}: the ledger takes {} as the writer",
                primary.as_deref().unwrap_or("the pinned writer")
            )],
            Self::Abort { epoch, .. } => vec![format!(
                "abort epoch {epoch} of site {site} (only if RDS was never asked to promote)"
            )],
            Self::Switchover {
                candidate,
                max_wait_secs,
                ..
            } => vec![
                format!(
                    "planned switchover of site {site} to {candidate}: the evaluator checks the preconditions, then the primary is made read-only (WRITES PAUSE), the target applies every committed transaction, is promoted, and DNS moves"
                ),
                format!(
                    "  writes pause for at most {} s; if the target has not caught up by then the switchover is rolled back (writes given back, DNS untouched)",
                    max_wait_secs
                        .map(|s| s.to_string())
                        .unwrap_or_else(|| failover_policy::switchover::DEFAULT_MAX_WAIT_SECS.to_string())
                ),
            ],
            Self::Unpin { .. } => vec![format!(
                "unpin site {site}: the dns-pinner restores the writer name's record set recorded before the pin, in one compare-and-set batch (refused unless it names the writer now)"
            )],
            Self::Failback { max_wait_secs, .. } => vec![
                format!(
                    "failback of site {site}: the evaluator checks it is re-protected in its original region (a replica there replicating within the lag bound, no incident open), then a planned switchover to that replica — the writer is made read-only (WRITES PAUSE), the target applies every committed transaction, is promoted, and DNS moves"
                ),
                format!(
                    "  writes pause for at most {} s; if the target has not caught up by then the failback is rolled back (writes given back, DNS untouched)",
                    max_wait_secs
                        .map(|s| s.to_string())
                        .unwrap_or_else(|| failover_policy::switchover::DEFAULT_MAX_WAIT_SECS.to_string())
                ),
                "  once done, the epoch is completed and the writer name's recorded record set is restored (the unpin path, refused if it would not name the writer)".to_string(),
            ],
            Self::Drill {
                target,
                outside_window,
                max_wait_secs,
                ..
            } => {
                let mut l = vec![
                    format!(
                        "DRILL of site {site}: a planned switchover to {target} (WRITES PAUSE, RPO 0), then back to the current writer (rds-replica: after a new replica in the original region is protected); each leg's RTO and RPO are recorded in the ledger"
                    ),
                    format!(
                        "  writes pause for at most {} s per leg; a leg not caught up by then is rolled back and the drill ends rolled-back",
                        max_wait_secs
                            .map(|s| s.to_string())
                            .unwrap_or_else(|| failover_policy::switchover::DEFAULT_MAX_WAIT_SECS.to_string())
                    ),
                ];
                if *outside_window {
                    l.push("  OUTSIDE WINDOW: runs outside every maintenance window of the site (the reason is recorded)".into());
                }
                l
            }
            Self::Reprotect { .. } => vec![format!(
                "reprotect site {site}: the scheduled tick creates a read replica of the ledger's primary in the site's `reprotect` region, with its parameter group, security groups, subnet group and KMS key (automated backups are turned on first when off)"
            )],
        };
        if let Self::Failover {
            override_rpo,
            force,
            override_cooldown,
            ..
        } = self
        {
            if *override_rpo {
                lines.push("  OVERRIDE RPO: a candidate lagging past the RPO may be promoted (data loss accepted)".into());
            }
            if *force {
                lines.push("  FORCE: the primary may still answer; it is fenced (read_only) before the promotion".into());
            }
            if *override_cooldown {
                lines.push(
                    "  OVERRIDE COOLDOWN: proceeds inside the cooldown after the previous failover"
                        .into(),
                );
            }
        }
        lines
    }

    /// The evaluator's action this command sends.
    pub fn action(&self) -> OperatorAction {
        self.to_command().command
    }
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use crate::args::{Cli, Cmd};

    /// `switchover` parses into the command the evaluator parses: a switchover naming the
    /// candidate, the reason and the wait, and the plan says writes pause and how it rolls back.
    #[test]
    fn switchover_sends_the_evaluators_switchover_command() {
        let cli = Cli::try_parse_from([
            "rds-failover",
            "switchover",
            "orders",
            "--candidate",
            "orders-replica-1",
            "--reason",
            "quarterly DR test",
            "--max-wait-secs",
            "60",
        ])
        .unwrap();
        let Cmd::Op(op) = &cli.cmd else {
            panic!("not an operator command: {:?}", cli.cmd)
        };
        let v = serde_json::to_value(op.to_command()).unwrap();
        let sig = failover_policy::parse_signal(&v).unwrap();
        let failover_policy::signal::SignalKind::Operator(c) = sig.kind else {
            panic!("{sig:?}")
        };
        assert_eq!(
            c.command,
            failover_policy::signal::OperatorAction::Switchover
        );
        assert_eq!(c.candidate.as_deref(), Some("orders-replica-1"));
        assert_eq!(c.reason.as_deref(), Some("quarterly DR test"));
        assert_eq!(c.max_wait_secs, Some(60));
        let plan = op.describe().join("\n");
        assert!(
            plan.contains("WRITES PAUSE") && plan.contains("at most 60 s"),
            "{plan}"
        );
        assert!(
            Cli::try_parse_from(["rds-failover", "switchover", "orders", "--reason", "x"]).is_err(),
            "the candidate is required"
        );
    }

    use super::*;

    /// `failback` parses into the evaluator's failback command (no candidate: the evaluator picks
    /// the original region's replica), with the reason and the wait; the plan says writes pause.
    #[test]
    fn failback_sends_the_evaluators_failback_command() {
        let cli = Cli::try_parse_from([
            "rds-failover",
            "failback",
            "orders",
            "--reason",
            "back home after epoch 3",
            "--max-wait-secs",
            "90",
        ])
        .unwrap();
        let Cmd::Op(op) = &cli.cmd else {
            panic!("not an operator command: {:?}", cli.cmd)
        };
        let v = serde_json::to_value(op.to_command()).unwrap();
        let sig = failover_policy::parse_signal(&v).unwrap();
        let failover_policy::signal::SignalKind::Operator(c) = sig.kind else {
            panic!("{sig:?}")
        };
        assert_eq!(c.command, OperatorAction::Failback);
        assert_eq!(c.candidate, None);
        assert_eq!(c.reason.as_deref(), Some("back home after epoch 3"));
        assert_eq!(c.max_wait_secs, Some(90));
        let plan = op.describe().join("\n");
        assert!(
            plan.contains("WRITES PAUSE")
                && plan.contains("at most 90 s")
                && plan.contains("restored"),
            "{plan}"
        );
        assert!(
            Cli::try_parse_from(["rds-failover", "failback", "orders"]).is_err(),
            "the reason is required"
        );
    }

    #[test]
    fn reprotect_is_sent_as_the_evaluator_parses_it() {
        let op = OpCommand::Reprotect {
            site: "orders".into(),
            reason: "after epoch 3".into(),
        };
        let v = serde_json::to_value(op.to_command()).unwrap();
        let s = failover_policy::parse_signal(&v).unwrap();
        let failover_policy::signal::SignalKind::Operator(c) = s.kind else {
            panic!("not an operator command: {v}");
        };
        assert_eq!(c.command, OperatorAction::Reprotect);
        assert_eq!(c.reason.as_deref(), Some("after epoch 3"));
    }

    /// `drill SITE --target DB --outside-window --reason ..` parses into the evaluator's drill
    /// command; the plan says it is a drill, that writes pause, and that it runs outside a window.
    #[test]
    fn drill_sends_the_evaluators_drill_command() {
        let cli = Cli::try_parse_from([
            "rds-failover",
            "drill",
            "orders",
            "--target",
            "orders-replica-1",
            "--outside-window",
            "--reason",
            "quarterly DR drill, approved in CHG-12",
        ])
        .unwrap();
        let Cmd::Op(op) = &cli.cmd else {
            panic!("not an operator command: {:?}", cli.cmd)
        };
        let v = serde_json::to_value(op.to_command()).unwrap();
        let sig = failover_policy::parse_signal(&v).unwrap();
        let failover_policy::signal::SignalKind::Operator(c) = sig.kind else {
            panic!("{sig:?}")
        };
        assert_eq!(c.command, OperatorAction::Drill);
        assert_eq!(c.candidate.as_deref(), Some("orders-replica-1"));
        assert!(c.outside_window);
        let plan = op.describe().join("\n");
        assert!(
            plan.contains("DRILL")
                && plan.contains("WRITES PAUSE")
                && plan.contains("OUTSIDE WINDOW"),
            "{plan}"
        );
        assert!(
            Cli::try_parse_from(["rds-failover", "drill", "orders", "--reason", "x"]).is_err(),
            "the target is required"
        );
    }
}
