"""A built-in, offline haystack: plain English prose generated from a small grammar.

Seeded and unbounded, so a 128K-token context needs no download and repeats no paragraph.
Its sentences are irrelevant to every shipped needle.
"""
from __future__ import annotations

import random

SUBJECTS = [
    "The old miller", "A traveling merchant", "The village council", "Our neighbor's daughter", "The river",
    "A quiet librarian", "The harbor master", "An apprentice carpenter", "The morning train", "A flock of geese",
    "The school teacher", "The baker on the corner", "A young surveyor", "The orchard keeper", "The night watchman",
    "A retired sailor", "The weaver's guild", "The mountain road", "A wandering musician", "The town clock",
]
VERBS = [
    "walked slowly past", "spoke at length about", "carefully repaired", "often remembered", "wrote a letter about",
    "argued with friends over", "quietly admired", "kept a record of", "drew a small map of", "complained about",
    "sold a basket near", "painted a picture of", "asked questions about", "forgot the way to", "searched for",
]
OBJECTS = [
    "the stone bridge", "the empty market square", "a field of barley", "the crooked chimney", "the last autumn fair",
    "the price of wool", "an unfinished fence", "the northern pasture", "a box of old coins", "the rainy season",
    "the broken cart wheel", "the chapel garden", "a pile of firewood", "the new well", "the winding canal",
]
CLAUSES = [
    "before the first frost arrived", "while the bells were ringing", "as the fog lifted from the valley",
    "long after the lamps were lit", "during the busiest week of the harvest", "because nobody else would",
    "on a windy Tuesday in March", "without telling anyone at home", "just as the rain began", "every single year",
]
REMARKS = [
    "Nobody could say exactly why.", "It was, by all accounts, an ordinary day.", "The children found it amusing.",
    "Some people still talk about it.", "The weather stayed mild for once.", "Little else happened that month.",
    "It seemed important at the time.", "Most of the town was asleep.",
]


def sentence(rng: random.Random) -> str:
    text = f"{rng.choice(SUBJECTS)} {rng.choice(VERBS)} {rng.choice(OBJECTS)} {rng.choice(CLAUSES)}."
    return text + (" " + rng.choice(REMARKS) if rng.random() < 0.25 else "")


def builtin_haystack(words: int, seed: int = 0) -> str:
    """About `words` words of prose, in paragraphs of four to eight sentences."""
    rng = random.Random(seed)
    paragraphs, count = [], 0
    while count < words:
        paragraph = " ".join(sentence(rng) for _ in range(rng.randint(4, 8)))
        paragraphs.append(paragraph)
        count += len(paragraph.split())
    return "\n\n".join(paragraphs)
