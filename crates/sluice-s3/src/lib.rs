//! The S3 front: aws-cli, boto3 and any SigV4 client talk to Sluice as to
//! an S3 endpoint, with a Sluice-issued key pair. s3s verifies each
//! request's signature ([`front`]); [`proxy::handle`] runs the phases:
//! read the operation and every object it touches ([`op`]), decide through
//! the shared gate, wait, re-sign toward the backend ([`upstream`]),
//! stream the body up ([`body`]) and the answer back masked and recorded
//! ([`relay`], [`mask`]).

pub mod body;
pub mod error;
pub mod front;
pub mod mask;
pub mod op;
mod proxy;
mod relay;
pub mod uploads;
pub mod upstream;

pub use front::{S3Front, S3Gates, Settings};
pub use upstream::Upstream;

/// For `fuzz/`: the signature check exactly as the front configures it.
#[doc(hidden)]
pub mod fuzzing;
