"""Stage: NIAH recall of the base, ablated, random-control and trained models, and the
retrieval scores of the trained model on the detection instances (before vs after DPO)."""
from __future__ import annotations

from jobs.detect import detection_instances, max_positions
from jobs.train import trained_model_dir
from retmask.config import ExperimentConfig
from retmask.io import read_json, write_json
from retmask.rows import read_shards
from retmask.rundir import RunDir


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


def run(cfg: ExperimentConfig, run: RunDir, shard: int) -> None:
    from transformers import AutoTokenizer

    from retmask.detection import detect_instances, merge_records
    from retmask.generation import load_model
    from retmask.heads import mean_scores, select_heads
    from retmask.masking import heads_from_names, mask_heads_in_memory
    from retmask.niah import build_instances, check_within_positions

    e, d = cfg.evaluation, cfg.detection
    heads = read_json(run.stage_dir("select_heads") / "heads.json")
    # Without a mask (smaller-model, sft) the retrieval heads are the group to watch.
    masked = heads["heads"] or heads["retrieval_heads"]
    before = mean_scores(read_json(run.stage_dir("merge_scores") / "retrieval_scores.json"))
    tokenizer = AutoTokenizer.from_pretrained(cfg.model.path)
    instances = build_instances(tokenizer, d.haystack, d.needles, e.niah_lengths, e.niah_depths, d.template)
    check_within_positions(instances, d.max_new_tokens, max_positions(cfg.model.path), "evaluation",
                           e.beyond_max_positions)

    def evaluate(name: str, path: str, heads: list[str]) -> dict:
        from retmask.evaluation import niah_records

        model, tok = load_model(path, cfg.model.dtype)
        mask_heads_in_memory(model, heads_from_names(heads))
        return _niah_summary(name, niah_records(model, tok, instances, d.max_new_tokens, e.batch_tokens), heads)

    niah = [evaluate("base", cfg.model.path, []), evaluate("ablated", cfg.model.path, masked)]
    for draw in range(e.random_control_draws):
        control = select_heads(before, "non_retrieval", cfg.selection.tau, count=len(masked), seed=e.seed + draw,
                               retrieval=heads["retrieval_heads"])
        niah.append(evaluate(f"random_control_{draw}", cfg.model.path, control.heads))
    niah.append(evaluate("trained", str(trained_model_dir(run)), []))
    out = run.stage_dir("evaluate")
    write_json(out / "niah.json", niah)

    trained, trained_tokenizer = load_model(str(trained_model_dir(run)), cfg.model.dtype)
    records = list(detect_instances(trained, trained_tokenizer, detection_instances(cfg, trained_tokenizer),
                                    d.max_new_tokens, d.rouge_threshold))
    config = trained.config
    kept_before = {r["instance_id"] for r in read_shards(run.shard_files("detect")) if r["kept"]}
    after_per_instance = merge_records(records, config.num_hidden_layers, config.num_attention_heads, kept_before)
    write_json(out / "retrieval_scores_after.json", after_per_instance)
    write_json(out / "retrieval_change.json", retrieval_change(before, mean_scores(after_per_instance), masked))
