"""Stages: HELMET's GPT-4 judge on the untrained model's outputs (`helmet_base_judge`, shared as
helmet_base is) and on the trained one's (`helmet_judge`); one task per judge script (LongQA,
Summ), run from the user's HELMET checkout (retmask/helmet_judge.py). Judged files go to
stages/<stage>/outputs/<model>/ under HELMET's names, beside nothing of the helmet stages'."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import retmask
from jobs.stages.helmet import JUDGE_STAGES as STAGES, judged_dir, log_tail, output_dir
from retmask.config import ExperimentConfig
from retmask.helmet_judge import DATASETS, SCRIPTS, judged_name
from retmask.rundir import RunDir

SHARDS = tuple(SCRIPTS)  # shard i runs script SHARDS[i]


def to_judge(run: RunDir, model: str, script: str) -> list[Path]:
    """The eval.py outputs (<dataset>_retmask_..._in<N>_....json) of the script's datasets."""
    from retmask.helmet import DATASETS as HELMET_DATASETS

    folder = output_dir(run, model)
    return sorted(p for dataset in DATASETS[script]
                  for p in folder.glob(f"{HELMET_DATASETS[dataset].in_file.replace('<N>', '*')}_retmask_*.json")
                  if not p.name.endswith(judged_name(".json")))


def judge_command(cfg: ExperimentConfig, script: str, pairs: list[tuple[Path, Path]]) -> list[str]:
    j = cfg.helmet_judge
    return [sys.executable, "-m", "retmask.helmet_judge", "--script", script, "--endpoint", j.endpoint,
            "--model", j.model, *[str(p) for pair in pairs for p in pair]]


def _judge(cfg: ExperimentConfig, run: RunDir, model: str, shard: int) -> None:
    stage, script = STAGES[model], SHARDS[shard]
    out = judged_dir(run, model)
    out.mkdir(parents=True, exist_ok=True)
    files = [(p, out / judged_name(p.name)) for p in to_judge(run, model, script)]
    todo = [(p, q) for p, q in files if not q.is_file()]  # a rerun keeps what was judged
    progress = run.progress_reporter(stage, shard, "files", len(files), done=len(files) - len(todo))
    if not todo:
        return
    log = run.stage_dir(stage) / "logs" / f"{model}-{script}.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    root = str(Path(retmask.__file__).resolve().parents[1])  # the judge runs from HELMET's folder
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, (root, os.environ.get("PYTHONPATH"))))}
    with open(log, "w") as handle:
        returncode = subprocess.call(judge_command(cfg, script, todo), cwd=cfg.helmet.path, env=env,
                                     stdout=handle, stderr=subprocess.STDOUT)
    progress.set(sum(q.is_file() for _, q in files))
    if returncode != 0:
        raise RuntimeError(f"HELMET's {script} judge ({cfg.helmet_judge.label}) failed for the {model} model (exit "
                           f"{returncode}); log {log}: {log_tail(log)}")


def run_base(cfg: ExperimentConfig, run: RunDir, shard: int) -> None:
    _judge(cfg, run, "base", shard)


def run(cfg: ExperimentConfig, run: RunDir, shard: int) -> None:
    _judge(cfg, run, "trained", shard)
