//! The worker's Prometheus metrics (`GET /metrics` on the task API with the
//! dispatch key, or without a key on `--metrics-listen`, a loopback address).

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::{Registry, Unit};
use wire::metrics::{duration_buckets, ProcessMetrics};
use wire::worker::RemoteTask;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct KindLabels {
    kind: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OutcomeLabels {
    kind: String,
    outcome: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct GpuLabels {
    gpu: String,
}

type Histograms = Family<KindLabels, Histogram, fn() -> Histogram>;

fn duration_histogram() -> Histogram {
    Histogram::new(duration_buckets())
}

fn label(kind: RemoteTask) -> KindLabels {
    KindLabels { kind: kind.name().into() }
}

/// The worker's metrics.
pub struct WorkerMetrics {
    registry: Registry,
    process: ProcessMetrics,
    tasks: Family<OutcomeLabels, Counter>,
    running: Family<KindLabels, Gauge>,
    duration: Histograms,
    slots: Gauge,
    gpus: Gauge,
    gpu_proofs: Family<GpuLabels, Counter>,
}

impl WorkerMetrics {
    /// Every metric at zero; `slots` and `gpus` as the worker offers them.
    pub fn new(slots: u32, gpus: usize) -> Self {
        let mut registry = Registry::default();
        let process = ProcessMetrics::register(&mut registry);
        let m = Self {
            registry: Registry::default(),
            process,
            tasks: Family::default(),
            running: Family::default(),
            duration: Family::new_with_constructor(duration_histogram),
            slots: Gauge::default(),
            gpus: Gauge::default(),
            gpu_proofs: Family::default(),
        };
        m.slots.set(i64::from(slots));
        m.gpus.set(gpus as i64);
        let k = registry.sub_registry_with_prefix("kiln_worker");
        k.register(
            "tasks",
            "Tasks ended on this worker, by kind and outcome (done, failed)",
            m.tasks.clone(),
        );
        k.register("tasks_running", "Tasks proving now, by kind", m.running.clone());
        k.register_with_unit(
            "task_duration",
            "Proving time of tasks that succeeded, by kind",
            Unit::Seconds,
            m.duration.clone(),
        );
        k.register("slots", "Tasks this worker runs at once", m.slots.clone());
        k.register("gpus", "GPUs this worker proves on", m.gpus.clone());
        k.register("gpu_proofs", "Proofs made on each GPU", m.gpu_proofs.clone());
        Self { registry, ..m }
    }

    /// A task of `kind` started proving; the guard counts its end.
    pub fn start(&self, kind: RemoteTask) -> TaskTimer<'_> {
        self.running.get_or_create(&label(kind)).inc();
        TaskTimer { metrics: self, kind, start: std::time::Instant::now(), ended: false }
    }

    /// The metrics now, in the exposition format.
    pub fn scrape(&self) -> String {
        self.process.update();
        wire::metrics::encode(&self.registry)
    }
}

/// A task being proven; dropped without [`TaskTimer::finish`] (a panic),
/// it counts as failed.
pub struct TaskTimer<'a> {
    metrics: &'a WorkerMetrics,
    kind: RemoteTask,
    start: std::time::Instant,
    ended: bool,
}

impl Drop for TaskTimer<'_> {
    fn drop(&mut self) {
        if !self.ended {
            self.end(false, &[]);
        }
    }
}

impl TaskTimer<'_> {
    /// The task ended: done (proved on `gpus`, none for the CPU) or failed.
    pub fn finish(mut self, done: bool, gpus: &[String]) {
        self.end(done, gpus);
    }

    fn end(&mut self, done: bool, gpus: &[String]) {
        self.ended = true;
        let m = self.metrics;
        let kind = label(self.kind);
        m.running.get_or_create(&kind).dec();
        if done {
            m.duration.get_or_create(&kind).observe(self.start.elapsed().as_secs_f64());
            for g in gpus {
                m.gpu_proofs.get_or_create(&GpuLabels { gpu: g.clone() }).inc();
            }
        }
        let outcome = OutcomeLabels { kind: kind.kind, outcome: if done { "done" } else { "failed" }.into() };
        m.tasks.get_or_create(&outcome).inc();
    }
}
