"""What a local run shows while its stages run: one line per running stage (shards done, work done
of the total, rate, ETA), from the progress its shards write to the run directory.

On a terminal the lines are one block redrawn in place under the run's log lines; anywhere else
(CI, a batch log, a pipe) they are printed as plain lines, at most every `every_s` seconds and
only when they changed."""
from __future__ import annotations

import shutil
import time
from collections.abc import Callable
from typing import TextIO

from retmask.progress import ShardProgress, format_duration, format_rate, stage_rate

REDRAW_S = 0.5  # a terminal block is redrawn at most this often


def stage_line(name: str, shards: int, done_shards: int, progresses: dict[int, ShardProgress],
               running: set[int], elapsed_s: float = 0.0) -> str:
    """`[synthesize_chosen] shards 0/2, 48/128 rows, 3.1 rows/s, ETA 26s` (a lone shard adds its note);
    a stage whose shards count nothing says how long it has run."""
    head = f"[{name}]" + (f" shards {done_shards}/{shards}," if shards > 1 else "")
    if not progresses:
        return f"{head} running for {format_duration(elapsed_s)}"
    if shards == 1:
        return f"{head} {next(iter(progresses.values())).line()}"
    total = stage_rate(progresses.values(), [p for shard, p in progresses.items() if shard in running])
    parts = [f"{total.done}/{total.total if total.total is not None else '?'} {total.unit}"]
    tokens = sum(p.token_rate or 0 for shard, p in progresses.items() if shard in running and not p.finished)
    if total.rate:
        parts.append(f"{format_rate(total.rate)} {total.unit}/s")
    if tokens:
        parts.append(f"{format_rate(tokens)} tokens/s")
    if total.eta_s is not None:
        parts.append(f"ETA {format_duration(total.eta_s)}")
    return f"{head} " + ", ".join(parts)


class ProgressView:
    """`log(line)` for the run's messages, `update(lines)` for the current progress lines."""

    def __init__(self, write: Callable[[str], None] = print, every_s: float = 30.0, terminal: TextIO | None = None,
                 clock: Callable[[], float] = time.monotonic):
        self._write, self._every_s, self._terminal, self._clock = write, every_s, terminal, clock
        self._shown: list[str] = []  # the block on the terminal now
        self._lines: list[str] = []
        self._last = -float("inf")

    def log(self, line: str) -> None:
        if self._terminal is None:
            self._write(line)
            return
        self._erase()
        self._terminal.write(line + "\n")
        self._draw(self._lines)

    def update(self, make_lines: Callable[[], list[str]]) -> None:
        """Show the lines `make_lines` gives, if it is time to (it is called only then: it reads
        the shards' progress files)."""
        now = self._clock()
        if now - self._last < (REDRAW_S if self._terminal is not None else self._every_s):
            return
        lines = make_lines()
        if self._terminal is not None:
            self._lines = lines
            if lines != self._shown:
                self._erase()
                self._draw(lines)
        elif not lines:
            return  # nothing to say yet: say it as soon as there is
        elif lines != self._lines:
            self._lines = lines
            for line in lines:
                self._write(line)
        self._last = now

    def close(self) -> None:
        """Leave the terminal as plain output: the block goes, the log lines stay."""
        if self._terminal is not None:
            self._erase()
            self._terminal.flush()

    def _erase(self) -> None:
        if self._shown:
            # to the start of the block's first line, then clear to the end of the screen
            self._terminal.write(f"\x1b[{len(self._shown)}F\x1b[J")
            self._shown = []

    def _draw(self, lines: list[str]) -> None:
        width = shutil.get_terminal_size().columns - 1  # a wrapped line would break the count above
        self._shown = [line[:width] for line in lines]
        for line in self._shown:
            self._terminal.write(line + "\n")
        self._terminal.flush()
