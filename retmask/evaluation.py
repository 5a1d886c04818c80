"""NIAH recall of a model over a length × depth grid."""
from __future__ import annotations

from collections import defaultdict

from retmask.generation import generate_ids
from retmask.niah import NiahInstance
from retmask.retrieval import rouge1_recall


def _normalized(text: str) -> str:
    return " ".join(text.lower().split())


def token_budget_batches(lengths: list[int], max_new_tokens: int, budget: int) -> list[list[int]]:
    """Indices grouped shortest first so that each batch's size x (its longest + new tokens) stays
    within `budget` tokens; a prompt over the budget alone gets a batch of its own."""
    batches: list[list[int]] = []
    for index in sorted(range(len(lengths)), key=lambda i: lengths[i]):
        width = lengths[index] + max_new_tokens  # sorted: the newest prompt is the batch's longest
        if batches and (len(batches[-1]) + 1) * width <= budget:
            batches[-1].append(index)
        else:
            batches.append([index])
    return batches


def niah_records(model, tokenizer, instances: list[NiahInstance], max_new_tokens: int,
                 batch_tokens: int = 132_000) -> list[dict]:
    """Greedy answers to each instance: found (answer contained in the response) and ROUGE-1 recall."""
    generations = [None] * len(instances)
    for batch in token_budget_batches([len(i.input_ids) for i in instances], max_new_tokens, batch_tokens):
        outputs = generate_ids(model, tokenizer, [instances[i].input_ids for i in batch],
                               max_new_tokens=max_new_tokens, batch_size=len(batch))
        for i, output in zip(batch, outputs):
            generations[i] = output
    return [
        {
            "instance_id": instance.instance_id,
            "length": instance.length,
            "requested_depth": instance.requested_depth,
            "actual_depth": instance.actual_depth,
            "response": generation.text,
            "found": _normalized(instance.answer) in _normalized(generation.text),
            "rouge_recall": round(rouge1_recall(instance.answer, generation.text), 4),
        }
        for instance, generation in zip(instances, generations)
    ]


def accuracy(records: list[dict]) -> float:
    return sum(r["found"] for r in records) / len(records) if records else 0.0


def accuracy_grid(records: list[dict]) -> dict[tuple[int, float], float]:
    """Mean `found` per (length, requested depth) cell."""
    cells: dict[tuple[int, float], list[bool]] = defaultdict(list)
    for record in records:
        cells[(record["length"], record["requested_depth"])].append(record["found"])
    return {cell: sum(values) / len(values) for cell, values in sorted(cells.items())}
