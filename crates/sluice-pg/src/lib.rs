//! Sluice's PostgreSQL gateway: clients speak the real wire protocol to it
//! as if it were the database; it proves who they are, opens the backend
//! connection with credentials only it holds, and passes every statement
//! through one decision point.

pub mod backend;
pub mod cancel;
pub mod codec;
mod denial;
pub mod error;
pub mod extended;
pub mod frames;
pub mod gate;
pub mod gateway;
pub mod mask;
pub mod messages;
mod pump;
mod response;
pub mod session;
pub mod startup;
pub mod stream;

pub use backend::{BackendTarget, BackendTls, Secret};
pub use error::{PgError, ProtocolError};
pub use gate::{
    answers, Completion, Durable, Gate, GateFactory, MaskRules, Pause, Response, SessionInfo,
    UnitContext, Verdict,
};
pub use gateway::{Gateway, GatewayConfig, Resource};
pub use messages::{sqlstate, PgErrorReply};
pub use session::ShutdownState;
pub use startup::ClientAuth;
