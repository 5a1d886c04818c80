"""Stages: NIAH of the untrained models, and of the trained one.

`evaluate_base` scores the base model, the model with its retrieval heads ablated, and control
masks of the same size (heads drawn outside the retrieval set, and heads drawn from all), one
model per shard: it depends on neither the strategy nor the training, so every run of a study
shares it.
`evaluate` adds the trained model's NIAH and its retrieval scores on the detection instances
(before vs after DPO)."""
from __future__ import annotations

from jobs.stages.detect import detection_instances, max_positions
from jobs.stages.train import trained_model_dir
from retmask.config import ExperimentConfig
from retmask.io import read_json, write_json
from retmask.rows import read_shards
from retmask.rundir import RunDir

# Control masks by selection rule: the entry names in niah.json and the rule that draws them.
CONTROL_NAMES = {"non_retrieval": "random_control", "random": "random_any_control"}


def _niah_summary(name: str, records: list[dict], heads: list[str]) -> dict:
    from retmask.evaluation import accuracy, accuracy_grid

    grid = accuracy_grid(records)
    return {"model": name, "accuracy": accuracy(records), "masked_heads": heads,
            "grid": [{"length": length, "depth": depth, "accuracy": value} for (length, depth), value in grid.items()],
            "records": records}


def retrieval_change(before: dict[str, float], after: dict[str, float], masked: list[str]) -> dict:
    """Per-head deltas and the mean change of the masked heads vs all other heads."""
    deltas = {name: after[name] - before[name] for name in before}
    masked_set = set(masked)
    inside = [deltas[n] for n in deltas if n in masked_set]
    outside = [deltas[n] for n in deltas if n not in masked_set]
    return {
        "mean_before": sum(before.values()) / len(before),
        "mean_after": sum(after.values()) / len(after),
        "masked_mean_delta": sum(inside) / len(inside) if inside else 0.0,
        "other_mean_delta": sum(outside) / len(outside) if outside else 0.0,
        "per_head": {n: {"before": before[n], "after": after[n], "delta": deltas[n], "masked": n in masked_set}
                     for n in before},
    }


def _niah_instances(cfg: ExperimentConfig):
    from transformers import AutoTokenizer

    from retmask.niah import build_instances, check_within_positions

    e, d = cfg.evaluation, cfg.detection
    tokenizer = AutoTokenizer.from_pretrained(cfg.model.path)
    instances = build_instances(tokenizer, d.haystack, d.needles, e.niah_lengths, e.niah_depths, d.template)
    check_within_positions(instances, d.max_new_tokens, max_positions(cfg.model.path), "evaluation",
                           e.beyond_max_positions)
    return instances


def _evaluate_niah(cfg: ExperimentConfig, instances, name: str, path: str, heads: list[str]) -> dict:
    from retmask.evaluation import niah_records
    from retmask.generation import load_model
    from retmask.masking import heads_from_names, mask_heads_in_memory

    model, tokenizer = load_model(path, cfg.model.dtype)
    mask_heads_in_memory(model, heads_from_names(heads))
    records = niah_records(model, tokenizer, instances, cfg.detection.max_new_tokens, cfg.evaluation.batch_tokens)
    return _niah_summary(name, records, heads)


def untrained_models(cfg: ExperimentConfig, scores: dict[str, float]) -> list[tuple[str, list[str]]]:
    """The untrained models `evaluate_base` scores, one per shard: (name, masked heads)."""
    from retmask.heads import select_heads

    e, s = cfg.evaluation, cfg.selection
    retrieval = select_heads(scores, s.rule, s.tau, s.top_k, s.count, s.seed)
    models = [("base", []), ("ablated", retrieval.heads)]
    for rule in e.control_rules:
        for draw in range(e.random_control_draws):
            control = select_heads(scores, rule, s.tau, count=len(retrieval.heads), seed=e.seed + draw,
                                   retrieval=retrieval.heads)
            models.append((f"{CONTROL_NAMES[rule]}_{draw}", control.heads))
    return models


def untrained_model_count(cfg: ExperimentConfig) -> int:
    return 2 + len(cfg.evaluation.control_rules) * cfg.evaluation.random_control_draws


def _untrained_path(run: RunDir, shard: int):
    return run.stage_dir("evaluate_base") / "models" / f"{shard:05d}.json"


def read_untrained_niah(run: RunDir) -> list[dict]:
    """Every untrained model's NIAH summary, base first, in shard order."""
    return [read_json(path) for path in sorted((run.stage_dir("evaluate_base") / "models").glob("*.json"))]


def run_base(cfg: ExperimentConfig, run: RunDir, shard: int) -> None:
    from retmask.heads import mean_scores

    scores = mean_scores(read_json(run.stage_dir("merge_scores") / "retrieval_scores.json"))
    name, heads = untrained_models(cfg, scores)[shard]
    write_json(_untrained_path(run, shard), _evaluate_niah(cfg, _niah_instances(cfg), name, cfg.model.path, heads))


def run(cfg: ExperimentConfig, run: RunDir, shard: int) -> None:
    from retmask.detection import detect_instances, merge_records
    from retmask.generation import load_model
    from retmask.heads import mean_scores

    heads = read_json(run.stage_dir("select_heads") / "heads.json")
    # Without a mask (smaller-model, sft, win-lose-pair) the retrieval heads are the group to watch.
    masked = heads["heads"] or heads["retrieval_heads"]
    before = mean_scores(read_json(run.stage_dir("merge_scores") / "retrieval_scores.json"))
    trained_niah = _evaluate_niah(cfg, _niah_instances(cfg), "trained", str(trained_model_dir(run)), [])
    out = run.stage_dir("evaluate")
    write_json(out / "niah.json", read_untrained_niah(run) + [trained_niah])

    d = cfg.detection
    trained, trained_tokenizer = load_model(str(trained_model_dir(run)), cfg.model.dtype)
    records = list(detect_instances(trained, trained_tokenizer, detection_instances(cfg, trained_tokenizer),
                                    d.max_new_tokens, d.rouge_threshold))
    config = trained.config
    kept_before = {r["instance_id"] for r in read_shards(run.shard_files("detect")) if r["kept"]}
    after_per_instance = merge_records(records, config.num_hidden_layers, config.num_attention_heads, kept_before)
    write_json(out / "retrieval_scores_after.json", after_per_instance)
    write_json(out / "retrieval_change.json", retrieval_change(before, mean_scores(after_per_instance), masked))
