"""The synthetic key-value copy task the toy model is trained on, and the data it ships with.

An example is a haystack of filler words with a needle `SECRET v1 .. vk END` at a random
position, then `QUERY`; the answer is the values in order. The same shapes feed the rest of the
pipeline: NIAH needles/haystack for detection and chat prompts for synthesis.
"""
from __future__ import annotations

import random
from dataclasses import dataclass

from retmask.toy.vocab import END, FILLER, QUERY, SECRET, VALUES


@dataclass(frozen=True)
class CopyExample:
    user: str  # haystack with the needle, ending in QUERY
    answer: str  # the needle's values, space separated


def random_values(rng: random.Random, min_values: int, max_values: int) -> list[str]:
    return rng.sample(VALUES, rng.randint(min_values, max_values))


def random_filler(rng: random.Random, length: int) -> list[str]:
    return [rng.choice(FILLER) for _ in range(length)]


def needle_text(values: list[str]) -> str:
    return " ".join([SECRET, *values, END])


def make_example(
    rng: random.Random,
    min_haystack: int,
    max_haystack: int,
    min_values: int,
    max_values: int,
) -> CopyExample:
    values = random_values(rng, min_values, max_values)
    haystack = random_filler(rng, rng.randint(min_haystack, max_haystack))
    position = rng.randint(0, len(haystack))
    words = haystack[:position] + needle_text(values).split() + haystack[position:] + [QUERY]
    return CopyExample(user=" ".join(words), answer=" ".join(values))


def niah_needles(rng: random.Random, count: int, min_values: int, max_values: int) -> list[dict]:
    """Needles in the {needle, question, answer} form detection takes for any model."""
    needles = []
    for _ in range(count):
        values = random_values(rng, min_values, max_values)
        needles.append({"needle": needle_text(values), "question": QUERY, "answer": " ".join(values)})
    return needles


def haystack_text(rng: random.Random, words: int) -> str:
    return " ".join(random_filler(rng, words))
