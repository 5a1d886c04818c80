"""Stages: HELMET on the untrained model (`helmet_base`, shared by every run of the model) and on
the trained one (`helmet`), one array task per HELMET config file, run from the user's HELMET
checkout; then its scores parsed and averaged per category and length, where a missing or failed
result makes the average "incomplete", never silently smaller."""
from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

from jobs.stages.train import trained_model_dir
from retmask.config import ExperimentConfig
from retmask.io import write_json
from retmask.rundir import RunDir


STAGES = {"base": "helmet_base", "trained": "helmet"}  # model -> the stage that evaluates it
JUDGE_STAGES = {"base": "helmet_base_judge", "trained": "helmet_judge"}  # model -> the stage that judges it


def output_dir(run: RunDir, model: str) -> Path:
    return run.stage_dir(STAGES[model]) / "outputs" / model


def judged_dir(run: RunDir, model: str) -> Path:
    """Where HELMET's GPT-4 judge writes `model`'s judged files (jobs/stages/helmet_judge.py)."""
    return run.stage_dir(JUDGE_STAGES[model]) / "outputs" / model


def log_tail(log: Path, lines: int = 5) -> str:
    """The last lines of a subprocess's log, for the one-line error of a failed task."""
    return " | ".join(log.read_text(errors="replace").splitlines()[-lines:])


def eval_command(cfg: ExperimentConfig, model_path: str, config_file: str, out: Path) -> list[str]:
    h = cfg.helmet
    command = [sys.executable, "eval.py", "--config", str(Path("configs") / config_file),
               "--model_name_or_path", model_path, "--output_dir", str(out), "--tag", "retmask"]
    return (command + (["--use_vllm"] if h.use_vllm else []) + (["--thinking"] if h.thinking else [])
            + list(h.extra_args))


def evaluated_path(cfg: ExperimentConfig, run: RunDir, model: str, make: bool = True) -> str:
    """The checkpoint HELMET loads for `model`: the base or trained one, or its evaluation copy
    with helmet.rope_scaling (beside the run's stages, made once; `make=False`: only its path)."""
    from retmask.model_positions import copy_path, evaluation_copy

    source = cfg.model.path if model == "base" else str(trained_model_dir(run))
    return str((evaluation_copy if make else copy_path)(source, cfg.helmet.rope_scaling,
                                                        run.root / "evaluation_models"))


# eval.py logs one of these per dataset of its config when it is through with it
DATASET_ENDED = re.compile(r"results are written to|already exists, skipping|Error in \S+, continuing")
POLL_S = 5


def config_datasets(cfg: ExperimentConfig, config_file: str) -> int | None:
    """How many datasets a HELMET config runs (its comma-separated `datasets`), if it says."""
    import yaml

    path = Path(cfg.helmet.path) / "configs" / config_file
    spec = yaml.safe_load(path.read_text()) if path.is_file() else None  # eval.py names a missing one
    return len(str(spec["datasets"]).split(",")) if isinstance(spec, dict) and spec.get("datasets") else None


def _wait(process: subprocess.Popen, seconds: float) -> int | None:
    try:
        return process.wait(seconds)
    except subprocess.TimeoutExpired:
        return None


def _evaluate(cfg: ExperimentConfig, run: RunDir, model: str, shard: int) -> None:
    stage, config_file = STAGES[model], cfg.helmet.configs[shard]
    model_path = evaluated_path(cfg, run, model)
    out = output_dir(run, model)
    out.mkdir(parents=True, exist_ok=True)
    log = run.stage_dir(stage) / "logs" / f"{model}-{Path(config_file).stem}.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    progress = run.progress_reporter(stage, shard, "datasets", config_datasets(cfg, config_file))
    with open(log, "w") as handle:  # HELMET reads configs/ and data/ relative to its checkout
        process = subprocess.Popen(eval_command(cfg, model_path, config_file, out), cwd=cfg.helmet.path,
                                   stdout=handle, stderr=subprocess.STDOUT)
        while (returncode := _wait(process, POLL_S)) is None:  # progress: datasets its log says are through
            progress.set(len(DATASET_ENDED.findall(log.read_text(errors="replace"))))
        progress.set(len(DATASET_ENDED.findall(log.read_text(errors="replace"))))
    if returncode != 0:
        raise RuntimeError(f"HELMET eval.py failed on {config_file} for the {model} model (exit "
                           f"{returncode}); log {log}: {log_tail(log)}")


def run_base(cfg: ExperimentConfig, run: RunDir, shard: int) -> None:
    _evaluate(cfg, run, "base", shard)


def run(cfg: ExperimentConfig, run: RunDir, shard: int) -> None:
    _evaluate(cfg, run, "trained", shard)


AVERAGES_FILES = {"judge": "averages.json", "rouge": "rouge_averages.json"}  # scoring -> file in helmet_scores
JUDGE_FILE = "judge.json"  # helmet_scores: {"judge": who judged LongQA and Summ (None: nobody), "papers": bool}


def merge(cfg: ExperimentConfig, run: RunDir, shard: int) -> None:
    """Per model the category averages as HELMET computes them (averages.json), and with ROUGE in
    place of the GPT-4 judge (rouge_averages.json: the paper's cheap proxy for choosing tau)."""
    from retmask.helmet import averages_json, category_averages, find_results

    judge = cfg.helmet_judge
    for scoring, name in AVERAGES_FILES.items():
        per_model = {}
        for model in cfg.helmet.models:
            judged = [judged_dir(run, model)] if judge.endpoint and scoring == "judge" else []
            results = find_results(output_dir(run, model), cfg.helmet.lengths, tag="retmask", scoring=scoring,
                                   more_dirs=judged)
            per_model[model] = averages_json(category_averages(results, lengths=cfg.helmet.lengths, scoring=scoring))
        write_json(run.stage_dir("helmet_scores") / name, per_model)
    # whose judgement LongQA and Summ carry, for every table that shows them
    write_json(run.stage_dir("helmet_scores") / JUDGE_FILE,
               {"judge": judge.label if judge.endpoint else None, "papers": judge.is_papers})
