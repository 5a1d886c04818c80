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


def reference_prompts(rows, languages, drop_flagged, token_limit, tokenizer, limit):
    """The filters as the config documents them, one row after another: language, redacted,
    flagged, no user turn, duplicate of a kept prompt, too many tokens; the first `limit` kept."""
    from retmask.generation import chat_token_count
    from retmask.io import fingerprint

    kept, dropped, seen = [], {}, set()
    for row in rows:
        reason = None
        first_user = next((m for m in row["conversation"] if m["role"] == "user" and m["content"]), None)
        messages = [{"role": "user", "content": first_user["content"]}] if first_user else None
        if row["language"].lower() not in languages:
            reason = "language"
        elif row["redacted"]:
            reason = "redacted"
        elif drop_flagged and any(m["flagged"] for m in row["openai_moderation"]):
            reason = "flagged"
        elif messages is None:
            reason = "no_user_turn"
        elif fingerprint(messages) in seen:
            reason = "duplicate"
        elif chat_token_count(tokenizer, messages, add_generation_prompt=True) > token_limit:
            reason = "too_long"
        if reason:
            dropped[reason] = dropped.get(reason, 0) + 1
            continue
        seen.add(fingerprint(messages))
        kept.append((row["conversation_id"], messages))
        if len(kept) == limit:
            break
    return kept, dropped


def test_prepared_prompts_equal_the_filters_applied_row_by_row(tmp_path, toy_model_dir, monkeypatch):
    """In processes, in chunks, with batched token counts: the same prompts in the same order and
    the same drop counts as the sequential definition, the limit reached across a chunk boundary."""
    import random

    from transformers import AutoTokenizer

    from retmask import prompts
    from retmask.prompts import PromptFilters, prepare_prompts, prompts_of

    rng = random.Random(0)
    words = ["alpha", "beta", "gamma", "delta", "copy", "this", "answer", "one", "two"]
    rows = []
    for k in range(2600):
        text = " ".join(rng.choice(words) for _ in range(rng.choice([2, 3, 30])))  # 30 words: over the limit
        rows.append(lmsys_row(f"c{k}", text, language=rng.choice(["English"] * 4 + ["German"]),
                              redacted=rng.random() < 0.05, flagged=rng.random() < 0.05, turns=rng.choice([1, 2])))
        if k % 50 == 7:
            rows[-1]["conversation"] = [{"role": "assistant", "content": "no user"}]
    path = write_jsonl(tmp_path / "lmsys.jsonl", rows)
    tokenizer = AutoTokenizer.from_pretrained(toy_model_dir)
    limit, token_limit = 70, 20
    expected, expected_dropped = reference_prompts(rows, {"english"}, True, token_limit, tokenizer, limit)
    assert {"language", "redacted", "flagged", "no_user_turn", "duplicate", "too_long"} <= expected_dropped.keys()

    monkeypatch.setattr(prompts, "CHUNK_ROWS", 2100)  # two chunks; the first described by 2 processes
    everything = PromptFilters(languages=("english",), drop_flagged=True, token_limit=token_limit)
    prepared, counts = prepare_prompts(path, everything, str(toy_model_dir), num_proc=2)
    all_expected, all_dropped = reference_prompts(rows, {"english"}, True, token_limit, tokenizer, 0)
    assert [(p.prompt_id, p.messages) for p in prompts_of(prepared)] == all_expected
    assert dict(counts.dropped) == all_dropped and counts.rows == len(rows)

    monkeypatch.setattr(prompts, "CHUNK_ROWS", 60)  # the limit falls in a later chunk
    limited = PromptFilters(languages=("english",), drop_flagged=True, token_limit=token_limit, limit=limit)
    prepared, counts = prepare_prompts(path, limited, str(toy_model_dir), num_proc=2)
    assert [(p.prompt_id, p.messages) for p in prompts_of(prepared)] == expected
    assert dict(counts.dropped) == expected_dropped


def synth_row(cid, text, empty=False, duplicate_of=None, redacted=False):
    """A row in LMSYS-Chat-1M-Synth's own columns (its DATASET_DESCRIPTION_en.md)."""
    return {"conversation_id": cid, "duplicate_user_instruction_ja": duplicate_of, "empty_user_instruction_ja": empty,
            "translated_conversation": [{"role": "user", "content": "" if empty else f"ja {text}"}],
            "is_template_instruction": None, "redacted": redacted, "language": "English",
            "conversation": [{"role": "user", "content": text}, {"role": "assistant", "content": "reply"}]}


def authors_prompts(rows):
    """The paper's synthesis script (YoumiMa/RetMask, synthesize_assistant_response.py), as written:
    a row is skipped when `record.get("empty_user_instruction_ja", False) or
    record.get("duplicate_user_instruction_ja") is not None or record.get("redacted", False)`; the
    English prompt is the first turn of `conversation`. Nothing else is de-duplicated."""
    kept = []
    for record in rows:
        if (record.get("empty_user_instruction_ja", False) or record.get("duplicate_user_instruction_ja") is not None
                or record.get("redacted", False)):
            continue
        first = record["conversation"][0]
        kept.append((record["conversation_id"], [{"role": first["role"], "content": first["content"]}]))
    return kept


def test_lmsys_synth_is_filtered_as_the_papers_script_does(tmp_path):
    rows = [synth_row("a", "hello"), synth_row("b", "", empty=True), synth_row("c", "hola", duplicate_of="a"),
            synth_row("d", "secret", redacted=True), synth_row("e", "hello"),  # same English text, not flagged
            synth_row("f", "both", empty=True, redacted=True), synth_row("g", "last")]
    path = write_jsonl(tmp_path / "synth.jsonl", rows)
    result = load_prompts(path, dedup=False)  # the format is recognised by its flag columns
    assert [(p.prompt_id, p.messages) for p in result.prompts] == authors_prompts(rows)
    assert dict(result.dropped) == {"empty_instruction_ja": 2, "duplicate_instruction_ja": 1, "redacted": 1}
    # its flags apply whatever the other filters say; our de-duplication is on top, if asked
    assert [p.prompt_id for p in load_prompts(path, prompt_format="lmsys-synth", drop_redacted=False).prompts] == [
        "a", "d", "g"]


def test_gzipped_jsonl_as_lmsys_chat_1m_synth_ships(tmp_path):
    import gzip
    path = tmp_path / "lmsys-chat-1m-synth-ja+en-llama-3.1.jsonl.gz"
    with gzip.open(path, "wt") as out:
        out.write(json.dumps(synth_row("a", "hello")) + "\n" + json.dumps(synth_row("b", "hi", duplicate_of="a")) + "\n")
    assert [p.prompt_id for p in load_prompts(path).prompts] == ["a"]
