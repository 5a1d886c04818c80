"""Stages: general benchmarks (paper Table 5) of the base and the trained model with
lm-evaluation-harness (optional extra), before vs after training; one array task per benchmark,
so that one task's failure or time limit costs that task alone (`general`), then their scores
gathered (`general_scores`).

Writes stages/general/lm_eval/<model>/<task>.json (lm-eval's results, versions and sample counts),
stages/general/results.json: {"base": {task: score}, "trained": {task: score}}, which the run's
report and the cross-run tables read, and metrics.json: {task: the lm-eval metric each score is}."""
from __future__ import annotations

import contextlib
import difflib
from pathlib import Path

from jobs.stages.train import trained_model_dir
from retmask.config import ExperimentConfig
from retmask.errors import UserError
from retmask.io import read_json, write_json
from retmask.rundir import RunDir

MODELS = ("base", "trained")
KEPT = ("results", "versions", "n-samples")
NOT_ALLOWED = "not run: it executes the model's code (general.allow_code_execution: true to run it)"  # what of lm-eval's output is kept: JSON, no per-sample rows


def model_paths(cfg: ExperimentConfig, run: RunDir) -> dict[str, Path]:
    """Each evaluated model's checkpoint, absolute: lm-eval runs from the task folder."""
    return {"base": Path(cfg.model.path).expanduser().resolve(), "trained": trained_model_dir(run).resolve()}


def raw_results_path(run: RunDir, model: str, task: str) -> Path:
    return run.stage_dir("general") / "lm_eval" / model / f"{task}.json"


def results_path(run: RunDir) -> Path:
    return run.stage_dir("general") / "results.json"


def metrics_path(run: RunDir) -> Path:
    return run.stage_dir("general") / "metrics.json"


def headline_metrics(cfg: ExperimentConfig) -> dict[str, str]:
    """The metric each task is read by: the configured one, else the benchmark's headline one."""
    from retmask.evaluation_config import HEADLINE_METRICS

    return {t: cfg.general.metrics.get(t, HEADLINE_METRICS.get(t)) for t in cfg.general.tasks
            if t in cfg.general.metrics or t in HEADLINE_METRICS}


def task_scores(results: dict, tasks: list[str], metrics: dict[str, str]) -> dict[str, float]:
    """One score per configured task (or group) from lm-eval's `results` section: the configured
    metric, else the first numeric one that is not a standard error."""
    scores = {}
    for task in tasks:
        if task not in results:
            raise UserError(f"lm-eval reported no result named {task!r} (it reported {', '.join(results)}); name a "
                            "task, or a group that has an aggregate score, in general.tasks")
        values = results[task]
        wanted = metrics.get(task)
        if wanted is not None:
            if wanted not in values:
                raise UserError(f"lm-eval reported no metric {wanted!r} for {task}; it reported {', '.join(values)}")
            scores[task] = float(values[wanted])
            continue
        # lm-eval names a metric "<metric>,<filter>"; beside them stand alias, sample_len and the like
        numeric = [v for k, v in values.items() if "," in k and "_stderr," not in k
                   and isinstance(v, (int, float)) and not isinstance(v, bool)]
        if not numeric:
            raise UserError(f"lm-eval reported no numeric metric for {task}: {values}")
        scores[task] = float(numeric[0])
    return scores


def check_tasks(tasks: list[str], known: list[str]) -> None:
    """Every configured name is one lm-eval knows, before any model is loaded."""
    unknown = [task for task in tasks if task not in known]
    if unknown:
        hints = {t: difflib.get_close_matches(t, known, n=3) for t in unknown}
        raise UserError("general.tasks: lm-eval knows no task " + "; ".join(
            f"{t!r}" + (f" (did you mean {', '.join(h)}?)" if h else "") for t, h in hints.items())
            + "; give lm-eval task or group names (`lm_eval ls tasks`), or tasks of general.include_path")


def evaluate(cfg: ExperimentConfig, model_path: Path, task: str, task_manager) -> dict:
    """lm-eval's output for one model on one task, greedy as the task says, with general.gen_kwargs
    over its generation settings."""
    import lm_eval
    import torch

    g = cfg.general
    model_args = {**g.model_args, "pretrained": str(model_path), "dtype": cfg.model.dtype,
                  # lm-eval's default device is "cuda" even where there is none
                  "device": "cuda" if torch.cuda.is_available() else "cpu"}
    folder = contextlib.chdir(g.include_path) if g.include_path else contextlib.nullcontext()
    with folder:  # relative data_files of the task YAMLs are read from their folder
        return lm_eval.simple_evaluate(model="hf", model_args=model_args, tasks=[task], batch_size=g.batch_size,
                                       limit=g.limit or None, task_manager=task_manager, log_samples=False,
                                       apply_chat_template=g.apply_chat_template,
                                       fewshot_as_multiturn=g.apply_chat_template, gen_kwargs=g.gen_kwargs or None,
                                       confirm_run_unsafe_code=g.allow_code_execution)


def lm_eval_arguments(cfg: ExperimentConfig) -> str:
    """What every task's lm-eval call is given beside its checkpoint (for `--dry-run`)."""
    g = cfg.general
    return (f"lm_eval.simple_evaluate(model=hf, model_args={g.model_args}, apply_chat_template={g.apply_chat_template}, "
            f"gen_kwargs={g.gen_kwargs}, confirm_run_unsafe_code={g.allow_code_execution}, "
            f"metrics={headline_metrics(cfg)})")


def run(cfg: ExperimentConfig, run: RunDir, shard: int) -> None:
    from lm_eval.tasks import TaskManager

    g = cfg.general
    task = g.runnable_tasks()[shard]
    # a rerun of a shard cut short keeps the model it had evaluated (same fingerprint: same settings)
    todo = [model for model in MODELS if not raw_results_path(run, model, task).is_file()]
    progress = run.progress_reporter("general", shard, "models", len(MODELS), done=len(MODELS) - len(todo))
    if todo:  # lm-eval indexes its tasks (seconds) once, and the name is checked before a model loads
        task_manager = TaskManager(include_path=g.include_path or None)
        check_tasks([task], task_manager.all_tasks)
        paths = model_paths(cfg, run)
        for model in todo:
            output = evaluate(cfg, paths[model], task, task_manager)
            write_json(raw_results_path(run, model, task), {key: output[key] for key in KEPT})
            progress.advance()


def merge(cfg: ExperimentConfig, run: RunDir, shard: int) -> None:
    """results.json: each task's score per model, read by its headline metric (metrics.json)."""
    g, metrics, runnable = cfg.general, headline_metrics(cfg), cfg.general.runnable_tasks()
    write_json(results_path(run), {model: {task: task_scores(read_json(raw_results_path(run, model, task))["results"],
                                                             [task], metrics)[task] for task in runnable}
                                   for model in MODELS})
    write_json(metrics_path(run), {task: metrics.get(task, "first numeric metric") if task in runnable else
                                   NOT_ALLOWED for task in g.tasks})
