//! A request as the API server reads it.
//!
//! This follows the API server's own request-info parser
//! (`k8s.io/apiserver/pkg/endpoints/request/requestinfo.go`) rule for rule,
//! so that what Sluice decides on is what the API server authorises and
//! runs. Where that parser would quietly accept something two readers could
//! disagree on, Sluice refuses instead of normalising: empty, `.` and `..`
//! path segments, any `%` in the path (the API server parses the decoded
//! path; with no `%` the raw and the decoded path are the same bytes), and
//! `;` in the query (Go's query parser drops such pairs, others split on
//! them).

use crate::query::Query;
use sluice_core::{Action, ConnectRequest, KubeRequest};
use std::fmt;

/// Why a request target is refused before it is decided.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BadTarget(pub String);

impl fmt::Display for BadTarget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

fn bad(message: impl Into<String>) -> BadTarget {
    BadTarget(message.into())
}

/// What a request is: the Kubernetes verb as Sluice's action, and the
/// request's attributes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Understood {
    pub action: Action,
    /// The API server's own verb (`create` for a POST to `pods/exec`).
    pub verb: String,
    pub request: KubeRequest,
}

/// Subresources of a namespace object (`/namespaces/x/status`), not
/// resources inside it.
const NAMESPACE_SUBRESOURCES: [&str; 2] = ["status", "finalize"];

/// Reads `method` and the request target (`path`, `query` without `?`).
pub fn understand(method: &str, path: &str, query: Option<&str>) -> Result<Understood, BadTarget> {
    check_path(path)?;
    let query = Query::parse(query.unwrap_or(""))?;
    let mut request = KubeRequest {
        path: path.to_owned(),
        ..KubeRequest::default()
    };
    // Go's strings.Trim(path, "/") then Split; with empty segments refused
    // that is: drop the leading slash.
    let all: Vec<&str> = match path.strip_prefix('/') {
        Some("") => Vec::new(),
        Some(rest) => rest.split('/').collect(),
        None => return Err(bad("the request path must start with /")),
    };
    let read_only = matches!(method, "GET" | "HEAD");
    let non_resource = |request: KubeRequest| Understood {
        action: if read_only {
            Action::Discover
        } else {
            Action::Unknown
        },
        verb: method.to_ascii_lowercase(),
        request,
    };
    if all.len() < 3 || !matches!(all[0], "api" | "apis") {
        return Ok(non_resource(request));
    }
    let mut parts = &all[1..];
    if all[0] == "apis" {
        if parts.len() < 3 {
            return Ok(non_resource(request));
        }
        request.api_group = parts[0].to_owned();
        parts = &parts[1..];
    }
    request.resource_request = true;
    request.api_version = parts[0].to_owned();
    parts = &parts[1..];
    let mut verb = match method {
        "POST" => "create",
        "GET" | "HEAD" => "get",
        "PUT" => "update",
        "PATCH" => "patch",
        "DELETE" => "delete",
        _ => "",
    };
    if let Some(special @ ("proxy" | "watch")) = parts.first().copied() {
        if parts.len() < 2 {
            return Err(bad(format!(
                "{path}: cannot tell the resource and namespace of a /{special}/ request"
            )));
        }
        if !read_only && special == "watch" {
            return Err(bad(format!("{path}: a /watch/ request must be a GET")));
        }
        verb = special;
        parts = &parts[1..];
    }
    if parts.first() == Some(&"namespaces") {
        if let Some(ns) = parts.get(1) {
            request.namespace = Some((*ns).to_owned());
            if parts
                .get(2)
                .is_some_and(|p| !NAMESPACE_SUBRESOURCES.contains(p))
            {
                parts = &parts[2..];
            }
        }
    }
    // resource / name / subresource / what the API server does not read
    if parts.len() >= 3 && verb != "proxy" {
        request.subresource = Some(parts[2].to_owned());
    }
    if parts.len() >= 2 {
        request.name = Some(parts[1].to_owned());
    }
    if let Some(resource) = parts.first() {
        request.resource = (*resource).to_owned();
    }
    let mut verb = verb.to_owned();
    if request.name.is_none() && verb == "get" {
        verb = if query.watch() { "watch" } else { "list" }.to_owned();
        request.name = query.field_selector_name();
    }
    if request.name.is_none() && verb == "delete" {
        verb = "deletecollection".to_owned();
        // Not read by the API server's parser (its RBAC cannot restrict a
        // deletecollection by name), but what the selector restricts the
        // deletion to: a policy on `name` sees it. Without one the
        // request reaches every object.
        request.name = query.field_selector_name();
    }
    request.dry_run = query.dry_run();
    request.label_selector = query.first("labelSelector").map(str::to_owned);
    request.field_selector = query.first("fieldSelector").map(str::to_owned);
    let action = action_of(&verb, &request);
    if matches!(action, Action::Exec | Action::Attach | Action::PortForward) {
        request.connect = Some(ConnectRequest {
            container: query.first("container").map(str::to_owned),
            command: query.all("command"),
            stdin: query.flag("stdin"),
            tty: query.flag("tty"),
            ports: query.all("ports"),
        });
    }
    Ok(Understood {
        action,
        verb,
        request,
    })
}

/// The action policy decides on: the verb, except that the connect
/// subresources are their own actions whatever the method (a WebSocket
/// exec is a GET, an SPDY one a POST), and `nodes/proxy` reaches the
/// kubelet's exec.
fn action_of(verb: &str, request: &KubeRequest) -> Action {
    match request.subresource.as_deref() {
        Some("exec") => return Action::Exec,
        Some("attach") => return Action::Attach,
        Some("portforward") => return Action::PortForward,
        Some("proxy") if request.resource == "nodes" => return Action::Exec,
        Some("proxy") => return Action::Proxy,
        _ => {}
    }
    match verb {
        "get" => Action::Get,
        "list" => Action::List,
        "watch" => Action::Watch,
        "create" => Action::Create,
        "update" => Action::Update,
        "patch" => Action::Patch,
        "delete" => Action::Delete,
        "deletecollection" => Action::DeleteCollection,
        "proxy" if request.resource == "nodes" => Action::Exec,
        "proxy" => Action::Proxy,
        _ => Action::Unknown,
    }
}

/// Refuses what two readers of the path could read differently.
fn check_path(path: &str) -> Result<(), BadTarget> {
    if path.contains('%') {
        return Err(bad(
            "the request path contains '%': Sluice does not decode paths (send the path unencoded)",
        ));
    }
    if path == "/" {
        return Ok(());
    }
    let Some(rest) = path.strip_prefix('/') else {
        return Err(bad("the request path must start with /"));
    };
    for segment in rest.split('/') {
        match segment {
            "" => return Err(bad(format!("{path}: empty path segment"))),
            "." | ".." => return Err(bad(format!("{path}: '{segment}' path segment"))),
            _ => {}
        }
    }
    Ok(())
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::panic)]
#[path = "info_tests.rs"]
mod tests;
