"""Row-level resumable shard output: a jsonl file appended a batch at a time.

Each append is flushed and fsynced before the next batch starts; a restart reads back the whole
rows and cuts a torn last line (a kill mid-write), so no row is lost or written twice.
"""
from __future__ import annotations

import json
import os
from pathlib import Path


class RowFile:
    def __init__(self, path: str | Path):
        self.path = Path(path)

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
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.path, "a") as handle:
            handle.write("".join(json.dumps(row, sort_keys=True) + "\n" for row in rows))
            handle.flush()
            os.fsync(handle.fileno())


def read_shards(paths: list[Path]) -> list[dict]:
    rows: list[dict] = []
    for path in paths:
        rows.extend(RowFile(path).existing())
    return rows
