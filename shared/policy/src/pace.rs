//! When to look again while AWS finishes something we asked for.
//!
//! Two waits sit on a failover's critical path: RDS finishing the promotion (the topology read
//! with `DescribeDBInstances`/`DescribeDBClusters`) and Route 53 reporting the change `INSYNC`
//! (`GetChange`). Neither API pushes completion to us, so each is polled, and whatever falls
//! between the moment AWS finished and the poll that sees it is time we add to the recovery.
//!
//! A blind backoff (1 s doubling to 10 s) polls at about 1, 3, 7, 15, 25 s…: a change that
//! finishes at 8 s is seen at 15 s, so the overshoot is as large as the gap the schedule happens to
//! be in — up to half the wait at the start. [`wait_poll_delay`] keeps the overshoot proportional to
//! the time already waited instead: the next poll comes after about a twelfth of it (between
//! [`WAIT_POLL_MIN`] and [`WAIT_POLL_MAX`]), so a wait of W seconds is seen at most about W/12 + the
//! jitter late (≤ 0.6 s for the first 6 s, ≤ 12 s once waits pass two minutes). It costs more
//! polls than the backoff early on — 12 in the first 6 s, about 40 for a minute, about 100 for a
//! 10-minute promotion (the jittered doubling backoff: about 80) — which matters when many sites
//! fail over at once and share one account's request budget (RDS and Route 53 both throttle per
//! account: "Request throttling for the Amazon RDS API", RDS User Guide; "Quotas on API
//! requests", Route 53 Developer Guide). So polls that fail (throttled, a region not answering)
//! back off exponentially instead ([`after_error_delay`]): there, a fast schedule makes things
//! worse.

use std::time::Duration;

/// The shortest gap between two polls of a wait.
pub const WAIT_POLL_MIN: Duration = Duration::from_millis(500);
/// The longest gap: no wait is seen more than this late (plus jitter).
pub const WAIT_POLL_MAX: Duration = Duration::from_secs(10);
/// The gap is the time waited so far divided by this.
pub const WAIT_POLL_DIVISOR: u32 = 12;

/// The gap before the next poll of a wait that has lasted `waited` so far: `waited / 12` clamped
/// to [0.5 s, 10 s], scaled by `0.8 + 0.4 * unit` (`unit` in [0, 1): ±20 % jitter, so pollers of
/// many sites do not run in lockstep; a non-finite `unit` counts as 0.5).
pub fn wait_poll_delay(waited: Duration, unit: f64) -> Duration {
    let base = (waited / WAIT_POLL_DIVISOR).clamp(WAIT_POLL_MIN, WAIT_POLL_MAX);
    let unit = if unit.is_finite() {
        unit.clamp(0.0, 1.0)
    } else {
        0.5
    };
    base.mul_f64(0.8 + 0.4 * unit)
}

/// The gap after the `errors`-th poll in a row that failed (throttled, timed out, unavailable):
/// never shorter than the wait's own pace, and doubling from 1 s to 10 s with each further error
/// ([`crate::promote::poll_delay`]). RDS and Route 53 ask callers to back off exponentially when
/// throttled ("Request throttling for the Amazon RDS API", RDS User Guide; "Throttling for Route 53
/// API requests", Route 53 Developer Guide): many sites failing over at once share one account's
/// request budget, and a poll at the normal pace would only be throttled again.
pub fn after_error_delay(waited: Duration, errors: u32, unit: f64) -> Duration {
    let paced = wait_poll_delay(waited, unit);
    match errors {
        0 => paced,
        n => paced.max(crate::promote::poll_delay(n - 1, unit)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secs(waited: f64, unit: f64) -> f64 {
        wait_poll_delay(Duration::from_secs_f64(waited), unit).as_secs_f64()
    }

    #[test]
    fn dense_at_first_proportional_later_capped_at_ten_seconds() {
        assert!((secs(0.0, 0.5) - 0.5).abs() < 1e-9);
        assert!((secs(5.9, 0.5) - 0.5).abs() < 1e-9);
        assert!((secs(24.0, 0.5) - 2.0).abs() < 1e-9);
        assert!((secs(120.0, 0.5) - 10.0).abs() < 1e-9);
        assert!((secs(3600.0, 0.5) - 10.0).abs() < 1e-9);
    }

    #[test]
    fn failed_polls_back_off_exponentially_and_success_resets_the_pace() {
        let d = |errors| after_error_delay(Duration::ZERO, errors, 0.5).as_secs_f64();
        assert!((d(0) - 0.5).abs() < 1e-9, "no error: the wait's pace");
        assert!((d(1) - 0.75).abs() < 1e-9);
        assert!((d(2) - 1.5).abs() < 1e-9);
        assert!((d(4) - 6.0).abs() < 1e-9);
        assert!((d(30) - 7.5).abs() < 1e-9, "capped");
        // A long wait's own pace is never undercut by the error schedule.
        let late = after_error_delay(Duration::from_secs(600), 1, 0.5);
        assert_eq!(late, Duration::from_secs(10));
    }

    #[test]
    fn jitter_is_twenty_percent_either_way_and_clamped() {
        assert!((secs(0.0, 0.0) - 0.4).abs() < 1e-9);
        assert!((secs(0.0, 0.999_999) - 0.6).abs() < 1e-6);
        assert!((secs(0.0, 7.0) - 0.6).abs() < 1e-9);
        assert!((secs(0.0, f64::NAN) - 0.5).abs() < 1e-9);
        assert!((secs(3600.0, -3.0) - 8.0).abs() < 1e-9);
    }

    /// The property the schedule exists for: whenever a wait ends, the poll that sees it comes at
    /// most a twelfth of the wait (and the jitter) later — never the half a doubling backoff can
    /// overshoot by — and a ten-minute wait takes a bounded number of polls.
    #[test]
    fn a_wait_ending_at_any_moment_is_seen_within_a_twelfth_of_it() {
        for end_ms in (100..=600_000u64).step_by(100) {
            let end = Duration::from_millis(end_ms);
            let (mut t, mut polls) = (Duration::ZERO, 0);
            while t < end {
                t += wait_poll_delay(t, 0.999_999);
                polls += 1;
            }
            let late = t - end;
            let bound = (end / WAIT_POLL_DIVISOR)
                .clamp(WAIT_POLL_MIN, WAIT_POLL_MAX)
                .mul_f64(1.2);
            assert!(
                late <= bound,
                "a wait of {end:?} seen {late:?} late (bound {bound:?})"
            );
            if end_ms == 600_000 {
                assert!(polls <= 100, "{polls} polls for a ten-minute wait");
            }
        }
    }
}
