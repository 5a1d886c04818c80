"""Stages: NIAH of the untrained models, and of the trained one.

`evaluate_base` scores the base model, the model with its retrieval heads ablated, and control
masks of the same size (heads drawn outside the retrieval set, and heads drawn from all), one
model per shard: it depends on neither the strategy nor the training, so every run of a study
shares it.
`evaluate` adds the trained model's NIAH and its retrieval scores on the detection instances
(before vs after DPO).

In a cross-model run (`synthesis_model` set) the heads were detected on, and masked in, the
synthesis model: the ablation and its controls are scored on that model (beside it unmasked,
`synthesis_base`), while `base` and `trained` are the trained model before and after training. Its
retrieval scores before training are then its own (detected by `evaluate_base` with `base`), and
the head group set against the others after training is its own best heads, not the masked ones:
head L-H of one model is not head L-H of another."""
from __future__ import annotations

from jobs.stages.detect import detection_instances, max_positions
from jobs.stages.train import trained_model_dir
from retmask.config import ExperimentConfig, ModelConfig
from retmask.io import read_json, read_jsonl, write_json, write_jsonl
from retmask.rundir import RunDir

# Control masks by selection rule: the entry names in niah.json and the rule that draws them.
CONTROL_NAMES = {"non_retrieval": "random_control", "random": "random_any_control"}
SYNTHESIS_BASE = "synthesis_base"  # cross-model runs: the synthesis model unmasked, its ablation's reference


def _niah_summary(name: str, records: list[dict], heads: list[str], checkpoint: str) -> dict:
    from retmask.evaluation import accuracy, accuracy_grid

    grid = accuracy_grid(records)
    return {"model": name, "checkpoint": checkpoint, "accuracy": accuracy(records), "masked_heads": heads,
            "grid": [{"length": length, "depth": depth, "accuracy": value} for (length, depth), value in grid.items()],
            "records": records}


def retrieval_change(before: dict[str, float], after: dict[str, float], masked: list[str],
                     group: str = "masked heads") -> dict:
    """Per-head deltas and the mean change of the masked heads vs all other heads. Where the trained
    model had no head masked, `masked` is the group watched in their place, named by `group`."""
    deltas = {name: after[name] - before[name] for name in before}
    masked_set = set(masked)
    inside = [deltas[n] for n in deltas if n in masked_set]
    outside = [deltas[n] for n in deltas if n not in masked_set]
    return {
        "group": group,
        "mean_before": sum(before.values()) / len(before),
        "mean_after": sum(after.values()) / len(after),
        "masked_mean_delta": sum(inside) / len(inside) if inside else 0.0,
        "other_mean_delta": sum(outside) / len(outside) if outside else 0.0,
        "per_head": {n: {"before": before[n], "after": after[n], "delta": deltas[n], "masked": n in masked_set}
                     for n in before},
    }


def _niah_instances(cfg: ExperimentConfig, tokenizer, model_path: str):
    """The NIAH instances in the tokens of the checkpoint at `model_path`."""
    from retmask.niah import build_instances, check_within_positions

    e, d = cfg.evaluation, cfg.detection
    instances = build_instances(tokenizer, d.haystack, d.needles, e.niah_lengths, e.niah_depths, d.template)
    check_within_positions(instances, d.max_new_tokens, max_positions(model_path), "evaluation",
                           e.beyond_max_positions)
    return instances


def _evaluate_niah(cfg: ExperimentConfig, name: str, path: str, loaded, heads: list[str]) -> dict:
    """NIAH of the loaded (model, tokenizer) of `path` with `heads` masked in memory."""
    from retmask.evaluation import niah_records
    from retmask.masking import heads_from_names, mask_heads_in_memory

    model, tokenizer = loaded
    mask_heads_in_memory(model, heads_from_names(heads))
    records = niah_records(model, tokenizer, _niah_instances(cfg, tokenizer, path), cfg.detection.max_new_tokens,
                           cfg.evaluation.batch_tokens)
    return _niah_summary(name, records, heads, path)


def _detection_records(cfg: ExperimentConfig, path: str, loaded) -> list[dict]:
    """Detection records of the loaded, unmasked (model, tokenizer) of `path` on the detection
    instances, in its own tokens."""
    from retmask.detection import detect_instances

    model, tokenizer = loaded
    d = cfg.detection
    return list(detect_instances(model, tokenizer, detection_instances(cfg, tokenizer, path), d.max_new_tokens,
                                 d.rouge_threshold))


def untrained_models(cfg: ExperimentConfig, scores: dict[str, float]) -> list[tuple[str, ModelConfig, list[str]]]:
    """The untrained models `evaluate_base` scores, one per shard: (name, model, masked heads).
    The heads are the synthesis model's, so its ablation and controls are scored on it; `base` is
    the trained model before training."""
    from retmask.heads import select_heads

    e, s = cfg.evaluation, cfg.selection
    synthesizer = cfg.synthesis_source()
    retrieval = select_heads(scores, s.rule, s.tau, s.top_k, s.count, s.seed, min_heads=s.min_heads)
    models = [("base", cfg.model, [])] + ([(SYNTHESIS_BASE, synthesizer, [])] if cfg.cross_model else [])
    models.append(("ablated", synthesizer, retrieval.heads))
    for rule in e.control_rules:
        for draw in range(e.random_control_draws):
            control = select_heads(scores, rule, s.tau, count=len(retrieval.heads), seed=e.seed + draw,
                                   retrieval=retrieval.heads)
            models.append((f"{CONTROL_NAMES[rule]}_{draw}", synthesizer, control.heads))
    return models


def untrained_model_count(cfg: ExperimentConfig) -> int:
    return 2 + int(cfg.cross_model) + len(cfg.evaluation.control_rules) * cfg.evaluation.random_control_draws


def _detection_before_path(run: RunDir):
    """The trained model's detection records before training, where evaluate_base measures them."""
    return run.stage_dir("evaluate_base") / "trained_model_detection.jsonl"


def watched_heads(cfg: ExperimentConfig, heads: dict, before: dict[str, float]) -> tuple[list[str], str]:
    """The head group whose change after training is set against the other heads' (Figure 5), and
    its name: the masked heads; without a mask, the retrieval heads; in a cross-model run, where the
    masked heads are another model's, the trained model's own best heads before training, as many."""
    from retmask.heads import select_top_k

    if cfg.cross_model:
        count = len(heads["heads"] or heads["retrieval_heads"])
        return select_top_k(before, count), f"trained model's own top {count} heads"
    if heads["heads"]:
        return heads["heads"], "masked heads"
    return heads["retrieval_heads"], "retrieval heads (no mask)"


def base_detected_here(cfg: ExperimentConfig) -> bool:
    """Whether the untrained model's detection runs in evaluate_base: merge_scores holds another
    model's scores (cross-model synthesis) or published ones (detection.scores_file)."""
    return cfg.cross_model or bool(cfg.detection.scores_file)


def _untrained_path(run: RunDir, shard: int):
    return run.stage_dir("evaluate_base") / "models" / f"{shard:05d}.json"


def read_untrained_niah(run: RunDir) -> list[dict]:
    """Every untrained model's NIAH summary, base first, in shard order."""
    return [read_json(path) for path in sorted((run.stage_dir("evaluate_base") / "models").glob("*.json"))]


def run_base(cfg: ExperimentConfig, run: RunDir, shard: int) -> None:
    from retmask.heads import mean_scores

    scores = mean_scores(read_json(run.stage_dir("merge_scores") / "retrieval_scores.json"))
    from retmask.generation import load_model

    name, model, heads = untrained_models(cfg, scores)[shard]
    loaded = load_model(model.path, model.dtype)  # loaded once: NIAH, and a cross-model base's detection
    write_json(_untrained_path(run, shard), _evaluate_niah(cfg, name, model.path, loaded, heads))
    if base_detected_here(cfg) and name == "base":  # (unmasked: the base masks no head)
        # merge_scores holds the synthesis model's scores, or published ones: the trained model's before
        # training are measured here, on the protocol its scores after training will be.
        write_jsonl(_detection_before_path(run), _detection_records(cfg, model.path, loaded))


def run(cfg: ExperimentConfig, run: RunDir, shard: int) -> None:
    from transformers import AutoConfig

    from retmask.detection import merge_records
    from retmask.heads import mean_scores

    from retmask.generation import load_model

    trained_path = str(trained_model_dir(run))
    loaded = load_model(trained_path, cfg.model.dtype)  # loaded once, unmasked: NIAH, then retrieval scores
    trained_niah = _evaluate_niah(cfg, "trained", trained_path, loaded, [])
    out = run.stage_dir("evaluate")
    niah = read_untrained_niah(run) + [trained_niah]
    write_json(out / "niah.json", niah)

    # Before and after training, scored over the instances the model answered before training.
    records_before = (read_jsonl(_detection_before_path(run)) if base_detected_here(cfg)
                      else run.finished_rows("detect"))
    config = AutoConfig.from_pretrained(trained_path)
    shape = (config.num_hidden_layers, config.num_attention_heads)
    kept_before = {r["instance_id"] for r in records_before if r["kept"]}
    before = mean_scores(merge_records(records_before, *shape))
    after_per_instance = merge_records(_detection_records(cfg, trained_path, loaded), *shape, kept_before)
    write_json(out / "retrieval_scores_after.json", after_per_instance)
    group, name = watched_heads(cfg, read_json(run.stage_dir("select_heads") / "heads.json"), before)
    change = retrieval_change(before, mean_scores(after_per_instance), group, name)
    write_json(out / "retrieval_change.json", change)
    _track(cfg, run, niah, change)


def _track(cfg: ExperimentConfig, run: RunDir, niah: list[dict], change: dict) -> None:
    """The headline figures to the run's trackers: NIAH accuracy per model, retrieval means (the
    per-head scores stay in the files)."""
    from retmask.tracking import log_results, run_destination

    log_results(run_destination(cfg, run), "evaluate", {
        "niah_accuracy": {entry["model"]: entry["accuracy"] for entry in niah},
        "retrieval": {key: value for key, value in change.items() if key != "per_head"}})
