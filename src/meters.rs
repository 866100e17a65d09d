//! Prometheus metrics, recorded with the `metrics` facade where events
//! happen; `ops::metrics` renders them with the database's figures. A
//! leaf, so the runtime, workers and intake can all record.
//!
//! Events are counted where they happen (a job attempt ends, a mail is
//! handed to the transport, an HTTP response leaves, an SLA alert is
//! queued). Figures that live in PostgreSQL (queue depth, outbox lag, dead
//! letters, open SLA breaches) are read at scrape time, so every replica
//! reports the same truth and none has to keep them in step.

use std::sync::OnceLock;
use std::time::Duration;

use metrics::{counter, histogram};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

/// Seconds, from a fast HTTP answer to a job near its timeout.
const DURATION_BUCKETS: [f64; 14] = [
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 120.0, 600.0,
];

static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();

/// Installs the process-wide recorder on first use and returns its handle.
pub fn handle() -> &'static PrometheusHandle {
    HANDLE.get_or_init(|| {
        let recorder = PrometheusBuilder::new()
            .set_buckets_for_metric(Matcher::Suffix("_seconds".into()), &DURATION_BUCKETS)
            .expect("the bucket list is not empty")
            .build_recorder();
        let handle = recorder.handle();
        if metrics::set_global_recorder(recorder).is_err() {
            tracing::warn!(
                "a metrics recorder was installed already; /metrics shows only scrape-time figures"
            );
        }
        describe();
        handle
    })
}

fn describe() {
    use metrics::{describe_counter, describe_gauge, describe_histogram};
    describe_counter!(
        "fulfil_jobs_total",
        "Job attempts ended, by kind and outcome (succeeded, retried, dead)."
    );
    describe_histogram!(
        "fulfil_job_duration_seconds",
        "Time of one job attempt, by kind and outcome."
    );
    describe_counter!(
        "fulfil_mails_total",
        "Mails handed to the transport, by outcome (sent, failed)."
    );
    describe_counter!(
        "fulfil_http_requests_total",
        "HTTP responses, by method, route template and status."
    );
    describe_histogram!(
        "fulfil_http_request_duration_seconds",
        "Time to answer, by method and route template."
    );
    describe_counter!(
        "fulfil_sla_alerts_total",
        "SLA alerts mailed to operators, by stage (at_risk, breached)."
    );
    describe_gauge!(
        "fulfil_queue_waiting",
        "Jobs waiting for an attempt (queued or retrying), by kind."
    );
    describe_gauge!("fulfil_queue_running", "Jobs in an attempt now, by kind.");
    describe_gauge!(
        "fulfil_queue_oldest_waiting_seconds",
        "Age of the oldest waiting job, by kind."
    );
    describe_gauge!(
        "fulfil_outbox_unpublished",
        "Outbox rows due but not yet published."
    );
    describe_gauge!(
        "fulfil_outbox_lag_seconds",
        "Age of the oldest due, unpublished outbox row (0 when none)."
    );
    describe_gauge!(
        "fulfil_dead_letters_open",
        "Dead letters not replayed, by kind."
    );
    describe_gauge!(
        "fulfil_sla_open_breaches",
        "License requests still open past their SLA deadline."
    );
}

/// A job attempt ended: `succeeded`, `retried` or `dead`.
pub fn job_finished(kind: &str, outcome: &'static str, took: Duration) {
    let labels = [("kind", kind.to_owned()), ("outcome", outcome.to_owned())];
    counter!("fulfil_jobs_total", &labels).increment(1);
    histogram!("fulfil_job_duration_seconds", &labels).record(took.as_secs_f64());
}

/// A mail was handed to the transport: `sent` or `failed`.
pub fn mail_handed_over(outcome: &'static str) {
    counter!("fulfil_mails_total", "outcome" => outcome).increment(1);
}

pub fn http_answered(method: &str, route: &str, status: u16, took: Duration) {
    let (method, route) = (method.to_owned(), route.to_owned());
    counter!("fulfil_http_requests_total", "method" => method.clone(), "route" => route.clone(),
             "status" => status.to_string())
    .increment(1);
    histogram!("fulfil_http_request_duration_seconds", "method" => method, "route" => route)
        .record(took.as_secs_f64());
}

pub fn sla_alert_queued(stage: &str) {
    counter!("fulfil_sla_alerts_total", "stage" => stage.to_owned()).increment(1);
}
