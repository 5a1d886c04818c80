"""The generation backends' own logic. vLLM cannot be installed without a CUDA torch, so the check
of its weight-file order runs here on two iterators written the two ways vLLM's has been: reading
files as listed (before 2026) and sorting them first (since)."""
import pytest
from safetensors import safe_open

from retmask.backends import check_reads_masked_file_last, split_reasoning
from retmask.masking import natural_sort_key


def _read_as_listed(hf_weights_files, use_tqdm_on_load=True):
    for path in hf_weights_files:
        with safe_open(path, framework="pt") as handle:
            for name in handle.keys():  # noqa: SIM118 (a safe_open handle is not a dict)
                yield name, handle.get_tensor(name)


def _read_sorted(hf_weights_files, use_tqdm_on_load=True):
    yield from _read_as_listed(sorted(hf_weights_files, key=natural_sort_key), use_tqdm_on_load)


def test_a_loader_that_sorts_weight_files_reads_the_masked_file_last():
    check_reads_masked_file_last(_read_sorted)


def test_a_loader_in_directory_order_is_refused():
    with pytest.raises(RuntimeError, match="reads weight files in directory order"):
        check_reads_masked_file_last(_read_as_listed)


def test_reasoning_is_kept_apart_from_the_answer():
    assert split_reasoning("<think>\nadd 2 and 2\n</think>\n\n4") == ("4", "add 2 and 2", True)
    assert split_reasoning("just 4") == ("just 4", None, True)
    assert split_reasoning("add 2 and 2\n</think>\n\n4") == ("4", "add 2 and 2", True)  # Olmo-3-Think: no opening tag


def test_hf_generation_renders_prompts_with_the_chat_template_options():
    from retmask.generation import render_prompts
    from tests.helpers.qwen_bpe import qwen3_tokenizer

    tokenizer = qwen3_tokenizer()
    prompt = [[{"role": "user", "content": "hi"}]]
    thinking_off = tokenizer.decode(render_prompts(tokenizer, prompt, {"enable_thinking": False})[0])
    assert thinking_off.endswith("<think>\n\n</think>\n\n")
    assert not tokenizer.decode(render_prompts(tokenizer, prompt)[0]).endswith("</think>\n\n")


def test_unset_sampling_fields_come_from_the_models_generation_config_as_a_vllm_server_fills_them(tmp_path):
    import json

    from retmask.synthesis_config import SamplingConfig, model_sampling_defaults

    # Qwen3-8B's generation_config.json, as published
    (tmp_path / "generation_config.json").write_text(json.dumps({
        "bos_token_id": 151643, "do_sample": True, "eos_token_id": [151645, 151643], "pad_token_id": 151643,
        "temperature": 0.6, "top_k": 20, "top_p": 0.95, "transformers_version": "4.51.0"}))
    defaults = model_sampling_defaults(str(tmp_path))
    assert defaults == {"top_k": 20}  # temperature and top_p were in the paper's requests: theirs stand
    paper = SamplingConfig(temperature=0.6, top_p=1.0, max_new_tokens=4096).resolved(defaults)
    assert (paper.temperature, paper.top_p, paper.top_k, paper.min_p) == (0.6, 1.0, 20, None)
    assert paper.engine_fields() == {"top_k": 20}
    assert SamplingConfig(top_k=5).resolved(defaults).top_k == 5  # a value given is kept
    assert model_sampling_defaults(str(tmp_path / "absent")) == {}


def test_the_hf_engine_samples_with_the_resolved_fields_not_its_generation_configs(toy_model_dir):
    """HF's generate would take top_k 50 from its generation config when the call leaves it out;
    the backend passes every field, so the same settings sample the same on a model whose
    generation config says otherwise."""
    from retmask.backends import HFBackend
    from retmask.synthesis_config import SamplingConfig

    backend = HFBackend(str(toy_model_dir), batch_size=2)
    prompts = [[{"role": "user", "content": "copy 12"}], [{"role": "user", "content": "copy 34"}]]
    sampling = SamplingConfig(temperature=1.0, top_p=1.0, max_new_tokens=6, top_k=1)
    greedy = backend.generate(prompts, SamplingConfig(temperature=0.0, max_new_tokens=6), [0, 0])
    assert [g.text for g in backend.generate(prompts, sampling, [3, 3])] == [g.text for g in greedy]  # top_k 1 is argmax
    backend.model.generation_config.top_k = 1
    free = SamplingConfig(temperature=5.0, top_p=1.0, max_new_tokens=6)
    texts = {tuple(g.text for g in backend.generate(prompts, free, [seed, seed])) for seed in range(4)}
    assert len(texts) > 1  # the model's own top_k 1 did not apply
