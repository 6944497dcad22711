//! The human-readable line posted to a Slack incoming webhook.

use crate::event::{ApprovalEvent, EventKind};

/// Slack truncates long messages anyway; past this the statement is cut
/// and marked, keeping the approve command visible.
const MAX_STATEMENT: usize = 2500;

/// Slack's mrkdwn control characters; everything shown comes from clients.
fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

fn statement(text: &str) -> String {
    let mut cut = text.len().min(MAX_STATEMENT);
    while !text.is_char_boundary(cut) {
        cut -= 1;
    }
    let mut shown = escape(&text[..cut]).replace("```", "`\u{200b}``");
    if cut < text.len() {
        shown.push_str("\n… (truncated)");
    }
    shown
}

/// The message for one event.
pub fn slack_text(event: &ApprovalEvent) -> String {
    let r = &event.request;
    let id = escape(&r.id);
    let actor = escape(event.actor.as_deref().unwrap_or("someone"));
    let comment = event
        .comment
        .as_deref()
        .map(|c| format!(": {}", escape(c)))
        .unwrap_or_default();
    match event.event {
        EventKind::Requested => format!(
            "*Approval requested* `{id}`\n\
             *Requester:* {requester}\n\
             *Resource:* {resource}{session}\n\
             *Policy:* {policy}{reason}\n\
             *Needs:* {quorum} approval(s) from group {group}, before {expires}\n\
             *Statement:*\n```{text}```\n\
             Approve: `sluice approvals approve {id}`\n\
             Deny: `sluice approvals deny {id} --reason \"...\"`",
            requester = escape(&r.requester.name),
            resource = escape(&r.resource),
            session = if r.session_state.is_empty() {
                String::new()
            } else {
                format!("\n*Session settings:* {}", escape(&r.session_state))
            },
            policy = escape(&r.policy_id),
            reason = r
                .reason
                .as_deref()
                .map(|x| format!(" ({})", escape(x)))
                .unwrap_or_default(),
            quorum = r.quorum,
            group = escape(&r.approver_group),
            expires = r.expires_at,
            text = statement(&r.text),
        ),
        EventKind::Vote => format!(
            "{actor} approved `{id}` ({have} of {quorum}){comment}",
            have = r.approvers().len(),
            quorum = r.quorum
        ),
        EventKind::Approved => format!(
            "*Approved* `{id}` by {approvers}: {requester} may now run it on {resource}",
            approvers = escape(&r.approvers().join(", ")),
            requester = escape(&r.requester.name),
            resource = escape(&r.resource),
        ),
        EventKind::Denied => format!("*Denied* `{id}` by {actor}{comment}"),
        EventKind::Expired => format!("`{id}` expired without a decision"),
        EventKind::Withdrawn => format!("`{id}` was withdrawn by {actor}{comment}"),
        EventKind::Consumed => format!("`{id}` was run by {actor}"),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
    use super::*;

    #[test]
    fn statement_cannot_close_the_code_block_or_inject_links() {
        let shown = statement("SELECT 1 ``` <!channel> & more");
        assert!(!shown.contains("```"));
        assert!(shown.contains("&lt;!channel&gt; &amp; more"));
    }

    #[test]
    fn long_statements_are_cut_on_a_char_boundary() {
        let text = "é".repeat(MAX_STATEMENT);
        let shown = statement(&text);
        assert!(shown.ends_with("(truncated)"));
        assert!(shown.len() < text.len());
    }
}
