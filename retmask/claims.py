"""One writer per shard: before a shard writes anything it claims the shard in the run directory,
naming its attempt (host, process, scheduler job). A second attempt of the same shard (a task
resubmitted while the first still ran, a requeue racing its original) waits while a live attempt
holds the claim, and afterwards writes nothing if the holder finished the shard. A writer checks
the claim is still its own before each batch of rows and before marking the shard done, so an
attempt that lost its claim stops without writing."""
from __future__ import annotations

import fcntl
import os
import socket
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

from retmask.errors import UserError
from retmask.io import read_json, write_json

POLL_S = 5.0


class ClaimLost(UserError):
    """Another attempt holds the shard: this one must not write."""


@dataclass(frozen=True)
class Attempt:
    host: str
    pid: int
    job_id: str  # the scheduler's id of this task ("" for a local shard)
    started: float

    @property
    def key(self) -> str:
        return f"{self.host}:{self.pid}:{self.job_id}"

    def __str__(self) -> str:
        return f"{'job ' + self.job_id + ', ' if self.job_id else ''}pid {self.pid} on {self.host}"


def this_attempt(job_id: str = "") -> Attempt:
    return Attempt(socket.gethostname(), os.getpid(), job_id, time.time())


def process_alive_here(attempt: Attempt) -> bool | None:
    """Whether the attempt's process still runs, when it ran on this host (None: another host)."""
    if attempt.host != socket.gethostname():
        return None
    try:
        os.kill(attempt.pid, 0)
    except OSError:
        return False
    return True


class ShardClaim:
    def __init__(self, folder: Path, shard: int):
        self.path = Path(folder) / f"{shard:05d}.json"

    def holder(self) -> Attempt | None:
        try:
            return Attempt(**read_json(self.path))
        except (OSError, ValueError, TypeError):
            return None

    def take(self, mine: Attempt, alive: Callable[[Attempt], bool], finished: Callable[[], bool]) -> bool:
        """Claim the shard for `mine`, waiting while another attempt that `alive` says still runs
        holds it. False (claim not taken) when that attempt finished the shard meanwhile."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        while True:
            with open(self.path.with_suffix(".lock"), "a") as lock:
                fcntl.flock(lock, fcntl.LOCK_EX)
                other = self.holder()
                if other is None or other.key == mine.key or not alive(other):
                    if finished():
                        return False
                    write_json(self.path, asdict(mine))
                    return True
            time.sleep(POLL_S)

    def check(self, mine: Attempt) -> None:
        holder = self.holder()
        if holder is None or holder.key != mine.key:
            raise ClaimLost(f"{self.path.parent.parent.name} shard {int(self.path.stem)} is now held by "
                            f"{holder or 'nobody'}, not by this attempt ({mine}); it stops without writing")

    def release(self, mine: Attempt) -> None:
        holder = self.holder()
        if holder is not None and holder.key == mine.key:
            self.path.unlink(missing_ok=True)
