//! The driver: one task that feeds the [`Supervisor`] (received datagrams, its timer, kernel
//! events and results, control requests, signals) and executes the [`Effect`]s it returns. It
//! is the only place that reads the clock. XFRM kernel operations run on a worker thread
//! ([`KernelWorker`]) so that a slow netlink call never stalls the IKE loop; an effect queued
//! after a kernel operation waits for that operation's result (see [`super::supervisor`]).

use std::collections::{HashMap, VecDeque};
use std::time::Instant;

use rand::CryptoRng;
use tokio::signal::unix::Signal as UnixSignal;
use tokio::sync::mpsc;

use super::Reloader;
use super::ctl::CtlRequest;
use super::keylog::KeyLog;
use super::net::{Datagram, Net};
use super::supervisor::Reloaded;
use super::supervisor::{CtlId, Effect, OpId, Signal, Supervisor};
use super::updown::UpdownRunner;
use crate::control::Reply;
use crate::kernel::{KernelError, KernelEvent, KernelIpsec, KernelOp, KernelOutput};

/// Inputs of the driver other than the supervisor itself.
pub struct Inputs {
    /// Received IKE datagrams.
    pub datagrams: mpsc::Receiver<Datagram>,
    /// Control requests.
    pub ctl: mpsc::Receiver<CtlRequest>,
    /// Kernel events (ACQUIRE, EXPIRE).
    pub kernel: mpsc::Receiver<KernelEvent>,
    /// SIGTERM.
    pub sigterm: UnixSignal,
    /// SIGINT (handled like SIGTERM).
    pub sigint: UnixSignal,
    /// SIGHUP (reload).
    pub sighup: UnixSignal,
}

type OpResult = (OpId, Result<KernelOutput, KernelError>);

/// Where kernel operations are applied, in order. The XFRM kernel's run on a thread of their
/// own, so that a slow netlink call never stalls the IKE loop; operations travel there in
/// batches (what the supervisor asked for in one go, and whatever queued up meanwhile) and so
/// do their results: one thread hand-off per batch, not per operation. The in-memory kernel
/// (`--kernel none`) never blocks, so its operations are applied at once on the driver's
/// thread: a hand-off would cost more than the operations.
pub enum KernelWorker {
    /// A kernel thread.
    Thread {
        /// Batches to apply.
        ops: std::sync::mpsc::Sender<Vec<(OpId, KernelOp)>>,
        /// Their results.
        results: mpsc::UnboundedReceiver<Vec<OpResult>>,
        /// The thread.
        thread: std::thread::JoinHandle<()>,
    },
    /// Applied on the driver's thread.
    Inline(Box<dyn KernelIpsec + Send>),
}

impl KernelWorker {
    /// Moves `kernel` to a new thread.
    pub fn spawn(mut kernel: Box<dyn KernelIpsec + Send>) -> std::io::Result<Self> {
        let (ops, rx) = std::sync::mpsc::channel::<Vec<(OpId, KernelOp)>>();
        let (tx, results) = mpsc::unbounded_channel();
        let thread = std::thread::Builder::new()
            .name("kernel".into())
            .spawn(move || {
                while let Ok(mut batch) = rx.recv() {
                    batch.extend(rx.try_iter().flatten());
                    if tx.send(apply(kernel.as_mut(), batch)).is_err() {
                        return;
                    }
                }
            })?;
        Ok(Self::Thread {
            ops,
            results,
            thread,
        })
    }

    /// Applies a batch: on the driver's thread, giving the results at once; or on the kernel
    /// thread, the results to come from [`KernelWorker::results`]. `Err` when the kernel
    /// thread is gone.
    fn submit(&mut self, batch: Vec<(OpId, KernelOp)>) -> Result<Option<Vec<OpResult>>, ()> {
        match self {
            Self::Thread { ops, .. } => ops.send(batch).map(|()| None).map_err(|_| ()),
            Self::Inline(kernel) => Ok(Some(apply(kernel.as_mut(), batch))),
        }
    }

    /// The results of the next batch applied on the kernel thread (never, inline).
    async fn results(&mut self) -> Option<Vec<OpResult>> {
        match self {
            Self::Thread { results, .. } => results.recv().await,
            Self::Inline(_) => std::future::pending().await,
        }
    }

    /// Lets the thread finish the operations sent and waits for it.
    fn join(self) {
        if let Self::Thread { ops, thread, .. } = self {
            drop(ops);
            if thread.join().is_err() {
                tracing::error!(target: "kernel", "the kernel thread panicked");
            }
        }
    }
}

fn apply(kernel: &mut dyn KernelIpsec, batch: Vec<(OpId, KernelOp)>) -> Vec<OpResult> {
    batch
        .into_iter()
        .map(|(id, op)| (id, op.apply(kernel)))
        .collect()
}

/// A configuration load running on a blocking thread: the reloader comes back with the result.
type Loading = tokio::task::JoinHandle<(Reloader, Result<Reloaded, String>)>;

/// The driver state.
pub struct Driver<R> {
    sup: Supervisor<R>,
    net: Net,
    /// `None` while a load runs on a blocking thread ([`Driver::loading`]).
    reloader: Option<Reloader>,
    /// The load in progress and who asked for it.
    loading: Option<(Option<CtlId>, Loading)>,
    /// Loads asked for while one runs, in order.
    loads_waiting: VecDeque<Option<CtlId>>,
    worker: KernelWorker,
    key_log: Option<KeyLog>,
    updown: UpdownRunner,
    ctls: HashMap<CtlId, mpsc::UnboundedSender<Reply>>,
    next_ctl: u64,
    /// Effects not executed yet (held behind kernel operations in flight).
    queue: VecDeque<Effect>,
    ops_sent: u64,
    ops_done: u64,
}

impl<R: CryptoRng> Driver<R> {
    /// A driver executing `sup`'s effects.
    pub fn new(
        sup: Supervisor<R>,
        net: Net,
        reloader: Reloader,
        worker: KernelWorker,
        key_log: Option<KeyLog>,
    ) -> Self {
        Self {
            sup,
            net,
            reloader: Some(reloader),
            loading: None,
            loads_waiting: VecDeque::new(),
            worker,
            key_log,
            updown: UpdownRunner::spawn(),
            ctls: HashMap::new(),
            next_ctl: 0,
            queue: VecDeque::new(),
            ops_sent: 0,
            ops_done: 0,
        }
    }

    /// Start-up actions (traps, `auto=start`); returns once their kernel operations are done,
    /// so that the daemon reports ready with its traps in place.
    pub async fn start(&mut self) {
        self.sup.start(Instant::now());
        self.execute().await;
        while self.ops_done < self.ops_sent {
            let Some(results) = self.worker.results().await else {
                return;
            };
            self.kernel_done(results);
            self.execute().await;
        }
    }

    fn kernel_done(&mut self, results: Vec<OpResult>) {
        let now = Instant::now();
        for (op, r) in results {
            self.ops_done += 1;
            self.sup.handle_kernel_done(now, op, r);
        }
    }

    /// Runs until shut down; returns after every SA and policy was removed.
    pub async fn run(mut self, mut inputs: Inputs) {
        while !(self.sup.is_stopped() && self.queue.is_empty()) {
            let timeout = self.sup.poll_timeout().map(tokio::time::Instant::from_std);
            tokio::select! {
                Some(d) = inputs.datagrams.recv() => {
                    self.sup.handle_datagram(Instant::now(), d.local, d.remote, &d.data);
                }
                Some(req) = inputs.ctl.recv() => {
                    let id = CtlId(self.next_ctl);
                    self.next_ctl += 1;
                    self.ctls.insert(id, req.replies);
                    self.sup.handle_request(Instant::now(), id, req.request);
                }
                Some(ev) = inputs.kernel.recv() => self.sup.handle_kernel_event(Instant::now(), ev),
                Some(results) = self.worker.results() => self.kernel_done(results),
                () = sleep_until(timeout), if timeout.is_some() => {
                    self.sup.handle_timeout(Instant::now());
                }
                Some(()) = inputs.sigterm.recv() => self.sup.handle_signal(Instant::now(), Signal::Term),
                Some(()) = inputs.sigint.recv() => self.sup.handle_signal(Instant::now(), Signal::Int),
                Some(()) = inputs.sighup.recv() => self.sup.handle_signal(Instant::now(), Signal::Hup),
                done = loaded(&mut self.loading), if self.loading.is_some() => self.config_loaded(done),
            }
            self.execute().await;
        }
        self.worker.join();
        // The `down` calls of the CHILD_SAs just removed (each bounded by its timeout).
        self.updown.finish().await;
    }

    /// Executes effects in order; anything but a kernel operation waits while operations
    /// are in flight.
    async fn execute(&mut self) {
        loop {
            while let Some(e) = self.sup.poll_effect() {
                self.queue.push_back(e);
            }
            let blocked = self.ops_done < self.ops_sent;
            match self.queue.front() {
                None => return,
                Some(Effect::Kernel(..)) => self.send_kernel_ops(),
                Some(_) if blocked => return,
                Some(_) => {
                    if let Some(effect) = self.queue.pop_front() {
                        self.effect(effect).await;
                    }
                }
            }
        }
    }

    /// Sends the kernel operations at the front of the queue to the worker, as one batch.
    fn send_kernel_ops(&mut self) {
        let mut batch = Vec::new();
        while let Some(Effect::Kernel(..)) = self.queue.front() {
            if let Some(Effect::Kernel(id, op)) = self.queue.pop_front() {
                batch.push((id, op));
            }
        }
        self.send_ops(batch);
    }

    fn send_ops(&mut self, batch: Vec<(OpId, KernelOp)>) {
        self.ops_sent += batch.len() as u64; // ok: usize fits in u64
        match self.worker.submit(batch) {
            Ok(Some(results)) => self.kernel_done(results),
            Ok(None) => {}
            Err(()) => tracing::error!(target: "kernel", "the kernel thread is gone"),
        }
    }

    async fn effect(&mut self, effect: Effect) {
        match effect {
            Effect::Transmit(t) => {
                if let Err(e) = self.net.send(t.local, t.remote, &t.data).await {
                    tracing::warn!(target: "net", "{e}");
                }
            }
            Effect::Kernel(id, op) => self.send_ops(vec![(id, op)]),
            Effect::Reply(ctl, reply) => {
                let last = matches!(reply, Reply::Done(_));
                if let Some(tx) = self.ctls.get(&ctl) {
                    // ikectl may have gone away; that is not an error for the daemon.
                    let _ = tx.send(reply);
                }
                if last {
                    self.ctls.remove(&ctl);
                }
            }
            Effect::LoadConfig(from) => {
                self.loads_waiting.push_back(from);
                self.start_load();
            }
            Effect::Keepalive { local, remote } => {
                if let Err(e) = self.net.send_keepalive(local, remote).await {
                    tracing::warn!(target: "net", "NAT keepalive: {e}");
                }
            }
            Effect::Updown(call) => self.updown.call(*call),
            Effect::KeyLog(record) => {
                if let Some(Err(e)) = self.key_log.as_mut().map(|k| k.write(&record)) {
                    tracing::warn!(target: "dmn", "{e}");
                }
            }
        }
    }

    /// Starts the next waiting load on a blocking thread, unless one runs: reading the files
    /// (includes, globs, DNS) never stalls IKE, the control socket or signals.
    fn start_load(&mut self) {
        while self.loading.is_none() {
            let Some(from) = self.loads_waiting.pop_front() else {
                return;
            };
            let Some(mut reloader) = self.reloader.take() else {
                let e = "the configuration loader failed earlier: restart ikev2d".to_string();
                self.sup.config_loaded(Instant::now(), from, Err(e));
                continue;
            };
            let task = tokio::task::spawn_blocking(move || {
                let result = reloader.load();
                (reloader, result)
            });
            self.loading = Some((from, task));
        }
    }

    /// A load finished: listen on any new local address, hand the result to the supervisor,
    /// start the next waiting load.
    fn config_loaded(&mut self, done: LoadDone) {
        let (from, result) = match done {
            Ok((from, reloader, result)) => {
                self.reloader = Some(reloader);
                (from, result)
            }
            Err(from) => {
                tracing::error!(target: "cfg", "the configuration loader thread failed");
                (from, Err("the configuration loader failed".into()))
            }
        };
        let loaded = result.and_then(|loaded| {
            for addr in loaded.conns.iter().filter_map(|c| c.spec.local_addr) {
                self.net.add_address(addr).map_err(|e| e.to_string())?;
            }
            Ok(loaded)
        });
        self.sup.config_loaded(Instant::now(), from, loaded);
        self.start_load();
    }
}

/// A finished load: the requester, the reloader back and the result; `Err(requester)` when
/// the loading thread panicked (the reloader is lost: later loads fail).
type LoadDone = Result<(Option<CtlId>, Reloader, Result<Reloaded, String>), Option<CtlId>>;

/// Waits for the load in progress (the select branch runs only while there is one).
async fn loaded(loading: &mut Option<(Option<CtlId>, Loading)>) -> LoadDone {
    let Some((from, task)) = loading.as_mut() else {
        return std::future::pending().await;
    };
    let from = *from;
    let r = task.await;
    *loading = None;
    match r {
        Ok((reloader, result)) => Ok((from, reloader, result)),
        Err(_) => Err(from),
    }
}

async fn sleep_until(t: Option<tokio::time::Instant>) {
    match t {
        Some(t) => tokio::time::sleep_until(t).await,
        None => std::future::pending().await,
    }
}
