//! A few threads with large stacks that run the parser.
//!
//! The C parser, the protobuf decoder and the tree walk all recurse; a
//! hostile, deeply nested statement must meet a stack far larger than a
//! tokio worker's (2 MiB). libpg_query measures the stack it runs on and
//! reports "stack depth limit exceeded" instead of overflowing; these threads
//! give it, and the Rust code after it, ample room. The caller blocks until
//! its job is done (a parse takes tens of microseconds).
//!
//! The hop costs two thread wake-ups (about 10 µs on a busy 2-core machine,
//! as much as the parse). Spinning instead of sleeping was measured and made
//! things worse when cores are scarce, so both sides simply block.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::mpsc::{self, Receiver, Sender};
use std::sync::{Arc, Mutex};
use std::thread;

/// Stack size of a parser thread.
pub(crate) const STACK_BYTES: usize = 64 * 1024 * 1024;

type Job = Box<dyn FnOnce() + Send>;

pub(crate) struct Pool {
    jobs: Option<Sender<Job>>,
}

impl Pool {
    /// Starts `threads` threads (fewer if the system refuses some; none is a
    /// pool that answers nothing, so classification fails closed).
    pub fn new(threads: usize) -> Pool {
        let (jobs, queue) = mpsc::channel::<Job>();
        let queue = Arc::new(Mutex::new(queue));
        let mut started = 0;
        for i in 0..threads.max(1) {
            let queue = Arc::clone(&queue);
            let spawned = thread::Builder::new()
                .name(format!("sluice-sql-{i}"))
                .stack_size(STACK_BYTES)
                .spawn(move || work(&queue));
            if spawned.is_ok() {
                started += 1;
            }
        }
        Pool {
            jobs: (started > 0).then_some(jobs),
        }
    }

    /// Runs `job` on a pool thread and waits for its result; `None` if the
    /// pool is gone or the job panicked.
    pub fn run<T: Send + 'static>(&self, job: impl FnOnce() -> T + Send + 'static) -> Option<T> {
        let jobs = self.jobs.as_ref()?;
        let (reply, answer) = mpsc::sync_channel(1);
        let job: Job = Box::new(move || {
            if let Ok(value) = catch_unwind(AssertUnwindSafe(job)) {
                let _ = reply.send(value);
            }
        });
        jobs.send(job).ok()?;
        answer.recv().ok()
    }
}

fn work(queue: &Mutex<Receiver<Job>>) {
    loop {
        let job = {
            let queue = queue
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner());
            queue.recv()
        };
        match job {
            Ok(job) => job(),
            Err(_) => return, // the pool was dropped
        }
    }
}

/// The default number of parser threads: one per core, at most 8.
pub(crate) fn default_threads() -> usize {
    thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(2)
        .clamp(1, 8)
}
