"""A checkout laid out as Wu et al.'s Retrieval_Head repository (and the paper's copy of it):
haystack_for_detect/needles.jsonl ({needle, question, real_needle}) and part1/, part2/, part3/,
one haystack text each, read raw. The texts and needles here are our own: Wu's repository carries
no licence, so users point `inputs.wu` at their own checkout. Like Wu's third needle, one answer
is capitalised where its needle is not."""
from __future__ import annotations

import json
from pathlib import Path

NEEDLES = [
    {"needle": "The archive in Tallinn keeps the oldest map of the harbour in a copper box.",
     "question": "Where does the archive in Tallinn keep the oldest map?",
     "real_needle": "keeps the oldest map of the harbour in a copper box"},
    {"needle": "The best thing to do in Lisbon is to ride tram 28 and eat a custard tart at dusk.",
     "question": "What is the best thing to do in Lisbon?",
     "real_needle": "ride tram 28 and eat a custard tart at dusk"},
    {"needle": "Ms Grey is admired by everyone because she is a kind person and also she can fix any clock.",
     "question": "Why does everyone admire Ms Grey?",
     "real_needle": "Because she is a kind person and also she can fix any clock."},
]
TOPICS = ["rivers and the mills along them", "a lighthouse keeper's winter", "the printing of old atlases"]


def part_text(index: int, words: int) -> str:
    """A raw dump like Wu's part files (a datasets-server JSON page, escapes and all), ~`words` words."""
    sentence = f"Chapter {index + 1} tells of {TOPICS[index]}; the days pass slowly and nobody hurries. "
    rows = [{"row_idx": i, "row": {"text": sentence * 8}} for i in range(words // 120 + 1)]
    return json.dumps({"features": [{"feature_idx": 0, "name": "text"}], "rows": rows})


def write_wu_checkout(root: Path, words: int = 6000) -> Path:
    folder = root / "haystack_for_detect"
    for index in range(3):
        (folder / f"part{index + 1}").mkdir(parents=True, exist_ok=True)
        (folder / f"part{index + 1}" / "p1.txt").write_text(part_text(index, words))
    (folder / "needles.jsonl").write_text("".join(json.dumps(needle) + "\n" for needle in NEEDLES))
    return root
