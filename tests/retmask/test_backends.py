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
