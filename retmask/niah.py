"""Needle-in-a-Haystack instances for any tokenizer.

The needle goes at the requested depth of a haystack cut to the requested token length, moved
back to the nearest boundary the tokenizer itself marks: the end of a sentence in its own tokens
if one is near, else a token boundary. The depth actually used is recorded.
"""
from __future__ import annotations

import bisect
from dataclasses import asdict, dataclass
from pathlib import Path

from retmask.errors import UserError
from retmask.io import read_jsonl

SENTENCE_ENDS = (".", "!", "?", "\n", "。", "！", "？")


class NiahError(UserError):
    pass


@dataclass(frozen=True)
class Needle:
    needle: str  # the sentence hidden in the haystack
    question: str
    answer: str  # the phrase inside `needle` the model must copy (Wu et al.'s `real_needle`)


@dataclass
class NiahInstance:
    instance_id: str
    length: int  # requested context length in tokens (haystack + needle)
    requested_depth: float  # percent
    actual_depth: float  # percent of the haystack placed before the needle
    needle_id: int
    answer: str
    input_ids: list[int]
    needle_span: tuple[int, int]  # [start, end) token positions of the needle in input_ids
    answer_span: tuple[int, int]  # [start, end) token positions of the answer inside the needle

    def record(self) -> dict:
        """The instance's description, without its (long) token ids."""
        data = asdict(self)
        data.pop("input_ids")
        data["prompt_tokens"] = len(self.input_ids)
        return data


BUILTIN = "builtin"
BUILTIN_NEEDLES = Path(__file__).resolve().parent / "data" / "needles.jsonl"
DEFAULT_TEMPLATE = "<book>{context}</book>\nBased on the content of the book, Question: {question}\nAnswer:"  # Wu et al.'s


def load_haystack(path: str | Path, min_words: int = 20000, column: str = "text") -> str:
    """Haystack text: "builtin" (generated prose of at least `min_words` words), a saved
    `datasets` directory (its `column` joined), a text file, or a folder of .txt files."""
    if str(path) == BUILTIN:
        from retmask.filler import builtin_haystack

        return builtin_haystack(min_words)
    path = Path(path)
    if path.is_dir() and ((path / "dataset_info.json").is_file() or (path / "state.json").is_file()):
        import datasets

        rows = datasets.load_from_disk(str(path))
        if column not in rows.column_names:
            raise NiahError(f"haystack dataset {path} has no column {column!r}; columns: {', '.join(rows.column_names)}")
        text = "\n\n".join(rows[column])
    elif path.is_dir():
        files = sorted(path.glob("*.txt"))
        text = "\n".join(f.read_text() for f in files)
    elif path.is_file():
        text = path.read_text()
    else:
        raise NiahError(f"haystack {path} does not exist; give a text file or a folder of .txt files")
    if not text.strip():
        raise NiahError(f"haystack {path} is empty; it must hold the text the needle is hidden in")
    return text


def load_needles(path: str | Path) -> list[Needle]:
    """Needles from a jsonl of {needle, question, answer}; Wu et al.'s `real_needle` is accepted
    for `answer`. The answer must occur inside its needle (in any case): it is the span that is scored."""
    path = BUILTIN_NEEDLES if str(path) == BUILTIN else Path(path)
    if not path.is_file():
        raise NiahError(f"needles file {path} does not exist; give a jsonl of {{needle, question, answer}}")
    needles = []
    for i, row in enumerate(read_jsonl(path)):
        row = {"answer": row["real_needle"], **row} if "real_needle" in row and "answer" not in row else row
        missing = {"needle", "question", "answer"} - set(row)
        if missing:
            raise NiahError(f"{path} line {i + 1}: missing {', '.join(sorted(missing))}; "
                            "each line needs needle, question and answer (or real_needle)")
        # Wu's third needle capitalises its answer ("Because he is...") but not the needle ("because
        # he is..."): the span scored is the needle's own text, found regardless of case.
        at = row["needle"].lower().find(row["answer"].lower()) if row["answer"].strip() else -1
        if at < 0:
            raise NiahError(f"{path} line {i + 1}: answer {row['answer']!r} does not occur in needle "
                            f"{row['needle']!r}; the answer must be the phrase of the needle the model copies")
        needles.append(Needle(row["needle"], row["question"], row["needle"][at:at + len(row["answer"])]))
    if not needles:
        raise NiahError(f"needles file {path} has no needles")
    return needles


def grid(start: int, end: int, count: int) -> list[int]:
    if count == 1:
        return [start]
    return [round(start + (end - start) * i / (count - 1)) for i in range(count)]


def depth_grid(count: int) -> list[float]:
    """Depths spread over 0..100%, rounded to whole percents half to even as Wu et al.'s
    np.round(np.linspace(0, 100, count)) (10 depths: 0, 11, 22, 33, 44, 56, 67, 78, 89, 100)."""
    return [float(round(100.0 * i / (count - 1))) for i in range(count)] if count > 1 else [50.0]


def haystack_parts(path: str | Path) -> list[Path] | None:
    """Wu et al.'s haystack_for_detect layout: part1/, part2/, ... folders, needle i hidden in
    part i+1 (cycling); None for any other haystack."""
    path = Path(path)
    if str(path) == BUILTIN or not path.is_dir():
        return None
    parts = [p for p in path.iterdir() if p.is_dir() and p.name.startswith("part") and p.name[4:].isdigit()]
    return sorted(parts, key=lambda p: int(p.name[4:])) or None


class HaystackTokens:
    """A haystack tokenized once, with the character offset of every token and its sentence ends."""

    def __init__(self, tokenizer, text: str):
        encoded = tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)
        self.text = text
        self.offsets = encoded["offset_mapping"]
        # Token index i is a sentence boundary when the text before token i ends a sentence.
        self.sentence_starts = [
            i for i in range(1, len(self.offsets))
            if text[self.offsets[i - 1][0]:self.offsets[i][0]].rstrip(" \t").endswith(SENTENCE_ENDS)
        ]

    def __len__(self) -> int:
        return len(self.offsets)

    def boundary_at_or_before(self, position: int, window: int) -> int:
        """The nearest sentence start at or before `position` within `window` tokens, else `position`."""
        i = bisect.bisect_right(self.sentence_starts, position) - 1
        if i >= 0 and position - self.sentence_starts[i] <= window:
            return self.sentence_starts[i]
        return position

    def text_of(self, start: int, end: int) -> str:
        if start >= end:
            return ""
        return self.text[self.offsets[start][0]:self.offsets[end - 1][1]]


def render_prompt(tokenizer, template: str, context: str, question: str) -> tuple[str, bool]:
    """The prompt text, and whether encoding it adds the tokenizer's special tokens: a chat
    template writes its own (BOS included), so they are added exactly once either way; a model
    without one (Wu et al.'s base-model setting) gets them as its tokenizer adds them by default."""
    user = template.format(context=context, question=question)
    if tokenizer.chat_template:
        kwargs = {"enable_thinking": False}  # Qwen3: no reasoning during detection
        prompt = tokenizer.apply_chat_template([{"role": "user", "content": user}], tokenize=False,
                                               add_generation_prompt=True, **kwargs)
        return close_open_reasoning(prompt), False
    return user, True


def close_open_reasoning(prompt: str) -> str:
    """A template that always opens a reasoning block (Olmo-3-Think's ends its generation prompt
    with "<think>") gets it closed empty, as Qwen3's renders reasoning off: the model answers at
    once, so the answer is generated within the few new tokens detection and NIAH give it and the
    tests are kept (a model reasoning first would copy the needle, if ever, past the cap)."""
    return prompt + "\n\n</think>\n\n" if prompt.rstrip().endswith("<think>") else prompt


def build_instance(
    tokenizer,
    haystack: HaystackTokens,
    needle: Needle,
    needle_id: int,
    length: int,
    depth: float,
    template: str,
    boundary_window: int = 64,
) -> NiahInstance:
    needle_tokens = len(tokenizer(needle.needle, add_special_tokens=False)["input_ids"])
    hay_tokens = length - needle_tokens if length else 0  # length 0: the needle alone (Wu's first test)
    if hay_tokens < 1 and length:
        raise NiahError(f"needle of {needle_tokens} tokens does not fit a context of {length} tokens; "
                        "use context lengths longer than the needle")
    if hay_tokens > len(haystack):
        raise NiahError(f"context length {length} needs {hay_tokens} haystack tokens but the haystack has only "
                        f"{len(haystack)}; give a longer haystack or shorter lengths")
    position = haystack.boundary_at_or_before(round(hay_tokens * depth / 100.0), boundary_window)
    before, after = haystack.text_of(0, position), haystack.text_of(position, hay_tokens)
    context = " ".join(part for part in (before.rstrip(), needle.needle, after.lstrip()) if part)
    prompt, add_special_tokens = render_prompt(tokenizer, template, context, needle.question)
    needle_start = prompt.index(needle.needle, prompt.index(context))
    answer_start = needle_start + needle.needle.index(needle.answer)
    encoded = tokenizer(prompt, add_special_tokens=add_special_tokens, return_offsets_mapping=True)
    offsets = encoded["offset_mapping"]
    return NiahInstance(
        instance_id=f"L{length}-D{depth:g}-N{needle_id}",
        length=length,
        requested_depth=depth,
        actual_depth=round(100.0 * position / hay_tokens, 2) if hay_tokens else depth,
        needle_id=needle_id,
        answer=needle.answer,
        input_ids=encoded["input_ids"],
        needle_span=_char_span_to_tokens(offsets, needle_start, needle_start + len(needle.needle)),
        answer_span=_char_span_to_tokens(offsets, answer_start, answer_start + len(needle.answer)),
    )


def _char_span_to_tokens(offsets: list[tuple[int, int]], start: int, end: int) -> tuple[int, int]:
    """Token positions [first, last + 1) of the tokens overlapping characters [start, end);
    special tokens the tokenizer added (empty offsets) overlap nothing."""
    inside = [i for i, (s, e) in enumerate(offsets) if e > s and e > start and s < end]
    return inside[0], inside[-1] + 1


def check_within_positions(instances: list[NiahInstance], max_new_tokens: int, max_positions: int | None,
                           key: str, allowed: bool = False) -> None:
    """Refuse prompts the model has no positions for (it would score or answer them silently)."""
    if allowed or not instances or max_positions is None:
        return
    longest = max(len(instance.input_ids) for instance in instances) + max_new_tokens
    if longest > max_positions:
        raise NiahError(f"{key}.lengths: the longest NIAH prompt needs {longest} positions (with its new tokens) "
                        f"but the model has max_position_embeddings {max_positions}; use shorter lengths, or set "
                        f"{key}.beyond_max_positions: true to run past them")


def build_instances(tokenizer, haystack_path, needles_path, lengths: list[int], depths: int,
                    template: str) -> list[NiahInstance]:
    """The full grid: every length × depth × needle, in a fixed order (shards slice it)."""
    longest = grid(*lengths)[-1]
    sources = haystack_parts(haystack_path) or [haystack_path]  # Wu's: one part per needle
    haystacks = [HaystackTokens(tokenizer, load_haystack(source, min_words=longest + 1000)) for source in sources]
    needles = load_needles(needles_path)
    instances = []
    for length in grid(*lengths):
        for depth in depth_grid(depths):
            for needle_id, needle in enumerate(needles):
                haystack = haystacks[needle_id % len(haystacks)]
                instances.append(build_instance(tokenizer, haystack, needle, needle_id, length, depth, template))
    return instances
