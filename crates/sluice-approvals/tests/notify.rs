//! Notifications reach real HTTP receivers, signed, retried, and never hold
//! up the gateway.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use axum::Router;
use common::*;
use sluice_approvals::notify::{
    verify_webhook, ClientConfig, Notifier, SlackTarget, Target, WebhookTarget,
};
use sluice_approvals::{ApprovalEvent, EventKind};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

const SECRET: &[u8] = b"shared-secret";

#[derive(Clone, Copy, PartialEq)]
enum Behaviour {
    Ok,
    FailFirst(usize),
    AlwaysFail,
    Hang,
}

#[derive(Default)]
struct Received {
    hits: AtomicUsize,
    /// Deliveries answered 2xx: (headers, body).
    ok: Mutex<Vec<(HeaderMap, Bytes)>>,
}

struct Receiver {
    url: String,
    received: Arc<Received>,
}

async fn receiver(behaviour: Behaviour) -> Receiver {
    let received = Arc::new(Received::default());
    let handler = move |State(received): State<Arc<Received>>, headers: HeaderMap, body: Bytes| async move {
        let hit = received.hits.fetch_add(1, Ordering::SeqCst) + 1;
        match behaviour {
            Behaviour::Hang => std::future::pending::<()>().await,
            Behaviour::AlwaysFail => return StatusCode::INTERNAL_SERVER_ERROR,
            Behaviour::FailFirst(n) if hit <= n => return StatusCode::SERVICE_UNAVAILABLE,
            _ => {}
        }
        received.ok.lock().unwrap().push((headers, body));
        StatusCode::NO_CONTENT
    };
    let app = Router::new()
        .route("/hook", post(handler))
        .with_state(Arc::clone(&received));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    Receiver {
        url: format!("http://{addr}/hook"),
        received,
    }
}

fn fast() -> ClientConfig {
    ClientConfig {
        timeout: Duration::from_secs(2),
        queue: 16,
        max_attempts: 5,
        first_backoff: Duration::from_millis(10),
    }
}

fn webhook(url: &str) -> Target {
    Target::Webhook(WebhookTarget {
        url: url.into(),
        secret: SECRET.to_vec(),
    })
}

/// A real event, from a real store.
fn requested_event() -> ApprovalEvent {
    let (_dir, approvals) = store();
    let seen: Arc<Mutex<Vec<ApprovalEvent>>> = Arc::default();
    let sink_seen = Arc::clone(&seen);
    let approvals = approvals.with_events(Arc::new(move |e: &ApprovalEvent| {
        sink_seen.lock().unwrap().push(e.clone());
    }));
    create(&approvals, 1);
    let event = seen.lock().unwrap().remove(0);
    event
}

async fn until(what: &str, check: impl Fn() -> bool) {
    for _ in 0..500 {
        if check() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("timed out waiting for {what}");
}

#[tokio::test]
async fn webhook_deliveries_carry_the_event_signed_with_the_shared_secret() {
    let rx = receiver(Behaviour::Ok).await;
    let handle = Notifier::spawn(vec![webhook(&rx.url)], fast()).unwrap();
    let (_dir, approvals) = store();
    let approvals = approvals.with_events(handle.sink());
    let request = create(&approvals, 1);

    until("one delivery", || rx.received.ok.lock().unwrap().len() == 1).await;
    let (headers, body) = rx.received.ok.lock().unwrap()[0].clone();
    let timestamp = headers["x-sluice-timestamp"].to_str().unwrap();
    let signature = headers["x-sluice-signature"].to_str().unwrap();
    assert!(verify_webhook(SECRET, timestamp, &body, signature));
    assert!(!verify_webhook(b"wrong", timestamp, &body, signature));
    assert_eq!(headers["x-sluice-event"], "requested");
    assert_eq!(headers["content-type"], "application/json");
    let event: ApprovalEvent = serde_json::from_slice(&body).unwrap();
    assert_eq!(event.event, EventKind::Requested);
    assert_eq!(event.request, request);
}

#[tokio::test]
async fn a_receiver_that_fails_twice_gets_the_delivery_on_retry() {
    let rx = receiver(Behaviour::FailFirst(2)).await;
    let handle = Notifier::spawn(vec![webhook(&rx.url)], fast()).unwrap();
    let event = requested_event();
    handle.notify(&event);
    until("the third attempt", || {
        rx.received.ok.lock().unwrap().len() == 1
    })
    .await;
    assert_eq!(rx.received.hits.load(Ordering::SeqCst), 3);
    let (headers, body) = rx.received.ok.lock().unwrap()[0].clone();
    assert!(verify_webhook(
        SECRET,
        headers["x-sluice-timestamp"].to_str().unwrap(),
        &body,
        headers["x-sluice-signature"].to_str().unwrap()
    ));
}

#[tokio::test]
async fn delivery_gives_up_after_max_attempts() {
    let rx = receiver(Behaviour::AlwaysFail).await;
    let config = ClientConfig {
        max_attempts: 3,
        ..fast()
    };
    let handle = Notifier::spawn(vec![webhook(&rx.url)], config).unwrap();
    handle.notify(&requested_event());
    until("three attempts", || {
        rx.received.hits.load(Ordering::SeqCst) >= 3
    })
    .await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(rx.received.hits.load(Ordering::SeqCst), 3);
}

#[tokio::test]
async fn notify_never_blocks_when_the_receiver_hangs() {
    let rx = receiver(Behaviour::Hang).await;
    let config = ClientConfig {
        queue: 4,
        timeout: Duration::from_secs(60),
        ..fast()
    };
    let handle = Notifier::spawn(vec![webhook(&rx.url)], config).unwrap();
    let event = requested_event();
    until("the first delivery to hang", || {
        handle.notify(&event);
        rx.received.hits.load(Ordering::SeqCst) >= 1
    })
    .await;
    let started = std::time::Instant::now();
    for _ in 0..1000 {
        handle.notify(&event);
    }
    assert!(
        started.elapsed() < Duration::from_secs(1),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(rx.received.hits.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn a_hanging_target_does_not_hold_up_another_target() {
    let hanging = receiver(Behaviour::Hang).await;
    let healthy = receiver(Behaviour::Ok).await;
    let handle =
        Notifier::spawn(vec![webhook(&hanging.url), webhook(&healthy.url)], fast()).unwrap();
    let event = requested_event();
    for _ in 0..3 {
        handle.notify(&event);
    }
    until("three deliveries to the healthy target", || {
        healthy.received.ok.lock().unwrap().len() == 3
    })
    .await;
}

#[tokio::test]
async fn slack_messages_name_statement_requester_resource_and_the_approve_command() {
    let rx = receiver(Behaviour::Ok).await;
    let handle = Notifier::spawn(
        vec![Target::Slack(SlackTarget {
            url: rx.url.clone(),
        })],
        fast(),
    )
    .unwrap();
    let event = requested_event();
    handle.notify(&event);
    until("the slack post", || {
        rx.received.ok.lock().unwrap().len() == 1
    })
    .await;
    let (headers, body) = rx.received.ok.lock().unwrap()[0].clone();
    assert!(headers.get("x-sluice-signature").is_none());
    let json: serde_json::Value = serde_json::from_slice(&body).unwrap();
    let text = json["text"].as_str().unwrap();
    let id = &event.request_id;
    for needle in [
        id.as_str(),
        "agent-1",
        RESOURCE,
        TEXT,
        &format!("sluice approvals approve {id}"),
    ] {
        assert!(text.contains(needle), "{needle:?} missing from {text}");
    }
}

#[test]
fn spawning_outside_a_runtime_is_an_error_not_a_panic() {
    let err = Notifier::spawn(vec![], ClientConfig::default()).unwrap_err();
    assert!(matches!(
        err,
        sluice_approvals::notify::NotifyError::NoRuntime
    ));
}
