//! `sluice`: run the gateway and administer it.

use anyhow::{Context, Result};
use clap::{Args, Parser, Subcommand};

mod approvals;
mod audit;
mod keys;
mod kubeconfig;
mod policy;
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
pub(crate) struct ConfigArg {
    /// The gateway's config file.
    #[arg(long, default_value = "./sluice.toml", env = "SLUICE_CONFIG")]
    pub(crate) config: PathBuf,
}

#[derive(Subcommand)]
enum Command {
    /// Run the gateway until SIGTERM or SIGINT.
    Serve(ConfigArg),
    /// Manage service-account keys.
    Keys {
        #[command(subcommand)]
        command: keys::KeysCommand,
    },
    /// Check statements against the policies, validate policy files.
    Policy {
        #[command(subcommand)]
        command: policy::PolicyCommand,
    },
    /// List, show, approve and deny statements held for review (through the
    /// approval API; the key comes from SLUICE_KEY).
    Approvals {
        #[command(subcommand)]
        command: approvals::ApprovalsCommand,
    },
    /// Print a kubeconfig for a Kubernetes resource, with a Sluice key
    /// (from SLUICE_KEY) as the bearer token.
    Kubeconfig(kubeconfig::KubeconfigArgs),
    /// Inspect, replay, export, verify and prune the audit log.
    Audit {
        #[command(subcommand)]
        command: audit::AuditCommand,
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
        Command::Keys { command } => keys::run(command),
        Command::Policy { command } => policy::run(command),
        Command::Approvals { command } => approvals::run(command),
        Command::Audit { command } => audit::run(command),
        Command::Kubeconfig(args) => kubeconfig::run(args),
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

/// Every session holds two sockets (client and target), and the usual soft
/// limit of 1024 open files would cap a gateway at about 500 sessions: raise
/// it to the hard limit, as servers do, and say what it is.
fn raise_open_files_limit() {
    match rlimit::increase_nofile_limit(u64::MAX) {
        Ok(limit) => tracing::info!(
            open_files = limit,
            sessions_at_most = limit / 2,
            "open-files limit"
        ),
        Err(e) => tracing::warn!(error = %e, "cannot raise the open-files limit"),
    }
}

fn serve(path: &std::path::Path) -> Result<()> {
    let config = Config::load(path)?;
    init_logging(config.server.log_format);
    raise_open_files_limit();
    let mut builder = tokio::runtime::Builder::new_multi_thread();
    // Short statements are parsed on the worker thread (long or deeply
    // nested ones go to the classifier's own 64 MiB-stack threads); give
    // the workers room beyond the 2 MiB default.
    builder.thread_stack_size(8 * 1024 * 1024);
    if let Some(n) = config.server.worker_threads {
        builder.worker_threads(n);
    }
    let runtime = builder
        .enable_all()
        .build()
        .context("starting the runtime")?;
    runtime.block_on(async {
        // Catch SIGTERM from here on: the listener opens in `prepare`.
        let stop = sluice_server::termination_signal();
        let prepared = sluice_server::prepare(&config).await?;
        sluice_server::serve(prepared, stop).await;
        Ok(())
    })
}
