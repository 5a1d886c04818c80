"""Head sets: merged retrieval scores, selection rules and concentration of the score distribution.

Heads are named "L-H" (layer-head, query heads), as in Wu et al.'s score files.
"""
from __future__ import annotations

import math
import random
from pathlib import Path
from dataclasses import dataclass

from retmask.errors import UserError

Head = tuple[int, int]


class HeadError(UserError):
    pass


def head_name(head: Head) -> str:
    return f"{head[0]}-{head[1]}"


def parse_head(text: str) -> Head:
    """Parse "3-7" or "L3-H7" into (3, 7)."""
    cleaned = text.strip().upper().replace("L", "").replace("H", "")
    try:
        layer, head = (int(part) for part in cleaned.split("-"))
    except ValueError:
        raise HeadError(f"head {text!r}: expected LAYER-HEAD such as 3-7 or L3-H7") from None
    return layer, head


def check_heads(heads: list[Head], layers: int, heads_per_layer: int) -> None:
    bad = [h for h in heads if not (0 <= h[0] < layers and 0 <= h[1] < heads_per_layer)]
    if bad:
        raise HeadError(f"heads {', '.join(head_name(h) for h in bad)} are outside the model: layers 0..{layers - 1}, "
                        f"heads 0..{heads_per_layer - 1}")


def read_score_file(path: str, layers: int, heads_per_layer: int) -> dict[str, list[float]]:
    """A published score file ({"L-H": [score per kept test]}, Wu et al.'s head_score format, as
    the paper's authors publish theirs) for a model of `layers` x `heads_per_layer` query heads:
    every head named once, none outside the model, or one error saying which."""
    import json

    try:
        data = json.loads(Path(path).read_text())
    except (OSError, ValueError) as error:
        raise HeadError(f"detection.scores_file {path}: not a JSON score file ({error}); expected Wu et al.'s "
                        'head_score format, {"L-H": [scores...]}') from None
    if not isinstance(data, dict) or not all(isinstance(v, list) for v in data.values()):
        raise HeadError(f"detection.scores_file {path}: expected a mapping of heads to score lists, "
                        '{"L-H": [scores...]} (Wu et al.\'s head_score format)')
    names = {head_name(parse_head(name)): scores for name, scores in data.items()}
    expected = {head_name((layer, head)) for layer in range(layers) for head in range(heads_per_layer)}
    outside, absent = sorted(set(names) - expected, key=parse_head), sorted(expected - set(names), key=parse_head)
    if outside or absent:
        found_layers = 1 + max(parse_head(n)[0] for n in names) if names else 0
        found_heads = 1 + max(parse_head(n)[1] for n in names) if names else 0
        raise HeadError(f"detection.scores_file {path} scores {len(names)} heads over {found_layers} layers x "
                        f"{found_heads} heads, but the model has {layers} x {heads_per_layer} = {len(expected)}"
                        + (f"; outside it: {', '.join(outside[:5])}" if outside else "")
                        + (f"; not scored: {', '.join(absent[:5])}" if absent else "")
                        + ": is it this model's file?")
    return {name: [float(v) for v in names[name]] for name in sorted(names, key=parse_head)}


def mean_scores(per_head: dict[str, list[float]]) -> dict[str, float]:
    """A head's RetrievalScore: the mean of its per-instance scores (0 when no instance was kept)."""
    return {name: (sum(values) / len(values) if values else 0.0) for name, values in per_head.items()}


def ranked(scores: dict[str, float]) -> list[tuple[str, float]]:
    """Heads by score, best first; ties broken by layer then head for a stable order."""
    return sorted(scores.items(), key=lambda item: (-item[1], parse_head(item[0])))


@dataclass
class Selection:
    rule: str
    heads: list[str]
    parameters: dict

    def to_dict(self) -> dict:
        return {"rule": self.rule, "heads": self.heads, "count": len(self.heads), "parameters": self.parameters}


def select_threshold(scores: dict[str, float], tau: float) -> list[str]:
    return [name for name, score in ranked(scores) if score >= tau]


def select_top_k(scores: dict[str, float], k: int) -> list[str]:
    return [name for name, _ in ranked(scores)[:k]]


def select_random(scores: dict[str, float], count: int, seed: int, exclude: set[str] = frozenset()) -> list[str]:
    pool = sorted((name for name in scores if name not in exclude), key=parse_head)
    if count > len(pool):
        raise HeadError(f"cannot draw {count} heads from {len(pool)} candidates")
    return sorted(random.Random(seed).sample(pool, count), key=parse_head)


def select_heads(scores: dict[str, float], rule: str, tau: float, top_k: int = 0, count: int = 0,
                 seed: int = 0, retrieval: list[str] | None = None, min_heads: int = 0) -> Selection:
    """Apply a selection rule. random and non_retrieval draw as many heads as the retrieval set
    (default: the τ rule's, or its `min_heads` best heads when fewer reach τ) unless `count` says
    otherwise, so controls are compared at equal size; non_retrieval excludes the retrieval set."""
    if retrieval is None:
        retrieval = select_threshold(scores, tau)
        if len(retrieval) < min_heads:
            retrieval = select_top_k(scores, min_heads)
    size = count or len(retrieval)
    if rule == "threshold":
        heads = retrieval
    elif rule == "top_k":
        heads = select_top_k(scores, top_k)
    elif rule == "random":
        heads = select_random(scores, size, seed)
    elif rule == "non_retrieval":
        heads = select_random(scores, size, seed, exclude=set(retrieval))
    else:
        raise HeadError(f"unknown selection rule {rule!r}")
    return Selection(rule, heads, {"tau": tau, "top_k": top_k, "count": size, "seed": seed})


def concentration(scores: dict[str, float], tau: float, top_k: int = 10) -> dict[str, float]:
    """How concentrated the score mass is: the paper finds gains follow concentration."""
    values = sorted(max(0.0, v) for v in scores.values())
    total = sum(values)
    n = len(values)
    if n == 0 or total == 0:
        return {"heads": n, "heads_at_or_above_tau": 0, "gini": 0.0, f"top{top_k}_share": 0.0,
                "normalized_entropy": 1.0}
    gini = sum((2 * (i + 1) - n - 1) * v for i, v in enumerate(values)) / (n * total)
    probs = [v / total for v in values if v > 0]
    entropy = -sum(p * math.log(p) for p in probs) / math.log(n) if n > 1 else 0.0
    return {
        "heads": n,
        "heads_at_or_above_tau": sum(v >= tau for v in values),
        "gini": round(gini, 4),
        f"top{top_k}_share": round(sum(values[-top_k:]) / total, 4),
        "normalized_entropy": round(entropy, 4),
    }
