"""gunicorn settings for `make run`: metrics from every worker are aggregated."""

from prometheus_client import multiprocess

accesslog = None  # fieldsync writes its own JSON line per request
timeout = 120
graceful_timeout = 20


def child_exit(_server, worker) -> None:
    """Forget a dead worker's live gauges so /metrics stays true."""
    multiprocess.mark_process_dead(worker.pid)
