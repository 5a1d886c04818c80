"""Twins and rehearsal configs: a twin keeps what makes its model that model (class, layer kinds,
head ratio and size, rope, vocabulary, special tokens, chat template, generation config) and cuts
depth and width; a rehearsal config caps every workload and keeps the report's bands in place."""
from pathlib import Path

import pytest

from retmask.rehearsal import LengthMap, build_twin, niah_map, rehearsal_config, twin_config
from tests.helpers.paper_models import MODELS


@pytest.mark.parametrize("name", sorted(MODELS))
def test_a_twin_keeps_the_models_shape_and_cuts_its_size(name, paper_inputs):
    from transformers import AutoConfig, AutoTokenizer

    from tests.helpers.paper_inputs import INPUT_OF

    source = Path(paper_inputs[INPUT_OF[name]])
    twin_path = build_twin(source)
    real, twin = AutoConfig.from_pretrained(source), AutoConfig.from_pretrained(twin_path)  # as transformers reads them
    assert type(twin) is type(real) and twin.architectures == real.architectures
    text, real_text = twin.get_text_config(), real.get_text_config()
    ratio = real_text.num_attention_heads // real_text.num_key_value_heads
    assert text.num_attention_heads // text.num_key_value_heads == ratio  # the query/KV head ratio
    assert text.head_dim == getattr(real_text, "head_dim", None) or real_text.hidden_size // real_text.num_attention_heads
    assert text.hidden_size < 100 and text.num_hidden_layers <= 6
    for key in ("vocab_size", "max_position_embeddings", "rope_parameters", "sliding_window", "eos_token_id",
                "bos_token_id", "pad_token_id", "tie_word_embeddings", "query_pre_attn_scalar", "rms_norm_eps"):
        assert getattr(text, key, None) == getattr(real_text, key, None), key
    kinds = getattr(real_text, "layer_types", None)
    if kinds:  # every kind of layer the model has, in its order (Olmo-3: three sliding, then one full)
        assert set(text.layer_types) == set(kinds) and text.layer_types == kinds[:text.num_hidden_layers]
    for file in ("tokenizer.json", "tokenizer_config.json", "generation_config.json"):
        assert (twin_path / file).read_bytes() == (source / file).read_bytes()
    assert AutoTokenizer.from_pretrained(twin_path).chat_template == AutoTokenizer.from_pretrained(source).chat_template
    assert build_twin(source) == twin_path  # built once: the cache is keyed by what it is built from


def test_gemma_3s_interleaving_needs_six_layers_and_its_vision_tower_is_cut_too():
    config = MODELS["gemma-3-27b-it"]["config"]
    twin = twin_config(config)
    assert twin["text_config"]["num_hidden_layers"] == 6  # five sliding layers, then a global one
    assert twin["vision_config"]["num_hidden_layers"] == 1
    assert twin["vision_config"]["image_size"] == config["vision_config"]["image_size"]


def test_a_length_map_keeps_each_grid_length_on_its_side_of_the_long_band():
    from retmask.niah import grid

    lengths = LengthMap(1000, 32000, (160, 480))
    assert lengths.grid([1000, 32000, 8]) == [160, 480, 8] and lengths(8000) == 232
    real, rehearsed = grid(1000, 32000, 8), grid(*lengths.grid([1000, 32000, 8]))
    assert [n >= 8000 for n in real] == [n >= lengths(8000) for n in rehearsed] == [False] * 2 + [True] * 6


def test_the_rehearsal_config_caps_every_workload(paper_inputs):
    from retmask.study_config import load_study, study_run_config
    from tests.helpers.paper_inputs import input_arguments

    config = Path(__file__).parents[2] / "configs/paper/table1-2-7-main.yaml"
    arguments = input_arguments(paper_inputs)
    study, experiment, base = load_study(config, [arguments[i + 1] for i in range(0, len(arguments), 2)])
    real = study_run_config(experiment, base, "r", "win-lose-pair", 1, variant=study.variants["qwen3-8b"].config)
    notes = []
    rehearsal = rehearsal_config(real, niah_map([real]), notes, world_size=4)
    assert real.train.global_batch_size == 512 and real.synthesis.sampling.max_new_tokens == 4096
    assert (rehearsal.train.max_steps, rehearsal.train.per_device_batch_size, rehearsal.train.global_batch_size) == \
        (2, 2, 16)  # two micro-batches a step on each of the profile's 4 GPUs
    assert rehearsal.synthesis.max_prompts == 8 and rehearsal.synthesis.sampling.max_new_tokens == 8
    assert rehearsal.evaluation.niah_lengths == [160, 480, 3] and rehearsal.detection.lengths[2] == 3
    assert rehearsal.helmet.extra_args[-2:] == ["--max_test_samples", "2"]
    assert rehearsal.judge.ties == "keep" and rehearsal.selection.min_heads == 2
    assert rehearsal.synthesis.enable_thinking is True and rehearsal.train.deepspeed == real.train.deepspeed
    assert "twins" in rehearsal.model.path and "twins" in rehearsal.judge.path
    assert any("vllm" in note for note in notes)  # vLLM is not installed beside the tests: the HF engine samples
