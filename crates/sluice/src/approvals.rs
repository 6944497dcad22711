//! `sluice approvals`: list, show, approve and deny held statements through
//! the gateway's approval API (`[server] admin_listen`).
//!
//! The key comes only from `SLUICE_KEY` (a flag would leave it in shell
//! history and `ps`). The API is found with `--url`/`SLUICE_URL`, else from
//! the config file (`[approvals] public_url`, else `[server] admin_listen`).

use anyhow::{anyhow, bail, Context, Result};
use clap::{Args, Subcommand, ValueEnum};
use reqwest::blocking::{Client, RequestBuilder};
use reqwest::Url;
use serde_json::Value;
use sluice_approvals::{Request, Status, VoteDecision};
use sluice_server::Config;
use std::path::PathBuf;
use std::time::Duration;

/// Where the API is and how to trust it.
#[derive(Args)]
pub(crate) struct ApiArgs {
    /// The approval API's base URL (e.g. http://127.0.0.1:6480); default:
    /// from the config file.
    #[arg(long, env = "SLUICE_URL")]
    url: Option<String>,
    /// PEM CA certificate(s) to trust for an HTTPS API with a private CA.
    #[arg(long, env = "SLUICE_CA_FILE")]
    ca_file: Option<PathBuf>,
    /// The gateway's config file, read only to find the API when no URL is
    /// given (default ./sluice.toml if it exists).
    #[arg(long, env = "SLUICE_CONFIG")]
    config: Option<PathBuf>,
}

#[derive(Clone, Copy, ValueEnum)]
pub(crate) enum StatusArg {
    Pending,
    Approved,
    Denied,
    Expired,
    Withdrawn,
    Consumed,
}

impl StatusArg {
    fn as_str(self) -> &'static str {
        match self {
            StatusArg::Pending => "pending",
            StatusArg::Approved => "approved",
            StatusArg::Denied => "denied",
            StatusArg::Expired => "expired",
            StatusArg::Withdrawn => "withdrawn",
            StatusArg::Consumed => "consumed",
        }
    }
}

#[derive(Subcommand)]
pub(crate) enum ApprovalsCommand {
    /// List requests, newest first (default: pending ones).
    List {
        #[command(flatten)]
        api: ApiArgs,
        /// Only requests in this status (default: pending).
        #[arg(long, value_enum, conflicts_with = "all")]
        status: Option<StatusArg>,
        /// Requests in every status.
        #[arg(long)]
        all: bool,
        /// At most this many.
        #[arg(long, default_value_t = 100)]
        limit: usize,
        /// The API's JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Show one request: the statement, its parameters and the votes.
    Show {
        #[command(flatten)]
        api: ApiArgs,
        id: String,
        #[arg(long)]
        json: bool,
    },
    /// Approve a pending request (one vote towards its quorum).
    Approve {
        #[command(flatten)]
        api: ApiArgs,
        id: String,
        /// A note recorded with the vote.
        #[arg(long)]
        comment: Option<String>,
        #[arg(long)]
        json: bool,
    },
    /// Deny a pending request; one denial ends it.
    Deny {
        #[command(flatten)]
        api: ApiArgs,
        id: String,
        /// Why (required; the requester sees it).
        #[arg(long, required = true)]
        reason: String,
        #[arg(long)]
        json: bool,
    },
}

pub(crate) fn run(command: ApprovalsCommand) -> Result<()> {
    match command {
        ApprovalsCommand::List {
            api,
            status,
            all,
            limit,
            json,
        } => {
            let api = Api::new(&api)?;
            let mut url = api.url(&["v1", "approvals"])?;
            {
                let mut query = url.query_pairs_mut();
                if !all {
                    query.append_pair("status", status.unwrap_or(StatusArg::Pending).as_str());
                }
                query.append_pair("limit", &limit.to_string());
            }
            let body = api.send(api.client.get(url))?;
            if json {
                return print_json(&body);
            }
            let requests: Vec<Request> = body
                .get("requests")
                .cloned()
                .map(serde_json::from_value)
                .transpose()
                .context("the approval API sent an unexpected list")?
                .unwrap_or_default();
            print!("{}", table(&requests));
            Ok(())
        }
        ApprovalsCommand::Show { api, id, json } => {
            let api = Api::new(&api)?;
            let body = api.send(api.client.get(api.url(&["v1", "approvals", &id])?))?;
            if json {
                return print_json(&body);
            }
            print!("{}", details(&parse_request(body)?));
            Ok(())
        }
        ApprovalsCommand::Approve {
            api,
            id,
            comment,
            json,
        } => {
            let api = Api::new(&api)?;
            let url = api.url(&["v1", "approvals", &id, "approve"])?;
            let body = serde_json::json!({ "comment": comment });
            let answer = api.send(api.client.post(url).json(&body))?;
            if json {
                return print_json(&answer);
            }
            let r = parse_request(answer)?;
            let votes = format!("{}/{} approvals", r.approvers().len(), r.quorum);
            match r.status {
                Status::Pending => {
                    println!("recorded your approval of {}: {votes}, still pending", r.id)
                }
                status => println!("{} is {status} ({votes})", r.id),
            }
            Ok(())
        }
        ApprovalsCommand::Deny {
            api,
            id,
            reason,
            json,
        } => {
            let api = Api::new(&api)?;
            let url = api.url(&["v1", "approvals", &id, "deny"])?;
            let body = serde_json::json!({ "reason": reason });
            let answer = api.send(api.client.post(url).json(&body))?;
            if json {
                return print_json(&answer);
            }
            let r = parse_request(answer)?;
            println!("{} is {}", r.id, r.status);
            Ok(())
        }
    }
}

/// An authenticated client of one API.
struct Api {
    base: Url,
    key: String,
    client: Client,
}

impl Api {
    fn new(args: &ApiArgs) -> Result<Api> {
        let key = std::env::var("SLUICE_KEY")
            .ok()
            .filter(|k| !k.trim().is_empty())
            .ok_or_else(|| anyhow!("set SLUICE_KEY to your approver key"))?;
        let base = base_url(args)?;
        let mut builder = Client::builder().timeout(Duration::from_secs(60));
        if let Some(path) = &args.ca_file {
            let pem = std::fs::read(path)
                .with_context(|| format!("cannot read CA file {}", path.display()))?;
            for cert in reqwest::Certificate::from_pem_bundle(&pem)
                .with_context(|| format!("{} is not a PEM certificate bundle", path.display()))?
            {
                builder = builder.add_root_certificate(cert);
            }
        }
        let client = builder.build().context("cannot set up the HTTP client")?;
        Ok(Api {
            base,
            key: key.trim().to_owned(),
            client,
        })
    }

    /// `base` with `segments` appended (each one percent-encoded).
    fn url(&self, segments: &[&str]) -> Result<Url> {
        let mut url = self.base.clone();
        url.path_segments_mut()
            .map_err(|()| anyhow!("{} cannot be a base URL", self.base))?
            .pop_if_empty()
            .extend(segments);
        Ok(url)
    }

    /// Sends with the key; an API error becomes its message.
    fn send(&self, request: RequestBuilder) -> Result<Value> {
        let response = request
            .bearer_auth(&self.key)
            .send()
            .map_err(|e| anyhow!("cannot reach the approval API at {}: {e}", self.base))?;
        let status = response.status();
        let text = response
            .text()
            .with_context(|| format!("reading the approval API's answer ({status})"))?;
        let body: Option<Value> = serde_json::from_str(&text).ok();
        if status.is_success() {
            return body.ok_or_else(|| anyhow!("the approval API sent something other than JSON"));
        }
        match body
            .as_ref()
            .and_then(|b| b.get("message"))
            .and_then(Value::as_str)
        {
            Some(message) => bail!("{message}"),
            None => bail!("the approval API answered {status}: {}", text.trim()),
        }
    }
}

/// `--url`/`SLUICE_URL`, else the config's `[approvals] public_url` or
/// `[server] admin_listen`.
fn base_url(args: &ApiArgs) -> Result<Url> {
    let text = match (&args.url, &args.config) {
        (Some(url), _) => url.clone(),
        (None, config) => {
            let default = PathBuf::from("./sluice.toml");
            let path = match config {
                Some(p) => p.clone(),
                None if default.exists() => default,
                None => bail!(
                    "set SLUICE_URL (or --url) to the approval API's address, e.g. http://127.0.0.1:6480"
                ),
            };
            url_from_config(&Config::load(&path)?)?
        }
    };
    Url::parse(&text).with_context(|| format!("{text:?} is not a URL"))
}

fn url_from_config(config: &Config) -> Result<String> {
    if let Some(url) = &config.approvals.public_url {
        return Ok(url.clone());
    }
    let Some(mut addr) = config.server.admin_listen else {
        bail!(
            "{} has no [server] admin_listen: set SLUICE_URL (or --url) to the approval API's address",
            config.file.display()
        );
    };
    if addr.ip().is_unspecified() {
        addr.set_ip(if addr.is_ipv4() {
            std::net::Ipv4Addr::LOCALHOST.into()
        } else {
            std::net::Ipv6Addr::LOCALHOST.into()
        });
    }
    let scheme = if config.server.tls_cert.is_some() {
        "https"
    } else {
        "http"
    };
    Ok(format!("{scheme}://{addr}"))
}

fn print_json(body: &Value) -> Result<()> {
    println!("{}", serde_json::to_string_pretty(body)?);
    Ok(())
}

fn parse_request(body: Value) -> Result<Request> {
    serde_json::from_value(body).context("the approval API sent an unexpected request")
}

/// `2024-05-01T12:00:00.000123Z` as `2024-05-01 12:00:00Z`.
fn short_time(t: &impl ToString) -> String {
    let s = t.to_string();
    match s.get(..19) {
        Some(head) => format!("{}Z", head.replacen('T', " ", 1)),
        None => s,
    }
}

/// One line, at most `max` characters, `…` when cut.
fn one_line(text: &str, max: usize) -> String {
    let flat: String = text.split_whitespace().collect::<Vec<_>>().join(" ");
    if flat.chars().count() <= max {
        return flat;
    }
    let mut cut: String = flat.chars().take(max.saturating_sub(1)).collect();
    cut.push('…');
    cut
}

fn table(requests: &[Request]) -> String {
    if requests.is_empty() {
        return "no approval requests\n".to_owned();
    }
    let header = [
        "ID",
        "STATUS",
        "REQUESTER",
        "RESOURCE",
        "CREATED",
        "EXPIRES",
        "VOTES/QUORUM",
        "STATEMENT",
    ];
    let rows: Vec<[String; 8]> = requests
        .iter()
        .map(|r| {
            [
                r.id.clone(),
                r.status.to_string(),
                r.requester.name.clone(),
                r.resource.clone(),
                short_time(&r.created_at),
                short_time(&r.expires_at),
                format!("{}/{}", r.approvers().len(), r.quorum),
                one_line(&r.text, 60),
            ]
        })
        .collect();
    let mut widths = header.map(str::len);
    for row in &rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let mut out = String::new();
    let mut line = |cells: Vec<&str>| {
        let last = cells.len() - 1;
        for (i, (cell, w)) in cells.iter().zip(widths).enumerate() {
            if i == last {
                out.push_str(cell);
            } else {
                out.push_str(&format!("{cell:<w$}  "));
            }
        }
        out.push('\n');
    };
    line(header.to_vec());
    for row in &rows {
        line(row.iter().map(String::as_str).collect());
    }
    out
}

fn details(r: &Request) -> String {
    let mut out = String::new();
    let mut field = |name: &str, value: String| out.push_str(&format!("{name:<13}{value}\n"));
    field("request", r.id.clone());
    field(
        "status",
        format!(
            "{} ({}/{} approvals)",
            r.status,
            r.approvers().len(),
            r.quorum
        ),
    );
    field(
        "requester",
        format!(
            "{} (groups: {})",
            r.requester.name,
            r.requester.groups.join(",")
        ),
    );
    field("resource", r.resource.clone());
    // What the statement's names mean and whose privileges it runs with.
    field(
        "session",
        if r.session_state.is_empty() {
            "defaults (no search_path, role or other binding setting changed)".to_owned()
        } else {
            r.session_state.clone()
        },
    );
    field("actions", r.actions.join(","));
    field("policy", r.policy_id.clone());
    if let Some(reason) = &r.reason {
        field("reason", reason.clone());
    }
    field(
        "approvers",
        format!("group {}, quorum {}", r.approver_group, r.quorum),
    );
    field("mode", r.mode.as_str().to_owned());
    field("created", r.created_at.to_string());
    field("expires", r.expires_at.to_string());
    if let Some(at) = &r.decided_at {
        field("decided", at.to_string());
    }
    if let Some(why) = &r.withdraw_reason {
        field("withdrawn", why.clone());
    }
    field("fingerprint", r.fingerprint.to_string());
    out.push_str("statement:\n");
    for line in r.text.lines() {
        out.push_str(&format!("  {line}\n"));
    }
    if !r.params.is_empty() {
        out.push_str("params:\n");
        for (i, p) in r.params.iter().enumerate() {
            let shown = p.as_deref().map_or("NULL".to_owned(), |v| format!("{v:?}"));
            out.push_str(&format!("  ${} = {shown}\n", i + 1));
        }
    }
    if r.votes.is_empty() {
        out.push_str("votes: none\n");
    } else {
        out.push_str("votes:\n");
        for v in &r.votes {
            let what = match v.decision {
                VoteDecision::Approve => "approved",
                VoteDecision::Deny => "denied",
            };
            let comment = v
                .comment
                .as_deref()
                .map(|c| format!(": {c}"))
                .unwrap_or_default();
            out.push_str(&format!("  {} {} {what}{comment}\n", v.at, v.approver));
        }
    }
    out
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn long_statements_are_cut_to_one_line_of_the_given_width() {
        assert_eq!(one_line("SELECT\n  1", 60), "SELECT 1");
        let cut = one_line(&"x".repeat(100), 60);
        assert_eq!(cut.chars().count(), 60);
        assert!(cut.ends_with('…'));
    }

    #[test]
    fn times_are_shown_to_the_second() {
        assert_eq!(
            short_time(&"2024-05-01T12:00:00.000123Z"),
            "2024-05-01 12:00:00Z"
        );
    }
}
