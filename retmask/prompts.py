"""Chat prompts for synthesis, from LMSYS-Chat-1M, WildChat, or any jsonl/parquet file or saved
`datasets` directory with a messages or prompt column.

A prompt is the first user turn (default) or the whole conversation up to its last user turn,
with a stable id: the row's own conversation id when it has one, else a hash of the messages.
Filters (language, redacted, moderation-flagged, prompt tokens) and de-duplication are counted.
"""
from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
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
    "wildchat": {"messages": "conversation", "id": "conversation_hash"},
    "messages": {"messages": "messages", "id": "id"},
    "prompt": {"messages": "prompt", "id": "id"},
}
TURNS = ("first", "prefix")


def _load_rows(path: Path):
    import datasets

    if path.is_dir():
        return datasets.load_from_disk(str(path))
    suffix = path.suffix.lower()
    if suffix in (".jsonl", ".json"):
        return datasets.load_dataset("json", data_files=str(path), split="train")
    if suffix == ".parquet":
        return datasets.load_dataset("parquet", data_files=str(path), split="train")
    raise PromptError(f"prompts {path}: expected a .jsonl, .json or .parquet file or a saved datasets directory")


def detect_format(columns: list[str]) -> str:
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


def load_prompts(
    path: str | Path,
    prompt_format: str = "auto",
    column: str = "",
    turns: str = "first",
    languages: list[str] = (),
    drop_redacted: bool = True,
    drop_flagged: bool = False,
    dedup: bool = True,
    max_prompt_tokens: int = 0,
    tokenizer=None,
    limit: int = 0,
) -> PromptSet:
    """Prompts of a dataset in its row order, filtered; `limit` keeps the first N that pass."""
    path = Path(path)
    if not path.exists():
        raise PromptError(f"prompts {path} does not exist")
    if turns not in TURNS:
        raise PromptError(f"turns {turns!r}: expected one of {', '.join(TURNS)}")
    rows = _load_rows(path)
    chosen = detect_format(rows.column_names) if prompt_format == "auto" else prompt_format
    if chosen not in FORMATS:
        raise PromptError(f"prompt format {prompt_format!r}: expected one of auto, {', '.join(FORMATS)}")
    column = column or FORMATS[chosen]["messages"]
    if column not in rows.column_names:
        raise PromptError(f"prompts {path}: no column {column!r}; columns are {', '.join(rows.column_names)}")
    id_column = FORMATS[chosen]["id"]
    wanted_languages = {language.lower() for language in languages}
    result = PromptSet(prompts=[])
    seen: set[str] = set()
    for row in rows:
        result.rows += 1
        if wanted_languages and str(row.get("language", "")).lower() not in wanted_languages:
            result.dropped["language"] += 1
            continue
        if drop_redacted and row.get("redacted"):
            result.dropped["redacted"] += 1
            continue
        if drop_flagged and _flagged(row):
            result.dropped["flagged"] += 1
            continue
        messages = conversation_prompt(row[column], turns)
        if messages is None:
            result.dropped["no_user_turn"] += 1
            continue
        key = fingerprint(messages)
        if dedup and key in seen:
            result.dropped["duplicate"] += 1
            continue
        if max_prompt_tokens and tokenizer is not None:
            from retmask.generation import chat_token_count

            if chat_token_count(tokenizer, messages, add_generation_prompt=True) > max_prompt_tokens:
                result.dropped["too_long"] += 1
                continue
        seen.add(key)
        own_id = row.get(id_column)
        if own_id in (None, ""):
            prompt_id = key
        else:  # a conversation's prefix is another prompt than its first turn
            prompt_id = str(own_id) if turns == "first" else f"{own_id}:prefix"
        reference = row.get("reference")
        result.prompts.append(Prompt(str(prompt_id), messages, None if reference is None else str(reference)))
        if limit and len(result.prompts) >= limit:
            break
    if not result.prompts:
        reasons = ", ".join(f"{k} {v}" for k, v in sorted(result.dropped.items())) or "the source is empty"
        raise PromptError(f"prompts {path}: no prompt left of {result.rows} rows ({reasons}); "
                          "loosen the filters or give another source")
    return result
