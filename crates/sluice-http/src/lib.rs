//! What Sluice's HTTP fronts share, so each front is only its protocol:
//! the seam to the enforcement pipeline ([`gate`]), the listener that
//! accepts, bounds and ends connections and keeps one session per identity
//! per connection ([`listener`]), and response bodies fed by a relay task
//! ([`body`]).

pub mod body;
pub mod gate;
pub mod listener;

pub use body::{BodyError, ChannelBody, Lines};
pub use gate::{answer_now, Answer, Ask, HoldGuard, HttpGate, HttpGates, Pending, Ticket, Verdict};
pub use listener::{serve, Connection, Front, Limits};
