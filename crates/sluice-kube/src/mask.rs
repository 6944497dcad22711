//! Masking what the API server returns, and what Sluice records of request
//! bodies.
//!
//! Two layers. Secret values are hidden by what they are: the `data` and
//! `stringData` of a Secret, wherever one appears (a get, a list, whose
//! items carry no `kind`, a Table row's object, a watch event, the
//! response to a create, update, patch or delete, and the
//! `last-applied-configuration` annotation that repeats them), and the
//! token of a `TokenRequest`. Then the gateway's content detectors and
//! key-name rules run over every string of the document, as they do for
//! a `json` column, so credentials in ConfigMaps, Pod env values and events
//! are hidden too.

use base64::Engine;
use serde_json::{Map, Value};
use sluice_mask::{Masked, Masker, ValueKind};

/// What a hidden Secret value reads as.
pub const MASKED: &str = "<masked>";

const LAST_APPLIED: &str = "kubectl.kubernetes.io/last-applied-configuration";

/// Masks one JSON document. `secrets`: the request is about Secrets, so
/// every object with `data`/`stringData` in it is a Secret even without
/// `kind`. A document that is not JSON is masked as text.
pub fn document(masker: &Masker, doc: &[u8], secrets: bool) -> Vec<u8> {
    let rewritten = if secrets || may_hold_secrets(doc) {
        match serde_json::from_slice::<Value>(doc) {
            Ok(mut v) => {
                walk(&mut v, secrets);
                serde_json::to_vec(&v).ok()
            }
            // Not JSON in a Secret request: nothing of it can be shown.
            Err(_) if secrets => return MASKED.as_bytes().to_vec(),
            Err(_) => None,
        }
    } else {
        None
    };
    let bytes = rewritten.as_deref().unwrap_or(doc);
    match masker.mask(bytes, ValueKind::Json, None) {
        Masked::Replaced(out, _) => out,
        Masked::Unchanged(_) => rewritten.unwrap_or_else(|| doc.to_vec()),
        Masked::Null(_) => MASKED.as_bytes().to_vec(),
    }
}

/// Text (logs, a body that is not JSON): detectors only.
pub fn text(masker: &Masker, line: &[u8]) -> Vec<u8> {
    match masker.mask(line, ValueKind::Text, None) {
        Masked::Replaced(out, _) => out,
        Masked::Unchanged(v) => v.to_vec(),
        Masked::Null(_) => MASKED.as_bytes().to_vec(),
    }
}

/// A cheap test that skips parsing documents with no Secret in them.
fn may_hold_secrets(doc: &[u8]) -> bool {
    let find = |needle: &[u8]| memchr::memmem::find(doc, needle).is_some();
    find(b"\"Secret") || find(b"\"TokenRequest\"") || find(b"\\\"Secret")
}

fn kind(obj: &Map<String, Value>) -> Option<&str> {
    obj.get("kind").and_then(Value::as_str)
}

fn walk(v: &mut Value, secret_context: bool) {
    match v {
        Value::Object(obj) => {
            let k = kind(obj).map(str::to_owned);
            // In a Secret request an object without a kind (a list item)
            // or with only its metadata (the PartialObjectMetadata and
            // Table forms) is a Secret too.
            let is_secret = k.as_deref() == Some("Secret")
                || (secret_context && matches!(k.as_deref(), None | Some("PartialObjectMetadata")));
            if is_secret {
                hide_secret(obj);
            } else {
                hide_applied_secret(obj);
            }
            if k.as_deref() == Some("TokenRequest") {
                if let Some(Value::Object(status)) = obj.get_mut("status") {
                    if let Some(token) = status.get_mut("token") {
                        *token = Value::String(MASKED.to_owned());
                    }
                }
            }
            // A JSON patch of a Secret (recorded request bodies): its
            // values are Secret values.
            if secret_context && obj.contains_key("op") {
                if let Some(value) = obj.get_mut("value") {
                    *value = Value::String(MASKED.to_owned());
                }
            }
            let child_context = secret_context || k.as_deref() == Some("SecretList");
            for (_, child) in obj.iter_mut() {
                walk(child, child_context);
            }
        }
        Value::Array(items) => {
            for item in items {
                walk(item, secret_context);
            }
        }
        _ => {}
    }
}

/// The last-applied annotation of an object that is not itself a Secret
/// may still be one (a kind-less view of it): hidden when it says so.
fn hide_applied_secret(obj: &mut Map<String, Value>) {
    let annotation = obj
        .get_mut("metadata")
        .and_then(|m| m.get_mut("annotations"))
        .and_then(|a| a.get_mut(LAST_APPLIED));
    if let Some(applied) = annotation {
        if applied.as_str().is_some_and(|s| s.contains("Secret")) {
            mask_applied(applied);
        }
    }
}

fn mask_applied(applied: &mut Value) {
    let masked = applied
        .as_str()
        .and_then(|s| serde_json::from_str::<Value>(s).ok())
        .and_then(|mut inner| {
            walk(&mut inner, true);
            serde_json::to_string(&inner).ok()
        });
    *applied = Value::String(masked.unwrap_or_else(|| MASKED.to_owned()));
}

fn hide_secret(obj: &mut Map<String, Value>) {
    let encoded = base64::engine::general_purpose::STANDARD.encode(MASKED);
    if let Some(Value::Object(data)) = obj.get_mut("data") {
        for (_, value) in data.iter_mut() {
            *value = Value::String(encoded.clone());
        }
    }
    if let Some(Value::Object(data)) = obj.get_mut("stringData") {
        for (_, value) in data.iter_mut() {
            *value = Value::String(MASKED.to_owned());
        }
    }
    let annotation = obj
        .get_mut("metadata")
        .and_then(|m| m.get_mut("annotations"))
        .and_then(|a| a.get_mut(LAST_APPLIED));
    if let Some(applied) = annotation {
        mask_applied(applied);
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use sluice_mask::MaskConfig;

    fn masker() -> Masker {
        Masker::new(MaskConfig::default()).unwrap()
    }

    fn masked(doc: &str, secrets: bool) -> Value {
        serde_json::from_slice(&document(&masker(), doc.as_bytes(), secrets)).unwrap()
    }

    #[test]
    fn secret_values_are_hidden_in_objects_lists_tables_and_events() {
        let enc = base64::engine::general_purpose::STANDARD.encode(MASKED);
        let secret = r#"{"kind":"Secret","apiVersion":"v1","metadata":{"name":"db","annotations":{"kubectl.kubernetes.io/last-applied-configuration":"{\"kind\":\"Secret\",\"stringData\":{\"pw\":\"hunter2\"}}"}},"data":{"pw":"aHVudGVyMg=="},"stringData":{"pw":"hunter2"}}"#;
        let v = masked(secret, false);
        assert_eq!(v["data"]["pw"], enc.as_str());
        assert_eq!(v["stringData"]["pw"], MASKED);
        let applied = v["metadata"]["annotations"][LAST_APPLIED].as_str().unwrap();
        assert!(!applied.contains("hunter2"), "{applied}");
        assert_eq!(v["metadata"]["name"], "db");

        let list =
            r#"{"kind":"SecretList","items":[{"metadata":{"name":"a"},"data":{"k":"c2VjcmV0"}}]}"#;
        assert_eq!(masked(list, false)["items"][0]["data"]["k"], enc.as_str());
        let event = format!(r#"{{"type":"ADDED","object":{secret}}}"#);
        assert_eq!(masked(&event, false)["object"]["data"]["pw"], enc.as_str());
        let table = format!(r#"{{"kind":"Table","rows":[{{"cells":["db"],"object":{secret}}}]}}"#);
        assert_eq!(
            masked(&table, false)["rows"][0]["object"]["data"]["pw"],
            enc.as_str()
        );
        let kindless = r#"{"metadata":{"name":"a"},"data":{"k":"c2VjcmV0"}}"#;
        assert_eq!(masked(kindless, true)["data"]["k"], enc.as_str());
        assert_eq!(masked(kindless, false)["data"]["k"], "c2VjcmV0");
    }

    #[test]
    fn tokens_and_detected_credentials_are_hidden_everywhere() {
        let token = r#"{"kind":"TokenRequest","status":{"token":"abc.def.ghi"}}"#;
        assert_ne!(masked(token, false)["status"]["token"], "abc.def.ghi");
        let cm =
            r#"{"kind":"ConfigMap","data":{"note":"mail alice@example.com","password":"pw1"}}"#;
        let v = masked(cm, false);
        assert!(!v["data"]["note"]
            .as_str()
            .unwrap()
            .contains("alice@example.com"));
        assert_ne!(v["data"]["password"], "pw1");
    }

    #[test]
    fn metadata_only_forms_and_json_patches_of_secrets_hide_the_applied_values() {
        let applied = r#"{\"kind\":\"Secret\",\"stringData\":{\"pw\":\"s3cretApplied99\"}}"#;
        for doc in [
            format!(
                r#"{{"kind":"PartialObjectMetadata","metadata":{{"name":"a","annotations":{{"kubectl.kubernetes.io/last-applied-configuration":"{applied}"}}}}}}"#
            ),
            format!(
                r#"{{"kind":"Table","rows":[{{"object":{{"kind":"PartialObjectMetadata","metadata":{{"annotations":{{"kubectl.kubernetes.io/last-applied-configuration":"{applied}"}}}}}}}}]}}"#
            ),
        ] {
            let out = String::from_utf8(document(&masker(), doc.as_bytes(), true)).unwrap();
            assert!(!out.contains("s3cretApplied99"), "{out}");
        }
        // Not a Secret request, but the annotation says it is one.
        let doc = format!(
            r#"{{"kind":"List","items":[{{"kind":"PartialObjectMetadata","metadata":{{"annotations":{{"kubectl.kubernetes.io/last-applied-configuration":"{applied}"}}}}}}]}}"#
        );
        let out = String::from_utf8(document(&masker(), doc.as_bytes(), false)).unwrap();
        assert!(!out.contains("s3cretApplied99"), "{out}");
        let patch = r#"[{"op":"add","path":"/stringData","value":{"pw":"AuditLeak-42"}},{"op":"replace","path":"/data/k","value":"QXVkaXQ="}]"#;
        let out = String::from_utf8(document(&masker(), patch.as_bytes(), true)).unwrap();
        assert!(
            !out.contains("AuditLeak-42") && !out.contains("QXVkaXQ="),
            "{out}"
        );
    }

    #[test]
    fn a_secrets_response_that_is_not_json_shows_nothing() {
        assert_eq!(
            document(&masker(), b"not json hunter2", true),
            MASKED.as_bytes()
        );
    }
}
