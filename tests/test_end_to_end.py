"""The whole toy RetMask run through `retmask run`, as a user runs it: real processes, every stage."""
import json
import subprocess
import sys

import pytest

from retmask.io import read_json
from tests.conftest import REPO


def retmask(*args, cwd):
    return subprocess.run([sys.executable, "-m", "jobs.cli", *args], cwd=cwd, capture_output=True, text=True,
                          env={**__import__("os").environ, "PYTHONPATH": str(REPO)})


def full_run(workdir, *overrides):
    result = retmask("run", str(REPO / "configs" / "tiny.yaml"), "--run-dir", str(workdir / "run"),
                     *[arg for override in overrides for arg in ("--set", override)], cwd=workdir)
    assert result.returncode == 0, result.stdout + result.stderr
    (workdir / "stdout.txt").write_text(result.stdout)
    return workdir


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory, toy_model_dir):
    """One full run of the CI-sized toy config on the shipped toy model."""
    return full_run(tmp_path_factory.mktemp("e2e"))


@pytest.fixture(scope="module")
def second_seed_run(tmp_path_factory):
    """The same run on the toy model of another seed, so the demo's outcome is the recipe's, not
    one lucky draw of weights."""
    return full_run(tmp_path_factory.mktemp("e2e-seed"), f"toy_model.seed={SECOND_SEED}")


SECOND_SEED = 1
BOTH_SEEDS = pytest.mark.parametrize("seed_run", ["finished_run", "second_seed_run"])


def test_every_stage_wrote_its_outputs_and_the_report(finished_run):
    run = finished_run / "run"
    manifest = read_json(run / "manifest.json")
    assert all(stage["state"] == "done" for stage in manifest["stages"].values()), manifest
    for path in ("stages/merge_scores/retrieval_scores.json", "stages/select_heads/heads.json",
                 "stages/mask/model/model.safetensors.index.json", "stages/pairs/dataset",
                 "stages/train/model/config.json", "stages/evaluate/niah.json", "report/index.md",
                 "report/retrieval_scores.png", "report/dpo_training.png", "report/retrieval_before_after.png"):
        assert (run / path).exists(), path
    assert len(list((run / "stages/detect/shards").glob("*.jsonl"))) == 2  # an array stage really sharded


@BOTH_SEEDS
def test_ablation_hurts_niah_more_than_random_masks_of_the_same_size(seed_run, request):
    metrics = read_json(request.getfixturevalue(seed_run) / "run" / "report" / "metrics.json")
    acc = metrics["niah_accuracy"]
    controls = [v for k, v in acc.items() if k.startswith("random_control")]
    assert acc["base"] >= 0.8
    assert acc["ablated"] < acc["base"] - 0.3
    assert acc["ablated"] < sum(controls) / len(controls)


@BOTH_SEEDS
def test_nearly_every_prompt_makes_a_pair_and_dpo_learns(seed_run, request):
    run = request.getfixturevalue(seed_run) / "run"
    stats = read_json(run / "stages/pairs/statistics.json")
    assert stats["pairs"] >= 0.9 * stats["prompts"], stats
    log = [json.loads(line) for line in (run / "stages/train/train_log.jsonl").read_text().splitlines()]
    assert len(log) >= 4
    assert log[-1]["rewards/margins"] > log[0]["rewards/margins"] + 0.1
    health = read_json(run / "report/metrics.json")["health"]
    assert health["learned"] and health["final_reward_accuracy"] > 0.5, health


@BOTH_SEEDS
def test_the_run_states_its_health_on_the_terminal_and_atop_the_report(seed_run, request):
    workdir = request.getfixturevalue(seed_run)
    health = read_json(workdir / "run/report/metrics.json")["health"]
    stdout = (workdir / "stdout.txt").read_text()
    assert f"health: {health['line']}" in stdout and "verdict: DPO learned" in stdout
    report = (workdir / "run/report/index.md").read_text().splitlines()
    assert report[2] == f"**Health:** {health['line']}." and report[4] == "**Verdict: DPO learned**"



def test_rerun_skips_finished_stages_and_changed_key_reruns_dependents(finished_run):
    run = finished_run / "run"
    again = retmask("run", str(REPO / "configs" / "tiny.yaml"), "--run-dir", str(run), cwd=finished_run)
    assert again.returncode == 0, again.stderr
    assert again.stdout.count("up to date, skipped") == len(read_json(run / "manifest.json")["stages"])

    changed = retmask("run", str(REPO / "configs" / "tiny.yaml"), "--run-dir", str(run),
                      "--set", "evaluation.random_control_draws=2", cwd=finished_run)
    assert changed.returncode == 0, changed.stderr
    skipped = {line.split("]")[0].strip("[") for line in changed.stdout.splitlines() if "skipped" in line}
    assert "train" in skipped and "detect" in skipped
    assert "evaluate" not in skipped and "report" not in skipped
    assert list((run / "superseded").glob("evaluate-*")), "earlier evaluate outputs are kept, not deleted"


def test_malformed_config_stops_before_any_job(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text((REPO / "configs" / "tiny.yaml").read_text().replace("max_prompts:", "max_promts:"))
    result = retmask("run", str(bad), "--run-dir", str(tmp_path / "run"), cwd=tmp_path)
    assert result.returncode == 2
    assert "synthesis.max_promts: unknown key" in result.stderr and "max_prompts" in result.stderr
    assert not (tmp_path / "run").exists()


def test_report_compares_two_strategies(finished_run):
    """A random-mask run beside the retrieval-mask one, then `retmask report` over both."""
    other = retmask("run", str(REPO / "configs" / "tiny.yaml"), "--run-dir", str(finished_run / "random"),
                    "--set", "strategy=random-mask", cwd=finished_run)
    assert other.returncode == 0, other.stdout + other.stderr
    heads = read_json(finished_run / "random/stages/select_heads/heads.json")
    assert heads["strategy"] == "random-mask" and len(heads["heads"]) == len(heads["retrieval_heads"])
    out = finished_run / "comparison"
    result = retmask("report", str(finished_run / "run"), str(finished_run / "random"), "--out", str(out),
                     cwd=finished_run)
    assert result.returncode == 0, result.stderr
    index = (out / "index.md").read_text()
    assert "## Table 1" in index and "/ retrieval-mask |" in index and "/ random-mask |" in index
    for figure in ("fig4_score_distribution.png", "fig5_retrieval_change.png", "concentration_vs_gain.png"):
        assert (out / figure).is_file(), figure
    assert (out / "table1.csv").read_text().count("\n") >= 3


def test_sft_baseline_trains_on_the_chosen_responses_alone(finished_run):
    result = retmask("run", str(REPO / "configs" / "tiny.yaml"), "--run-dir", str(finished_run / "sft"),
                     "--set", "strategy=sft", "--until", "train", cwd=finished_run)
    assert result.returncode == 0, result.stdout + result.stderr
    run = finished_run / "sft"
    assert not (run / "stages/synthesize_rejected").exists() and not (run / "stages/mask").exists()
    summary = read_json(run / "stages/train/summary.json")
    assert summary["trainer"] == "sft" and summary["global_step"] > 0
    truncation = read_json(run / "stages/train/truncation.json")
    assert truncation["longest"] > 20  # whole rendered conversations, in tokens
