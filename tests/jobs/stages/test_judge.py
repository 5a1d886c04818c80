"""Win-lose-pair's judge as an array: each shard judges its slice of the prompts a batch at a
time, and a shard killed mid-way (its rows on disk, the last one cut off mid-line) resumes to the
verdicts an uninterrupted shard writes, without judging again the prompts it had judged."""
import dataclasses
import json
import shutil

import pytest

from jobs.pipeline import build_stages
from jobs.stages.judge import judge_shards, read_verdicts
from jobs.stages.judge import run as judge
from retmask.io import read_jsonl
from retmask.rundir import RunDir, shard_slice

SAMPLES = ("prepare_prompts", "synthesize_chosen", "synthesize_rejected")


@pytest.fixture
def sampled_run(small_toy_run, tmp_path):
    """A win-lose-pair run whose two sides are the small toy run's samples (the judge reads only those)."""
    cfg = dataclasses.replace(small_toy_run.cfg, strategy="win-lose-pair",
                              judge=dataclasses.replace(small_toy_run.cfg.judge, kind="reference", batch_size=2))
    run = RunDir(tmp_path / "run")
    for stage in SAMPLES:
        shutil.copytree(small_toy_run.run.stage_dir(stage), run.stage_dir(stage))
    return cfg, run


def test_the_judge_is_an_array_over_the_prompts(sampled_run):
    cfg, _ = sampled_run
    stage = next(s for s in build_stages(cfg) if s.name == "judge")
    assert stage.shards(cfg) == judge_shards(cfg) == cfg.synthesis.shards
    assert stage.shards(dataclasses.replace(cfg, judge=dataclasses.replace(cfg.judge, shards=5))) == 5


def test_a_killed_shard_resumes_to_the_same_verdicts_without_judging_its_rows_again(sampled_run, tmp_path):
    cfg, run = sampled_run
    for shard in range(judge_shards(cfg)):
        judge(cfg, run, shard)
    uninterrupted = run.shard_file("judge", 0).read_text().splitlines(keepends=True)
    assert len(uninterrupted) == len(shard_slice(len(read_verdicts(run)), judge_shards(cfg), 0)) >= 5

    # killed after two batches, in the middle of writing the third
    killed = run.shard_file("judge", 0)
    killed.write_text("".join(uninterrupted[:4]) + uninterrupted[4][:17])
    judge(cfg, run, 0)
    assert killed.read_text().splitlines(keepends=True) == uninterrupted

    # the rows already there are kept as they are: marked ones come back marked
    marked = [json.dumps({**json.loads(line), "first": 99.0}, sort_keys=True) + "\n" for line in uninterrupted[:4]]
    killed.write_text("".join(marked))
    judge(cfg, run, 0)
    rows = read_jsonl(killed)
    assert [row["first"] for row in rows[:4]] == [99.0] * 4
    assert rows[4:] == [json.loads(line) for line in uninterrupted[4:]]


def test_rows_of_another_judge_are_refused(sampled_run):
    cfg, run = sampled_run
    judge(cfg, run, 0)
    changed = dataclasses.replace(cfg, judge=dataclasses.replace(cfg.judge, template=cfg.judge.template + " "))
    run.shard_file("judge", 0).write_text(run.shard_file("judge", 0).read_text().splitlines(keepends=True)[0])
    with pytest.raises(ValueError, match="different models or sampling settings"):
        judge(changed, run, 0)
