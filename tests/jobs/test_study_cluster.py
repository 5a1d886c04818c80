"""A tau sweep (paper Table 6) submitted to the real local SLURM with `retmask study --cluster`:
the second tau's jobs wait for the first's detection and take it instead of running their own; a
rerun while jobs are queued leaves them alone; a failed shard is resumed by the same command; the
last rerun writes the report, whose tau table holds each run's own numbers and names the best tau."""
import os
import subprocess
import sys

import pytest

from jobs.study_cluster import study_status
from retmask.io import read_json, write_json
from retmask.rundir import RunDir
from tests.conftest import REPO
from tests.helpers.cluster_runs import wait_until_idle

SWEEP = REPO / "configs/toy-tau-sweep.yaml"
SMALL = ["study.seeds=[1]", "synthesis.max_prompts=32", "train.max_steps=4", "train.per_device_batch_size=8",
         "train.global_batch_size=8", "evaluation.niah_lengths=[32, 128, 4]", "evaluation.niah_depths=3",
         "evaluation.random_control_draws=1"]
LONG_FROM = 96
FAULT = "synthesize_rejected:0"  # the second tau's own first synthesis shard fails once


def _study(root, *extra) -> subprocess.CompletedProcess:
    args = [sys.executable, "-m", "jobs.cli", "study", str(SWEEP), "--dir", str(root / "study"), "--cluster",
            "local-slurm", *[a for s in SMALL for a in ("--set", s)], *extra]
    return subprocess.run(args, cwd=root, capture_output=True, text=True, env={**os.environ, "PYTHONPATH": str(REPO)})


@pytest.fixture(scope="module")
def sweep(tmp_path_factory, local_slurm, toy_model_dir):
    """(study dir, stdout of each of the four commands): submit, rerun while queued, rerun after
    the fault (resumes), rerun when every run finished (reports)."""
    root = tmp_path_factory.mktemp("tau-cluster")
    runs = [RunDir(root / "study/runs" / f"retrieval-mask-tau{tau}-seed1") for tau in ("0.5", "0.99")]
    outputs = []
    submitted = _study(root)
    assert submitted.returncode == 0, submitted.stdout + submitted.stderr
    write_json(runs[1].root / "inject_faults.json", [FAULT])  # before its jobs start: they wait for detection
    outputs.append(submitted.stdout)
    queued = _study(root)  # at once: every job still queued or running
    assert queued.returncode == 0, queued.stdout + queued.stderr
    outputs.append(queued.stdout)
    for run in runs:
        wait_until_idle(run, settle_s=2)
    for _ in range(2):  # the first resumes the failed run, the second writes the report
        again = _study(root)
        assert again.returncode == 0, again.stdout + again.stderr
        outputs.append(again.stdout)
        for run in runs:
            wait_until_idle(run, settle_s=2)
    return root / "study", outputs


def test_the_second_tau_takes_detection_from_the_first_and_a_rerun_goes_on_from_where_it_stands(sweep):
    root, (submitted, queued, resumed, reported) = sweep
    first, second = (root / "runs" / f"retrieval-mask-tau{tau}-seed1" for tau in ("0.5", "0.99"))
    assert "[retrieval-mask tau 0.5 seed 1] [detect] submitted 2 shard(s)" in submitted
    assert "[retrieval-mask tau 0.99 seed 1] [detect]" not in submitted  # no job of its own
    assert "0 of 2 runs finished" in submitted
    assert queued.count("jobs queued or running; left as they are") == 2 and "submitted" not in queued
    assert "[retrieval-mask tau 0.5 seed 1] finished" in resumed
    assert "[retrieval-mask tau 0.99 seed 1] failed: resubmitting what is not done" in resumed
    assert "[retrieval-mask tau 0.99 seed 1] [synthesize_rejected] submitted 1 shard(s)" in resumed
    assert "every run finished; report:" in reported and "submitted" not in reported

    detection = "stages/detect/shards/00000.jsonl"
    assert os.stat(first / detection).st_ino == os.stat(second / detection).st_ino  # taken, not recomputed
    for shared in ("toy_model", "detect", "synthesize_chosen"):  # same fingerprint: computed by the first run
        assert not (second / "logs" / shared).exists(), f"the second tau ran {shared} itself"
        assert RunDir(second).read_manifest()["stages"][shared]["shared_from"] == str(first)
    heads = {run: read_json(run / "stages/select_heads/heads.json")["heads"] for run in (first, second)}
    assert len(heads[first]) > len(heads[second]) > 0 and set(heads[second]) < set(heads[first])
    lines = study_status(root).splitlines()[2:]  # `retmask status STUDY_DIR`: a line per run
    assert [line.split()[:2] for line in lines] == [[first.name, "finished"], [second.name, "finished"]]


def test_a_rerun_with_a_changed_config_refuses_the_finished_runs_outputs_without_force(sweep):
    root, _ = sweep
    config = root / "runs/retrieval-mask-tau0.5-seed1/config.yaml"
    before = config.read_text()
    changed = _study(root.parent, "--set", "train.learning_rate=2.0e-4")
    assert changed.returncode == 2
    assert "stage train: outputs written under another config" in changed.stderr
    assert "rerun with --force" in changed.stderr and "submitted" not in changed.stdout
    assert config.read_text() == before  # nothing recorded for a config that was refused


def _long_recall(run) -> float:
    """The trained model's mean ROUGE recall at lengths >= LONG_FROM, read here from the run's own output."""
    trained = next(e for e in read_json(run / "stages/evaluate/niah.json") if e["model"] == "trained")
    values = [r["rouge_recall"] for r in trained["records"] if r["length"] >= LONG_FROM]
    return sum(values) / len(values)


def test_the_reported_tau_table_holds_each_runs_numbers_and_names_the_best_tau(sweep):
    root, (*_, reported) = sweep
    runs = {tau: root / "runs" / f"retrieval-mask-tau{tau}-seed1" for tau in ("0.5", "0.99")}
    heads = {tau: read_json(run / "stages/select_heads/heads.json")["heads"] for tau, run in runs.items()}
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
    assert f"-> tau {tau['chosen']:g}" in reported
    # the claims are measured at the chosen tau, as the paper reports its results at the tau its pilots chose
    c2 = next(c for c in read_json(root / "report/study_results.json")["claims"] if c["key"] == "C2")
    chosen_run = runs[f"{tau['chosen']:g}"]
    base = next(e for e in read_json(chosen_run / "stages/evaluate/niah.json") if e["model"] == "base")["records"]
    base_long = sum(r["rouge_recall"] for r in base if r["length"] >= LONG_FROM) / sum(
        r["length"] >= LONG_FROM for r in base)
    assert c2["verdict"] != "not run"
    assert c2["evidence"][0].startswith(f"retrieval-mask tau {tau['chosen']:g} - base, rouge_recall at lengths >= 96: "
                                        f"{own[tau['chosen']] - base_long:.3f}")


def test_a_cluster_study_dry_run_shows_what_each_run_takes_and_writes_nothing(tmp_path, toy_model_dir):
    result = subprocess.run([sys.executable, "-m", "jobs.cli", "study", str(SWEEP), "--dir", str(tmp_path / "s"),
                             "--cluster", "local-slurm", "--dry-run", "--set", "study.seeds=[1]"],
                            cwd=tmp_path, capture_output=True, text=True, env={**os.environ, "PYTHONPATH": str(REPO)})
    assert result.returncode == 0, result.stderr
    first, second = result.stdout.split("# ===== run ")[1:]
    assert "detect " in first and "takes" not in first
    assert "\n#   detect " not in second and "takes toy_model, detect from the study's run" in second
    assert f"(computed by {tmp_path / 's/runs/retrieval-mask-tau0.5-seed1'}: toy_model, detect, synthesize_chosen)" \
        in second
    assert not (tmp_path / "s").exists()


def test_a_paper_study_rehearses_on_the_cluster_with_the_same_job_graph(tmp_path, local_slurm, paper_inputs):
    """configs/paper/table8-sft.yaml rehearsed through `retmask study --cluster`: its twins' jobs go
    through the local SLURM (arrays, dependencies, the shared stages taken), then the rerun writes
    the report with Table 8 beside the paper's numbers."""
    from tests.helpers.paper_inputs import input_arguments

    args = [sys.executable, "-m", "jobs.cli", "study", str(REPO / "configs/paper/table8-sft.yaml"), "--cluster",
            "local-slurm", "--rehearse", *input_arguments(paper_inputs)]
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    submitted = subprocess.run(args, cwd=tmp_path, capture_output=True, text=True, env=env)
    assert submitted.returncode == 0, submitted.stdout + submitted.stderr
    root = tmp_path / "runs/paper-table8-sft-rehearsal"
    assert "REHEARSAL" in submitted.stdout and "[llama-3.1-8b-instruct: sft seed 1] [synthesize_chosen] submitted" in \
        submitted.stdout and "[detect]" not in submitted.stdout  # the authors' head scores stand for detection
    runs = [RunDir(root / "runs/llama-3.1-8b-instruct" / f"{strategy}-seed1") for strategy in ("sft", "retrieval-mask")]
    for run in runs:
        wait_until_idle(run, settle_s=2)
    reported = subprocess.run(args, cwd=tmp_path, capture_output=True, text=True, env=env)
    assert reported.returncode == 0, reported.stdout + reported.stderr
    assert "every run finished; report:" in reported.stdout
    table = read_json(root / "report/study_results.json")["paper_tables"]["table8"]["rows"]
    assert table["—"]["8K"]["paper"] == 56.03 and table["SFT"]["128K"]["paper"] == 37.34
    assert all(cell["why"].startswith("incomplete: ") for row in table.values() for cell in row.values())
    shared = RunDir(runs[1].root).read_manifest()["stages"]
    assert "detect" not in shared  # the authors' head scores stand for detection
    assert shared["helmet_base"]["shared_from"] == shared["synthesize_chosen"]["shared_from"] == str(runs[0].root)
