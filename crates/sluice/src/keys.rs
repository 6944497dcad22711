//! `sluice keys`: service-account keys.

use crate::ConfigArg;
use anyhow::{bail, Context, Result};
use clap::Subcommand;
use sluice_auth::KeyStore;
use sluice_server::Config;

#[derive(Subcommand)]
pub(crate) enum KeysCommand {
    /// Create a key; it is printed once, alone on the last line of stdout
    /// (with --s3: an S3 key pair, as the last two lines,
    /// `AWS_ACCESS_KEY_ID=...` and `AWS_SECRET_ACCESS_KEY=...`).
    Create {
        #[command(flatten)]
        config: ConfigArg,
        #[arg(long)]
        identity: String,
        /// Groups of the identity (comma-separated or repeated).
        #[arg(long, value_delimiter = ',')]
        groups: Vec<String>,
        /// An S3 key pair (for aws-cli, boto3 and other SigV4 clients)
        /// instead of an API key.
        #[arg(long)]
        s3: bool,
    },
    /// List keys (never the keys themselves).
    List {
        #[command(flatten)]
        config: ConfigArg,
        #[arg(long)]
        json: bool,
    },
    /// Revoke every key of an identity, or one key by id. New connections
    /// with a revoked key fail at once.
    Revoke {
        #[command(flatten)]
        config: ConfigArg,
        #[arg(long, conflicts_with = "key_id", required_unless_present = "key_id")]
        identity: Option<String>,
        #[arg(long)]
        key_id: Option<String>,
    },
}

pub(crate) fn open_keys(path: &std::path::Path) -> Result<KeyStore> {
    let config = Config::load(path)?;
    let dir = config.data_dir();
    KeyStore::open(&dir).with_context(|| format!("opening the key store in {}", dir.display()))
}

pub(crate) fn run(command: KeysCommand) -> Result<()> {
    match command {
        KeysCommand::Create {
            config,
            identity,
            groups,
            s3,
        } => {
            let store = open_keys(&config.config)?;
            let groups: Vec<String> = groups.into_iter().filter(|g| !g.is_empty()).collect();
            if s3 {
                let created = store.create_s3_key(&identity, &groups)?;
                println!(
                    "created S3 key {} for identity {} (groups: {})",
                    created.access_key_id,
                    identity,
                    groups.join(",")
                );
                println!("store the secret now: it cannot be shown again");
                println!("AWS_ACCESS_KEY_ID={}", created.access_key_id);
                println!("AWS_SECRET_ACCESS_KEY={}", created.secret_access_key);
                return Ok(());
            }
            let created = store.create_key(&identity, &groups)?;
            println!(
                "created key {} for identity {} (groups: {})",
                created.info.key_id,
                identity,
                groups.join(",")
            );
            println!("store it now: it cannot be shown again");
            println!("{}", created.secret);
        }
        KeysCommand::List { config, json } => {
            let store = open_keys(&config.config)?;
            let keys = store.list()?;
            if json {
                println!("{}", serde_json::to_string_pretty(&keys)?);
            } else {
                println!(
                    "{:<20} {:<24} {:<24} {:<21} REVOKED",
                    "KEY ID", "IDENTITY", "GROUPS", "CREATED"
                );
                for k in keys {
                    println!(
                        "{:<20} {:<24} {:<24} {:<21} {}",
                        k.key_id,
                        k.identity,
                        k.groups.join(","),
                        k.created_at,
                        k.revoked_at.as_deref().unwrap_or("-")
                    );
                }
            }
        }
        KeysCommand::Revoke {
            config,
            identity,
            key_id,
        } => {
            let store = open_keys(&config.config)?;
            match (identity, key_id) {
                (Some(identity), _) => {
                    let n = store.revoke_identity(&identity)?;
                    if n == 0 {
                        bail!("identity {identity} has no active key");
                    }
                    println!("revoked {n} key(s) of identity {identity}");
                }
                (None, Some(id)) => {
                    if !store.revoke_key(&id)? {
                        bail!("no active key with id {id}");
                    }
                    println!("revoked key {id}");
                }
                (None, None) => bail!("give --identity or --key-id"),
            }
        }
    }
    Ok(())
}
