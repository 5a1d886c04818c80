"""Row-level resume of a synthesis shard: killed mid-way, restarted, it ends with exactly the rows
of an uninterrupted run — none lost, none twice."""
import os
import signal
import subprocess
import sys
import time

from jobs.stages.prompts import run as prepare_prompts, shard_prompts
from jobs.stages.synthesize import length_batches
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
    prepare_prompts(cfg, run, 0)
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
    prompts = shard_prompts(load_run_config(whole), whole, 0)[0]
    assert [row["prompt_id"] for row in expected] == [prompts[i].prompt_id for batch in length_batches(prompts, 4)
                                                      for i in batch]  # batched by length

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


def test_prompt_seeds_are_per_prompt_and_per_stage():
    from jobs.stages.synthesize import prompt_seeds

    chosen = prompt_seeds(0, "synthesize_chosen", 0, 8)
    assert prompt_seeds(0, "synthesize_chosen", 4, 4) == chosen[4:]  # the same whatever the batching
    assert len(set(chosen)) == 8 and not set(chosen) & set(prompt_seeds(0, "synthesize_rejected", 0, 8))


def test_hf_batches_hold_prompts_of_like_length_longest_first():
    """Padding costs the HF backend a batch's longest prompt for every row: batches are formed over
    the prompts sorted by length, and are the same on every restart."""
    from types import SimpleNamespace

    from jobs.stages.synthesize import length_batches

    lengths = [5, 300, 12, 80, 300, 1, 44, 7, 150]
    prompts = [SimpleNamespace(messages=[{"role": "system", "content": "x" * (n // 2)},
                                         {"role": "user", "content": "y" * (n - n // 2)}]) for n in lengths]
    batches = length_batches(prompts, 4)
    assert batches == [[1, 4, 8, 3], [6, 2, 7, 0], [5]]  # ties keep prompt order
    assert length_batches(prompts, 4) == batches


def test_the_same_model_in_both_roles_draws_independent_samples(tmp_path, toy_model_dir):
    """Chosen and rejected are independent samples: with one model in both roles, their texts
    differ wherever sampling can differ."""
    from jobs.stages.synthesize import synthesize

    run = RunDir(tmp_path / "run")
    cfg = load_config(REPO / "configs" / "tiny.yaml",
                      OVERRIDES[:3] + ["synthesis.max_prompts=16", "synthesis.sampling.temperature=3.0"])
    cfg.model.path = str(toy_model_dir)
    prepare_prompts(cfg, run, 0)
    for stage in ("synthesize_chosen", "synthesize_rejected"):
        synthesize(cfg, run, 0, stage, str(toy_model_dir))
    chosen, rejected = (RowFile(run.shard_file(stage, 0)).existing()
                        for stage in ("synthesize_chosen", "synthesize_rejected"))
    differing = sum(a["response"] != b["response"] for a, b in zip(chosen, rejected))
    assert differing >= 12, [(a["response"], b["response"]) for a, b in zip(chosen, rejected)]


def test_rows_of_two_sampling_settings_are_never_paired(tmp_path):
    """A shard queued under one temperature and requeued under another would mix two experiments:
    pairs refuses, naming the fingerprints."""
    import pytest

    from jobs.stages.pairs import sample_rows

    run = RunDir(tmp_path)
    RowFile(run.shard_file("synthesize_rejected", 0)).append([{"prompt_id": "a", "fingerprint": "t07"}])
    RowFile(run.shard_file("synthesize_rejected", 1)).append([{"prompt_id": "b", "fingerprint": "t09"}])
    with pytest.raises(ValueError, match="rows made under different models or sampling settings "
                                         r"\(fingerprints t07, t09\)"):
        sample_rows(run, "synthesize_rejected")
