//! The pinner's handler: parse → fence → record the previous record set → change → wait for
//! `INSYNC` → commit `dns-pinned` → emit `DnsPinned`.
//!
//! The order is what makes it safe under at-least-once, hours-late delivery:
//! - the epoch fence comes first, against the ledger (event epoch == ledger epoch, phase
//!   `promoted`, same candidate); a stale or foreign event changes nothing anywhere, and *where* to
//!   point DNS always comes from the ledger's promotion record, never from the event;
//! - the record set as it was is committed to the ledger **before** DNS is changed, and never
//!   overwritten by a re-delivery, so failback and unpin always know what to restore;
//! - a record that already holds the target is not changed again (no second change id);
//! - the change id is committed as soon as Route 53 returns it, so a run that times out waiting
//!   for `INSYNC` fails as `Retryable.DnsNotInSync` and the retry waits on the *same* change;
//! - `INSYNC` is not proof: before `dns-pinned` the records are read back and every authoritative
//!   name server of the zone is asked what it answers (`failover_policy::answer`); anything but
//!   `name CNAME new-primary` at every one is retried and handed on like a slow change, and the
//!   message people get says what each server answered;
//! - every Route 53 call and DNS query is bounded by the time left before [`FINISH_RESERVE`], so
//!   the final commit and publish always have it;
//! - `dns-pinned` is committed with compare-and-set and its event rides in the outbox, so a crash
//!   between commit and publish re-emits it on the next invocation instead of losing it;
//! - `data-plane-switch` sites (`failover_policy::dataplane`), when the epoch promoted the
//!   candidate the SECONDARY names (`dns.mode.secondary_candidate`; any other promotion is pinned as
//!   `failover-pin`, the switch untouched, the note saying so): before the records are touched, one
//!   `PutMetricData` in the DR region moves the answer (the PRIMARY's `CLOUDWATCH_METRIC` health
//!   check follows its alarm), and the name servers are asked; when Route 53's API then fails the
//!   site is `dns-pinned` on the switch with "records not pinned yet", and the continuation chain
//!   goes on pinning the records; when it answers, one `dns-pinned` names both;
//! - anything that cannot succeed by retrying (no such zone, access denied, a record the config
//!   does not describe) moves the epoch to `failed` with a `FailoverFailed` event, so the notifier
//!   pages a human: the database is promoted but applications may still resolve the old primary.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use chrono::{DateTime, Utc};
use failover_adapters::dns::Dns;
use failover_adapters::ports::{Clock, ErrorKind, EventBus, Ledger, PortError};
use failover_adapters::resolve::Resolve;
use failover_adapters::switch::MetricSwitch;
use failover_policy::answer;
use failover_policy::config::SwitchMetric;
use failover_policy::dataplane;
use failover_policy::incident::DnsRecord;
use failover_policy::notice::parse_domain_event;
use failover_policy::pace;
use failover_policy::pin::{self, ChangeStatus, Fence};
use failover_policy::secondary;
use failover_policy::{Config, DomainEvent, EventType, SiteConfig, SiteState};
use lambda_runtime::Diagnostic;
use serde::Serialize;
use serde_json::Value;
use tokio::time::Instant;
use tracing::{info, warn};

/// Everything the handler talks to, built once at cold start.
#[derive(Clone)]
pub struct Deps {
    pub cfg: Config,
    pub ledger: Arc<dyn Ledger>,
    pub bus: Arc<dyn EventBus>,
    pub dns: Arc<dyn Dns>,
    /// Asks the zone's authoritative name servers what they answer.
    pub resolve: Arc<dyn Resolve>,
    /// The data-plane switch (CloudWatch PutMetricData in the metric's region).
    pub switch: Arc<dyn MetricSwitch>,
    pub clock: Arc<dyn Clock>,
    /// A uniform sample in `[0, 1)` for the backoff's jitter (fixed in tests).
    pub jitter: Arc<dyn Fn() -> f64 + Send + Sync>,
}

/// How many times a lost compare-and-set is retried with a fresh read before giving up.
const MAX_COMMIT_ATTEMPTS: usize = 5;
/// How long the pre-switch read of the record pair may take (`check_secondary`) before Route 53's
/// API counts as dark and the ledger's last reading decides.
const SECONDARY_READ_TIMEOUT: Duration = Duration::from_secs(5);
/// Kept back from the Lambda deadline for the final commit and publish after the wait.
pub const FINISH_RESERVE: Duration = Duration::from_secs(5);

/// Until when the handler may wait for `INSYNC`, from the invocation's deadline (milliseconds
/// since the Unix epoch, as the Lambda runtime reports it; `fallback` when it reports none usable).
pub fn wait_deadline(deadline_ms: u64, fallback: Duration) -> Instant {
    let remaining =
        failover_adapters::settings::remaining_budget(deadline_ms, SystemTime::now(), fallback);
    Instant::now() + remaining.saturating_sub(FINISH_RESERVE)
}

#[derive(Debug, thiserror::Error)]
pub enum PinError {
    #[error("bad input: {0}")]
    BadInput(String),
    #[error("site {site}: {source}")]
    Port { site: String, source: PortError },
    #[error("site {site}: Route 53 change {change_id} is still PENDING after {waited_secs} s; it is recorded in the ledger and the retry waits on it")]
    NotInSync {
        site: String,
        change_id: String,
        waited_secs: u64,
    },
    #[error("site {site}: Route 53 reports the change done, but {source}")]
    NotVerified {
        site: String,
        source: answer::NotVerified,
    },
    #[error("site {site} epoch {epoch}: traffic IS on the new primary by the data-plane switch (or, the switch put and not yet seen, may move there at any moment), but the records cannot be pinned (retrying cannot fix it); the epoch stays dns-pinned, people are paged: {reason}")]
    RecordsFailed {
        site: String,
        epoch: u64,
        error_type: String,
        reason: String,
    },
    #[error(
        "site {site}: ledger contention: lost {MAX_COMMIT_ATTEMPTS} compare-and-set races in a row"
    )]
    Contention { site: String },
    #[error("site {site}: a duplicate delivery changed the record to the same target first")]
    RaceLost { site: String },
    #[error("site {site} epoch {epoch}: DNS not pinned, the epoch is marked failed: {reason}")]
    Failed {
        site: String,
        epoch: u64,
        error_type: String,
        reason: String,
    },
}

impl PinError {
    /// What waiting can fix: throttling, 5xx, timeouts, lost races, a change not yet INSYNC.
    fn is_transient(&self) -> bool {
        match self {
            PinError::Port { source, .. } => source.kind.is_retryable(),
            PinError::NotInSync { .. }
            | PinError::NotVerified { .. }
            | PinError::Contention { .. }
            | PinError::RaceLost { .. } => true,
            PinError::BadInput(_) | PinError::Failed { .. } | PinError::RecordsFailed { .. } => {
                false
            }
        }
    }

    fn error_type(&self) -> String {
        match self {
            PinError::BadInput(_) => "BadInput".into(),
            PinError::Port { source, .. } if source.kind.is_retryable() => {
                format!("Retryable.{:?}", source.kind)
            }
            PinError::Port { source, .. } => format!("Fatal.{:?}", source.kind),
            PinError::NotInSync { .. } => "Retryable.DnsNotInSync".into(),
            PinError::NotVerified { .. } => "Retryable.DnsAnswerNotVerified".into(),
            PinError::Contention { .. } | PinError::RaceLost { .. } => {
                "Retryable.Contention".into()
            }
            PinError::Failed { error_type, .. } | PinError::RecordsFailed { error_type, .. } => {
                error_type.clone()
            }
        }
    }
}

impl From<PinError> for Diagnostic {
    fn from(e: PinError) -> Self {
        Diagnostic {
            error_type: e.error_type(),
            error_message: e.to_string(),
        }
    }
}

/// What `cargo lambda invoke` prints.
#[derive(Debug, Serialize)]
pub struct Response {
    pub site: String,
    pub epoch: u64,
    /// `pinned`, `already-pinned`, `unpinned` or `ignored`.
    pub outcome: &'static str,
    pub detail: String,
    /// The ledger's DNS record: previous values, new value, change id, when INSYNC.
    pub dns: Option<DnsRecord>,
    /// Whether this invocation called ChangeResourceRecordSets.
    pub changed: bool,
    /// GetChange calls made by this invocation.
    pub polls: u32,
    /// Domain events published by this invocation (detail-types), including outbox re-emits.
    pub emitted: Vec<String>,
}

impl Response {
    pub(crate) fn for_event(e: &DomainEvent) -> Self {
        Self::new(e)
    }
    fn new(e: &DomainEvent) -> Self {
        Self {
            site: e.site.clone(),
            epoch: e.epoch,
            outcome: "ignored",
            detail: String::new(),
            dns: None,
            changed: false,
            polls: 0,
            emitted: vec![],
        }
    }
    fn ignored(mut self, detail: impl Into<String>) -> Self {
        self.outcome = "ignored";
        self.detail = detail.into();
        info!(site = %self.site, epoch = self.epoch, detail = %self.detail, "ignored: nothing changed");
        self
    }
    fn already(mut self, st: &SiteState) -> Self {
        self.outcome = "already-pinned";
        self.detail = format!(
            "epoch {} is already pinned; nothing changed, nothing emitted",
            st.epoch
        );
        self.dns = st.dns.clone();
        self
    }
}

pub async fn handle(deps: &Deps, payload: Value, deadline: Instant) -> Result<Response, PinError> {
    let event = parse_domain_event(&payload)
        .map_err(PinError::BadInput)
        .inspect_err(|e| warn!(error = %e, "rejected input"))?;
    let resp = Response::new(&event);
    if matches!(
        event.event_type,
        EventType::UnpinRequested | EventType::UnpinContinued
    ) {
        return match deps.cfg.site(&event.site) {
            Some(site) => crate::unpin::run(deps, site, &event, deadline).await,
            None => Ok(resp.ignored(format!("site {} is not configured", event.site))),
        };
    }
    if !matches!(
        event.event_type,
        EventType::ReplicaPromoted | EventType::DnsPinContinued
    ) {
        let t = event.event_type.detail_type();
        return Ok(resp.ignored(format!("{t} is not ReplicaPromoted or DnsPinContinued")));
    }
    let Some(site) = deps.cfg.site(&event.site) else {
        return Ok(resp.ignored(format!("site {} is not configured", event.site)));
    };
    Pinner {
        deps,
        site,
        event: &event,
        resp,
        records_insync: None,
    }
    .run(deadline)
    .await
}

/// How one try at the pin ended (errors aside).
enum Attempt {
    /// `dns-pinned` committed; its event waits in this record's outbox.
    Pinned(Box<SiteState>),
    /// A fence stopped it: the answer to give.
    Stopped(Box<Response>),
}

/// The result of a fenced ledger update.
enum Update {
    Committed(SiteState),
    Unchanged(SiteState),
    Fenced(Fence),
}

struct Pinner<'a> {
    deps: &'a Deps,
    site: &'a SiteConfig,
    event: &'a DomainEvent,
    resp: Response,
    /// This attempt's `INSYNC` (or nothing of ours pending), once the records were read back
    /// naming the writer: only the name servers' answer was missing ([`Pinner::why_now`]).
    records_insync: Option<DateTime<Utc>>,
}

impl Pinner<'_> {
    fn port(&self, source: PortError) -> PinError {
        PinError::Port {
            site: self.site.id.clone(),
            source,
        }
    }

    async fn run(mut self, deadline: Instant) -> Result<Response, PinError> {
        let deps = self.deps;
        let state = deps
            .ledger
            .load(&self.site.id)
            .await
            .map_err(|e| self.port(e))?;
        // Events a previous invocation committed but could not publish go out first.
        self.flush(&state).await?;
        let host = match pin::fence(&state, self.event) {
            Fence::Pin { host } => host,
            other => return self.fenced(other, &state).await,
        };
        // Route 53 failing or slow is waited out, with capped backoff, for the whole invocation;
        // then the pin is handed on to the next invocation (DnsPinContinued), until the site's
        // pin deadline. Lambda's own async retries (2, about 1 and 2 minutes apart: "Lambda
        // retries the function twice", AWS Lambda Developer Guide, "Asynchronous invocation") would
        // cover about 3 minutes, not the hour the runbook promises.
        let mut attempt = 0u32;
        // data-plane-switch: the answer seen after the metric was put, not yet in the ledger.
        // A run that died after the switch was seen (recorded at `promoted`) resumes from that
        // fact: the traffic moved, whatever CloudWatch answers now.
        let mut switched: Option<String> = dataplane::switch_seen(&state)
            .filter(|_| state.phase == failover_policy::Phase::Promoted)
            .map(|s| {
                format!(
                    "the name servers answered {} at {} after the switch",
                    s.host,
                    s.switched_at.to_rfc3339()
                )
            });
        let mut switch_done = dataplane::records_pending(&state);
        // The switch moves traffic to whatever the SECONDARY names: only for the epoch that
        // promoted that candidate. Any other promotion is pinned as failover-pin, and says so.
        let (mut metric, mut not_switched) = match dataplane::switch_for(self.site, &state) {
            Some(Ok(m)) => (Some(m), None),
            Some(Err(note)) => {
                warn!(site = %self.site.id, epoch = state.epoch, %note, "data-plane switch left alone");
                (None, Some(note))
            }
            None => (None, None),
        };
        // Whether the switch was (maybe) put for this epoch already: then the SECONDARY was
        // checked before it, and re-putting the same datapoint changes nothing.
        let mut put_recorded = dataplane::switch_put(&state).is_some();
        // Put back to 0 after a third host answered (dataplane::note_wrong_answer): never 1 again
        // for this epoch; 0 again on every try (a Maximum alarm needs a period without the 1).
        let mut put_back = dataplane::put_back(&state).is_some();
        if put_back {
            metric = None;
            not_switched = Some(
                "data-plane switch put back to 0 (the name servers answered a third host after it was put: the SECONDARY record is wrong, already paged)"
                    .into(),
            );
        }
        loop {
            if put_back {
                self.put_back_again(deadline).await;
            }
            if let Some(m) = metric.filter(|_| !switch_done && switched.is_none()) {
                // What the SECONDARY names, before the switch moves traffic to it (secondary.rs).
                let checked = if put_recorded {
                    Ok(None)
                } else {
                    self.check_secondary(&host, deadline).await?.map(Some)
                };
                match checked {
                    Err(why) => {
                        warn!(site = %self.site.id, %why, "data-plane switch refused: the SECONDARY does not name the promoted writer");
                        metric = None;
                        not_switched = Some(format!("{}{why}", secondary::SWITCH_REFUSED));
                    }
                    Ok(checked) => {
                        // "Switch put" in the ledger BEFORE the PutMetricData: once it may have
                        // been sent the alarm can latch and move traffic at any moment, so
                        // nothing after this may fail the epoch (dataplane::note_switch_put).
                        // What the name servers answer now (the PRIMARY's value) goes with it:
                        // an answer after the put that is neither is a third host.
                        if !put_recorded {
                            // Bounded short, as the SECONDARY read: it must not hold the switch.
                            let by = deadline.min(Instant::now() + SECONDARY_READ_TIMEOUT);
                            let before = self
                                .ask(by)
                                .await
                                .map(|a| answer::cnames(&self.site.dns.name, &a))
                                .unwrap_or_default();
                            if let Some(resp) = self.note_put(&before).await? {
                                return Ok(resp);
                            }
                        }
                        put_recorded = true;
                        match self.switch(m, &host, deadline).await {
                            Ok(Ok(seen)) => {
                                let seen = match checked {
                                    Some(c) => format!("{seen}; {c}"),
                                    None => seen,
                                };
                                // Traffic moved: in the ledger before anything else can fail.
                                if let Some(resp) = self.note_switch(&seen).await? {
                                    return Ok(resp);
                                }
                                switched = Some(seen)
                            }
                            Ok(Err((seen, after))) => {
                                if let Some(note) =
                                    self.observed(m, &seen, &after, deadline).await?
                                {
                                    metric = None;
                                    put_back = true;
                                    not_switched = Some(note);
                                } else {
                                    warn!(site = %self.site.id, %seen, "data-plane switch not seen yet");
                                }
                            }
                            Err(e) => {
                                warn!(site = %self.site.id, error = %e, "data-plane switch not seen yet")
                            }
                        }
                    }
                }
            }
            let first = match (&switched, &not_switched) {
                (Some(seen), _) => format!("data-plane switch set first ({seen}); "),
                (None, Some(note)) => format!("{note}; "),
                (None, None) => String::new(),
            };
            match self.attempt(&state, &host, deadline, &first).await {
                Ok(Attempt::Stopped(resp)) => return Ok(*resp),
                // Publishing is outside the retried attempt: a failed publish leaves the event in
                // the outbox and fails the invocation, so Lambda's retry (or any later
                // invocation) re-sends it.
                Ok(Attempt::Pinned(st)) => {
                    self.flush(&st).await?;
                    return Ok(self.resp);
                }
                Err(e) if e.is_transient() => {
                    if let Some(seen) = switched.take() {
                        if let Some(resp) = self.commit_switch(&seen, &e.to_string()).await? {
                            return Ok(resp);
                        }
                        switch_done = true;
                    }
                    let delay = pin::backoff_delay(attempt, (self.deps.jitter)());
                    attempt += 1;
                    if Instant::now() + delay > deadline {
                        let (why, verified) = self.why_now(&e, &host).await;
                        // Verified by the re-ask, the records INSYNC and read back in this
                        // attempt: that is the pin, committed now (not failed at the deadline).
                        if let (Some(v), Some(at)) = (verified, self.records_insync) {
                            let note = format!("{first}{v} (asked again after the attempt's check had not seen it)");
                            match self.commit_pinned(at, &note, &state).await? {
                                Attempt::Stopped(resp) => return Ok(*resp),
                                Attempt::Pinned(st) => {
                                    self.flush(&st).await?;
                                    return Ok(self.resp);
                                }
                            }
                        }
                        return self.hand_on(&why).await;
                    }
                    warn!(site = %self.site.id, error = %e, "Route 53 not done yet; trying again");
                    tokio::time::sleep(delay).await;
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// One try at the pin: record the previous record set, change it (once), wait for INSYNC,
    /// commit `dns-pinned` (its event still in the outbox); `first` opens its note (what the
    /// data-plane switch did, if anything).
    async fn attempt(
        &mut self,
        state: &SiteState,
        host: &str,
        deadline: Instant,
        first: &str,
    ) -> Result<Attempt, PinError> {
        let deps = self.deps;
        self.records_insync = None;
        let host = host.to_owned();
        let query = pin::query(self.site);
        let current = match within(
            deadline,
            "ListResourceRecordSets",
            deps.dns.record_sets(&query),
        )
        .await
        {
            Ok(c) => c,
            Err(e) => return Err(self.dns_error(e).await),
        };
        // What an earlier attempt recorded (fresh: this invocation's own first attempt counts).
        let fresh = deps
            .ledger
            .load(&self.site.id)
            .await
            .map_err(|e| self.port(e))?;
        let recorded = fresh.dns.as_ref().filter(|d| d.epoch == fresh.epoch);
        let plan = match pin::plan(self.site, &current, recorded, &host) {
            Ok(p) => p,
            Err(e @ pin::PlanError::ChangedConcurrently { .. }) => {
                return Err(self
                    .fail(e.to_string(), "Fatal.RecordChangedConcurrently".into())
                    .await)
            }
            Err(e) => {
                return Err(self
                    .fail(e.to_string(), "Fatal.RecordNotPinnable".into())
                    .await)
            }
        };

        // 1. What the record sets were, in the ledger, before anything changes.
        let now = deps.clock.now();
        let st = match self
            .update(|s| pin::record_previous(s, self.event, self.site, &current, &host, now))
            .await?
        {
            Update::Committed(s) | Update::Unchanged(s) => s,
            Update::Fenced(f) => return self.stop(f, state).await,
        };
        let recorded = st.dns.clone().expect("recorded above");

        // 2. The change, unless Route 53 already holds the target. If it holds it because of our
        //    own change whose id was lost (the answer timed out, or the invocation died before
        //    the id was committed), that change may still be PENDING: a batch that deletes and
        //    re-creates the records as they are is sent, a no-op that gets a change id of its own
        //    — Route 53 applies a zone's changes in order, so once it is INSYNC, ours is too.
        let mut change_id = recorded.change_id.clone();
        // Ours, unconfirmed: no change id is recorded, yet the record sets are no longer what
        // was recorded before any change (the whole pair: a change of the SECONDARY or of the
        // TTL alone counts, even when the PRIMARY already named the target).
        let ours_unconfirmed = change_id.is_none()
            && match recorded.previous_records.as_deref() {
                Some(before) => before != current.as_slice(),
                None => !recorded
                    .previous_values
                    .iter()
                    .any(|v| pin::same_name(v, &host)),
            };
        let changes = if plan.changes.is_empty() && ours_unconfirmed {
            pin::confirming_batch(&current)
        } else {
            plan.changes
        };
        if !changes.is_empty() {
            let comment = format!(
                "rds-failover: pin {} epoch {} to {host}",
                self.site.id, self.event.epoch
            );
            let info = match within(
                deadline,
                "ChangeResourceRecordSets",
                deps.dns.change(&self.site.dns.zone_id, &changes, &comment),
            )
            .await
            {
                Ok(i) => i,
                Err(e) => return Err(self.change_refused(e, &query, &current, &host).await),
            };
            self.resp.changed = true;
            info!(site = %self.site.id, epoch = self.event.epoch, change_id = %info.id, status = ?info.status, "Route 53 change submitted");
            let id = info.id.clone();
            match self
                .update(|s| pin::record_change_id(s, self.event, &id, deps.clock.now()))
                .await?
            {
                Update::Committed(_) | Update::Unchanged(_) => {}
                Update::Fenced(f) => {
                    warn!(site = %self.site.id, change_id = %id, "the epoch moved on while DNS was being changed");
                    return self.stop(f, state).await;
                }
            }
            change_id = Some(id);
        }

        // 3. Wait until every Route 53 name server answers with the new value.
        let insync_at = match &change_id {
            Some(id) => self.wait_insync(id, deadline).await?,
            // Already held the target before we touched it: nothing of ours is pending.
            None => deps.clock.now(),
        };

        // 4. What resolvers get: the records read back, and every authoritative name server asked.
        let shape = pin::other_shape_note(self.site, &current, &host).unwrap_or_default();
        let verified = format!(
            "{first}{shape}{}",
            self.verify(&query, &host, insync_at, deadline).await?
        );

        // 5. dns-pinned, with its event in the outbox.
        self.commit_pinned(insync_at, &verified, state).await
    }

    /// `dns-pinned` committed (its event in the outbox): `verified` says what was seen.
    async fn commit_pinned(
        &mut self,
        insync_at: DateTime<Utc>,
        verified: &str,
        state: &SiteState,
    ) -> Result<Attempt, PinError> {
        let deps = self.deps;
        let st = match self
            .update(|s| pin::mark_pinned(s, self.event, insync_at, verified, deps.clock.now()))
            .await?
        {
            Update::Committed(s) => s,
            Update::Unchanged(s) => {
                return Ok(Attempt::Stopped(Box::new(self.take_resp().already(&s))))
            }
            Update::Fenced(Fence::AlreadyPinned) => {
                let s = deps
                    .ledger
                    .load(&self.site.id)
                    .await
                    .map_err(|e| self.port(e))?;
                return Ok(Attempt::Stopped(Box::new(self.take_resp().already(&s))));
            }
            Update::Fenced(f) => return self.stop(f, state).await,
        };
        self.resp.outcome = "pinned";
        self.resp.dns = st.dns.clone();
        self.resp.detail = st
            .timeline
            .last()
            .map(|t| t.note.clone())
            .unwrap_or_default();
        info!(site = %self.site.id, epoch = st.epoch, detail = %self.resp.detail, "DNS pinned");
        Ok(Attempt::Pinned(Box::new(st)))
    }

    fn take_resp(&mut self) -> Response {
        let empty = Response::new(self.event);
        std::mem::replace(&mut self.resp, empty)
    }

    /// A fence met inside an attempt: its answer goes into `self.resp` (or is an error).
    async fn stop(&mut self, f: Fence, state: &SiteState) -> Result<Attempt, PinError> {
        let resp = self.take_resp();
        let pinner = Pinner {
            deps: self.deps,
            site: self.site,
            event: self.event,
            resp,
            records_insync: None,
        };
        pinner
            .fenced(f, state)
            .await
            .map(|r| Attempt::Stopped(Box::new(r)))
    }

    /// Out of time before the pin is done: hand it on to the next invocation (`DnsPinContinued`,
    /// paging at the escalation steps), or — past the site's pin deadline — fail the epoch with
    /// the exact next step.
    async fn hand_on(mut self, why: &str) -> Result<Response, PinError> {
        let now = self.deps.clock.now();
        let site = self.site;
        let mut expired = false;
        let mut abandoned = false;
        let update = self
            .update(|s| match pin::hand_on(site, s, self.event, why, now) {
                Ok(pin::HandOn::Continue(next)) => {
                    expired = false;
                    Ok(Some(next))
                }
                Ok(pin::HandOn::Expired(next)) => {
                    expired = true;
                    Ok(Some(next))
                }
                Ok(pin::HandOn::RecordsAbandoned(next)) => {
                    abandoned = true;
                    Ok(Some(next))
                }
                Err(f) => Err(f),
            })
            .await?;
        let st = match update {
            Update::Committed(st) => st,
            Update::Unchanged(st) => return Ok(self.resp.already(&st)),
            Update::Fenced(f) => {
                let state = self
                    .deps
                    .ledger
                    .load(&site.id)
                    .await
                    .map_err(|e| self.port(e))?;
                return self.fenced(f, &state).await;
            }
        };
        self.flush(&st).await?;
        if expired {
            let reason = st.failure.clone().unwrap_or_default();
            warn!(site = %site.id, epoch = st.epoch, %reason, "DNS pin deadline passed: the epoch is failed");
            return Err(PinError::Failed {
                site: site.id.clone(),
                epoch: st.epoch,
                error_type: "Fatal.PinDeadline".into(),
                reason,
            });
        }
        if abandoned {
            warn!(site = %site.id, epoch = st.epoch, why, "records not pinned by the pin deadline; traffic stays on the data-plane switch");
            self.resp.outcome = "records-abandoned";
            self.resp.detail = st
                .timeline
                .last()
                .map(|t| t.note.clone())
                .unwrap_or_default();
            self.resp.dns = st.dns.clone();
            return Ok(self.resp);
        }
        info!(site = %site.id, epoch = st.epoch, why, "DNS pin handed on to the next invocation");
        self.resp.outcome = "continued";
        self.resp.detail = format!("handed on (DnsPinContinued): {why}");
        self.resp.dns = st.dns.clone();
        Ok(self.resp)
    }

    /// The data-plane switch: one `PutMetricData` of `SWITCH_TO_SECONDARY` in the metric's region
    /// (re-sent on every try: the same datapoint again changes nothing), then every configured name
    /// server asked what it answers. `Ok(Ok)`: what was seen, every answer `host` (the SECONDARY
    /// record's value, served because the PRIMARY's health check follows the alarm); `Ok(Err)`:
    /// what each server answered instead, and the CNAME values among it.
    async fn switch(
        &self,
        metric: &SwitchMetric,
        host: &str,
        deadline: Instant,
    ) -> Result<Result<String, (String, Vec<String>)>, PinError> {
        let deps = self.deps;
        let site = &self.site.dns;
        let put = within(
            deadline,
            "PutMetricData",
            deps.switch.put(metric, dataplane::SWITCH_TO_SECONDARY),
        )
        .await;
        // Intent, acknowledged (200) or refused: what CloudWatch said, in the ledger for the pages.
        let answer = put.as_ref().map(|_| ()).map_err(ToString::to_string);
        let (event, now) = (self.event, deps.clock.now());
        self.update(|s| Ok(dataplane::note_put_answer(s, event, answer.clone(), now)))
            .await?;
        put.map_err(|e| self.port(e))?;
        let answers = self
            .ask(deadline)
            .await
            .ok_or_else(|| PinError::NotVerified {
                site: self.site.id.clone(),
                source: answer::NotVerified {
                    name: site.name.clone(),
                    host: host.to_owned(),
                    seen: "the name servers did not all answer in time".into(),
                },
            })?;
        Ok(answer::judge(&site.name, host, &answers)
            .map(|v| v.summary)
            .map_err(|e| (e.seen, answer::cnames(&site.name, &answers))))
    }

    /// Every configured name server asked for the writer name ([`answer::QUERY_TYPES`]); `None`:
    /// not all answered by `deadline`.
    async fn ask(&self, deadline: Instant) -> Option<Vec<answer::Answer>> {
        let deps = self.deps;
        let site = &self.site.dns;
        let asks = site.name_servers.iter().flat_map(|ns| {
            answer::QUERY_TYPES
                .iter()
                .map(move |t| deps.resolve.ask(ns, &site.name, t))
        });
        tokio::time::timeout_at(deadline, futures::future::join_all(asks))
            .await
            .ok()
    }

    /// The answer after the put was not the new writer (`seen`, its CNAMEs `after`): kept in the
    /// ledger; when it names a third host ([`dataplane::third_host`]) the switch is put back to 0
    /// and people are paged CRITICAL at once ([`dataplane::note_wrong_answer`]). `Some`: put
    /// back, the note for the `DnsPinned` message.
    async fn observed(
        &mut self,
        metric: &SwitchMetric,
        seen: &str,
        after: &[String],
        deadline: Instant,
    ) -> Result<Option<String>, PinError> {
        let deps = self.deps;
        let state = deps
            .ledger
            .load(&self.site.id)
            .await
            .map_err(|e| self.port(e))?;
        let third = dataplane::switch_put(&state)
            .map(|s| dataplane::third_host(s, after))
            .unwrap_or_default();
        let (event, now) = (self.event, deps.clock.now());
        if third.is_empty() {
            self.update(|s| Ok(dataplane::note_observed(s, event, seen, now)))
                .await?;
            return Ok(None);
        }
        warn!(site = %self.site.id, ?third, %seen, "a third host answers after the data-plane switch: putting it back");
        let back = within(
            deadline,
            "PutMetricData",
            deps.switch.put(metric, dataplane::SWITCH_TO_PRIMARY),
        )
        .await
        .map_err(|e| e.to_string());
        if let Update::Committed(st) = self
            .update(|s| {
                Ok(dataplane::note_wrong_answer(
                    s,
                    event,
                    metric,
                    &third,
                    seen,
                    back.clone(),
                    now,
                ))
            })
            .await?
        {
            self.flush(&st).await?;
        }
        Ok(Some(format!(
            "data-plane switch put back to 0: after it was put the name servers answered {} (neither the old primary nor the new writer: the SECONDARY record is wrong)",
            third.join(", ")
        )))
    }

    /// 0 again on a switch put back (best effort: a failure is logged, the page already gave
    /// the manual command).
    async fn put_back_again(&self, deadline: Instant) {
        let Some(m) = self.site.dns.mode.switch_metric() else {
            return;
        };
        let put = within(
            deadline,
            "PutMetricData",
            self.deps.switch.put(m, dataplane::SWITCH_TO_PRIMARY),
        )
        .await;
        if let Err(e) = put {
            warn!(site = %self.site.id, error = %e, "putting the data-plane switch back to 0 failed; trying again on the next try");
        }
    }

    /// What the hand-on says: the error, except that a wrong answer about to be paged (an
    /// escalation or the deadline, `pin::pages_now`) is asked of the name servers again first,
    /// so the page states what they answer now. The second value: the re-ask's verification,
    /// when every server now answers `host`.
    async fn why_now(&self, e: &PinError, host: &str) -> (String, Option<String>) {
        let PinError::NotVerified { .. } = e else {
            return (e.to_string(), None);
        };
        let Ok(state) = self.deps.ledger.load(&self.site.id).await else {
            return (e.to_string(), None);
        };
        if !pin::pages_now(self.site, &state, self.deps.clock.now()) {
            return (e.to_string(), None);
        }
        // A few seconds of the finish reserve: DNS queries answer in milliseconds.
        let by = Instant::now() + FINISH_RESERVE / 2;
        let servers = if self.site.dns.name_servers.is_empty() {
            match within(
                by,
                "GetHostedZone",
                self.deps.dns.name_servers(&self.site.dns.zone_id),
            )
            .await
            {
                Ok(s) => s,
                Err(_) => return (e.to_string(), None),
            }
        } else {
            self.site.dns.name_servers.clone()
        };
        let name = &self.site.dns.name;
        let asks = servers.iter().flat_map(|ns| {
            answer::QUERY_TYPES
                .iter()
                .map(move |t| self.deps.resolve.ask(ns, name, t))
        });
        match tokio::time::timeout_at(by, futures::future::join_all(asks)).await {
            Err(_) => (
                format!("{e} (asked again just before this message: no answer in time)"),
                None,
            ),
            Ok(answers) => match answer::judge(name, host, &answers) {
                Ok(v) => (
                    format!(
                        "{e}; asked again just before this message, they now answer it ({}): the next link confirms the pin",
                        v.summary
                    ),
                    Some(v.summary),
                ),
                Err(fresh) => (
                    format!("{fresh} (asked again just before this message)"),
                    None,
                ),
            },
        }
    }

    /// Reads the record pair (Route 53's control plane; dark: the ledger's last reading decides)
    /// and judges whether the SECONDARY names `host` ([`secondary::judge`]); the reading, and a
    /// refusal's CRITICAL page, go into the ledger. `Ok(Err(why))`: do not put the switch.
    async fn check_secondary(
        &mut self,
        host: &str,
        deadline: Instant,
    ) -> Result<Result<String, String>, PinError> {
        let deps = self.deps;
        let event = self.event;
        // Once this epoch's records were recorded (or changed) by the pinner, the live SECONDARY
        // may be the pinner's own write: the pair as recorded before the change is judged, and
        // no reading is stored (it would poison the next epoch's check).
        let before = deps
            .ledger
            .load(&self.site.id)
            .await
            .map_err(|e| self.port(e))?;
        if let Some(d) = before.dns.as_ref().filter(|d| {
            d.epoch == before.epoch && (d.previous_records.is_some() || d.change_id.is_some())
        }) {
            let judged = secondary::judge_recorded(host, d.previous_records.as_deref());
            let refused = judged.as_ref().err().map(String::as_str);
            let now = deps.clock.now();
            if let Update::Committed(st) = self
                .update(|s| Ok(secondary::note(s, event, None, refused, now)))
                .await?
            {
                self.flush(&st).await?;
            }
            return Ok(judged);
        }
        let query = pin::query(self.site);
        // Bounded short: a control plane that hangs instead of failing must not hold the switch
        // (the data-plane path) back for the whole invocation; no answer = dark (last reading).
        let by = deadline.min(Instant::now() + SECONDARY_READ_TIMEOUT);
        let read = within(by, "ListResourceRecordSets", deps.dns.record_sets(&query)).await;
        let state = deps
            .ledger
            .load(&self.site.id)
            .await
            .map_err(|e| self.port(e))?;
        let now = deps.clock.now();
        let why: String;
        let sets = match &read {
            Ok(v) => Ok(v.as_slice()),
            Err(e) => {
                why = e.to_string();
                Err(why.as_str())
            }
        };
        let judged = secondary::judge(
            host,
            sets,
            state.secondary_reading.as_ref(),
            self.site.thresholds.secondary_reading_max_age_secs,
            now,
        );
        let reading = read.as_deref().ok().map(secondary::secondary_values);
        let refused = judged.as_ref().err().map(String::as_str);
        if let Update::Committed(st) = self
            .update(|s| Ok(secondary::note(s, event, reading.clone(), refused, now)))
            .await?
        {
            self.flush(&st).await?;
        }
        Ok(judged)
    }

    /// A fence stopped a switch note: the answer the fence gives, from the site's record as it is.
    async fn fenced_now(&mut self, f: Fence) -> Result<Response, PinError> {
        let state = self
            .deps
            .ledger
            .load(&self.site.id)
            .await
            .map_err(|e| self.port(e))?;
        let pinner = Pinner {
            deps: self.deps,
            site: self.site,
            event: self.event,
            resp: self.take_resp(),
            records_insync: None,
        };
        pinner.fenced(f, &state).await
    }

    /// The switch about to be put, recorded at `promoted` before the `PutMetricData`. `Some`: a
    /// fence stopped it, the answer to give.
    async fn note_put(&mut self, before: &[String]) -> Result<Option<Response>, PinError> {
        let now = self.deps.clock.now();
        let event = self.event;
        match self
            .update(|s| dataplane::note_switch_put(s, event, before, now))
            .await?
        {
            Update::Committed(_) | Update::Unchanged(_) => Ok(None),
            Update::Fenced(f) => self.fenced_now(f).await.map(Some),
        }
    }

    /// The switch seen, recorded at `promoted` (no event: the `DnsPinned` that follows says it).
    /// `Some`: a fence stopped it, the answer to give.
    async fn note_switch(&mut self, seen: &str) -> Result<Option<Response>, PinError> {
        let now = self.deps.clock.now();
        let event = self.event;
        match self
            .update(|s| dataplane::note_switch_seen(s, event, seen, now))
            .await?
        {
            Update::Committed(_) | Update::Unchanged(_) => Ok(None),
            Update::Fenced(f) => self.fenced_now(f).await.map(Some),
        }
    }

    /// `dns-pinned` on the switch (records not pinned: `why`), its event published. `Some`: a
    /// fence stopped it, the answer to give.
    async fn commit_switch(&mut self, seen: &str, why: &str) -> Result<Option<Response>, PinError> {
        let now = self.deps.clock.now();
        let (site, event) = (self.site, self.event);
        match self
            .update(|s| dataplane::mark_switched(s, event, site, seen, why, now))
            .await?
        {
            Update::Committed(st) => {
                info!(site = %site.id, epoch = st.epoch, "traffic moved by the data-plane switch; records not pinned yet");
                self.resp.outcome = "switched";
                self.resp.detail = st
                    .timeline
                    .last()
                    .map(|t| t.note.clone())
                    .unwrap_or_default();
                self.flush(&st).await?;
                Ok(None)
            }
            Update::Unchanged(_) => Ok(None),
            Update::Fenced(f) => {
                let state = self
                    .deps
                    .ledger
                    .load(&site.id)
                    .await
                    .map_err(|e| self.port(e))?;
                let resp = self.take_resp();
                let pinner = Pinner {
                    deps: self.deps,
                    site,
                    event,
                    resp,
                    records_insync: None,
                };
                pinner.fenced(f, &state).await.map(Some)
            }
        }
    }

    /// `INSYNC` is not proof. The records are read back (every member of the pair must now name
    /// `host`: the answer Route 53 would switch to), then every authoritative name server of the
    /// zone — the site's `dns.name_servers`, else the zone's delegation set — is asked for the
    /// writer name's CNAME and A (the answer it serves now). The summary states what was seen.
    async fn verify(
        &mut self,
        query: &pin::RecordQuery,
        host: &str,
        insync_at: DateTime<Utc>,
        deadline: Instant,
    ) -> Result<String, PinError> {
        let deps = self.deps;
        let site = &self.site.dns;
        let not = |seen: String| PinError::NotVerified {
            site: self.site.id.clone(),
            source: answer::NotVerified {
                name: site.name.clone(),
                host: host.to_owned(),
                seen,
            },
        };
        let now = match within(
            deadline,
            "ListResourceRecordSets",
            deps.dns.record_sets(query),
        )
        .await
        {
            Ok(r) => r,
            Err(e) => return Err(self.dns_error(e).await),
        };
        if !pin::plan(self.site, &now, None, host).is_ok_and(|p| p.changes.is_empty()) {
            return Err(not(format!(
                "the records read back hold {}",
                pin::describe_records(&now)
            )));
        }
        self.records_insync = Some(insync_at);
        let servers = if site.name_servers.is_empty() {
            match within(
                deadline,
                "GetHostedZone",
                deps.dns.name_servers(&site.zone_id),
            )
            .await
            {
                Ok(s) => s,
                Err(e) => return Err(self.dns_error(e).await),
            }
        } else {
            site.name_servers.clone()
        };
        if servers.is_empty() {
            // A private hosted zone has no delegation set (Route 53 API reference, GetHostedZone:
            // "DelegationSet ... not returned for private hosted zones"), and its answers are
            // served only inside its VPCs, which this function is not in: the records read back
            // above are the proof there is. Said so, never retried forever.
            return Ok(format!(
                "records read back: every member names {host}; not asked over DNS: the zone has no public name servers (a private hosted zone) and the site names none (`dns.name_servers`)"
            ));
        }
        let asks = servers.iter().flat_map(|ns| {
            answer::QUERY_TYPES
                .iter()
                .map(move |t| deps.resolve.ask(ns, &site.name, t))
        });
        let answers = tokio::time::timeout_at(deadline, futures::future::join_all(asks))
            .await
            .map_err(|_| {
                not(format!(
                    "the name servers ({}) did not all answer before the invocation's time ran out",
                    servers.join(", ")
                ))
            })?;
        answer::judge(&site.name, host, &answers)
            .map(|v| v.summary)
            .map_err(|e| not(e.seen))
    }

    /// Polls GetChange until `INSYNC` or the deadline, each gap proportional to the wait so far
    /// ([`pace::wait_poll_delay`]).
    async fn wait_insync(
        &mut self,
        change_id: &str,
        deadline: Instant,
    ) -> Result<DateTime<Utc>, PinError> {
        let started = Instant::now();
        // When Route 53 accepted the change (GetChange's SubmittedAt): a retry or a continuation
        // waiting on the same change keeps the pace of the whole wait, not a fresh start.
        let mut submitted: Option<DateTime<Utc>> = None;
        let mut errors = 0u32;
        loop {
            self.resp.polls += 1;
            match within(
                deadline,
                "GetChange",
                self.deps.dns.change_status(change_id),
            )
            .await
            {
                Ok(i) if i.status == ChangeStatus::Insync => return Ok(self.deps.clock.now()),
                Ok(i) => {
                    errors = 0;
                    submitted = i.submitted_at.or(submitted);
                }
                // A throttled or failed poll said nothing; keep waiting, backing off.
                Err(e) if e.kind.is_retryable() => {
                    errors += 1;
                    warn!(site = %self.site.id, error = %e, "GetChange failed; polling on")
                }
                Err(e) => return Err(self.dns_error(e).await),
            }
            // Proportional to the wait so far (pace.rs): INSYNC is seen within about a twelfth of
            // how long Route 53 took, not up to half of it; failed polls back off.
            let waited = submitted
                .and_then(|at| (self.deps.clock.now() - at).to_std().ok())
                .unwrap_or_else(|| started.elapsed());
            let delay = pace::after_error_delay(waited, errors, (self.deps.jitter)());
            if Instant::now() + delay > deadline {
                return Err(PinError::NotInSync {
                    site: self.site.id.clone(),
                    change_id: change_id.to_owned(),
                    waited_secs: started.elapsed().as_secs(),
                });
            }
            tokio::time::sleep(delay).await;
        }
    }

    /// A fence that stops this delivery: ignored, already done, or a broken invariant to report.
    async fn fenced(self, f: Fence, state: &SiteState) -> Result<Response, PinError> {
        match f {
            Fence::Pin { .. } => unreachable!("Pin is not a stop"),
            Fence::Stale { reason } => Ok(self.resp.ignored(reason)),
            Fence::AlreadyPinned => Ok(self.resp.already(state)),
            Fence::Broken { reason } => Err(self.fail(reason, "Fatal.Invariant".into()).await),
        }
    }

    /// Route 53 refused our compare-and-set batch. When the records are no longer what this
    /// invocation read, someone changed them between the read and the change: nothing was
    /// overwritten (the batch is atomic), the epoch fails with a message saying what is there now.
    async fn change_refused(
        &self,
        e: PortError,
        query: &pin::RecordQuery,
        read: &[pin::RecordSet],
        host: &str,
    ) -> PinError {
        if e.kind.is_retryable() {
            return self.port(e);
        }
        let now = match self.deps.dns.record_sets(query).await {
            Ok(now) => now,
            // Cannot tell a race from a bad batch yet: try again (the next attempt re-reads).
            Err(read) if read.kind.is_retryable() => return self.port(read),
            Err(_) => return self.dns_error(e).await,
        };
        let same = now.len() == read.len()
            && now
                .iter()
                .all(|n| read.iter().any(|r| pin::same_record_set(r, n)));
        if same {
            return self.dns_error(e).await;
        }
        // A duplicate delivery of this epoch won the same race: the zone already holds the target.
        // Try again; the next attempt finds nothing to change and waits for that change.
        if pin::plan(self.site, &now, None, host).is_ok_and(|p| p.changes.is_empty()) {
            return PinError::RaceLost {
                site: self.site.id.clone(),
            };
        }
        let reason = format!(
            "{}; Route 53 refused the change ({e})",
            pin::PlanError::ChangedConcurrently {
                name: self.site.dns.name.clone(),
                expected: pin::describe_records(read),
                found: pin::describe_records(&now),
            }
        );
        self.fail(reason, "Fatal.RecordChangedConcurrently".into())
            .await
    }

    /// A DNS error: retryable ones fail the invocation (EventBridge retries it); the others cannot
    /// succeed on retry and fail the epoch so a human is paged.
    async fn dns_error(&self, e: PortError) -> PinError {
        if e.kind.is_retryable() {
            return self.port(e);
        }
        let error_type = format!("Fatal.{:?}", e.kind);
        self.fail(e.to_string(), error_type).await
    }

    /// `promoted` → `failed` with a `FailoverFailed` event (emitted), then the error to return.
    /// With the data-plane switch seen for the epoch the traffic already moved: the epoch is
    /// `dns-pinned` on the switch, the records given up on, and `DnsPinDelayed` pages CRITICAL
    /// (`dataplane::records_failed`) — never `failed`, never quiet.
    async fn fail(&self, reason: String, error_type: String) -> PinError {
        warn!(site = %self.site.id, epoch = self.event.epoch, %reason, "DNS cannot be pinned");
        let now = self.deps.clock.now();
        let mut on_switch = false;
        let (site, event) = (self.site, self.event);
        let update = self
            .update(|s| {
                // Put counts as seen: the alarm may latch at any moment.
                on_switch = dataplane::switch_put(s).is_some();
                Ok(if on_switch {
                    dataplane::records_failed(s, event, site, &reason, now)
                } else {
                    pin::mark_failed(s, event, &reason, now)
                })
            })
            .await;
        let failed = if on_switch {
            PinError::RecordsFailed {
                site: self.site.id.clone(),
                epoch: self.event.epoch,
                error_type,
                reason,
            }
        } else {
            PinError::Failed {
                site: self.site.id.clone(),
                epoch: self.event.epoch,
                error_type,
                reason,
            }
        };
        match update {
            Ok(Update::Committed(st)) => {
                let mut emitted = vec![];
                if let Err(e) = self.publish_outbox(&st, &mut emitted).await {
                    // The event waits in the outbox; the retry (or the evaluator) re-emits it.
                    return e;
                }
            }
            Ok(_) => {}
            Err(e) => return e,
        }
        failed
    }

    /// Loads, applies `f` (which re-checks the fence), and commits by compare-and-set; a lost race
    /// re-reads and applies again.
    async fn update<F>(&self, mut f: F) -> Result<Update, PinError>
    where
        F: FnMut(&SiteState) -> Result<Option<SiteState>, Fence>,
    {
        for attempt in 1..=MAX_COMMIT_ATTEMPTS {
            let state = self
                .deps
                .ledger
                .load(&self.site.id)
                .await
                .map_err(|e| self.port(e))?;
            let next = match f(&state) {
                Ok(Some(next)) => next,
                Ok(None) => return Ok(Update::Unchanged(state)),
                Err(fence) => return Ok(Update::Fenced(fence)),
            };
            match self.deps.ledger.commit(&next).await {
                Ok(()) => return Ok(Update::Committed(next)),
                Err(e) if e.kind == ErrorKind::Conflict => {
                    warn!(site = %self.site.id, attempt, "lost a compare-and-set race; re-reading");
                }
                Err(e) => return Err(self.port(e)),
            }
        }
        Err(PinError::Contention {
            site: self.site.id.clone(),
        })
    }

    async fn flush(&mut self, state: &SiteState) -> Result<(), PinError> {
        let mut emitted = vec![];
        let r = self.publish_outbox(state, &mut emitted).await;
        self.resp.emitted.extend(emitted);
        r
    }

    /// Publishes the record's outbox, then removes exactly those events from it.
    async fn publish_outbox(
        &self,
        state: &SiteState,
        emitted: &mut Vec<String>,
    ) -> Result<(), PinError> {
        if state.outbox.is_empty() {
            return Ok(());
        }
        self.deps
            .bus
            .publish(&state.outbox)
            .await
            .map_err(|e| self.port(e))?;
        emitted.extend(
            state
                .outbox
                .iter()
                .map(|e| e.event_type.detail_type().to_string()),
        );
        let sent: Vec<String> = state.outbox.iter().map(|e| e.dedupe_key()).collect();
        let now = self.deps.clock.now();
        let cleared = self
            .update(|s| {
                let mut next = s.clone();
                next.outbox.retain(|e| !sent.contains(&e.dedupe_key()));
                if next.outbox.len() == s.outbox.len() {
                    return Ok(None);
                }
                next.version = s.version + 1;
                next.updated_at = Some(now);
                Ok(Some(next))
            })
            .await;
        // Published but not cleared: a later flush re-sends, and consumers dedupe on the key.
        if let Err(e) = cleared {
            warn!(site = %self.site.id, error = %e, "published the outbox but could not clear it");
        }
        Ok(())
    }
}

/// `call`, or a retryable timeout when `deadline` comes first: no call outlives the time kept
/// for the final commit and publish.
pub(crate) async fn within<T>(
    deadline: Instant,
    operation: &'static str,
    call: impl std::future::Future<Output = Result<T, PortError>>,
) -> Result<T, PortError> {
    tokio::time::timeout_at(deadline, call)
        .await
        .unwrap_or_else(|_| {
            Err(PortError::new(
                ErrorKind::Timeout,
                operation,
                "no answer before the invocation's time (less the finish reserve) ran out",
            ))
        })
}

#[cfg(test)]
mod tests;
