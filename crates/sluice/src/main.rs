//! `sluice`: run the gateway and administer it.

use anyhow::{bail, Context, Result};
use clap::{Args, Parser, Subcommand};
use sluice_auth::KeyStore;
use sluice_server::{Config, LogFormat};
use std::path::PathBuf;

#[derive(Parser)]
#[command(
    name = "sluice",
    version,
    about = "An access gateway for agents and the people who supervise them"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Args)]
struct ConfigArg {
    /// The gateway's config file.
    #[arg(long, default_value = "./sluice.toml", env = "SLUICE_CONFIG")]
    config: PathBuf,
}

#[derive(Subcommand)]
enum Command {
    /// Run the gateway until SIGTERM or SIGINT.
    Serve(ConfigArg),
    /// Manage service-account keys.
    Keys {
        #[command(subcommand)]
        command: KeysCommand,
    },
}

#[derive(Subcommand)]
enum KeysCommand {
    /// Create a key; it is printed once, alone on the last line of stdout.
    Create {
        #[command(flatten)]
        config: ConfigArg,
        #[arg(long)]
        identity: String,
        /// Groups of the identity (comma-separated or repeated).
        #[arg(long, value_delimiter = ',')]
        groups: Vec<String>,
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

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    match run(cli) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("sluice: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

fn run(cli: Cli) -> Result<()> {
    match cli.command {
        Command::Serve(args) => serve(&args.config),
        Command::Keys { command } => keys(command),
    }
}

fn init_logging(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_env("SLUICE_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    use std::io::IsTerminal;
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
}

fn serve(path: &std::path::Path) -> Result<()> {
    let config = Config::load(path)?;
    init_logging(config.server.log_format);
    let mut builder = tokio::runtime::Builder::new_multi_thread();
    if let Some(n) = config.server.worker_threads {
        builder.worker_threads(n);
    }
    let runtime = builder.enable_all().build().context("starting the runtime")?;
    runtime.block_on(async {
        // Catch SIGTERM from here on: the listener opens in `prepare`.
        let stop = sluice_server::termination_signal();
        let prepared = sluice_server::prepare(&config).await?;
        sluice_server::serve(prepared, stop).await;
        Ok(())
    })
}

fn open_keys(path: &std::path::Path) -> Result<KeyStore> {
    let config = Config::load(path)?;
    let dir = config.data_dir();
    KeyStore::open(&dir).with_context(|| format!("opening the key store in {}", dir.display()))
}

fn keys(command: KeysCommand) -> Result<()> {
    match command {
        KeysCommand::Create {
            config,
            identity,
            groups,
        } => {
            let store = open_keys(&config.config)?;
            let groups: Vec<String> = groups.into_iter().filter(|g| !g.is_empty()).collect();
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
                    "{:<15} {:<24} {:<24} {:<21} REVOKED",
                    "KEY ID", "IDENTITY", "GROUPS", "CREATED"
                );
                for k in keys {
                    println!(
                        "{:<15} {:<24} {:<24} {:<21} {}",
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
