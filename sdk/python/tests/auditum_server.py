"""`auditum serve` ($AUDITUM_BIN) on a loopback port, for the tests and the benchmark."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import threading
import time

LISTENING = re.compile(r"auditum listening on (\S+)")


def auditum_bin() -> str:
    path = os.environ.get("AUDITUM_BIN")
    if not path:
        raise RuntimeError("AUDITUM_BIN is not set: point it at the auditum server binary (e.g. target/debug/auditum)")
    if not os.access(path, os.X_OK):
        raise RuntimeError(f"AUDITUM_BIN={path} is not an executable file")
    return path


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class Server:
    """`auditum serve` in a data directory; stop() and start() again keep the port and the data."""

    def __init__(self, data_dir: str, extra_args: list[str] | None = None) -> None:
        self.data_dir = data_dir
        self.extra_args = extra_args or []
        self.port = free_port()
        self.process: subprocess.Popen | None = None
        self.starts = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 60.0) -> "Server":
        self.starts += 1
        log = open(os.path.join(self.data_dir, f"server-{self.starts}.log"), "wb")
        args = [auditum_bin(), "serve", "--listen", f"127.0.0.1:{self.port}", "--metrics-listen", "127.0.0.1:0", "--http-listen", "",
                "--data-dir", os.path.join(self.data_dir, "data"), "--seal-interval", "1s"] + self.extra_args
        self.process = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=log)
        ready = threading.Event()

        def drain(stream) -> None:  # read the ready line, then keep the pipe empty
            for line in iter(stream.readline, b""):
                if LISTENING.search(line.decode(errors="replace")):
                    ready.set()

        threading.Thread(target=drain, args=(self.process.stdout,), daemon=True).start()
        deadline = time.monotonic() + timeout
        while not ready.wait(0.05):
            if self.process.poll() is not None or time.monotonic() > deadline:
                log.flush()
                with open(log.name, "rb") as handle:
                    tail = handle.read()[-4000:].decode(errors="replace")
                raise RuntimeError(f"auditum serve did not start (exit {self.process.poll()}):\n{tail}")
        return self

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(60)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.process = None
