"""A tau sweep (`study.taus`, paper Table 6) for real on the toy: one run per tau, detection
computed once for both, different masks, and a report whose tau table holds the runs' own numbers
and names the best tau. Plus the plan of a study without taus, which a sweep must not change."""
import os
import subprocess
import sys

import pytest

from jobs.pipeline import build_stages, stage_fingerprints
from jobs.study import plan_runs
from retmask.io import read_json
from retmask.study_config import load_study, study_run_config
from retmask.typed_yaml import ConfigError
from tests.conftest import REPO

SWEEP = REPO / "configs/toy-tau-sweep.yaml"
SMALL = ["study.seeds=[1]", "synthesis.max_prompts=32", "train.max_steps=4", "train.per_device_batch_size=8",
         "train.global_batch_size=8", "evaluation.niah_lengths=[32, 128, 4]", "evaluation.niah_depths=3",
         "evaluation.random_control_draws=1"]
LONG_FROM = 96


@pytest.fixture(scope="module")
def sweep(tmp_path_factory, toy_model_dir):
    tmp_path = tmp_path_factory.mktemp("tau")
    args = [sys.executable, "-m", "jobs.cli", "study", str(SWEEP), "--dir", str(tmp_path / "study"),
            *[a for s in SMALL for a in ("--set", s)]]
    result = subprocess.run(args, cwd=tmp_path, capture_output=True, text=True,
                            env={**os.environ, "PYTHONPATH": str(REPO)})
    assert result.returncode == 0, result.stdout + result.stderr
    return tmp_path / "study", result.stdout


def _long_recall(run) -> float:
    """The trained model's mean ROUGE recall at lengths >= LONG_FROM, read here from the run's own output."""
    trained = next(e for e in read_json(run / "stages/evaluate/niah.json") if e["model"] == "trained")
    values = [r["rouge_recall"] for r in trained["records"] if r["length"] >= LONG_FROM]
    return sum(values) / len(values)


def test_a_tau_sweep_shares_detection_masks_differently_and_chooses_the_best_tau(sweep):
    root, stdout = sweep
    runs = {tau: root / "runs" / f"retrieval-mask-tau{tau}-seed1" for tau in ("0.5", "0.9")}
    assert sorted(p.name for p in (root / "runs").iterdir()) == sorted(p.name for p in runs.values())
    first, second = runs["0.5"], runs["0.9"]
    detection = "stages/detect/shards/00000.jsonl"
    assert os.stat(first / detection).st_ino == os.stat(second / detection).st_ino  # one detection, shared
    assert not (second / "logs/detect").exists(), "the second tau ran detection again"
    heads = {tau: read_json(run / "stages/select_heads/heads.json")["heads"] for tau, run in runs.items()}
    assert len(heads["0.5"]) > len(heads["0.9"]) > 0 and set(heads["0.9"]) < set(heads["0.5"])

    tau = read_json(root / "report/study_results.json")["tau"]
    assert tau["metric"] == "niah_rouge_recall"
    own = {float(t): _long_recall(run) for t, run in runs.items()}
    for row in tau["rows"]:
        assert row["values"] == {"1": pytest.approx(own[row["tau"]])}
        assert row["heads"] == {"1": len(heads[f"{row['tau']:g}"])}
    best = max(own.values())
    assert tau["chosen"] == min(t for t, value in own.items() if value == best)  # argmax, ties to the smaller
    assert [row["chosen"] for row in tau["rows"]] == [row["tau"] == tau["chosen"] for row in tau["rows"]]
    index = (root / "report/index.md").read_text()
    assert "Table 6 in miniature" in index and f"**tau = {tau['chosen']:g}**" in index
    assert f"-> tau {tau['chosen']:g}" in stdout


def test_a_study_without_taus_plans_the_runs_it_always_did(tmp_path, toy_model_dir):
    study, experiment, base = load_study(REPO / "configs/toy-study.yaml",
                                         ["study.strategies=[retrieval-mask, sft, win-lose-pair]"])
    runs = plan_runs(study, experiment, base, tmp_path, [1])
    assert [r.run.root.name for r in runs] == ["retrieval-mask-seed1", "sft-seed1", "win-lose-pair-seed1"]
    for run in runs:  # the names and fingerprints a study had before taus existed
        cfg = study_run_config(experiment, base, f"toy-study-{run.strategy}-seed1", run.strategy, 1, "",
                               study.overrides.get(run.strategy, []))
        assert run.cfg.name == cfg.name and run.cfg.selection.tau == 0.5 and run.tau is None
        assert run.prints == stage_fingerprints(cfg, build_stages(cfg))
    sweep_study, sweep_experiment, sweep_base = load_study(SWEEP)
    sweep_runs = plan_runs(sweep_study, sweep_experiment, sweep_base, tmp_path, [1])
    assert [r.cfg.selection.tau for r in sweep_runs] == [0.5, 0.9]
    # tau does not reach detection: one fingerprint for both taus (and for toy-study's tau 0.5);
    # merge_scores reads selection (its summary counts heads >= tau), so each tau merges anew
    assert sweep_runs[0].prints["detect"] == sweep_runs[1].prints["detect"] == runs[0].prints["detect"]
    for stage in ("merge_scores", "select_heads"):
        assert sweep_runs[0].prints[stage] != sweep_runs[1].prints[stage]


@pytest.mark.parametrize("taus, message", [
    ("[0.1, 0.1]", "[0.1] given twice"), ("[0, 0.5]", "[0.0] outside (0, 1]"), ("[0.5, 1.5]", "[1.5] outside (0, 1]")])
def test_bad_taus_are_refused_with_what_would_be_right(taus, message):
    with pytest.raises(ConfigError, match=r"study\.taus: .*distinct retrieval-score thresholds in \(0, 1\]") as error:
        load_study(SWEEP, [f"study.taus={taus}"])
    assert message in str(error.value)


def test_an_unknown_proxy_and_a_sweep_without_retmask_are_refused():
    with pytest.raises(ConfigError, match="tau_metric: 'helmet_judge' is not one of niah_rouge_recall"):
        load_study(SWEEP, ["study.tau_metric=helmet_judge"])
    with pytest.raises(ConfigError, match="tau is chosen on retrieval-mask runs"):
        load_study(SWEEP, ["study.strategies=[sft]"])


@pytest.mark.parametrize("name", ["llama-3.1-8b-tau-sweep.yaml", "qwen3-8b-tau-sweep.yaml"])
def test_the_shipped_8b_sweeps_are_the_papers_taus_on_helmet(name):
    study, experiment, _ = load_study(REPO / "configs" / name)
    assert study.taus == [0.05, 0.1] and study.tau_metric == "helmet" and study.strategies == ["retrieval-mask"]
    assert experiment["selection"]["rule"] == "threshold" and experiment["model"]["path"] == ""  # the user's checkpoint
