"""What a local run shows while it runs: on a terminal a block of progress lines redrawn in place
(toy training's steps, synthesis' rows), elsewhere plain lines at most every few seconds."""
import io
import os
import pty
import select
import subprocess
import sys

from jobs.progress_view import ProgressView, stage_line
from retmask.progress import ShardProgress
from tests.conftest import REPO
from tests.helpers.clock import Clock


def test_on_a_terminal_the_block_is_redrawn_under_the_log_lines():
    terminal, clock = io.StringIO(), Clock()
    view = ProgressView(terminal=terminal, clock=clock)
    view.update(lambda: ["[detect] shards 0/2, 3/8 instances"])
    clock.now += 1
    view.log("[toy_model] done in 3.0s")
    view.update(lambda: ["[detect] shards 1/2, 6/8 instances"])
    view.close()
    assert terminal.getvalue() == (
        "[detect] shards 0/2, 3/8 instances\n"
        "\x1b[1F\x1b[J[toy_model] done in 3.0s\n[detect] shards 0/2, 3/8 instances\n"  # a log line goes above
        "\x1b[1F\x1b[J[detect] shards 1/2, 6/8 instances\n"  # the block is rewritten in place
        "\x1b[1F\x1b[J")  # and removed at the end: the log lines stay


def test_elsewhere_lines_come_at_most_every_few_seconds_and_only_when_changed():
    said, clock = [], Clock()
    view = ProgressView(write=said.append, every_s=30, clock=clock)
    asked = []

    def lines():
        asked.append(clock.now)
        return [f"[train] {int(clock.now) // 60}/10 steps"]

    for _ in range(1200):  # 10 minutes in half seconds
        view.update(lines)
        clock.now += 0.5
    assert said == [f"[train] {minute}/10 steps" for minute in range(10)]
    assert len(asked) == 20  # the progress files are read only when a line is due


def test_a_stage_line_sums_its_shards_and_a_lone_shard_speaks_for_itself():
    shards = {0: ShardProgress("rows", 30, 64, 0.0, 10.0), 1: ShardProgress("rows", 18, 64, 0.0, 10.0, tokens=240)}
    assert stage_line("synthesize_chosen", 2, 0, shards, {0, 1}) == \
        "[synthesize_chosen] shards 0/2, 48/128 rows, 4.8 rows/s, 24 tokens/s, ETA 17s"
    assert stage_line("evaluate_base", 7, 4, {}, {4}, elapsed_s=65) == "[evaluate_base] shards 4/7, running for 1m05s"
    step = {0: ShardProgress("steps", 5, 20, 0.0, 10.0, note="loss 0.69")}
    assert stage_line("train", 1, 0, step, {0}) == "[train] 5/20 steps, 0.5 steps/s, ETA 30s; loss 0.69"


def retmask_run(tmp_path, run_dir: str, *extra: str, terminal: bool) -> str:
    """`retmask run configs/tiny.yaml` up to the chosen synthesis, with a toy recipe of its own (20
    steps, so that it trains), on a pseudo-terminal or a pipe; returns what it printed."""
    command = [sys.executable, "-m", "jobs.cli", "run", str(REPO / "configs" / "tiny.yaml"), "--run-dir",
               str(tmp_path / run_dir), "--until", "synthesize_chosen", "--set", "toy_model.steps=20",
               "--set", "toy_model.warmup_steps=2", *extra]
    env = {**os.environ, "RETMASK_CACHE": str(tmp_path / "cache"), "HF_HUB_OFFLINE": "1", "COLUMNS": "200"}
    if not terminal:
        done = subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True, timeout=900)
        assert done.returncode == 0, done.stdout + done.stderr
        return done.stdout
    leader, follower = pty.openpty()
    process = subprocess.Popen(command, cwd=REPO, env=env, stdin=follower, stdout=follower, stderr=follower)
    os.close(follower)
    out = b""
    while True:
        ready, _, _ = select.select([leader], [], [], 900)
        assert ready, "no output for 900 s"
        try:
            chunk = os.read(leader, 65536)
        except OSError:  # the terminal closed: the run ended
            break
        if not chunk:
            break
        out += chunk
    assert process.wait(60) == 0, out.decode(errors="replace")
    return out.decode(errors="replace")


def test_a_run_shows_its_progress_on_a_terminal_and_in_a_pipe(tmp_path):
    shown = retmask_run(tmp_path, "on-terminal", terminal=True)
    assert "\x1b[J" in shown  # redrawn in place
    # the lines as the shards count (rate and ETA once counted: stage_line's test; not timed here)
    assert any("[toy_model]" in line and "/20 steps" in line for line in shown.splitlines())
    assert any("[synthesize_chosen] shards" in line and "/128 rows" in line for line in shown.splitlines())
    assert "finished in" in shown

    printed = retmask_run(tmp_path, "in-pipe", "--progress-every", "0.5", terminal=False)  # the toy model is cached
    assert "\x1b[" not in printed
    # plain lines as the shards count (their rate and ETA once a batch is through: stage_line's test)
    lines = [line for line in printed.splitlines() if line.startswith("[synthesize_chosen] shards")]
    assert any("/128 rows" in line for line in lines), printed
