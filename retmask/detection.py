"""Retrieval-head detection over NIAH instances: per-instance records, then merged scores."""
from __future__ import annotations

from collections.abc import Iterable, Iterator
from pathlib import Path

from retmask.errors import UserError
from retmask.heads import head_name
from retmask.niah import NiahInstance
from retmask.retrieval import detect_copy_hits, rouge1_recall


class DetectionError(UserError):
    pass


def detect_instance(model, tokenizer, instance: NiahInstance, max_new_tokens: int, rouge_threshold: float) -> dict:
    """One instance's record: its description (needle and answer spans), the response, ROUGE
    recall, kept (Wu et al.'s rule: recall strictly above the threshold), per-head hits."""
    result = detect_copy_hits(model, tokenizer, instance.input_ids, instance.answer_span, max_new_tokens)
    response = tokenizer.decode(result.generated_ids, skip_special_tokens=True)
    recall = rouge1_recall(instance.answer, response)
    (needle_start, needle_end), (answer_start, answer_end) = instance.needle_span, instance.answer_span
    return {
        **instance.record(),
        "needle_tokens": needle_end - needle_start,
        "answer_tokens": answer_end - answer_start,
        "response": response,
        "rouge_recall": round(recall, 4),
        "kept": recall > rouge_threshold,
        "hits": result.hits,
    }


def detect_instances(model, tokenizer, instances: Iterable[NiahInstance], max_new_tokens: int,
                     rouge_threshold: float) -> Iterator[dict]:
    for instance in instances:
        yield detect_instance(model, tokenizer, instance, max_new_tokens, rouge_threshold)


def merge_records(records: Iterable[dict], layers: int, heads: int,
                  instance_ids: set[str] | None = None) -> dict[str, list[float]]:
    """Wu et al.'s score file: for every head "L-H", its score on each kept instance
    (copies from the answer / answer length in tokens). `instance_ids` scores those instances
    instead of the kept ones, so scores after training average over the instances kept before."""
    scores: dict[str, list[float]] = {head_name((layer, head)): [] for layer in range(layers) for head in range(heads)}
    for record in records:
        if not (record["kept"] if instance_ids is None else record["instance_id"] in instance_ids):
            continue
        for layer, row in enumerate(record["hits"]):
            for head, hits in enumerate(row):
                scores[head_name((layer, head))].append(hits / record["answer_tokens"])
    return scores


def write_scores(records: list[dict], layers: int, heads: int, tau: float, out: Path) -> dict[str, float]:
    """Write Wu et al.'s score file and a ranked summary with concentration metrics into `out`;
    return each head's RetrievalScore."""
    kept = sum(r["kept"] for r in records)
    if not kept:
        raise DetectionError(
            f"no NIAH instance was kept: the model's answers to all {len(records)} instances have ROUGE-1 "
            f"recall of the answer at or below detection.rouge_threshold, so no head can be scored. Check the "
            f"responses in the detection records, the prompt template and the context lengths (a model "
            f"answers only within its context window), or lower detection.rouge_threshold")
    return write_score_summary(merge_records(records, layers, heads), len(records), kept, tau, out)


def write_score_summary(per_instance: dict[str, list[float]], instances: int, kept: int, tau: float, out: Path,
                        source: str = "detection") -> dict[str, float]:
    """Wu et al.'s score file, and the ranked summary with concentration metrics, into `out`;
    `source`: "detection", or the published score file the scores were read from."""
    from retmask.heads import concentration, mean_scores, ranked
    from retmask.io import write_json

    scores = mean_scores(per_instance)
    write_json(out / "retrieval_scores.json", per_instance)
    write_json(out / "summary.json", {
        "source": source,
        "instances": instances,
        "kept": kept,
        "ranked": [[name, round(score, 6)] for name, score in ranked(scores)],
        "concentration": concentration(scores, tau),
    })
    return scores
