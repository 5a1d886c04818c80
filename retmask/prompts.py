"""Chat prompts for synthesis: rows of a jsonl/parquet file or a saved `datasets` directory.

A prompt is the conversation up to (and including) the first user turn, with a stable id.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from retmask.errors import UserError
from retmask.io import fingerprint


class PromptError(UserError):
    pass


@dataclass(frozen=True)
class Prompt:
    prompt_id: str
    messages: list[dict]


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


def _first_user_turn(messages, row_index: int, column: str) -> list[dict]:
    if isinstance(messages, str):
        return [{"role": "user", "content": messages}]
    for message in messages:
        if message.get("role") == "user":
            return [{"role": "user", "content": message["content"]}]
    raise PromptError(f"row {row_index}: column {column!r} has no user turn")


def load_prompts(path: str | Path, column: str = "messages", limit: int = 0) -> list[Prompt]:
    """First user turn of each row; ids from the row's `id` column, else a hash of the prompt."""
    path = Path(path)
    if not path.exists():
        raise PromptError(f"prompts {path} does not exist")
    rows = _load_rows(path)
    if column not in rows.column_names:
        raise PromptError(f"prompts {path}: no column {column!r}; columns are {', '.join(rows.column_names)}")
    prompts = []
    for index, row in enumerate(rows):
        messages = _first_user_turn(row[column], index, column)
        prompt_id = str(row.get("id") or row.get("conversation_id") or fingerprint(messages))
        prompts.append(Prompt(prompt_id, messages))
        if limit and len(prompts) >= limit:
            break
    if not prompts:
        raise PromptError(f"prompts {path} holds no rows")
    return prompts

