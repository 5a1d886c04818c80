"""Stage: general benchmarks of the trained model with lm-evaluation-harness (optional extra),
folded into the cross-run tables as stages/general/results.json: {task: score}."""
from __future__ import annotations

from jobs.stages.train import trained_model_dir
from retmask.config import ExperimentConfig
from retmask.io import write_json
from retmask.rundir import RunDir


def task_scores(results: dict, metrics: dict[str, str]) -> dict[str, float]:
    """One score per task from lm-eval's `results` section: the configured metric, else the first
    numeric one that is not a standard error."""
    scores = {}
    for task, values in results.items():
        wanted = metrics.get(task)
        if wanted is not None:
            if wanted not in values:
                raise KeyError(f"lm-eval reported no metric {wanted!r} for {task}; it reported {', '.join(values)}")
            scores[task] = float(values[wanted])
            continue
        numeric = [(k, v) for k, v in values.items() if isinstance(v, (int, float)) and "stderr" not in k
                   and not isinstance(v, bool)]
        if numeric:
            scores[task] = float(numeric[0][1])
    return scores


def run(cfg: ExperimentConfig, run: RunDir, shard: int) -> None:
    import lm_eval

    g = cfg.general
    output = lm_eval.simple_evaluate(model="hf", model_args=f"pretrained={trained_model_dir(run)},dtype={cfg.model.dtype}",
                                     tasks=g.tasks, batch_size=g.batch_size, limit=g.limit or None)
    write_json(run.stage_dir("general") / "lm_eval_results.json", output["results"])
    write_json(run.stage_dir("general") / "results.json", task_scores(output["results"], g.metrics))
