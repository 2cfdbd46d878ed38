//! notifier: turns every domain event into one SNS message a tired human can act on — what
//! happened, why (the verdict's guards and numbers), the timeline, what was and was not done, and
//! the next step — exactly once per site, epoch and event type.

pub mod handler;
pub mod setup;
