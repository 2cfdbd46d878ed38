//! What the notifier says: one message per domain event, written for the person it wakes up.
//!
//! Pure composition from a [`DomainEvent`] and "now": an SNS subject that fits SNS's limits
//! (under 100 characters, ASCII, one line) and still says site, severity and what happened; a body
//! that answers, in order, *what happened*, *why* (the verdict's guards with their numbers), *when*
//! (the timeline with durations), *what was and was not done*, and *what to do next*; and the
//! message attributes subscriptions filter on. Also the dedupe key the notifier claims before
//! publishing, so one fact pages once however often EventBridge delivers it.

use chrono::{DateTime, SecondsFormat, Utc};

use crate::events::{DomainEvent, EventType};
use crate::pin::human_duration;
use crate::verdict::{Guard, GuardCheck, GuardResult};

/// SNS: "Subjects must be UTF-8 text with no line breaks or control characters, and less than 100
/// characters long"; email endpoints additionally want ASCII. 99 satisfies both readings.
pub const SUBJECT_MAX: usize = 99;
/// SNS messages are at most 256 KiB including attributes; keep the body well under it.
pub const BODY_MAX: usize = 200 * 1024;
/// Where the operator's companion to these messages lives.
pub const RUNBOOK: &str = "docs/runbook.md";

/// Identifies one notification: one per (site, epoch, event type). Pause and resume are operator
/// actions that may repeat within an epoch, so their key also carries the event's own time (a
/// re-delivery of the *same* pause still has the same key).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NoticeKey {
    pub site: String,
    pub epoch: u64,
    pub detail_type: String,
    pub discriminator: Option<String>,
}

impl NoticeKey {
    pub fn of(event: &DomainEvent) -> Self {
        // A resolved hold is announced as FailoverCompleted in whatever epoch the site is at; the
        // same epoch may later fail over and be completed for real, which must page too.
        // A delayed pin pages at each escalation step of the same epoch; each step is its own
        // event (its own time), a re-delivery of one step is the same.
        let repeatable = matches!(
            event.event_type,
            EventType::AutomationPaused
                | EventType::AutomationResumed
                | EventType::EvidenceWarning
                | EventType::DnsPinDelayed
                | EventType::FenceChanged
                | EventType::OldPrimaryWritable
                | EventType::DivergenceMeasured
                | EventType::UnpinRequested
                | EventType::UnpinContinued
                | EventType::DnsUnpinned
                | EventType::UnpinFailed
                | EventType::ReprotectChanged
        ) || is_resolution(event);
        Self {
            site: event.site.clone(),
            epoch: event.epoch,
            detail_type: event.event_type.detail_type().to_owned(),
            discriminator: repeatable.then(|| {
                event
                    .occurred_at
                    .to_rfc3339_opts(SecondsFormat::Millis, true)
            }),
        }
    }

    /// The ledger sort key of the claim: `NOTIFIED#{epoch:012}#{detail-type}[#{time}]`.
    pub fn sort_key(&self) -> String {
        let base = format!("NOTIFIED#{:012}#{}", self.epoch, self.detail_type);
        match &self.discriminator {
            Some(d) => format!("{base}#{d}"),
            None => base,
        }
    }
}

/// An SNS message attribute value, typed as SNS types it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AttributeValue {
    String(String),
    Number(String),
}

impl AttributeValue {
    pub fn data_type(&self) -> &'static str {
        match self {
            AttributeValue::String(_) => "String",
            AttributeValue::Number(_) => "Number",
        }
    }
    pub fn value(&self) -> &str {
        match self {
            AttributeValue::String(s) | AttributeValue::Number(s) => s,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Notice {
    pub key: NoticeKey,
    pub subject: String,
    pub body: String,
    /// `site`, `phase`, `severity`, `epoch` (Number) and `event_type`, for filter policies.
    pub attributes: Vec<(String, AttributeValue)>,
}

fn operator_cmd(json: String) -> String {
    format!("invoke alarm-evaluator with {json}")
}

fn candidate_id(e: &DomainEvent) -> String {
    e.candidate
        .as_ref()
        .map(|c| c.id.clone())
        .unwrap_or_else(|| "(no candidate)".into())
}

fn failed_guard_names(e: &DomainEvent) -> String {
    let names: Vec<String> = e
        .verdict
        .failed_guards()
        .map(|g| guard_name(g).to_string())
        .collect();
    if names.is_empty() {
        "see guards".into()
    } else {
        names.join(", ")
    }
}

fn guard_name(g: &GuardCheck) -> String {
    serde_json::to_value(g.guard)
        .ok()
        .and_then(|v| v.as_str().map(String::from))
        .unwrap_or_else(|| format!("{:?}", g.guard))
}

/// The short "what happened" of the subject line.
fn headline(e: &DomainEvent) -> String {
    let c = candidate_id(e);
    match e.event_type {
        EventType::IncidentSuspected => "primary suspected down, watching".into(),
        EventType::FailoverDecided => format!("FAILING OVER to {c}"),
        EventType::ApprovalRequested => format!("APPROVAL NEEDED to fail over to {c}"),
        EventType::FailoverRefused => format!("failover REFUSED ({})", failed_guard_names(e)),
        EventType::ShadowFailover => format!("shadow mode: would fail over to {c}"),
        EventType::IncidentCleared => "incident cleared, primary healthy".into(),
        EventType::AutomationPaused => "automatic failover PAUSED".into(),
        EventType::AutomationResumed => "automatic failover resumed".into(),
        EventType::PromotionContinued => format!("promotion of {c} still running"),
        EventType::ReplicaPromoted => format!("{c} promoted, DNS next"),
        EventType::DnsPinContinued => format!("DNS pin to {c} still in progress"),
        EventType::DnsPinDelayed if is_records_given_up(e) => {
            format!(
                "records NOT pinned, pinner stopped; traffic on data-plane switch to {c} - act now"
            )
        }
        EventType::DnsPinDelayed => format!("DNS pin to {c} DELAYED - check Route 53"),
        EventType::DnsPinned if crate::dataplane::is_switched_notice(e) => {
            format!("records NOT pinned; traffic on data-plane switch to {c}")
        }
        EventType::DnsPinned => format!("DNS pinned to {c}; failback is manual"),
        EventType::FailoverCompleted if is_resolution(e) => {
            "earlier promotion resolved by a human; automation no longer held".into()
        }
        EventType::FailoverCompleted => format!("failover to {c} completed"),
        EventType::FailoverFailed => "FAILOVER FAILED - act now".into(),
        EventType::FailoverAborted if is_promoter_abort(e) => {
            format!(
                "epoch {} ABORTED before promotion: {c} not promoted",
                e.epoch
            )
        }
        EventType::FailoverAborted => format!("epoch {} aborted by a human", e.epoch),
        EventType::PhaseOverdue => format!("STUCK in {} past its deadline - act now", e.phase),
        EventType::EvidenceWarning => "a voter needs attention (no failover)".into(),
        EventType::FenceChanged => "old primary fence changed".into(),
        EventType::OldPrimaryWritable => {
            "OLD PRIMARY IS WRITABLE - split brain risk, act now".into()
        }
        EventType::UnpinRequested => "unpin requested: DNS back to its recorded shape next".into(),
        EventType::UnpinContinued => "unpin waiting for the data-plane switch alarm".into(),
        EventType::DnsUnpinned => "writer DNS restored to its recorded shape".into(),
        EventType::UnpinFailed => "unpin FAILED - DNS left as it was".into(),
        EventType::ReprotectChanged => "re-protection changed state".into(),
        EventType::DivergenceMeasured => {
            "DIVERGENCE measured: transactions the new primary never received".into()
        }
    }
}

/// A `complete` that resolved a failed epoch's unpinned promotion (not a pinned failover's close):
/// the site is not in phase `completed`.
/// A `FailoverAborted` the promoter raised on its own re-check (the decision too old, or the
/// primary alive again), not a human's `abort` command.
fn is_promoter_abort(e: &DomainEvent) -> bool {
    e.event_type == EventType::FailoverAborted
        && e.verdict.guards.iter().any(|g| {
            matches!(
                g.guard,
                crate::verdict::Guard::DecisionAge | crate::verdict::Guard::PrimaryStillDown
            ) && g.result == crate::verdict::GuardResult::Fail
        })
}

/// A `DnsPinDelayed` saying the pinner stopped trying to pin the records of a switched epoch
/// (the deadline passed, or Route 53 refused the change for good).
fn is_records_given_up(e: &DomainEvent) -> bool {
    e.event_type == EventType::DnsPinDelayed
        && e.verdict
            .summary
            .starts_with(crate::dataplane::RECORDS_GIVEN_UP)
}

fn is_resolution(e: &DomainEvent) -> bool {
    e.event_type == EventType::FailoverCompleted && e.phase != crate::incident::Phase::Completed
}

/// One printable ASCII line: non-ASCII becomes `?`, control characters and newlines a space,
/// runs of spaces collapse.
pub fn ascii_line(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for ch in s.chars() {
        let c = match ch {
            c if c.is_ascii_control() || c.is_whitespace() => ' ',
            c if c.is_ascii() => c,
            _ => '?',
        };
        if c == ' ' && (out.is_empty() || out.ends_with(' ')) {
            continue;
        }
        out.push(c);
    }
    out.trim_end().to_owned()
}

fn cut(s: &str, max: usize) -> String {
    if s.len() <= max {
        return s.to_owned();
    }
    // ASCII only by now, so byte indices are char boundaries.
    format!("{}...", &s[..max.saturating_sub(3)])
}

/// `[SEVERITY] site e<epoch>: headline`, at most [`SUBJECT_MAX`] ASCII characters. A long site
/// name is shortened before the headline is, because the headline is what a pager preview must
/// show.
pub fn subject(e: &DomainEvent) -> String {
    let sev = e.event_type.severity().to_ascii_uppercase();
    let head = ascii_line(&headline(e));
    let site = ascii_line(&e.site);
    let fixed = format!("[{sev}]  e{}: {head}", e.epoch).len();
    let room = SUBJECT_MAX.saturating_sub(fixed).max(12);
    let s = format!("[{sev}] {} e{}: {head}", cut(&site, room), e.epoch);
    cut(&ascii_line(&s), SUBJECT_MAX)
}

fn at(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Secs, true)
}

fn guard_line(g: &GuardCheck) -> String {
    let mark = match g.result {
        GuardResult::Pass => "PASS",
        GuardResult::Fail => "FAIL",
        GuardResult::Unknown => "UNKNOWN",
        GuardResult::NotApplicable => "n/a",
    };
    let numbers = match (g.observed, g.limit) {
        (Some(o), Some(l)) => format!(" (observed {o}, limit {l})"),
        (Some(o), None) => format!(" (observed {o})"),
        _ => String::new(),
    };
    format!("  [{mark:<7}] {}: {}{numbers}", guard_name(g), g.detail)
}

struct Steps {
    done: Vec<String>,
    not_done: Vec<String>,
    next: Vec<String>,
}

fn steps(e: &DomainEvent) -> Steps {
    let c = candidate_id(e);
    let site = &e.site;
    let old = e
        .primary
        .as_ref()
        .map(|p| p.to_string())
        .unwrap_or_else(|| "the old primary".into());
    let pause = operator_cmd(format!(
        r#"{{"command":"pause","site":"{site}","reason":"<why>","operator":"<you>"}}"#
    ));
    let status = operator_cmd(format!(r#"{{"command":"status","site":"{site}"}}"#));
    let fence_old = format!(
        "{old} is fenced by the scheduled tick once the promotion is complete (read_only=1 in its own parameter group, confirmed over SQL, sessions ended, snapshot): you are paged on every change of the fence, at once if it answers writable, and with the divergence report when it is reachable. A site without a `fence` section is watched only: fence it by hand ({RUNBOOK}, \"The old primary\")."
    );
    let failback = format!("Failback is manual — see {RUNBOOK} (\"Failback\").");
    let (done, not_done, next): (Vec<String>, Vec<String>, Vec<String>) = match e.event_type {
        EventType::IncidentSuspected => (
            vec![format!("Opened incident epoch {}; the sustained window is running.", e.epoch)],
            vec!["No database was promoted.".into(), "DNS was not changed.".into()],
            vec![
                "Nothing yet: the evaluator fails over only if the outage is confirmed for the whole window.".into(),
                format!("If this is planned work or a regional event you want to ride out: {pause}"),
            ],
        ),
        EventType::FailoverDecided => (
            vec![
                format!("Decided to fail over to {c}."),
                format!("replica-promoter is promoting {c} now."),
            ],
            vec!["DNS still points at the old primary until the promotion is verified writable.".into()],
            vec![
                "Watch for the \"promoted\" and \"DNS pinned\" messages (minutes for RDS).".into(),
                fence_old,
            ],
        ),
        EventType::ApprovalRequested => (
            vec![format!("Outage confirmed; {c} chosen as the new primary.")],
            vec!["Nothing was promoted and DNS is untouched: this site waits for a human.".into()],
            vec![
                format!(
                    "To fail over: {}",
                    operator_cmd(format!(
                        r#"{{"command":"approve","site":"{site}","epoch":{},"operator":"<you>"}}"#,
                        e.epoch
                    ))
                ),
                "To not fail over: do nothing; the approval is only valid for this epoch.".into(),
            ],
        ),
        EventType::FailoverRefused => (
            vec!["Outage evaluated.".into()],
            vec![format!(
                "No failover: failed guard(s): {}. Nothing was promoted, DNS untouched.",
                failed_guard_names(e)
            )],
            refusal_steps(e),
        ),
        EventType::ShadowFailover => (
            vec!["Nothing (the site is in shadow mode).".into()],
            vec![format!("{c} was not promoted; DNS untouched.")],
            vec!["Judge whether this failover would have been right; switch the site's approval to auto once you trust it.".into()],
        ),
        EventType::FailoverAborted => (
            vec![e.verdict.summary.clone()],
            vec!["No database was promoted by this epoch; DNS untouched.".into()],
            if is_promoter_abort(e) {
                aborted_steps(e)
            } else {
                vec![format!("None required. Check the site: {status}")]
            },
        ),
        EventType::PhaseOverdue => (
            vec![format!("Epoch {} has been in {} past its deadline.", e.epoch, e.phase)],
            vec!["Automation will not move the site out of this phase by itself.".into()],
            e.verdict
                .guards
                .iter()
                .filter(|g| g.guard == crate::verdict::Guard::Deadline)
                .map(|g| g.detail.clone())
                .collect(),
        ),
        EventType::IncidentCleared => (
            vec![format!("Incident epoch {} closed: the primary looks healthy again.", e.epoch)],
            vec!["Nothing was promoted; DNS untouched.".into()],
            vec!["None required. Find out why the primary looked down (see the guards above).".into()],
        ),
        EventType::AutomationPaused => (
            vec![format!("Automatic failover is paused for {site}.")],
            vec!["Alarms are still evaluated and reported, but nothing will be promoted.".into()],
            vec![format!(
                "Resume when done: {}",
                operator_cmd(format!(
                    r#"{{"command":"resume","site":"{site}","operator":"<you>"}}"#
                ))
            )],
        ),
        EventType::AutomationResumed => (
            vec![format!("Automatic failover is active again for {site}.")],
            vec![],
            vec!["None.".into()],
        ),
        EventType::PromotionContinued => (
            vec![format!("RDS is still promoting {c}; the promoter keeps watching (it never asks twice).")],
            vec!["DNS still points at the old primary.".into()],
            vec![
                "Nothing, unless it takes much longer than usual (RDS replica promotion: minutes).".into(),
                fence_old.clone(),
            ],
        ),
        EventType::ReplicaPromoted => (
            vec![format!("{c} is promoted and accepts writes.")],
            vec!["The writer DNS name is not moved yet: dns-pinner does that next.".into()],
            vec![
                "Expect \"DNS pinned\" within minutes. If it does not come, repoint DNS by hand (runbook: \"Repoint DNS by hand\").".into(),
                fence_old,
            ],
        ),
        EventType::DnsPinContinued => (
            vec![format!(
                "{c} is promoted and accepts writes; dns-pinner keeps pinning the writer name (it continues itself and never sends a second change)."
            )],
            vec!["The writer name may still resolve to the old primary.".into()],
            vec![
                "Nothing yet: you are paged again if it takes longer than 5 min, 15 min, and when the pin deadline passes.".into(),
                fence_old.clone(),
            ],
        ),
        EventType::DnsPinDelayed if is_records_given_up(e) => (
            vec![
                format!("{c} is promoted and accepts writes."),
                format!("Traffic moved to {c} on the data-plane switch (the zone's name servers were seen answering it) — or, when the summary says the answer was NOT seen moving yet, the switch was put and traffic may move there at any moment (its alarm latches)."),
            ],
            vec![
                "The failover records are NOT pinned and the pinner has STOPPED trying (see the summary for why): the answer rests on the switch alone.".into(),
            ],
            vec![
                "Fix what the summary names (a permission, a record someone edited by hand), then make the record change it gives by hand.".into(),
                format!("Do NOT set the switch back (metric 0, or unpin) before the records are pinned: Route 53 would answer the PRIMARY, the old primary ({RUNBOOK}, data-plane-switch mode)."),
                "Close the incident with `complete` naming the epoch: it is accepted with the records not pinned, and says so.".into(),
                fence_old.clone(),
            ],
        ),
        EventType::DnsPinDelayed => (
            vec![format!(
                "{c} is promoted and accepts writes; dns-pinner is still trying to pin the writer name (see the summary for how long and why)."
            )],
            vec!["The writer name may still resolve to the old primary: applications may still write there.".into()],
            vec![
                format!("Check Route 53 (ChangeResourceRecordSets is served from us-east-1; see the AWS Health Dashboard) and {status}."),
                format!("If it will not recover soon, repoint DNS by hand ({RUNBOOK}, \"Repoint DNS by hand\"): the pinner then finds the target in place and finishes."),
                fence_old.clone(),
            ],
        ),
        EventType::DnsPinned if crate::dataplane::is_switched_notice(e) => (
            vec![
                format!("{c} is promoted and accepts writes."),
                format!("Traffic moved on the data-plane switch: the tool's metric was set to 1, the PRIMARY's health check follows its alarm, and the zone's name servers were seen answering the SECONDARY, {c} (see the summary) — unless the summary says they were NOT seen answering it yet: then the metric was put and traffic may move there at any moment (its alarm latches)."),
                "The previous record set is kept in the ledger for failback/unpin.".into(),
            ],
            vec![
                "The failover records are NOT pinned yet: Route 53's API did not answer (see the summary); until they are, the answer rests on the switch alone.".into(),
                format!("{old} was not deleted; its fence is reported in its own messages."),
            ],
            vec![
                "Nothing while the pinner retries: it keeps pinning the records until the pin deadline (the ledger's data_plane_switch.records_pending turns false when done); past it, DnsPinDelayed pages with the record change to make by hand.".into(),
                format!("Do NOT set the switch back (metric 0) while the records are not pinned: Route 53 would answer the PRIMARY, the old primary ({RUNBOOK}, data-plane-switch mode)."),
                fence_old,
                failback,
            ],
        ),
        EventType::DnsPinned => (
            vec![
                format!("{c} is promoted and accepts writes."),
                format!("The writer name is pinned to {c} and Route 53 reports the change INSYNC."),
                "The previous record set is kept in the ledger for failback/unpin.".into(),
            ],
            vec![
                format!("{old} was not deleted; its fence is reported in its own messages."),
                "No failback: the pin keeps traffic on the new primary even if the old one turns healthy.".into(),
            ],
            vec![fence_old, failback],
        ),
        EventType::FailoverCompleted if is_resolution(e) => (
            vec![format!(
                "A human declared an earlier epoch's unpinned promotion dealt with (see the command line above): it no longer holds automatic failover of {site}."
            )],
            vec!["This command changed nothing in AWS: nothing was promoted, DNS untouched.".into()],
            vec![format!(
                "Automation watches {site} again and may promote a configured candidate: make sure the site's configuration describes the databases as they are now ({RUNBOOK}, section 9a)."
            )],
        ),
        EventType::FailoverCompleted => (
            vec![format!("Failover to {c} completed.")],
            vec![format!("{old} was not deleted; its fence is reported in its own messages.")],
            vec![fence_old, failback],
        ),
        EventType::EvidenceWarning => (
            vec!["Noted the warning above; it is announced once until it clears.".into()],
            vec![
                "Nothing was failed over because of it.".into(),
                "The voter it names counts as what it can prove: an answering server is up, a dark vantage is unknown.".into(),
            ],
            vec![format!(
                "Fix the voter it names (canary credentials, grants or TLS; the witness's region, prober or metric; the route between the DR region and the primary) — {RUNBOOK} (\"Voter warnings\")."
            )],
        ),
        EventType::FenceChanged => (
            e.verdict.guards.iter().map(|g| g.detail.clone()).collect(),
            vec!["DNS is not moved by the fence; failback is manual.".into()],
            vec![
                "Steps marked REFUSED must be done by hand (the line says why).".into(),
                format!("Pending steps are retried every tick; see {RUNBOOK} (\"The old primary\")."),
            ],
        ),
        EventType::OldPrimaryWritable => (
            e.verdict.guards.iter().map(|g| g.detail.clone()).collect(),
            vec![
                "DNS stays pinned to the new primary: it never moves back on its own.".into(),
                "Clients still connected to the old primary (pooled connections, cached DNS, its RDS endpoint) can write there.".into(),
            ],
            vec![e.verdict.summary.clone()],
        ),
        EventType::DivergenceMeasured => (
            vec![e.verdict.summary.clone()],
            vec!["Nothing was copied back: these transactions exist only on the old primary (and its snapshot).".into()],
            vec![format!("Reconcile them by hand from the positions above ({RUNBOOK}, \"The divergence report\").")],
        ),
        EventType::UnpinRequested => (
            vec![e.verdict.summary.clone()],
            vec!["Route 53 is not changed yet: the dns-pinner does it, in one compare-and-set batch.".into()],
            vec![format!("Wait for DnsUnpinned; a failure pages with what Route 53 holds ({RUNBOOK}, \"Failback\").")],
        ),
        EventType::UnpinContinued => (
            vec![e.verdict.summary.clone()],
            vec!["The records stay pinned to the writer (both members name it) until the alarm reads OK.".into()],
            vec!["Nothing yet: DnsUnpinned follows once the alarm reads OK; UnpinFailed pages if it does not by the deadline.".into()],
        ),
        EventType::DnsUnpinned => (
            vec![e.verdict.summary.clone()],
            vec!["No database was changed.".into()],
            vec!["Check that applications resolve the writer name to the writer.".into()],
        ),
        EventType::UnpinFailed => (
            vec![e.verdict.summary.clone()],
            vec!["Route 53 was not changed (the batch is all or nothing).".into()],
            vec![format!("Compare what the name holds with the recorded set ({status}), fix by hand or unpin again ({RUNBOOK}, \"Failback\").")],
        ),
        EventType::ReprotectChanged => (
            vec![e.verdict.summary.clone()],
            vec!["No failover is made by it, and DNS is not touched.".into()],
            vec![format!("Watch the next ReprotectChanged; the site is unprotected until one says protected ({RUNBOOK}, \"Re-protecting\").")],
        ),
        EventType::FailoverFailed => (
            vec![format!("The failover of epoch {} stopped in phase {}.", e.epoch, e.phase)],
            vec!["See the summary above for what did not happen.".into()],
            vec![
                format!("Act now: check the state with {status}."),
                format!("Follow {RUNBOOK} (\"A failover failed\") to finish by hand."),
            ],
        ),
    };
    Steps {
        done,
        not_done,
        next,
    }
}

/// What a human can do about an epoch the promoter aborted before asking RDS.
fn aborted_steps(e: &DomainEvent) -> Vec<String> {
    let site = &e.site;
    let primary_alive = e
        .verdict
        .guards
        .iter()
        .any(|g| g.guard == Guard::PrimaryStillDown && g.result == GuardResult::Fail);
    let status = operator_cmd(format!(r#"{{"command":"status","site":"{site}"}}"#));
    let failover = operator_cmd(format!(
        r#"{{"command":"failover","site":"{site}","reason":"<why>","operator":"<you>"}}"#
    ));
    if primary_alive {
        vec![
            "The primary answered again: no failover is needed now. Find out why it looked down (the guards above).".into(),
            format!("Check that applications reach it: {status}."),
            format!(
                "If it must be failed over although it answers, that is a forced manual failover or a planned switchover ({RUNBOOK}, \"A failover was aborted\")."
            ),
        ]
    } else {
        vec![
            "The decision reached the promoter too late to act on: the evaluator decides again on fresh evidence at its next evaluation if the outage is still there.".into(),
            format!("Check the state now: {status}."),
            format!("If the primary is down and you want the failover now: {failover}"),
        ]
    }
}

/// What a human can do about a refusal: one step per guard that blocked it, so the command a
/// message offers is one that would work (an RPO override does not lift a pause).
fn refusal_steps(e: &DomainEvent) -> Vec<String> {
    let site = &e.site;
    let failover = |extra: &str| {
        operator_cmd(format!(
            r#"{{"command":"failover","site":"{site}"{extra},"reason":"<why>","operator":"<you>"}}"#
        ))
    };
    let blocked: Vec<Guard> = e
        .verdict
        .guards
        .iter()
        .filter(|g| {
            g.result == GuardResult::Fail
                || (g.guard == Guard::Rpo && g.result == GuardResult::Unknown)
        })
        .map(|g| g.guard)
        .collect();
    let mut next = vec![
        "Read the FAIL lines above: they say what blocked the failover and by how much."
            .to_string(),
    ];
    if blocked.contains(&Guard::Pause) {
        next.push(format!(
            "Automation is paused for {site}: every failover, automatic or requested, is refused until it is resumed: {}",
            operator_cmd(format!(
                r#"{{"command":"resume","site":"{site}","operator":"<you>"}}"#
            ))
        ));
    }
    if blocked
        .iter()
        .any(|g| matches!(g, Guard::MaintenanceWindow | Guard::DeliberateStop))
    {
        next.push(format!(
            "If failing over is right anyway (an operator's request is not held back by a maintenance window or a stopped primary): {}",
            failover("")
        ));
    }
    if blocked.contains(&Guard::Cooldown) {
        next.push("The cooldown after the last failover refuses automatic and requested failovers alike; it ends by itself (see the cooldown line).".into());
    }
    // An earlier epoch's promotion that never got DNS pinned holds automation (two writers):
    // making another candidate available would not lift it; a human resolves the first one.
    let (held, unavailable): (Vec<&GuardCheck>, Vec<&GuardCheck>) = e
        .verdict
        .guards
        .iter()
        .filter(|g| g.guard == Guard::Candidate && g.result == GuardResult::Fail)
        .partition(|g| g.detail.ends_with(crate::decide::TWO_WRITERS));
    if let Some(g) = held.first() {
        let first = g.detail.split(':').next().unwrap_or("an earlier epoch");
        let epoch = first
            .split_whitespace()
            .nth(1)
            .and_then(|n| n.parse::<u64>().ok())
            .map_or("<epoch>".to_string(), |n| n.to_string());
        next.push(format!(
            "Automation holds {site} until a human resolves an earlier promotion ({first}): that candidate may already be a writer. \
             Check it ({RUNBOOK}, section 7): if it is the new primary, pin DNS to it by hand (same section); if not, fence it off. \
             Then lift the hold: {}",
            operator_cmd(format!(
                r#"{{"command":"complete","site":"{site}","epoch":{epoch},"reason":"<what you did>","operator":"<you>"}}"#
            ))
        ));
        next.push(format!(
            "Or fail over by hand now (a manual failover is allowed; its pinned epoch clears the hold): {}",
            failover("")
        ));
    }
    if !unavailable.is_empty() {
        next.push("No candidate can be promoted (see the candidate line): make one available, or restore the primary.".into());
    }
    if blocked.contains(&Guard::Rpo) || blocked.is_empty() {
        next.push(format!(
            "If losing that much data is acceptable: {}",
            failover(r#","override_rpo":true"#)
        ));
    }
    next.push("Otherwise work on restoring the primary.".into());
    next
}

/// The full message for `e` as of `now`.
pub fn compose(e: &DomainEvent, now: DateTime<Utc>) -> Notice {
    use std::fmt::Write;
    let mut b = String::new();
    let sev = e.event_type.severity().to_ascii_uppercase();
    let _ = writeln!(b, "{sev}: {} — {}", e.site, headline(e));
    let _ = writeln!(b);
    let _ = writeln!(b, "WHAT HAPPENED");
    let _ = writeln!(b, "  {}", e.verdict.summary);
    let _ = writeln!(
        b,
        "  site {} ({})  epoch {}  phase {}  event {}",
        e.site,
        e.engine,
        e.epoch,
        e.phase,
        e.event_type.detail_type()
    );
    if let Some(p) = &e.primary {
        let _ = writeln!(b, "  primary:   {p}");
    }
    if let Some(c) = &e.candidate {
        let _ = writeln!(b, "  candidate: {c}");
    }
    let age = (now - e.occurred_at).num_seconds();
    let _ = writeln!(
        b,
        "  at {} ({} ago)",
        at(e.occurred_at),
        human_duration(age)
    );
    if let Some(o) = &e.rpo_override {
        let _ = writeln!(
            b,
            "  RPO OVERRIDE by {} at {}: {}",
            o.by,
            at(o.at),
            o.reason
        );
    }
    let _ = writeln!(b);
    let _ = writeln!(b, "WHY (verdict: {})", e.verdict.outcome.name());
    if e.verdict.guards.is_empty() {
        let _ = writeln!(b, "  (no guards recorded)");
    }
    for g in &e.verdict.guards {
        let _ = writeln!(b, "{}", guard_line(g));
    }
    let _ = writeln!(b);
    let _ = writeln!(b, "TIMELINE");
    match e.timeline.first() {
        None => {
            let _ = writeln!(b, "  (empty)");
        }
        Some(first) => {
            let mut prev = first.at;
            for t in &e.timeline {
                let _ = writeln!(
                    b,
                    "  {}  +{:<8} (step {:<8}) {:<17} {}",
                    at(t.at),
                    human_duration((t.at - first.at).num_seconds()),
                    human_duration((t.at - prev).num_seconds()),
                    t.phase.as_str(),
                    t.note
                );
                prev = t.at;
            }
            let _ = writeln!(
                b,
                "  so far: {} since the first sign of trouble ({} since the last step)",
                human_duration((now - first.at).num_seconds()),
                human_duration((now - prev).num_seconds())
            );
        }
    }
    let s = steps(e);
    let _ = writeln!(b);
    let _ = writeln!(b, "DONE");
    for d in &s.done {
        let _ = writeln!(b, "  - {d}");
    }
    if !s.not_done.is_empty() {
        let _ = writeln!(b, "NOT DONE");
        for d in &s.not_done {
            let _ = writeln!(b, "  - {d}");
        }
    }
    let _ = writeln!(b);
    let _ = writeln!(b, "NEXT STEP");
    for d in &s.next {
        let _ = writeln!(b, "  - {d}");
    }
    let _ = writeln!(b);
    let key = NoticeKey::of(e);
    let _ = writeln!(
        b,
        "Runbook: {RUNBOOK}. Message key: {}#{} (one message per site, epoch and event).",
        key.site,
        key.sort_key()
    );
    if b.len() > BODY_MAX {
        let mut end = BODY_MAX - 40;
        while !b.is_char_boundary(end) {
            end -= 1;
        }
        b.truncate(end);
        b.push_str("\n[truncated: see the ledger]\n");
    }
    let attributes = vec![
        ("site".to_owned(), AttributeValue::String(e.site.clone())),
        (
            "phase".to_owned(),
            AttributeValue::String(e.phase.as_str().to_owned()),
        ),
        (
            "severity".to_owned(),
            AttributeValue::String(e.event_type.severity().to_owned()),
        ),
        (
            "epoch".to_owned(),
            AttributeValue::Number(e.epoch.to_string()),
        ),
        (
            "event_type".to_owned(),
            AttributeValue::String(e.event_type.detail_type().to_owned()),
        ),
    ];
    Notice {
        key,
        subject: subject(e),
        body: b,
        attributes,
    }
}

/// Reads a domain event as the dns-pinner and the notifier receive it: the EventBridge envelope
/// `EventBridgeBus::publish` writes (source [`EVENT_SOURCE`], `detail-type` the event type, `detail`
/// the event), or the bare event (a direct `cargo lambda invoke`). The envelope's source and
/// detail-type must agree with the event, so an event from another source is never acted on.
pub fn parse_domain_event(payload: &serde_json::Value) -> Result<DomainEvent, String> {
    use crate::events::EVENT_SOURCE;
    let Some(obj) = payload.as_object() else {
        return Err("expected a JSON object (an EventBridge event or a domain event)".into());
    };
    if let Some(refusal) = crate::signal::refused_input(payload) {
        return Err(refusal);
    }
    let event_of = |v: &serde_json::Value, field: &str| {
        serde_path_to_error::deserialize::<_, DomainEvent>(v.clone()).map_err(|e| {
            let path = e.path().to_string();
            let at = if path == "." {
                field.to_string()
            } else {
                format!("{field}.{path}")
            };
            format!("field `{at}`: {}", e.into_inner())
        })
    };
    if !obj.contains_key("detail-type") {
        return event_of(payload, "(event)");
    }
    let source = obj
        .get("source")
        .and_then(|v| v.as_str())
        .unwrap_or_default();
    if source != EVENT_SOURCE {
        return Err(format!(
            "field `source`: expected `{EVENT_SOURCE}`, got `{source}`"
        ));
    }
    let detail_type = obj
        .get("detail-type")
        .and_then(|v| v.as_str())
        .unwrap_or_default();
    let detail = obj
        .get("detail")
        .ok_or_else(|| "field `detail`: missing".to_string())?;
    let event = event_of(detail, "detail")?;
    if event.event_type.detail_type() != detail_type {
        return Err(format!(
            "field `detail-type`: `{detail_type}` does not match the detail's event_type `{}`",
            event.event_type.detail_type()
        ));
    }
    Ok(event)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::DbRef;
    use crate::incident::{Phase, RpoOverride, TimelineEntry};
    use crate::verdict::{Guard, Outcome, RefusalReason, Verdict};
    use chrono::TimeZone;

    fn t(s: i64) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 11, 24, 3, 0, 0).unwrap() + chrono::Duration::seconds(s)
    }

    fn db(id: &str, region: &str) -> DbRef {
        DbRef {
            id: id.into(),
            region: region.into(),
        }
    }

    fn event(t_: EventType, site: &str, phase: Phase) -> DomainEvent {
        DomainEvent {
            event_type: t_,
            site: site.into(),
            epoch: 3,
            phase,
            engine: "rds-replica".into(),
            occurred_at: t(400),
            primary: Some(db("orders-primary", "us-east-1")),
            candidate: Some(db("orders-replica-1", "us-west-2")),
            rpo_override: None,
            verdict: Verdict {
                site: Some(site.into()),
                outcome: Outcome::FailoverDecided {
                    candidate: db("orders-replica-1", "us-west-2"),
                },
                epoch: 3,
                phase,
                summary: "orders-primary is down: 3 of 3 sources agree for 120 s".into(),
                guards: vec![
                    GuardCheck::new(Guard::Quorum, GuardResult::Pass, "3 of 3 sources say down")
                        .numbers(3.0, 2.0),
                    GuardCheck::new(Guard::Sustained, GuardResult::Pass, "down for 120 s")
                        .numbers(120.0, 120.0),
                    GuardCheck::new(Guard::Rpo, GuardResult::Pass, "last good lag 1 s")
                        .numbers(1.0, 30.0),
                ],
            },
            timeline: vec![
                TimelineEntry {
                    phase: Phase::Suspected,
                    at: t(0),
                    note: "availability alarm".into(),
                },
                TimelineEntry {
                    phase: Phase::Promoting,
                    at: t(120),
                    note: "decided".into(),
                },
                TimelineEntry {
                    phase: Phase::Promoted,
                    at: t(365),
                    note: "writable".into(),
                },
                TimelineEntry {
                    phase: Phase::DnsPinned,
                    at: t(400),
                    note: "db.orders.example.com CNAME -> r1".into(),
                },
            ],
        }
    }

    fn all_types() -> Vec<EventType> {
        use EventType::*;
        vec![
            IncidentSuspected,
            FailoverDecided,
            ApprovalRequested,
            FailoverRefused,
            ShadowFailover,
            IncidentCleared,
            AutomationPaused,
            AutomationResumed,
            PromotionContinued,
            FailoverAborted,
            ReplicaPromoted,
            DnsPinContinued,
            DnsPinDelayed,
            DnsPinned,
            FailoverCompleted,
            FailoverFailed,
        ]
    }

    fn subject_ok(s: &str) {
        assert!(
            s.len() <= SUBJECT_MAX && s.len() < 100,
            "{} chars: {s}",
            s.len()
        );
        assert!(s.is_ascii(), "{s}");
        assert!(!s.chars().any(|c| c.is_control()), "{s:?}");
        assert!(s.starts_with('['), "{s}");
    }

    #[test]
    fn subjects_fit_sns_for_every_event_type_and_a_very_long_site_name() {
        let long = "a-very-long-site-name-that-someone-thought-was-descriptive-".repeat(4);
        for ty in all_types() {
            for site in ["orders", long.as_str(), "ördérs\nwith newline\t"] {
                let e = event(ty, site, Phase::Promoted);
                let s = subject(&e);
                subject_ok(&s);
                assert!(s.contains("e3:"), "{s}");
                // The headline survives a long site name: the site is what gets shortened.
                let head = ascii_line(&headline(&e));
                assert!(s.ends_with(&head) || head.len() > 60, "headline lost: {s}");
            }
        }
        let s = subject(&event(EventType::DnsPinned, &long, Phase::DnsPinned));
        assert!(s.starts_with("[WARNING] a-very-long-site"), "{s}");
        assert!(s.contains("..."), "{s}");
        let s = subject(&event(
            EventType::FailoverDecided,
            "orders",
            Phase::Promoting,
        ));
        assert_eq!(s, "[CRITICAL] orders e3: FAILING OVER to orders-replica-1");
    }

    #[test]
    fn a_huge_candidate_name_still_yields_a_valid_subject() {
        let mut e = event(EventType::FailoverDecided, "orders", Phase::Promoting);
        e.candidate = Some(db(&"x".repeat(300), "us-west-2"));
        subject_ok(&subject(&e));
    }

    #[test]
    fn a_switched_dns_pinned_says_traffic_moved_on_the_switch_and_the_records_are_not_pinned() {
        let mut e = event(EventType::DnsPinned, "orders", Phase::DnsPinned);
        e.verdict.summary = format!(
            "{}db.orders.example.com -> orders-replica-1.cabc.us-west-2.rds.amazonaws.com by the data-plane switch; the records are NOT pinned yet (Route 53's API: 503)",
            crate::dataplane::SWITCHED_NOT_PINNED
        );
        let s = subject(&e);
        subject_ok(&s);
        assert!(
            s.contains("data-plane switch") && s.contains("NOT pinned"),
            "{s}"
        );
        let b = compose(&e, t(460)).body;
        assert!(b.contains("Traffic moved on the data-plane switch"), "{b}");
        assert!(b.contains("The failover records are NOT pinned yet"), "{b}");
        assert!(!b.contains("INSYNC"), "nothing was INSYNC: {b}");
        assert!(!b.contains("The writer name is pinned"), "{b}");
        // A DnsPinned that names the switch AND the records pinned is an ordinary pin.
        let mut pinned = event(EventType::DnsPinned, "orders", Phase::DnsPinned);
        pinned.verdict.summary =
            "DNS pinned: data-plane switch set first (verified ...); records read back".into();
        let b = compose(&pinned, t(460)).body;
        assert!(b.contains("Route 53 reports the change INSYNC"), "{b}");
        assert!(subject(&pinned).contains("DNS pinned to"));
    }

    #[test]
    fn body_carries_reasons_numbers_timeline_and_next_step() {
        let e = event(EventType::DnsPinned, "orders", Phase::DnsPinned);
        let n = compose(&e, t(460));
        let b = &n.body;
        for needle in [
            "WHAT HAPPENED",
            "orders-primary is down: 3 of 3 sources agree",
            "[PASS   ] quorum: 3 of 3 sources say down (observed 3, limit 2)",
            "rpo: last good lag 1 s (observed 1, limit 30)",
            "TIMELINE",
            "+2m 00s",
            "+6m 40s",
            "(step 35s",
            "so far: 7m 40s since the first sign of trouble (1m 00s since the last step)",
            "NOT DONE",
            "orders-primary (us-east-1) was not deleted; its fence is reported in its own messages",
            "orders-primary (us-east-1) is fenced by the scheduled tick once the promotion is complete",
            "Failback is manual — see docs/runbook.md",
            "NOTIFIED#000000000003#DnsPinned",
        ] {
            assert!(b.contains(needle), "missing `{needle}` in:\n{b}");
        }
        // In timeline order, each line once.
        let first = b.find("availability alarm").unwrap();
        let last = b.find("db.orders.example.com CNAME").unwrap();
        assert!(first < last);
    }

    #[test]
    fn refusals_name_the_failed_guard_and_the_override() {
        let mut e = event(EventType::FailoverRefused, "orders", Phase::Refused);
        e.verdict.outcome = Outcome::Refused {
            reason: RefusalReason::RpoExceeded,
        };
        e.verdict.guards.push(
            GuardCheck::new(Guard::Rpo, GuardResult::Fail, "lag 45 s exceeds 30 s")
                .numbers(45.0, 30.0),
        );
        let n = compose(&e, t(500));
        assert!(n.subject.contains("REFUSED (rpo)"), "{}", n.subject);
        assert!(n
            .body
            .contains("[FAIL   ] rpo: lag 45 s exceeds 30 s (observed 45, limit 30)"));
        assert!(n.body.contains(r#""override_rpo":true"#), "{}", n.body);

        // A pause is lifted by resuming, not by an RPO override (which a pause refuses too).
        let mut p = event(EventType::FailoverRefused, "orders", Phase::Refused);
        p.verdict.outcome = Outcome::Refused {
            reason: RefusalReason::Paused,
        };
        p.verdict.guards = vec![
            GuardCheck::new(Guard::Pause, GuardResult::Fail, "automation paused by bob"),
            GuardCheck::new(Guard::Rpo, GuardResult::Pass, "lag 2 s within 30 s"),
        ];
        let n = compose(&p, t(500));
        assert!(n.subject.contains("REFUSED (pause)"), "{}", n.subject);
        assert!(
            n.body
                .contains(r#"{"command":"resume","site":"orders","operator":"<you>"}"#),
            "{}",
            n.body
        );
        assert!(!n.body.contains("override_rpo"), "{}", n.body);

        let mut a = event(
            EventType::ApprovalRequested,
            "billing",
            Phase::AwaitingApproval,
        );
        a.rpo_override = Some(RpoOverride {
            by: "alice".into(),
            reason: "region lost".into(),
            at: t(10),
        });
        let n = compose(&a, t(500));
        assert!(n
            .body
            .contains(r#""command":"approve","site":"billing","epoch":3"#));
        assert!(n.body.contains("RPO OVERRIDE by alice"));
    }

    #[test]
    fn an_unresolved_promotion_hold_says_how_a_human_resolves_it_not_make_a_candidate_available() {
        let mut e = event(EventType::FailoverRefused, "orders", Phase::Refused);
        e.verdict.outcome = Outcome::Refused {
            reason: RefusalReason::UnresolvedPromotion,
        };
        e.verdict.guards = vec![
            GuardCheck::new(
                Guard::Candidate,
                GuardResult::Fail,
                format!(
                    "epoch 2 requested PromoteReadReplica of orders-replica-1 (us-west-2) at 2026-11-24T10:00:00Z \
                     and failed before DNS was pinned: orders-replica-1 (us-west-2) may have been promoted; {}",
                    crate::decide::TWO_WRITERS
                ),
            ),
            GuardCheck::new(Guard::Rpo, GuardResult::Pass, "lag 2 s within 30 s"),
        ];
        let b = compose(&e, t(500)).body;
        assert!(
            b.contains(
                "until a human resolves an earlier promotion (epoch 2 requested PromoteReadReplica"
            ),
            "{b}"
        );
        assert!(b.contains("docs/runbook.md, section 7"), "{b}");
        assert!(
            b.contains(r#"{"command":"complete","site":"orders","epoch":2,"reason":"<what you did>","operator":"<you>"}"#),
            "{b}"
        );
        assert!(
            b.contains(
                r#"{"command":"failover","site":"orders","reason":"<why>","operator":"<you>"}"#
            ),
            "{b}"
        );
        assert!(!b.contains("make one available"), "{b}");
        assert!(
            !b.contains("override_rpo"),
            "an RPO override does not lift the hold:\n{b}"
        );

        // A candidate that is simply unavailable still gets the generic step.
        e.verdict.guards[0] = GuardCheck::new(
            Guard::Candidate,
            GuardResult::Fail,
            "orders-replica-1 (us-west-2) is rebooting",
        );
        let b = compose(&e, t(500)).body;
        assert!(b.contains("make one available"), "{b}");
        assert!(!b.contains("resolves an earlier promotion"), "{b}");
    }

    #[test]
    fn a_resolved_hold_is_not_announced_as_a_completed_failover() {
        let mut e = event(EventType::FailoverCompleted, "orders", Phase::Refused);
        e.verdict.outcome = Outcome::Completed;
        let n = compose(&e, t(500));
        assert!(
            n.subject.contains("earlier promotion resolved"),
            "{}",
            n.subject
        );
        assert!(!n.subject.contains("failover to"), "{}", n.subject);
        assert!(n.body.contains("changed nothing in AWS"), "{}", n.body);
        assert!(n.body.contains("section 9a"), "{}", n.body);
        let completed = event(EventType::FailoverCompleted, "orders", Phase::Completed);
        let closed = compose(&completed, t(500));
        assert!(closed.subject.contains("failover to"), "{}", closed.subject);
        // The same epoch's real completion later is not deduplicated against the resolution.
        assert_ne!(
            NoticeKey::of(&e).sort_key(),
            NoticeKey::of(&completed).sort_key()
        );
        assert_eq!(NoticeKey::of(&e), NoticeKey::of(&e.clone()));
    }

    #[test]
    fn attributes_are_typed_for_filter_policies() {
        let n = compose(
            &event(EventType::FailoverFailed, "orders", Phase::Failed),
            t(400),
        );
        let get = |k: &str| n.attributes.iter().find(|(n, _)| n == k).unwrap().1.clone();
        assert_eq!(get("site"), AttributeValue::String("orders".into()));
        assert_eq!(get("phase"), AttributeValue::String("failed".into()));
        assert_eq!(get("severity"), AttributeValue::String("critical".into()));
        assert_eq!(get("epoch"), AttributeValue::Number("3".into()));
        assert_eq!(get("epoch").data_type(), "Number");
        assert_eq!(get("event_type").value(), "FailoverFailed");
    }

    #[test]
    fn keys_are_one_per_site_epoch_and_type_except_repeatable_operator_actions() {
        let a = NoticeKey::of(&event(EventType::DnsPinned, "orders", Phase::DnsPinned));
        assert_eq!(a.sort_key(), "NOTIFIED#000000000003#DnsPinned");
        let mut later = event(EventType::DnsPinned, "orders", Phase::DnsPinned);
        later.occurred_at = t(9999);
        assert_eq!(NoticeKey::of(&later), a, "a re-delivery is the same fact");
        let p1 = NoticeKey::of(&event(EventType::AutomationPaused, "orders", Phase::Idle));
        let mut second = event(EventType::AutomationPaused, "orders", Phase::Idle);
        second.occurred_at = t(9999);
        let p2 = NoticeKey::of(&second);
        assert_ne!(p1.sort_key(), p2.sort_key(), "a second pause is a new fact");
        assert!(p1
            .sort_key()
            .starts_with("NOTIFIED#000000000003#AutomationPaused#2026-11-24T03:06:40"));
    }

    #[test]
    fn deliveries_parse_from_the_eventbridge_envelope_or_bare() {
        let e = event(EventType::ReplicaPromoted, "orders", Phase::Promoted);
        let detail = serde_json::to_value(&e).unwrap();
        let env = serde_json::json!({
            "version": "0", "id": "1", "detail-type": "ReplicaPromoted", "source": "rds-failover",
            "account": "123456789012", "time": "2026-11-24T03:06:40Z", "region": "us-west-2",
            "resources": [], "detail": detail
        });
        assert_eq!(parse_domain_event(&env).unwrap(), e);
        assert_eq!(parse_domain_event(&detail).unwrap(), e);
        let mut forged = env.clone();
        forged["source"] = "attacker".into();
        assert!(parse_domain_event(&forged).unwrap_err().contains("source"));
        let mut mismatch = env.clone();
        mismatch["detail-type"] = "DnsPinned".into();
        assert!(parse_domain_event(&mismatch)
            .unwrap_err()
            .contains("detail-type"));
        let mut broken = env.clone();
        broken["detail"]["epoch"] = "three".into();
        let err = parse_domain_event(&broken).unwrap_err();
        assert!(err.contains("detail.epoch"), "{err}");
        assert!(parse_domain_event(&serde_json::json!([1])).is_err());
    }

    #[test]
    fn every_event_type_has_a_next_step() {
        for ty in all_types() {
            let n = compose(&event(ty, "orders", Phase::Promoted), t(500));
            let next = n.body.split("NEXT STEP").nth(1).expect("section");
            assert!(next.trim_start().starts_with("- "), "{ty:?}: {}", n.body);
        }
    }
}
