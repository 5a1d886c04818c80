"""Row-level resume of a synthesis shard: killed mid-way, restarted, it ends with exactly the rows
of an uninterrupted run — none lost, none twice."""
import os
import signal
import subprocess
import sys
import time

from jobs.runner import load_run_config
from retmask.config import load_config, save_config
from retmask.rows import RowFile
from retmask.rundir import RunDir
from tests.conftest import REPO

OVERRIDES = ["synthesis.max_prompts=48", "synthesis.shards=1", "synthesis.batch_size=4",
             "synthesis.sampling.max_new_tokens=12"]


def make_run(root):
    cfg = load_config(REPO / "configs" / "tiny.yaml", OVERRIDES)
    run = RunDir(root)
    save_config(cfg, run.config_path)
    return run


def shard_process(run: RunDir):
    code = f"from jobs.runner import run_shard; run_shard({str(run.root)!r}, 'synthesize_chosen', 0, threads=1)"
    return subprocess.Popen([sys.executable, "-c", code], cwd=REPO, env={**os.environ, "PYTHONPATH": str(REPO)})


def rows(run: RunDir):
    return RowFile(run.shard_file("synthesize_chosen", 0)).existing()


def test_killed_shard_resumes_to_the_uninterrupted_rows(tmp_path, toy_model_dir):
    whole = make_run(tmp_path / "whole")
    assert shard_process(whole).wait(timeout=300) == 0
    expected = rows(whole)
    assert len(expected) == 48

    cut = make_run(tmp_path / "cut")
    process = shard_process(cut)
    deadline = time.time() + 300
    while len(rows(cut)) < 12 and time.time() < deadline:
        time.sleep(0.05)
    process.send_signal(signal.SIGKILL)
    process.wait()
    written = len(rows(cut))
    assert 12 <= written < 48, f"the kill should land mid-shard, {written} rows were written"
    assert not RunDir(cut.root).done_shards("synthesize_chosen", "x")

    # a half-written batch on disk (as a kill inside a write would leave) is dropped and redone
    with open(cut.shard_file("synthesize_chosen", 0), "a") as handle:
        handle.write('{"prompt_id": "toy-99999", "response": "partial"}\n{"prompt_id": "to')
    assert shard_process(cut).wait(timeout=300) == 0
    assert rows(cut) == expected
    cfg = load_run_config(cut)
    assert len(cut.done_shards("synthesize_chosen", _fingerprint(cfg))) == 1


def _fingerprint(cfg):
    from jobs.pipeline import build_stages, stage_fingerprints

    return stage_fingerprints(cfg, build_stages(cfg))["synthesize_chosen"]
