"""One training process per workdir: a lock file naming its holder (pid, host, start time).

Two runs writing the same checkpoints would overwrite each other's steps and the data
iterator position, so a second ``launch.train`` in a held workdir is refused with the
holder's pid and host. A lock left by a process that died (SIGKILL, a crashed VM) is
*stale*: on the same host the pid no longer runs (or runs a newer process, detected by
its start time) and the lock is taken over, logged. A lock from another host cannot be
checked from here: it is refused, and the message says which file to delete if that run
is gone. Only process 0 of a multi-process run holds the lock.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import sys
import time
from pathlib import Path
from types import TracebackType
from typing import Any, Self

log = logging.getLogger(__name__)

LOCK_NAME = "lock.json"


class WorkdirLockError(ValueError):
    """The lock file cannot be written (a full or read-only disk); names the file."""


class WorkdirBusyError(WorkdirLockError):
    """The workdir is held by another live training process; names its pid and host."""


def _process_start(pid: int) -> str | None:
    """The kernel's start time of ``pid`` (clock ticks since boot), to tell a reused pid."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return stat.rsplit(")", 1)[1].split()[19]  # field 22 counted after the command name


def _alive(pid: int, start: str | None) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # exists, owned by someone else
    now = _process_start(pid)
    return start is None or now is None or now == start


class WorkdirLock:
    """``with WorkdirLock(root): ...`` holds ``root/lock.json`` for the block."""

    def __init__(self, root: str | os.PathLike, *, enabled: bool = True) -> None:
        self.path = Path(root) / LOCK_NAME
        self.enabled = enabled
        self.held = False

    def holder(self) -> dict[str, Any] | None:
        """The lock file's content; None when there is none; {} when it cannot be parsed."""
        try:
            return json.loads(self.path.read_text())
        except FileNotFoundError:
            return None
        except (OSError, ValueError):
            return {}

    def acquire(self) -> None:
        if not self.enabled or self.held:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        me = {
            "pid": os.getpid(),
            "host": socket.gethostname(),
            "start": _process_start(os.getpid()),
            "since": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            "command": " ".join(sys.argv),
        }
        tmp = self.path.with_name(f"{LOCK_NAME}.{os.getpid()}.tmp")
        try:
            tmp.write_text(json.dumps(me, indent=2) + "\n")
        except OSError as err:
            tmp.unlink(missing_ok=True)
            raise WorkdirLockError(f"{self.path}: cannot write the lock file ({err})") from err
        try:
            for _ in range(3):
                try:
                    os.link(tmp, self.path)  # atomic: fails when a lock exists
                    self.held = True
                    return
                except FileExistsError:
                    self._take_over_if_stale()
            raise WorkdirBusyError(f"{self.path}: could not take the lock (another run raced us)")
        finally:
            tmp.unlink(missing_ok=True)

    def _take_over_if_stale(self) -> None:
        holder = self.holder()
        if holder is None:
            return  # released meanwhile: try again
        here = socket.gethostname()
        pid, host = holder.get("pid"), holder.get("host")
        if holder and host == here and isinstance(pid, int) and _alive(pid, holder.get("start")):
            raise WorkdirBusyError(
                f"{self.path.parent} is in use by training process {pid} on {host} "
                f"(since {holder.get('since')}: {holder.get('command')}); wait for it, stop it, "
                "or use another --workdir"
            )
        if holder and host != here:
            raise WorkdirBusyError(
                f"{self.path.parent} is held by process {pid} on host {host} (since "
                f"{holder.get('since')}), which this host cannot check; if that run has ended, "
                f"delete {self.path}"
            )
        why = "unreadable lock file" if not holder else f"process {pid} on {host} is not running"
        stale = self.path.with_name(f"{LOCK_NAME}.stale.{os.getpid()}")
        try:
            os.rename(self.path, stale)
        except FileNotFoundError:
            return  # another process took it over first; the next link attempt decides
        stale.unlink(missing_ok=True)
        log.warning("took over the stale lock %s (%s)", self.path, why)

    def release(self) -> None:
        if not self.held:
            return
        holder = self.holder()
        if holder and holder.get("pid") == os.getpid():
            self.path.unlink(missing_ok=True)
        self.held = False

    def __enter__(self) -> Self:
        self.acquire()
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        value: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        self.release()
