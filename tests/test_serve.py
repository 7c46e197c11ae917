"""The `make run` stack: migrate, load demo data, serve with gunicorn, survive a restart."""

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

BIN = Path(sys.executable).parent


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def get(url: str) -> tuple[int, dict]:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:  # noqa: S310 (loopback)
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


def fieldsync(env, *args) -> str:
    result = subprocess.run(
        [str(BIN / "fieldsync"), *args], env=env, capture_output=True, text=True, check=True
    )
    return result.stdout


def serve(env, port):
    metrics_dir = Path(env["FIELDSYNC_VAR_DIR"]) / "metrics"
    metrics_dir.mkdir(parents=True, exist_ok=True)
    process = subprocess.Popen(
        [
            str(BIN / "gunicorn"),
            "--config",
            "python:server.gunicorn_conf",
            "--workers",
            "2",
            "--bind",
            f"127.0.0.1:{port}",
            "server.wsgi:app",
        ],
        env={**env, "PROMETHEUS_MULTIPROC_DIR": str(metrics_dir)},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            if get(f"http://127.0.0.1:{port}/healthz")[0] == 200:
                return process
        except (urllib.error.URLError, ConnectionError):
            time.sleep(0.2)
    process.kill()
    pytest.fail("gunicorn did not answer /healthz within 60 s: " + process.stderr.read().decode())


def stop(process):
    process.send_signal(signal.SIGTERM)
    process.wait(timeout=30)
    process.stderr.close()


@pytest.mark.slow
def test_served_app_is_ready_and_keeps_its_data_across_restarts(tmp_path):
    env = {
        **os.environ,
        "FIELDSYNC_VAR_DIR": str(tmp_path / "var"),
        "FIELDSYNC_DATABASE_URL": "",
        "FIELDSYNC_LOG_LEVEL": "warning",
    }
    fieldsync(env, "db", "upgrade")
    assert "demo data loaded" in fieldsync(env, "demo", "load")
    port = free_port()
    process = serve(env, port)
    try:
        status, body = get(f"http://127.0.0.1:{port}/readyz")
        assert (status, body["migrations"]) == (200, "current")
        for _ in range(4):
            get(f"http://127.0.0.1:{port}/healthz")
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
            metrics = response.read().decode()
        assert 'endpoint="health.healthz"' in metrics
    finally:
        stop(process)

    assert "already present" in fieldsync(env, "demo", "load")
    process = serve(env, port)
    try:
        assert get(f"http://127.0.0.1:{port}/readyz")[0] == 200
    finally:
        stop(process)
    assert (tmp_path / "var" / "fieldsync.db").exists()
