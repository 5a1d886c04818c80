"""Row-level resumable shard output: a jsonl file appended a batch at a time.

Each append is flushed and fsynced before the next batch starts; the shard's own restart reads back
the whole rows and cuts a torn last line (a kill mid-write), so no row is lost or written twice.
Readers of a finished shard never change its file: a torn line there is damage, refused.
"""
from __future__ import annotations

import json
import os
from pathlib import Path


class RowFile:
    def __init__(self, path: str | Path, guard=lambda: None):
        self.path = Path(path)
        self.guard = guard  # called before each append: raises when this writer may no longer write

    def existing(self) -> list[dict]:
        """Rows already written; a trailing partial line is removed from the file."""
        if not self.path.is_file():
            return []
        data = self.path.read_bytes()
        complete = data[: data.rfind(b"\n") + 1]
        if len(complete) != len(data):
            with open(self.path, "r+b") as handle:
                handle.truncate(len(complete))
        return [json.loads(line) for line in complete.decode().splitlines() if line.strip()]

    def append(self, rows: list[dict]) -> None:
        if not rows:
            return
        self.guard()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.path, "a") as handle:
            handle.write("".join(json.dumps(row, sort_keys=True) + "\n" for row in rows))
            handle.flush()
            os.fsync(handle.fileno())


class DamagedShard(ValueError):
    """A finished shard's file is not as its shard wrote it."""


def read_finished(path: Path) -> list[dict]:
    """The rows of a finished shard, read without changing the file: one that ends in a partial row
    was cut after its shard finished, and is refused (resume reruns the shard), never trimmed."""
    data = Path(path).read_bytes()
    if data and not data.endswith(b"\n"):
        raise DamagedShard(f"{path} ends in a partial row: it was cut after its shard finished; `retmask resume` (or "
                           "rerunning the same command) reruns that shard")
    return [json.loads(line) for line in data.decode().splitlines() if line.strip()]


def read_shards(paths: list[Path]) -> list[dict]:
    rows: list[dict] = []
    for path in paths:
        rows.extend(read_finished(path))
    return rows
