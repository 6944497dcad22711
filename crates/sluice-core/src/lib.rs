//! The words every Sluice crate shares. Protocol crates turn wire bytes into
//! these types; policy, audit, masking and approvals only ever see these, so a
//! new protocol reuses all of them.

mod command;
mod identity;
mod statement;

pub use command::{Command, CommandOrigin, Decision, Outcome, Param, PolicyRef};
pub use identity::{Identity, ResourceId};
pub use statement::{Action, Statement};
