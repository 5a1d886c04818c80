"""`retmask study` for real on the toy: a small grid whose shared stages are computed once and
taken by the other runs, a win-lose-pair run ranked by the reference judge, and a report that
answers every claim (or says it did not run)."""
import os
import subprocess
import sys

import pytest

from retmask.config import read_saved_config
from retmask.io import read_json, read_jsonl
from retmask.retrieval import rouge1_recall
from tests.conftest import REPO

SMALL = ["study.strategies=[retrieval-mask, sft, win-lose-pair]", "study.seeds=[1, 2]",
         "synthesis.max_prompts=32", "train.per_device_batch_size=8", "train.global_batch_size=8",
         "evaluation.niah_lengths=[32, 128, 4]", "evaluation.niah_depths=3", "evaluation.random_control_draws=2"]


def study(tmp_path, *extra):
    args = [sys.executable, "-m", "jobs.cli", "study", str(REPO / "configs/toy-study.yaml"), "--dir",
            str(tmp_path / "study"), *[a for s in [*SMALL, *extra] for a in ("--set", s)]]
    return subprocess.run(args, cwd=tmp_path, capture_output=True, text=True,
                          env={**os.environ, "PYTHONPATH": str(REPO)})


@pytest.fixture(scope="module")
def small_study(tmp_path_factory, toy_model_dir):
    tmp_path = tmp_path_factory.mktemp("study")
    result = study(tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    return tmp_path / "study", result.stdout


def _inode(path):
    return os.stat(path).st_ino


def test_stages_shared_by_the_grid_are_computed_once(small_study):
    root, stdout = small_study
    runs = root / "runs"
    first = runs / "retrieval-mask-seed1"
    others = ["sft-seed1", "win-lose-pair-seed1", "retrieval-mask-seed2", "sft-seed2", "win-lose-pair-seed2"]
    for name in others:
        # detection and the untrained models' NIAH: computed by the first run, taken by the rest
        for stage_file in ("stages/detect/shards/00000.jsonl", "stages/evaluate_base/models/00000.json"):
            assert _inode(runs / name / stage_file) == _inode(first / stage_file), (name, stage_file)
        assert not (runs / name / "logs/detect").exists(), f"{name} ran detection again"
    chosen = "stages/synthesize_chosen/shards/00000.jsonl"
    assert _inode(runs / "sft-seed1" / chosen) == _inode(first / chosen)  # one seed, one chosen set
    assert read_jsonl(runs / "retrieval-mask-seed2" / chosen) != read_jsonl(first / chosen)  # another seed draws anew
    # win-lose-pair samples at its own temperature (study.overrides): its chosen set is its own
    assert _inode(runs / "win-lose-pair-seed1" / chosen) != _inode(first / chosen)
    assert "shared: taken from" in stdout


def test_win_lose_pairs_put_the_judges_preference_on_the_chosen_side(small_study):
    root, _ = small_study
    run = root / "runs/win-lose-pair-seed1"
    prompts = read_saved_config(run / "config.yaml").synthesis.prompts
    references = {row["id"]: row["reference"] for row in read_jsonl(prompts)}
    verdicts = {row["prompt_id"]: row for shard in sorted((run / "stages/judge/shards").glob("*.jsonl"))
                for row in read_jsonl(shard)}
    pairs = read_jsonl(run / "stages/pairs/pairs.jsonl")
    assert pairs, "no win-lose pair was kept"
    statistics = read_json(run / "stages/pairs/statistics.json")
    ties = sum(1 for v in verdicts.values() if v["first"] == v["second"])
    assert statistics["dropped"].get("judge_tie", 0) == ties == statistics["judge"]["ties"]
    assert statistics["judge"]["tie_rate"] == round(ties / len(verdicts), 4)
    for pair in pairs:
        verdict = verdicts[pair["prompt_id"]]
        assert verdict["first"] != verdict["second"]
        chosen, rejected = pair["chosen"][0]["content"], pair["rejected"][0]["content"]
        winner, loser = max(verdict["first"], verdict["second"]), min(verdict["first"], verdict["second"])
        # the judge's scores, recomputed here from the prompt set's reference answers
        reference = references[pair["prompt_id"]]
        assert rouge1_recall(reference, chosen) == pytest.approx(winner, abs=1e-6)
        assert rouge1_recall(reference, rejected) == pytest.approx(loser, abs=1e-6)


def test_the_report_answers_each_claim_or_says_it_did_not_run(small_study):
    root, stdout = small_study
    claims = {c["key"]: c for c in read_json(root / "report/study_results.json")["claims"]}
    assert sorted(claims) == ["C1", "C2", "C3", "C4", "C5", "C6"]
    assert claims["C3"]["verdict"] == "not run"
    for key in ("C1", "C2", "C4", "C5", "C6"):
        assert claims[key]["verdict"] in ("yes", "no", "inconclusive"), claims[key]
    # C1 compares the ablation with masks of random and of non-retrieval heads, 2 draws each
    # ... each with its empirical rank among them, then where C1 stands under Holm's correction
    comparisons, holm = claims["C1"]["evidence"][:2], claims["C1"]["evidence"][2:]
    assert all("over 2 draws" in line and "empirical p = " in line for line in comparisons)
    assert holm and holm[0].startswith("one-sided p = ") and "Holm over" in holm[0]
    for key in ("C1", "C2", "C3", "C4", "C5", "C6"):
        assert f"{key} {claims[key]['verdict']}" in stdout
    index = (root / "report/index.md").read_text()
    assert "## Claims" in index and "Table 1 in miniature" in index
    for figure in ("table1_by_length.png", "figure5_retrieval_change.png", "figure4_retrieval_scores.png"):
        assert (root / "report" / figure).is_file(), figure


def test_a_second_study_command_computes_nothing_again(small_study, tmp_path):
    root, _ = small_study
    result = study(root.parent)
    assert result.returncode == 0, result.stdout + result.stderr
    assert " done in " not in result.stdout, "a finished study should only skip"
