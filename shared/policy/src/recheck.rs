//! Deciding the moment the sustained window closes, not at the next scheduled tick.
//!
//! A failover is decided once the quorum has held for `sustained_secs` ([`crate::decide`]). The
//! evidence that opens the window (an alarm, an RDS event, a tick) rarely arrives when it closes,
//! and the scheduled tick fires once a minute, so without more the decision would come up to a
//! minute late — a 30-second window would buy nothing over 60. When an evaluation finds the quorum
//! met with the window still open, it arms one re-check of that site for the window's end: an SQS
//! message with a per-message delay (SQS Developer Guide, "Amazon SQS message timers":
//! `DelaySeconds` 0 to 900; the message is invisible until then), delivered back to the evaluator
//! by Lambda's event source mapping. A window longer than 900 s is crossed in hops: each arrival
//! before the end re-arms for the rest. The scheduled tick stays the backstop: a re-check that is
//! lost (the send failed, the function died before committing) costs at most the tick's minute.
//!
//! A re-check is evidence-driven like a tick: it gathers fresh evidence and decides on the
//! ledger's `quorum_since`, so a forged or duplicated one can only make the evaluator look again.
//! It is armed once per window ([`Armed`] in the ledger), and a hop re-arms only when it is the
//! hop the ledger last armed, so an SQS redelivery does not fork the chain.

use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};

use crate::config::SiteConfig;
use crate::incident::{Phase, SiteState};
use crate::signal::{RecheckSignal, Signal, SignalKind};

/// SQS's largest per-message delay (`DelaySeconds`).
pub const MAX_DELAY_SECS: i64 = 900;

/// The re-check the ledger says is on its way.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Armed {
    /// The end of the sustained window it was armed for.
    pub due: DateTime<Utc>,
    /// When the message becomes visible (`due`, or sooner for a hop of a long window).
    pub at: DateTime<Utc>,
}

/// A re-check to send: the message's body and its delay.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Arm {
    pub site: String,
    pub armed: Armed,
    pub delay_secs: u32,
}

impl Arm {
    /// The message body the evaluator parses back ([`crate::signal`]'s SQS shape).
    pub fn body(&self) -> String {
        serde_json::json!({ "recheck": RecheckSignal {
            site: self.site.clone(),
            at: self.armed.at,
            due: self.armed.due,
        } })
        .to_string()
    }
}

/// What to arm after an evaluation that produced `after` (the record about to be committed), if
/// anything: only while the quorum is met, the window still open and no decision can come sooner.
pub fn plan(
    site: &SiteConfig,
    signal: &Signal,
    after: &SiteState,
    now: DateTime<Utc>,
) -> Option<Arm> {
    let since = after.quorum_since?;
    if !matches!(after.phase, Phase::Idle | Phase::Suspected) || after.paused.is_some() {
        return None;
    }
    let due = since + Duration::seconds(site.thresholds.sustained_secs as i64);
    if due <= now {
        return None;
    }
    let new_window = after.recheck.map(|a| a.due) != Some(due);
    let this_hop = matches!(&signal.kind, SignalKind::Recheck(r)
        if r.site == site.id && r.due == due && after.recheck.map(|a| a.at) == Some(r.at));
    if !new_window && !this_hop {
        return None;
    }
    // Whole seconds, rounded up: the message must not arrive before the window has closed.
    let ms = (due - now).num_milliseconds();
    let delay = ((ms + 999) / 1000).clamp(1, MAX_DELAY_SECS);
    Some(Arm {
        site: site.id.clone(),
        armed: Armed {
            due,
            at: now + Duration::seconds(delay),
        },
        delay_secs: delay as u32,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::signal::{Delivery, SOURCE_RECHECK, SOURCE_SCHEDULE};
    use crate::Config;
    use chrono::TimeZone;

    const EXAMPLE: &str = include_str!("../../../infra/sites.example.json");

    fn t(s: i64) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 12, 1, 10, 0, 0).unwrap() + Duration::milliseconds(s)
    }

    fn site(window: u64) -> SiteConfig {
        let mut s = Config::from_document(EXAMPLE).unwrap().sites[0].clone();
        s.thresholds.sustained_secs = window;
        s
    }

    fn tick() -> Signal {
        Signal {
            id: "tick-1".into(),
            delivery: Delivery::EventBridge,
            source: SOURCE_SCHEDULE.into(),
            account: None,
            region: None,
            time: None,
            kind: SignalKind::Tick,
        }
    }

    fn recheck(site: &str, at: DateTime<Utc>, due: DateTime<Utc>) -> Signal {
        Signal {
            id: "sqs:1".into(),
            delivery: Delivery::Sqs,
            source: SOURCE_RECHECK.into(),
            account: None,
            region: None,
            time: Some(at),
            kind: SignalKind::Recheck(RecheckSignal {
                site: site.into(),
                at,
                due,
            }),
        }
    }

    fn suspected(site: &SiteConfig, since: DateTime<Utc>) -> SiteState {
        let mut st = SiteState::new(&site.id);
        st.phase = Phase::Suspected;
        st.quorum_since = Some(since);
        st
    }

    #[test]
    fn quorum_met_with_the_window_open_arms_one_recheck_for_its_end_rounded_up() {
        let s = site(30);
        let st = suspected(&s, t(0));
        let a = plan(&s, &tick(), &st, t(12_300)).expect("armed");
        assert_eq!(a.armed.due, t(30_000));
        assert_eq!(
            a.delay_secs, 18,
            "17.7 s rounds up: never before the window closes"
        );
        assert_eq!(a.armed.at, t(30_300));
        let body: serde_json::Value = serde_json::from_str(&a.body()).unwrap();
        assert_eq!(body["recheck"]["site"], s.id.as_str());
    }

    #[test]
    fn once_armed_for_this_window_nothing_more_is_armed_until_the_window_changes() {
        let s = site(60);
        let mut st = suspected(&s, t(0));
        let a = plan(&s, &tick(), &st, t(5_000)).unwrap();
        st.recheck = Some(a.armed);
        assert_eq!(plan(&s, &tick(), &st, t(20_000)), None);
        // The quorum broke and formed again: a new window, a new re-check.
        st.quorum_since = Some(t(40_000));
        let b = plan(&s, &tick(), &st, t(41_000)).expect("new window");
        assert_eq!(b.armed.due, t(100_000));
    }

    #[test]
    fn a_window_longer_than_sqs_max_delay_is_crossed_in_hops_and_a_redelivery_does_not_fork_it() {
        let s = site(1_800);
        let mut st = suspected(&s, t(0));
        let first = plan(&s, &tick(), &st, t(0)).unwrap();
        assert_eq!(first.delay_secs, 900);
        st.recheck = Some(first.armed);
        // The hop arrives: re-armed for the rest.
        let hop = recheck(&s.id, first.armed.at, first.armed.due);
        let second = plan(&s, &hop, &st, t(900_000)).expect("re-armed");
        assert_eq!(second.delay_secs, 900);
        assert_eq!(second.armed.at, t(1_800_000));
        st.recheck = Some(second.armed);
        // SQS delivers the first hop again (at-least-once): the ledger armed a newer one.
        assert_eq!(plan(&s, &hop, &st, t(901_000)), None);
    }

    #[test]
    fn nothing_is_armed_without_quorum_past_the_window_paused_or_in_flight() {
        let s = site(30);
        let mut st = SiteState::new(&s.id);
        assert_eq!(plan(&s, &tick(), &st, t(0)), None, "no quorum");
        st = suspected(&s, t(0));
        assert_eq!(plan(&s, &tick(), &st, t(30_000)), None, "window closed");
        let mut paused = st.clone();
        paused.paused = Some(crate::incident::Pause {
            by: "ops".into(),
            reason: "maintenance".into(),
            at: t(0),
        });
        assert_eq!(plan(&s, &tick(), &paused, t(1_000)), None, "paused");
        for phase in [Phase::Promoting, Phase::AwaitingApproval, Phase::Completed] {
            let mut p = st.clone();
            p.phase = phase;
            assert_eq!(plan(&s, &tick(), &p, t(1_000)), None, "{phase:?}");
        }
    }

    /// The SQS event Lambda would deliver for `a` (Lambda Developer Guide, SQS event shape).
    fn delivered(a: &Arm) -> serde_json::Value {
        serde_json::json!({"Records": [{
            "messageId": format!("m-{}", a.armed.at.timestamp_millis()), "receiptHandle": "r",
            "body": a.body(), "attributes": {}, "messageAttributes": {}, "md5OfBody": "x",
            "eventSource": "aws:sqs",
            "eventSourceARN": "arn:aws:sqs:us-west-2:123456789012:rds-failover-recheck",
            "awsRegion": "us-west-2"
        }]})
    }

    #[test]
    fn every_arm_parses_back_and_the_chain_ends_at_the_window_with_sub_second_clocks() {
        let s = site(1_800);
        let mut st = suspected(&s, t(123));
        let due = t(123) + Duration::seconds(1_800);
        let (mut sig, mut now, mut hops) = (tick(), t(456), 0);
        while let Some(a) = plan(&s, &sig, &st, now) {
            assert!(a.armed.at >= now && a.armed.due == due);
            st.recheck = Some(a.armed);
            sig = crate::parse_signal(&delivered(&a)).expect("the planner's own message parses");
            assert_eq!(sig.time, Some(a.armed.at));
            // SQS hands it over a little after it becomes visible.
            now = a.armed.at + Duration::milliseconds(337);
            hops += 1;
            assert!(hops <= 3, "the chain must end");
        }
        assert_eq!(
            hops, 2,
            "900 s, then the rest (rounded up past the window's end)"
        );
        assert!(
            now >= due,
            "the last message arrives once the window has closed"
        );
    }
}
