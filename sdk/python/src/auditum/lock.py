"""Ownership of a spool directory: `spool_dir/lock` holds `<pid> <hostname>\\n` (sdk/SPOOL.md).

Created with O_EXCL; a lock whose pid is dead on this host is taken over by writing a temporary file,
renaming it over the lock and re-reading it. The owner also holds fcntl.flock on the file.
"""

from __future__ import annotations

import fcntl
import os
import socket
import threading

from .errors import SpoolLockedError

_open_here: set[str] = set()  # spool dirs owned by clients of this process
_open_here_lock = threading.Lock()


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:  # a killed child not yet reaped by its parent is a zombie: dead for our purpose
        with open(f"/proc/{pid}/stat", "rb") as stat:
            return stat.read().rsplit(b")", 1)[1].split()[0] != b"Z"
    except (OSError, IndexError):
        return True


def _read(path: str) -> tuple[int | None, str]:
    try:
        with open(path, "r", encoding="utf-8", errors="replace") as handle:
            text = handle.read()
    except FileNotFoundError:
        return None, ""
    parts = text.strip().split(" ", 1)
    try:
        return int(parts[0]), (parts[1] if len(parts) > 1 else "")
    except ValueError:
        return None, ""


class SpoolLock:
    """Held for the client's lifetime; release() removes the file if it still names this process."""

    def __init__(self, directory: str) -> None:
        self.directory = os.path.realpath(directory)
        self.path = os.path.join(self.directory, "lock")
        self._fd: int | None = None
        self._content = f"{os.getpid()} {socket.gethostname()}\n"
        with _open_here_lock:
            if self.directory in _open_here:
                raise SpoolLockedError(f"spool directory {self.directory} is already owned by another client in this process (pid {os.getpid()})")
            try:
                self._acquire()
            except BaseException:
                self._close_fd()
                raise
            _open_here.add(self.directory)

    def _acquire(self) -> None:
        for _ in range(5):
            try:
                fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
            except FileExistsError:
                if self._take_over_stale():
                    return
                continue
            os.write(fd, self._content.encode())
            os.fsync(fd)
            self._fd = fd
            self._flock()
            return
        raise SpoolLockedError(f"could not take the lock of spool directory {self.directory} (it keeps changing)")

    def _take_over_stale(self) -> bool:
        pid, host = _read(self.path)
        me, my_host = os.getpid(), socket.gethostname()
        if pid is not None:
            if host != my_host:
                raise SpoolLockedError(
                    f"spool directory {self.directory} is locked by pid {pid} on host {host!r}, not this host ({my_host!r}); "
                    f"if that host no longer uses it, delete {self.path}")
            # Our own pid here means a previous process of ours with the same pid (a container restart):
            # no client of this process owns the directory (checked by the caller), so it is stale.
            if pid != me and _pid_alive(pid):
                raise SpoolLockedError(f"spool directory {self.directory} is in use by another live client: pid {pid} (lock file {self.path})")
        temporary = f"{self.path}.{me}.tmp"
        with open(temporary, "w", encoding="utf-8") as handle:
            handle.write(self._content)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, self.path)
        fd = os.open(self.path, os.O_RDWR)
        self._fd = fd
        self._flock()
        if _read(self.path) != (me, my_host):  # another process renamed its claim over ours
            self._close_fd()
            return False
        return True

    def _flock(self) -> None:
        assert self._fd is not None
        try:
            fcntl.flock(self._fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise SpoolLockedError(f"spool directory {self.directory} is locked (flock held by another process)") from None

    def _close_fd(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

    def release(self) -> None:
        if self._fd is None:
            return
        if _read(self.path) == (os.getpid(), socket.gethostname()):
            os.unlink(self.path)
        self._close_fd()
        with _open_here_lock:
            _open_here.discard(self.directory)
