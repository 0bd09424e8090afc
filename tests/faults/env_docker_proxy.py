"""A unix-socket proxy in front of the Docker daemon that can play "dockerd is restarting".

sbx (docker-py and the compose CLI) is pointed at it with ``DOCKER_HOST=unix://<socket>``; every
byte is passed to the real daemon's socket until :meth:`outage` is called: then every open
connection is cut and, for the outage's seconds, every new connection is accepted and closed at
once — what a client sees while dockerd restarts. The shared daemon itself is never touched.
"""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from pathlib import Path
from types import TracebackType

UPSTREAM = "/var/run/docker.sock"


class DockerOutageProxy:
    def __init__(self, path: Path, upstream: str = UPSTREAM) -> None:
        self.path = path
        self.upstream = upstream
        self.refused = 0  # connections cut or refused during outages
        self._down_until = 0.0
        self._lock = threading.Lock()
        self._open: set[socket.socket] = set()
        self._server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self._stop = threading.Event()

    @property
    def docker_host(self) -> str:
        return f"unix://{self.path}"

    def __enter__(self) -> DockerOutageProxy:
        self._server.bind(str(self.path))
        self._server.listen(64)
        self._server.settimeout(0.2)
        threading.Thread(target=self._accept, daemon=True, name="docker-proxy").start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._stop.set()
        self._server.close()
        self._cut_all()
        self.path.unlink(missing_ok=True)

    def outage(self, seconds: float) -> None:
        """Cut every connection now and refuse new ones for ``seconds``."""
        with self._lock:
            self._down_until = time.monotonic() + seconds
        self._cut_all()

    @property
    def down(self) -> bool:
        return time.monotonic() < self._down_until

    def _cut_all(self) -> None:
        with self._lock:
            victims, self._open = list(self._open), set()
            if self.down:
                self.refused += len(victims) // 2  # client and upstream side of each
        for sock in victims:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            sock.close()

    def _accept(self) -> None:
        while not self._stop.is_set():
            try:
                client, _ = self._server.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            if self.down:
                with self._lock:
                    self.refused += 1
                client.close()
                continue
            upstream = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            try:
                upstream.connect(self.upstream)
            except OSError:
                client.close()
                upstream.close()
                continue
            with self._lock:
                self._open.update((client, upstream))
            for src, dst in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pump, args=(src, dst), daemon=True).start()

    def _pump(self, src: socket.socket, dst: socket.socket) -> None:
        try:
            while data := src.recv(1 << 16):
                dst.sendall(data)
        except OSError:
            pass
        finally:
            for sock in (src, dst):
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)
                sock.close()
            with self._lock:
                self._open.discard(src)
                self._open.discard(dst)
