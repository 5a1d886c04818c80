"""Chat prompts for synthesis, from LMSYS-Chat-1M, LMSYS-Chat-1M-Synth (the paper's), WildChat, or
any jsonl/parquet file or saved `datasets` directory with a messages or prompt column.

A prompt is the first user turn (default) or the whole conversation up to its last user turn,
with a stable id: the row's own conversation id when it has one, else a hash of the messages.
Filters (language, redacted, moderation-flagged, prompt tokens) and de-duplication are counted.
"""
from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

from retmask.errors import UserError
from retmask.io import fingerprint


class PromptError(UserError):
    pass


@dataclass(frozen=True)
class Prompt:
    prompt_id: str
    messages: list[dict]
    reference: str | None = None  # a reference answer, where the source has one (a judge may use it)


@dataclass
class PromptSet:
    prompts: list[Prompt]
    dropped: Counter = field(default_factory=Counter)
    rows: int = 0


# How each known dataset names its parts; "auto" picks by the columns present.
FORMATS = {
    "lmsys": {"messages": "conversation", "id": "conversation_id"},
    # tokyotech-llm/lmsys-chat-1m-synth (the paper's prompts): LMSYS's rows with its own flags, applied
    "lmsys-synth": {"messages": "conversation", "id": "conversation_id"},
    "wildchat": {"messages": "conversation", "id": "conversation_hash"},
    "messages": {"messages": "messages", "id": "id"},
    "prompt": {"messages": "prompt", "id": "id"},
}
TURNS = ("first", "prefix")


def _load_rows(path: Path):
    import datasets

    if path.is_dir():
        return datasets.load_from_disk(str(path))
    suffix = "".join(path.suffixes[-2:]).lower() if path.suffix.lower() == ".gz" else path.suffix.lower()
    if suffix in (".jsonl", ".json", ".jsonl.gz", ".json.gz"):  # LMSYS-Chat-1M-Synth ships as .jsonl.gz
        return datasets.load_dataset("json", data_files=str(path), split="train")
    if suffix == ".parquet":
        return datasets.load_dataset("parquet", data_files=str(path), split="train")
    raise PromptError(f"prompts {path}: expected a .jsonl, .json (optionally .gz) or .parquet file or a saved datasets directory")


def synth_flag(row: dict) -> str:
    """Why the paper's synthesis script skips this LMSYS-Chat-1M-Synth row ("" if it does not,
    redaction aside): its rule is `empty_user_instruction_ja` true, or `duplicate_user_instruction_ja`
    not null (the first copy's id), or `redacted`."""
    if row.get("empty_user_instruction_ja"):
        return "empty_instruction_ja"
    if row.get("duplicate_user_instruction_ja") is not None:
        return "duplicate_instruction_ja"
    return ""


def detect_format(columns: list[str]) -> str:
    if "duplicate_user_instruction_ja" in columns or "empty_user_instruction_ja" in columns:
        return "lmsys-synth"
    if "conversation_hash" in columns:
        return "wildchat"
    if "conversation_id" in columns and "conversation" in columns:
        return "lmsys"
    if "messages" in columns:
        return "messages"
    if "prompt" in columns:
        return "prompt"
    raise PromptError(f"cannot tell the prompt format from columns {', '.join(columns)}; set synthesis.prompt_format "
                      f"({', '.join(['auto', *FORMATS])}) and synthesis.prompt_column")


def conversation_prompt(messages, turns: str) -> list[dict] | None:
    """The prompt part of a conversation: its first user turn, or everything up to the last user turn."""
    if isinstance(messages, str):
        return [{"role": "user", "content": messages}]
    clean = [{"role": m["role"], "content": m["content"]} for m in messages if m.get("role") and m.get("content")]
    users = [i for i, m in enumerate(clean) if m["role"] == "user"]
    if not users:
        return None
    if turns == "first":
        return [clean[users[0]]]
    return clean[: users[-1] + 1]


def _flagged(row: dict) -> bool:
    moderation = row.get("openai_moderation") or []
    return any(entry.get("flagged") for entry in moderation if isinstance(entry, dict)) or bool(row.get("toxic"))


@dataclass(frozen=True)
class PromptFilters:
    """Which rows become prompts, and how (synthesis config keys of the same names)."""
    prompt_format: str = "auto"
    column: str = ""
    turns: str = "first"
    languages: tuple[str, ...] = ()
    drop_redacted: bool = True
    drop_flagged: bool = False
    dedup: bool = True
    token_limit: int = 0  # prompt tokens as the chat template renders them; 0 = no limit (or no tokenizer)
    limit: int = 0  # keep the first N that pass; 0 = all


# What the parallel pass writes per row; the order-dependent pass (duplicates, limit) reads it.
_DESCRIBED = {"drop": "string", "prompt_id": "string", "key": "string", "reference": "string", "too_long": "bool"}
CHUNK_ROWS = 200_000  # rows described at a time: bounds memory, and stops early once `limit` prompts are kept


def _features():
    import datasets

    features = {name: datasets.Value(kind) for name, kind in _DESCRIBED.items()}
    features["messages"] = [{"role": datasets.Value("string"), "content": datasets.Value("string")}]
    return datasets.Features(features)


@lru_cache(maxsize=2)
def _tokenizer(path: str):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(path)


def _describe(batch: dict, column: str, prompt_format: str, filters: PromptFilters, tokenizer_path: str | None) -> dict:
    """Per row, independent of every other row (so it runs batched, in processes): why it is
    dropped, else its prompt, id, de-duplication key and whether it is over the token limit."""
    names = list(batch)
    count = len(batch[names[0]]) if names else 0
    wanted = {language.lower() for language in filters.languages}
    id_column = FORMATS[prompt_format]["id"]
    out: dict[str, list] = {name: [] for name in [*_DESCRIBED, "messages"]}
    for i in range(count):
        row = {name: batch[name][i] for name in names}
        messages, reason = None, ""
        if prompt_format == "lmsys-synth" and synth_flag(row):
            reason = synth_flag(row)
        elif wanted and str(row.get("language", "")).lower() not in wanted:
            reason = "language"
        elif filters.drop_redacted and row.get("redacted"):
            reason = "redacted"
        elif filters.drop_flagged and _flagged(row):
            reason = "flagged"
        else:
            messages = conversation_prompt(row[column], filters.turns)
            reason = "" if messages is not None else "no_user_turn"
        key = fingerprint(messages) if messages is not None else ""
        own_id = row.get(id_column)
        if own_id in (None, ""):
            prompt_id = key
        else:  # a conversation's prefix is another prompt than its first turn
            prompt_id = str(own_id) if filters.turns == "first" else f"{own_id}:prefix"
        reference = row.get("reference")
        out["drop"].append(reason)
        out["messages"].append(messages or [])
        out["key"].append(key)
        out["prompt_id"].append(prompt_id if messages is not None else "")
        out["reference"].append(None if reference is None else str(reference))
    counts = _token_counts(out["messages"], tokenizer_path) if filters.token_limit and tokenizer_path else None
    out["too_long"] = [bool(counts and counts[i] > filters.token_limit) for i in range(count)]
    return out


def _token_counts(conversations: list[list[dict]], tokenizer_path: str) -> list[int]:
    """Tokens of each conversation as its chat template renders it with the generation prompt
    (generation.chat_token_count, batched); 0 for an empty one."""
    tokenizer = _tokenizer(tokenizer_path)
    present = [i for i, messages in enumerate(conversations) if messages]
    counts = [0] * len(conversations)
    if present:
        texts = tokenizer.apply_chat_template([conversations[i] for i in present], tokenize=False,
                                              add_generation_prompt=True)
        for i, ids in zip(present, tokenizer(texts, add_special_tokens=False)["input_ids"]):
            counts[i] = len(ids)
    return counts


def prepare_prompts(path: str | Path, filters: PromptFilters = PromptFilters(), tokenizer_path: str | None = None,
                    num_proc: int = 1):
    """The prompts of a dataset in its row order, filtered, as a `datasets.Dataset` with columns
    prompt_id, messages, reference; and the counts (rows read, drops by reason).

    Rows are described in parallel (`datasets.map`, `num_proc` processes, tokenizing batched);
    then one pass in row order drops duplicates (the first copy stays) and stops at `limit`."""
    import datasets

    path = Path(path)
    if not path.exists():
        raise PromptError(f"prompts {path} does not exist")
    if filters.turns not in TURNS:
        raise PromptError(f"turns {filters.turns!r}: expected one of {', '.join(TURNS)}")
    rows = _load_rows(path)
    chosen = detect_format(rows.column_names) if filters.prompt_format == "auto" else filters.prompt_format
    if chosen not in FORMATS:
        raise PromptError(f"prompt format {filters.prompt_format!r}: expected one of auto, {', '.join(FORMATS)}")
    column = filters.column or FORMATS[chosen]["messages"]
    if column not in rows.column_names:
        raise PromptError(f"prompts {path}: no column {column!r}; columns are {', '.join(rows.column_names)}")
    counts = PromptSet(prompts=[])
    seen: set[str] = set()
    kept_parts = []
    kept = 0
    for start in range(0, len(rows), CHUNK_ROWS):
        chunk = rows.select(range(start, min(start + CHUNK_ROWS, len(rows))))
        processes = max(1, min(num_proc, len(chunk) // 1000))  # a process per 1000 rows at least
        described = chunk.map(_describe, batched=True, batch_size=1000, num_proc=processes if processes > 1 else None,
                              remove_columns=chunk.column_names, features=_features(), keep_in_memory=True,
                              fn_kwargs={"column": column, "prompt_format": chosen, "filters": filters,
                                         "tokenizer_path": tokenizer_path},
                              desc=None)
        keep = []
        for index, (reason, key, too_long) in enumerate(zip(described["drop"], described["key"], described["too_long"])):
            counts.rows += 1
            if not reason and filters.dedup and key in seen:
                reason = "duplicate"
            elif not reason and too_long:
                reason = "too_long"
            if reason:
                counts.dropped[reason] += 1
                continue
            seen.add(key)
            keep.append(index)
            kept += 1
            if filters.limit and kept >= filters.limit:
                break
        kept_parts.append(described.select(keep).select_columns(["prompt_id", "messages", "reference"]))
        if filters.limit and kept >= filters.limit:
            break
    if not kept:
        reasons = ", ".join(f"{k} {v}" for k, v in sorted(counts.dropped.items())) or "the source is empty"
        raise PromptError(f"prompts {path}: no prompt left of {counts.rows} rows ({reasons}); "
                          "loosen the filters or give another source")
    return datasets.concatenate_datasets(kept_parts), counts


def prompts_of(rows) -> list[Prompt]:
    """Prompt objects of a prepared dataset (or a slice of one)."""
    return [Prompt(row["prompt_id"], [dict(m) for m in row["messages"]], row["reference"]) for row in rows]


def load_prompts(path: str | Path, prompt_format: str = "auto", column: str = "", turns: str = "first",
                 languages: list[str] = (), drop_redacted: bool = True, drop_flagged: bool = False, dedup: bool = True,
                 max_prompt_tokens: int = 0, tokenizer_path: str | None = None, limit: int = 0) -> PromptSet:
    """Every prompt in memory, with the drop counts: prepare_prompts in one process."""
    filters = PromptFilters(prompt_format, column, turns, tuple(languages), drop_redacted, drop_flagged, dedup,
                            max_prompt_tokens, limit)
    prepared, counts = prepare_prompts(path, filters, tokenizer_path)
    counts.prompts = prompts_of(prepared)
    return counts
