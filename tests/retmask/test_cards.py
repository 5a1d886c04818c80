"""The cards of a toy run's pairs dataset and trained model: loadable by the Hub's loaders, with
the metadata the Hub reads, and every figure equal to the one its stage recorded."""
import dataclasses
import json
from importlib import resources

import pytest
from huggingface_hub import DatasetCard, ModelCard

from jobs.stages.pairs import pairs_dir
from jobs.stages.train import trained_model_dir
from retmask.cards import CARD_FILE, cell, dataset_card, hub_model_id, size_category, write_card
from retmask.errors import UserError
from retmask.io import read_json, read_jsonl

@pytest.fixture
def toy_run(small_toy_run):
    """The shared small run (tests/conftest.py; it drops rows at both filters: prompts over 56
    tokens before synthesis, chosen responses cut off at 8 new tokens when pairing), its config,
    and the model card as training left it."""
    return small_toy_run.run, small_toy_run.cfg, small_toy_run.model_card_after_training


def settings(text: str) -> dict[str, str]:
    """The two-column rows of a card's tables: first cell (without backticks) -> second."""
    rows = {}
    for line in text.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if line.startswith("|") and len(cells) == 2:
            rows[cells[0].strip("`")] = cells[1]
    return rows


def test_the_dataset_card_loads_and_carries_hub_metadata(toy_run):
    import datasets

    run, _, _ = toy_run
    directory = pairs_dir(run) / "dataset"
    card = DatasetCard.load(directory / CARD_FILE)
    pairs = datasets.load_from_disk(str(directory))
    assert {"dpo", "retmask", "preference"} <= set(card.data.tags)
    assert card.data.task_categories == ["text-generation"]
    assert card.data.size_categories == size_category(len(pairs))
    # The configs entry points at the rows: the Hub's Arrow loader reads them as saved.
    (config,) = card.data.configs
    files = sorted(str(p) for p in directory.glob(config["data_files"][0]["path"]))
    assert files and config["data_files"][0]["split"] == "train"
    assert datasets.load_dataset("arrow", data_files=files, split="train").to_list() == pairs.to_list()


def test_the_dataset_is_unchanged_by_its_card(toy_run):
    import datasets

    run, _, _ = toy_run
    pairs = datasets.load_from_disk(str(pairs_dir(run) / "dataset"))
    written = read_jsonl(pairs_dir(run) / "pairs.jsonl")
    assert pairs.to_list() == [{k: row[k] for k in pairs.column_names} for row in written]


def test_the_dataset_card_states_its_sources_drops_heads_sampling_and_table_11(toy_run):
    run, cfg, _ = toy_run
    text = DatasetCard.load(pairs_dir(run) / "dataset" / CARD_FILE).text
    rows = settings(text)
    statistics = read_json(pairs_dir(run) / "statistics.json")
    prompts = read_json(run.stage_dir("prepare_prompts") / "statistics.json")
    heads = read_json(run.stage_dir("select_heads") / "heads.json")
    assert prompts["dropped"] and statistics["dropped"], "the run should drop rows at both filters"

    assert rows["synthesis.prompts"] == cfg.synthesis.prompts
    assert rows["synthesis.prompt_format"] == cfg.synthesis.prompt_format
    assert f"{prompts['rows']} rows read, {prompts['prompts']} prompts kept" in text
    for reason, count in {**prompts["dropped"], **statistics["dropped"]}.items():
        assert rows[reason] == cell(count), reason
    assert rows["kept with an empty rejected response"] == cell(statistics["kept_empty_rejected"])
    assert f"`{cfg.model.path}`" in text and "masked heads ablated" in text
    assert f"{heads['count']} heads masked (rule `{heads['rule']}`): {cell(heads['heads'])}." in text
    for key, value in cfg.synthesis.sampling.__dict__.items():
        assert rows[f"synthesis.sampling.{key}"] == cell(value), key
    for label, key in (("prompts", "prompts"), ("pairs", "pairs"), ("mean input tokens", "mean_input_tokens"),
                       ("mean chosen tokens", "mean_chosen_tokens"), ("mean rejected tokens", "mean_rejected_tokens")):
        assert rows[label] == cell(statistics[key]), label


def _check_model_metadata(card: ModelCard, cfg) -> None:
    assert card.data.base_model == cfg.model.path  # a local checkpoint outside the Hub's cache
    assert card.data.library_name == "transformers"
    assert {"dpo", "trl", "retmask"} <= set(card.data.tags)


def test_training_writes_a_model_card_with_method_heads_and_hyper_parameters(toy_run, tmp_path):
    run, cfg, trained_card = toy_run
    path = tmp_path / CARD_FILE
    path.write_text(trained_card)
    card = ModelCard.load(path)
    _check_model_metadata(card, cfg)
    rows = settings(card.text)
    heads = read_json(run.stage_dir("select_heads") / "heads.json")
    summary = read_json(run.stage_dir("train") / "summary.json")
    assert "Not evaluated yet." in card.text
    assert rows["strategy"] == cfg.strategy and rows["beta"] == cell(cfg.train.beta)
    assert rows["masked heads"] == cell(heads["count"]) and rows["τ"] == cell(cfg.selection.tau)
    assert f"{cell(heads['heads'])}." in card.text
    for key in ("learning_rate", "epochs", "global_batch_size", "max_length", "beta", "max_steps"):
        assert rows[f"train.{key}"] == cell(getattr(cfg.train, key)), key
    for key, value in summary.items():
        assert rows[key] == cell(value), key
    assert rows["pairs"] == cell(read_json(pairs_dir(run) / "statistics.json")["pairs"])


def test_the_report_rewrites_the_model_card_with_the_evaluation(toy_run):
    run, cfg, trained_card = toy_run
    card = ModelCard.load(trained_model_dir(run) / CARD_FILE)
    _check_model_metadata(card, cfg)
    rows = settings(card.text)
    niah = read_json(run.stage_dir("evaluate") / "niah.json")
    change = read_json(run.stage_dir("evaluate") / "retrieval_change.json")
    health = read_json(run.report_dir / "metrics.json")["health"]
    assert "Not evaluated yet." not in card.text
    assert card.text.split("## Evaluation")[0] == ModelCard(trained_card).text.split("## Evaluation")[0]
    for entry in niah:
        assert f"| {entry['model']} | {len(entry['masked_heads'])} | {cell(entry['accuracy'])} |" in card.text
    assert rows["mean retrieval score before"] == cell(change["mean_before"])
    assert rows["mean retrieval score after"] == cell(change["mean_after"])
    assert rows["mean change of the masked heads"] == cell(change["masked_mean_delta"])
    assert f"Verdict: {health['verdict']}." in card.text


def test_the_model_still_loads_beside_its_card(toy_run):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    run, _, _ = toy_run
    model = AutoModelForCausalLM.from_pretrained(trained_model_dir(run))
    tokenizer = AutoTokenizer.from_pretrained(trained_model_dir(run))
    assert model.num_parameters() > 0 and tokenizer("QUERY")["input_ids"]


def test_an_sft_card_has_no_rejected_side_and_no_heads(toy_run):
    run, cfg, _ = toy_run
    card = dataset_card(dataclasses.replace(cfg, strategy="sft"), read_json(pairs_dir(run) / "statistics.json"), None, None,
                        ["prompt_id", "prompt", "completion"])
    rows = settings(card.text)
    assert {"sft", "retmask"} <= set(card.data.tags) and "dpo" not in card.data.tags
    assert "mean rejected tokens" not in rows and "examples" in rows
    assert "None: this strategy masks no heads." in card.text


@pytest.mark.parametrize("rows", [0, 999, 1000, 54_321, 10**9, 10**12 - 1, 10**12, 10**15])
def test_size_categories_are_the_hubs_buckets(rows):
    known = json.loads(resources.files("datasets.utils.resources").joinpath("size_categories.json").read_text())
    assert size_category(rows) in known


def test_a_checkpoint_in_the_hubs_cache_is_named_by_its_hub_id():
    path = "/home/u/.cache/huggingface/hub/models--meta-llama--Llama-3.1-8B-Instruct/snapshots/0e9e39f"
    assert hub_model_id(path) == "meta-llama/Llama-3.1-8B-Instruct"
    assert hub_model_id("/models/Llama-3.1-8B-Instruct") == "/models/Llama-3.1-8B-Instruct"


def test_a_card_for_a_missing_directory_is_one_clear_error(tmp_path):
    with pytest.raises(UserError, match="no such directory"):
        write_card(tmp_path / "missing", DatasetCard("---\ntags: [retmask]\n---\n"))


def test_the_pair_card_shows_sampling_as_the_engine_got_it(toy_run):
    run, cfg, _ = toy_run
    card = dataset_card(cfg, read_json(pairs_dir(run) / "statistics.json"), None, None,
                        ["prompt_id", "prompt", "chosen", "rejected"], {"top_k": 20})
    rows = settings(card.text)
    assert rows["synthesis.sampling.top_k"] == "20" and rows["synthesis.sampling.min_p"] == "-"
    assert "(here top_k 20)" in card.text
