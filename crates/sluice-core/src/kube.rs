use serde::{Deserialize, Serialize};

/// A Kubernetes API request as the API server itself reads it (its
/// request-info parser): what policy decides on and the audit log keeps.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct KubeRequest {
    /// `false` for discovery and non-resource URLs (`/version`, `/api`),
    /// whose only attribute is the path.
    pub resource_request: bool,
    /// The URL path exactly as sent (Sluice refuses any `%` in it).
    pub path: String,
    /// `""` for the core group (`/api/v1`).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub api_group: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub api_version: String,
    /// Absent for cluster-scoped requests.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    /// E.g. `secrets`.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub resource: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subresource: Option<String>,
    /// The object named by the path, or by `fieldSelector=metadata.name=X`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// `dryRun=All`: the API server validates and answers but stores nothing.
    #[serde(default)]
    pub dry_run: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub label_selector: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub field_selector: Option<String>,
    /// exec, attach and port-forward: what the stream will run.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub connect: Option<ConnectRequest>,
}

/// The parameters of a connect subresource (`pods/exec`, `pods/attach`,
/// `pods/portforward`), from its query string.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct ConnectRequest {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub container: Option<String>,
    /// exec's argv, in order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub command: Vec<String>,
    #[serde(default)]
    pub stdin: bool,
    #[serde(default)]
    pub tty: bool,
    /// port-forward's ports.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ports: Vec<String>,
}
