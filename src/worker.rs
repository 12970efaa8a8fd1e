//! The inference workers: threads created at start-up (before the
//! lockdown, so they inherit it and need no `clone` afterwards) behind a
//! bounded queue. A full queue is an immediate answer, never a wait.
//!
//! The queue is a mutex-guarded deque and a condition variable rather than
//! a channel: an idle worker sleeps on one futex and is woken by one
//! futex call, only when a worker is idle. A channel's receiver spins and
//! calls `sched_yield` several times before it sleeps; on a small machine
//! shared with the reactor and the client, each yield was a context switch
//! (about two per request, measured in benches/PROFILE.md).

use std::collections::VecDeque;
use std::panic::AssertUnwindSafe;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};

use crate::model::Scratch;

/// A unit of work; it owns its reply channel.
pub type Job = Box<dyn FnOnce(&mut Scratch) + Send>;

/// The queue was full; the caller answers 503.
#[derive(Debug)]
pub struct QueueFull;

#[derive(Default)]
struct State {
    jobs: VecDeque<Job>,
    /// Workers asleep on `Shared::wake`.
    idle: usize,
    /// Every `Pool` handle is gone: workers exit once the queue is empty.
    closed: bool,
}

struct Shared {
    state: Mutex<State>,
    wake: Condvar,
    /// Jobs waiting for a worker, readable without the lock.
    queued: AtomicUsize,
    depth: usize,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        // Jobs run outside the lock, so a poisoned lock holds consistent data.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The next job, sleeping while there is none; None once closed and drained.
    fn next(&self) -> Option<Job> {
        let mut st = self.lock();
        loop {
            if let Some(job) = st.jobs.pop_front() {
                self.queued.store(st.jobs.len(), Ordering::Relaxed);
                return Some(job);
            }
            if st.closed {
                return None;
            }
            st.idle += 1;
            st = self.wake.wait(st).unwrap_or_else(|e| e.into_inner());
            st.idle -= 1;
        }
    }
}

/// Closes the queue when the last `Pool` handle goes.
struct Closer(Arc<Shared>);

impl Drop for Closer {
    fn drop(&mut self) {
        self.0.lock().closed = true;
        self.0.wake.notify_all();
    }
}

impl std::fmt::Debug for Closer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Queue").field("depth", &self.0.depth).finish_non_exhaustive()
    }
}

/// Handle to the worker threads.
#[derive(Debug, Clone)]
pub struct Pool {
    queue: Arc<Closer>,
    threads: usize,
}

impl Pool {
    /// Starts `threads` workers behind a queue of `depth` jobs.
    pub fn start(threads: usize, depth: usize) -> std::io::Result<Pool> {
        let shared = Arc::new(Shared {
            state: Mutex::new(State { jobs: VecDeque::with_capacity(depth.min(4096)), ..State::default() }),
            wake: Condvar::new(),
            queued: AtomicUsize::new(0),
            depth,
        });
        for i in 0..threads {
            let shared = shared.clone();
            std::thread::Builder::new().name(format!("warden-infer-{i}")).spawn(move || {
                let mut scratch = Scratch::default();
                while let Some(job) = shared.next() {
                    // A panicking job drops its reply sender (the client gets
                    // a 500) and must not take the worker with it.
                    if std::panic::catch_unwind(AssertUnwindSafe(|| job(&mut scratch))).is_err() {
                        tracing::error!("an inference job panicked; worker state reset");
                        scratch = Scratch::default();
                    }
                }
            })?;
        }
        Ok(Pool { queue: Arc::new(Closer(shared)), threads })
    }

    /// Queues a job or fails at once when the queue is full.
    pub fn try_submit(&self, job: Job) -> Result<(), QueueFull> {
        let shared = &self.queue.0;
        let mut st = shared.lock();
        if st.jobs.len() >= shared.depth {
            return Err(QueueFull);
        }
        st.jobs.push_back(job);
        shared.queued.store(st.jobs.len(), Ordering::Relaxed);
        // No futex call when every worker is busy: they look at the queue
        // before they sleep.
        let wake = st.idle > 0;
        drop(st);
        if wake {
            shared.wake.notify_one();
        }
        Ok(())
    }

    /// Jobs waiting for a worker.
    pub fn queued(&self) -> usize {
        self.queue.0.queued.load(Ordering::Relaxed)
    }

    pub fn threads(&self) -> usize {
        self.threads
    }

    pub fn depth(&self) -> usize {
        self.queue.0.depth
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::mpsc;

    #[test]
    fn full_queue_is_refused_at_once() {
        let pool = Pool::start(1, 1).unwrap();
        let (block_tx, block_rx) = mpsc::channel::<()>();
        let (started_tx, started_rx) = mpsc::channel::<()>();
        pool.try_submit(Box::new(move |_| {
            started_tx.send(()).unwrap();
            block_rx.recv().unwrap();
        }))
        .unwrap();
        started_rx.recv().unwrap();
        pool.try_submit(Box::new(|_| {})).unwrap();
        assert!(pool.try_submit(Box::new(|_| {})).is_err());
        block_tx.send(()).unwrap();
    }

    #[test]
    fn a_panicking_job_keeps_the_worker() {
        let pool = Pool::start(1, 4).unwrap();
        pool.try_submit(Box::new(|_| panic!("boom"))).unwrap();
        let (tx, rx) = mpsc::channel();
        pool.try_submit(Box::new(move |_| tx.send(7).unwrap())).unwrap();
        assert_eq!(rx.recv().unwrap(), 7);
    }

    #[test]
    fn every_queued_job_runs_once() {
        let pool = Pool::start(2, 64).unwrap();
        let (tx, rx) = mpsc::channel();
        for i in 0..64 {
            let tx = tx.clone();
            pool.try_submit(Box::new(move |_| tx.send(i).unwrap())).unwrap();
        }
        let mut got: Vec<i32> = (0..64).map(|_| rx.recv().unwrap()).collect();
        got.sort_unstable();
        assert_eq!(got, (0..64).collect::<Vec<_>>());
        assert!(rx.try_recv().is_err());
    }
}
