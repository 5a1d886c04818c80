"""Retrieval-head detection over NIAH instances: per-instance records, then merged scores."""
from __future__ import annotations

from collections.abc import Iterable, Iterator
from pathlib import Path

from retmask.heads import head_name
from retmask.niah import NiahInstance
from retmask.retrieval import detect_copy_hits, rouge1_recall


def detect_instance(model, tokenizer, instance: NiahInstance, max_new_tokens: int, rouge_threshold: float) -> dict:
    """One instance's record: its description, the response, ROUGE recall, kept, per-head hits."""
    result = detect_copy_hits(model, tokenizer, instance.input_ids, instance.needle_span, max_new_tokens)
    response = tokenizer.decode(result.generated_ids, skip_special_tokens=True)
    recall = rouge1_recall(instance.answer, response)
    start, end = instance.needle_span
    return {
        **instance.record(),
        "needle_tokens": end - start,
        "response": response,
        "rouge_recall": round(recall, 4),
        "kept": recall >= rouge_threshold,
        "hits": result.hits,
    }


def detect_instances(model, tokenizer, instances: Iterable[NiahInstance], max_new_tokens: int,
                     rouge_threshold: float) -> Iterator[dict]:
    for instance in instances:
        yield detect_instance(model, tokenizer, instance, max_new_tokens, rouge_threshold)


def merge_records(records: Iterable[dict], layers: int, heads: int) -> dict[str, list[float]]:
    """Wu et al.'s score file: for every head "L-H", its score on each kept instance
    (copies from the needle / needle length)."""
    scores: dict[str, list[float]] = {head_name((layer, head)): [] for layer in range(layers) for head in range(heads)}
    for record in records:
        if not record["kept"]:
            continue
        for layer, row in enumerate(record["hits"]):
            for head, hits in enumerate(row):
                scores[head_name((layer, head))].append(hits / record["needle_tokens"])
    return scores


def write_scores(records: list[dict], layers: int, heads: int, tau: float, out: Path) -> dict[str, float]:
    """Write Wu et al.'s score file and a ranked summary with concentration metrics into `out`;
    return each head's RetrievalScore."""
    from retmask.heads import concentration, mean_scores, ranked
    from retmask.io import write_json

    per_instance = merge_records(records, layers, heads)
    scores = mean_scores(per_instance)
    write_json(out / "retrieval_scores.json", per_instance)
    write_json(out / "summary.json", {
        "instances": len(records),
        "kept": sum(r["kept"] for r in records),
        "ranked": [[name, round(score, 6)] for name, score in ranked(scores)],
        "concentration": concentration(scores, tau),
    })
    return scores
