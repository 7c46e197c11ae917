"""A real moto_server on a free loopback port, for tests of the S3 paths."""

from __future__ import annotations

import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from tests.services import port_open, unavailable

CREDENTIALS = {
    "AWS_ACCESS_KEY_ID": "fieldsync-test",
    "AWS_SECRET_ACCESS_KEY": "fieldsync-test-secret",
    "AWS_DEFAULT_REGION": "us-east-1",
    # Keep the developer's own AWS files out of the credential chain.
    "AWS_CONFIG_FILE": "/dev/null",
    "AWS_SHARED_CREDENTIALS_FILE": "/dev/null",
}


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _moto_binary() -> str | None:
    beside_python = Path(sys.executable).parent / "moto_server"
    if beside_python.exists():
        return str(beside_python)
    return shutil.which("moto_server")


@contextmanager
def running_moto_server(timeout: float = 30.0) -> Iterator[str]:
    """Start moto_server, yield its endpoint URL, stop it afterwards."""
    binary = _moto_binary()
    if binary is None:
        unavailable("moto_server", "the moto[server] package is not installed")
    port = free_port()
    process = subprocess.Popen(
        [binary, "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + timeout
        while not port_open("127.0.0.1", port, timeout=0.2):
            if process.poll() is not None or time.monotonic() > deadline:
                unavailable("moto_server", f"it did not start on 127.0.0.1:{port}")
            time.sleep(0.1)
        yield f"http://127.0.0.1:{port}"
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
