//! The inference workers: threads created at start-up (before the
//! lockdown, so they inherit it and need no `clone` afterwards) behind a
//! bounded queue. A full queue is an immediate answer, never a wait.

use std::cell::RefCell;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use crossbeam_channel::{Receiver, Sender, TrySendError};

use crate::model::Scratch;

/// A unit of work; it owns its reply channel.
pub type Job = Box<dyn FnOnce(&mut Scratch) + Send>;

/// The queue was full; the caller answers 503.
#[derive(Debug)]
pub struct QueueFull;

/// Handle to the worker threads.
#[derive(Debug, Clone)]
pub struct Pool {
    tx: Sender<Job>,
    queued: Arc<AtomicUsize>,
    threads: usize,
    depth: usize,
}

impl Pool {
    /// Starts `threads` workers behind a queue of `depth` jobs.
    pub fn start(threads: usize, depth: usize) -> std::io::Result<Pool> {
        let (tx, rx) = crossbeam_channel::bounded::<Job>(depth);
        let queued = Arc::new(AtomicUsize::new(0));
        for i in 0..threads {
            let rx: Receiver<Job> = rx.clone();
            let queued = queued.clone();
            std::thread::Builder::new().name(format!("warden-infer-{i}")).spawn(move || {
                let mut scratch = Scratch::default();
                while let Ok(job) = rx.recv() {
                    queued.fetch_sub(1, Ordering::Relaxed);
                    run_guarded(job, &mut scratch);
                }
            })?;
        }
        Ok(Pool { tx, queued, threads, depth })
    }

    /// Queues a job or fails at once when the queue is full.
    pub fn try_submit(&self, job: Job) -> Result<(), QueueFull> {
        self.queued.fetch_add(1, Ordering::Relaxed);
        match self.tx.try_send(job) {
            Ok(()) => Ok(()),
            Err(TrySendError::Full(_) | TrySendError::Disconnected(_)) => {
                self.queued.fetch_sub(1, Ordering::Relaxed);
                Err(QueueFull)
            }
        }
    }

    /// Runs a job on the calling thread instead of a worker, with that
    /// thread's own scratch space and the same panic guard. It skips the
    /// hand-off to a worker and the reply back, two thread wake-ups that
    /// cost more than a small model's whole inference; the caller decides
    /// when the job is small enough to hold its thread for.
    pub fn run_here(&self, job: Job) {
        thread_local! {
            static SCRATCH: RefCell<Scratch> = RefCell::new(Scratch::default());
        }
        SCRATCH.with_borrow_mut(|scratch| run_guarded(job, scratch));
    }

    /// Jobs waiting for a worker.
    pub fn queued(&self) -> usize {
        self.queued.load(Ordering::Relaxed)
    }

    pub fn threads(&self) -> usize {
        self.threads
    }

    pub fn depth(&self) -> usize {
        self.depth
    }
}

/// Runs one job. A panicking job drops its reply sender (the client gets
/// a 500) and must not take the thread with it; its scratch is reset.
fn run_guarded(job: Job, scratch: &mut Scratch) {
    if std::panic::catch_unwind(AssertUnwindSafe(|| job(scratch))).is_err() {
        tracing::error!("an inference job panicked; worker state reset");
        *scratch = Scratch::default();
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
    fn a_job_run_here_runs_on_the_calling_thread_and_survives_a_panic() {
        let pool = Pool::start(1, 4).unwrap();
        pool.run_here(Box::new(|_| panic!("boom")));
        let (tx, rx) = mpsc::channel();
        let me = std::thread::current().id();
        pool.run_here(Box::new(move |_| tx.send(std::thread::current().id()).unwrap()));
        assert_eq!(rx.try_recv().unwrap(), me);
        assert_eq!(pool.queued(), 0);
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
