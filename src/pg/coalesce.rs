//! Statements sent together under load. Up to `direct` calls of one kind run at once, each
//! its own statement (a call alone costs one round trip, as before); calls arriving while
//! they run wait, and when one ends, everything that waited goes in one statement (e.g.
//! `= ANY($1)` or `unnest`). Under load many calls then cost the server one statement, one
//! wake-up and, for writes, one commit.
//!
//! A waiting call whose shared statement failed, or left it out, sends its own: its own
//! error then tells what went wrong.
//!
//! Owns the queues; the callers own the SQL.

use std::future::Future;
use std::sync::{Arc, Mutex, MutexGuard};

use tokio::sync::oneshot;

/// The calls of one kind.
pub(crate) struct Coalescer<I, O> {
    direct: usize,
    queue: Mutex<Queue<I, O>>,
}

impl<I, O> std::fmt::Debug for Coalescer<I, O> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Coalescer")
            .field("direct", &self.direct)
            .finish_non_exhaustive()
    }
}

struct Queue<I, O> {
    running: usize,
    waiting: Vec<(I, oneshot::Sender<O>)>,
}

/// A call's turn: alone (send the statement of one call, holding the slot until it ends), or
/// waiting for the shared statement's answer (`Err` when the call must send its own).
pub(crate) enum Turn<S: Answered> {
    Alone(S),
    Wait(oneshot::Receiver<S::Output>),
}

/// What a waiting call is answered with; the slot's type names it.
pub(crate) trait Answered {
    type Output;
}

/// A running call's place. When it ends, or its caller goes away, the calls that waited
/// meanwhile are answered by `run` in a task of its own (so none is left unanswered), or
/// the place is free.
pub(crate) struct Slot<I, O, R>
where
    I: Send + 'static,
    O: Send + 'static,
    R: Runner<I, O>,
{
    coalescer: Arc<Coalescer<I, O>>,
    run: Option<R>,
}

/// Answers a batch of waiting calls: one answer per input, in input order; `None` (or a
/// shorter list) sends those calls back to send their own statement.
pub(crate) trait Runner<I, O>: Send + 'static {
    fn run(&self, batch: Vec<I>) -> impl Future<Output = Vec<Option<O>>> + Send;
}

impl<I, O, R> Answered for Slot<I, O, R>
where
    I: Send + 'static,
    O: Send + 'static,
    R: Runner<I, O>,
{
    type Output = O;
}

impl<I: Send + 'static, O: Send + 'static> Coalescer<I, O> {
    pub(crate) fn new(direct: usize) -> Arc<Coalescer<I, O>> {
        Arc::new(Coalescer {
            direct: direct.max(1),
            queue: Mutex::new(Queue {
                running: 0,
                waiting: Vec::new(),
            }),
        })
    }

    fn queue(&self) -> MutexGuard<'_, Queue<I, O>> {
        self.queue.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The turn of a call: `input` is taken only when it waits; `run` answers the calls
    /// that wait while this one runs.
    pub(crate) fn turn<R: Runner<I, O>>(
        self: &Arc<Self>,
        input: impl FnOnce() -> I,
        run: R,
    ) -> Turn<Slot<I, O, R>> {
        let mut q = self.queue();
        if q.running < self.direct {
            q.running += 1;
            return Turn::Alone(Slot {
                coalescer: Arc::clone(self),
                run: Some(run),
            });
        }
        let (reply, answer) = oneshot::channel();
        q.waiting.push((input(), reply));
        Turn::Wait(answer)
    }

    /// A call: `own` (its statement alone) when it may run now, else the shared statement's
    /// answer, or `own` after all when the shared statement left it out.
    pub(crate) async fn call<R, E, F>(
        self: &Arc<Self>,
        input: impl FnOnce() -> I,
        run: R,
        own: impl Fn() -> F,
    ) -> Result<O, E>
    where
        R: Runner<I, O>,
        F: Future<Output = Result<O, E>>,
    {
        match self.turn(input, run) {
            Turn::Alone(_slot) => own().await,
            Turn::Wait(answer) => match answer.await {
                Ok(answered) => Ok(answered),
                // Left out: this call's own statement tells why.
                Err(_) => own().await,
            },
        }
    }

    async fn answer_waiting<R: Runner<I, O>>(self: Arc<Self>, run: R) {
        loop {
            let batch = {
                let mut q = self.queue();
                if q.waiting.is_empty() {
                    q.running -= 1;
                    return;
                }
                std::mem::take(&mut q.waiting)
            };
            let (inputs, replies): (Vec<I>, Vec<oneshot::Sender<O>>) = batch.into_iter().unzip();
            let answers = run.run(inputs).await;
            for (reply, answer) in replies.into_iter().zip(answers) {
                if let Some(answer) = answer {
                    let _ = reply.send(answer);
                }
            }
        }
    }
}

impl<I, O, R> Drop for Slot<I, O, R>
where
    I: Send + 'static,
    O: Send + 'static,
    R: Runner<I, O>,
{
    fn drop(&mut self) {
        let mut q = self.coalescer.queue();
        let runtime = tokio::runtime::Handle::try_current();
        match (q.waiting.is_empty(), runtime, self.run.take()) {
            (false, Ok(runtime), Some(run)) => {
                drop(q);
                runtime.spawn(Arc::clone(&self.coalescer).answer_waiting(run));
            }
            _ => {
                // Nothing waits, or no runtime is left (the process is ending: the waiting
                // calls send their own).
                q.waiting.clear();
                q.running -= 1;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    /// Doubles every input, counting its batches.
    #[derive(Clone)]
    struct Double(Arc<AtomicUsize>);

    impl Runner<u32, u32> for Double {
        async fn run(&self, batch: Vec<u32>) -> Vec<Option<u32>> {
            self.0.fetch_add(1, Ordering::SeqCst);
            batch.into_iter().map(|i| Some(i * 2)).collect()
        }
    }

    #[tokio::test]
    async fn calls_arriving_meanwhile_go_together_and_the_place_comes_free() {
        let c = Coalescer::<u32, u32>::new(1);
        let batches = Arc::new(AtomicUsize::new(0));
        let Turn::Alone(slot) = c.turn(|| 0, Double(Arc::clone(&batches))) else {
            panic!("the first call runs alone");
        };
        let waiting: Vec<_> = (1..=5)
            .map(|i| match c.turn(|| i, Double(Arc::clone(&batches))) {
                Turn::Wait(answer) => answer,
                Turn::Alone(_) => panic!("a second call waits"),
            })
            .collect();
        drop(slot);
        for (i, answer) in (1..=5).zip(waiting) {
            assert_eq!(answer.await.ok(), Some(i * 2));
        }
        assert_eq!(
            batches.load(Ordering::SeqCst),
            1,
            "one statement for five calls"
        );
        // Free again: the next call runs alone.
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        loop {
            if let Turn::Alone(_) = c.turn(|| 9, Double(Arc::clone(&batches))) {
                break;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "the place never came free"
            );
            tokio::task::yield_now().await;
        }
    }

    /// Answers nothing: every waiting call sends its own.
    struct Refuse;

    impl Runner<u32, u32> for Refuse {
        async fn run(&self, _batch: Vec<u32>) -> Vec<Option<u32>> {
            Vec::new()
        }
    }

    #[tokio::test]
    async fn a_call_left_out_hears_so_and_a_caller_gone_leaves_none_waiting() {
        let c = Coalescer::<u32, u32>::new(1);
        let Turn::Alone(slot) = c.turn(|| 0, Refuse) else {
            panic!("the first call runs alone");
        };
        let Turn::Wait(answer) = c.turn(|| 1, Refuse) else {
            panic!("a second call waits");
        };
        // The running call's caller goes away (its future dropped): the waiting one is
        // answered all the same, here with "send your own".
        drop(slot);
        assert!(answer.await.is_err());
    }
}
