import json

import pytest

from retmask.prompts import PromptError, load_prompts


def write_jsonl(path, rows):
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    return path


def lmsys_row(cid, text, language="English", redacted=False, flagged=False, turns=1):
    conversation = []
    for turn in range(turns):
        conversation += [{"role": "user", "content": f"{text} {turn}" if turn else text},
                         {"role": "assistant", "content": f"reply {turn}"}]
    return {"conversation_id": cid, "model": "vicuna-13b", "conversation": conversation, "turn": turns,
            "language": language, "openai_moderation": [{"flagged": flagged}], "redacted": redacted}


def test_lmsys_rows_first_turn_filters_and_dedup(tmp_path):
    path = write_jsonl(tmp_path / "lmsys.jsonl", [
        lmsys_row("a", "hello"), lmsys_row("b", "bonjour", language="French"), lmsys_row("c", "secret", redacted=True),
        lmsys_row("d", "hello"), lmsys_row("e", "bad", flagged=True), lmsys_row("f", "two turns", turns=2)])
    result = load_prompts(path, languages=["english"], drop_flagged=True)
    assert [p.prompt_id for p in result.prompts] == ["a", "f"]
    assert result.prompts[1].messages == [{"role": "user", "content": "two turns"}]
    assert dict(result.dropped) == {"language": 1, "redacted": 1, "duplicate": 1, "flagged": 1}


def test_prefix_keeps_the_conversation_up_to_its_last_user_turn(tmp_path):
    path = write_jsonl(tmp_path / "lmsys.jsonl", [lmsys_row("f", "two turns", turns=2)])
    (prompt,) = load_prompts(path, turns="prefix").prompts
    assert prompt.prompt_id == "f:prefix"
    assert [m["role"] for m in prompt.messages] == ["user", "assistant", "user"]


def test_wildchat_and_plain_prompt_columns(tmp_path):
    wild = write_jsonl(tmp_path / "wild.jsonl", [{"conversation_hash": "h1", "conversation": [
        {"role": "user", "content": "hi", "language": "English", "redacted": False, "toxic": False}],
        "language": "English", "toxic": False, "redacted": False}])
    assert load_prompts(wild).prompts[0].prompt_id == "h1"
    plain = write_jsonl(tmp_path / "plain.jsonl", [{"prompt": "What is 2+2?"}, {"prompt": "What is 2+2?"}])
    result = load_prompts(plain)
    assert len(result.prompts) == 1 and result.prompts[0].messages == [{"role": "user", "content": "What is 2+2?"}]
    assert len(result.prompts[0].prompt_id) == 16  # no id column: a stable hash of the prompt


def test_parquet_and_saved_datasets_load_the_same(tmp_path):
    import datasets

    rows = [lmsys_row("a", "hello"), lmsys_row("b", "world")]
    dataset = datasets.Dataset.from_list(rows)
    dataset.to_parquet(str(tmp_path / "p.parquet"))
    dataset.save_to_disk(str(tmp_path / "saved"))
    ids = [p.prompt_id for p in load_prompts(tmp_path / "p.parquet").prompts]
    assert ids == [p.prompt_id for p in load_prompts(tmp_path / "saved").prompts] == ["a", "b"]


def test_errors_name_what_is_wrong(tmp_path):
    with pytest.raises(PromptError, match="no column 'text'; columns are"):
        load_prompts(write_jsonl(tmp_path / "a.jsonl", [{"prompt": "x"}]), prompt_format="prompt", column="text")
    with pytest.raises(PromptError, match=r"no prompt left of 1 rows \(language 1\)"):
        load_prompts(write_jsonl(tmp_path / "b.jsonl", [lmsys_row("a", "hallo", language="German")]),
                     languages=["English"])
    with pytest.raises(PromptError, match="does not exist"):
        load_prompts(tmp_path / "none.jsonl")
