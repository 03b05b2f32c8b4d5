"""Prometheus metrics shared by the use cases and the API middleware."""

from prometheus_client import Counter, Gauge, Histogram

_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60)

STAGE_SECONDS = Histogram(
    "medseg_stage_seconds", "Server time per stage of an operation",
    ["operation", "stage"], buckets=_BUCKETS)
REQUEST_SECONDS = Histogram(
    "medseg_request_seconds", "HTTP request latency", ["method", "route", "status"],
    buckets=_BUCKETS)
ERRORS = Counter("medseg_errors_total", "Error answers by code", ["code"])
# read from Redis at each scrape: every replica reports the same queues (the worker autoscaler
# takes the max over them, deploy/k8s/workers-hpa.yaml)
JOBS_QUEUED = Gauge("medseg_jobs_queued", "Jobs waiting for a worker, per priority queue",
                    ["priority"])
JOB_WORKERS = Gauge("medseg_job_workers", "Live job workers (their presence beats in Redis)")


def observe_stages(operation: str, seconds: dict[str, float]) -> None:
    """Record an operation's seconds per stage (in the process that serves /metrics)."""
    for stage, value in seconds.items():
        STAGE_SECONDS.labels(operation=operation, stage=stage).observe(value)
