"""Ablation (RetMask eq. 2): zero each masked head's columns of the attention output projection.

W_o maps the concatenated head outputs to the residual stream, so columns [h*d, (h+1)*d) of
o_proj.weight carry head h alone. An o_proj bias sits on the output side and is not per head:
it is left as it is.
"""
from __future__ import annotations

import json
import os
import re
from pathlib import Path

import torch

from retmask.heads import Head, check_heads, head_name, parse_head
from retmask.io import atomic_directory, fingerprint, write_json

# Where o_proj lives in Llama, Mistral, Qwen2/Qwen3 and OLMo-style models.
DEFAULT_O_PROJ = "model.layers.{layer}.self_attn.o_proj"
MASKED_WEIGHTS_FILE = "retmask-masked-o_proj.safetensors"
MASK_RECORD = "retmask_mask.json"
LINKED_SINGLE_FILE = "model-00001-of-00001.safetensors"
WEIGHT_SUFFIXES = (".safetensors", ".bin", ".pt", ".pth")


def natural_sort_key(name: str) -> list:
    """Digits compared as numbers, text case-blind: the order vLLM reads weight files in."""
    return [int(part) if part.isdigit() else part.lower() for part in re.split(r"(\d+)", name)]


def check_masked_file_read_last(weight_files) -> None:
    """Engines that read every tensor of every weight file (vLLM) see each masked o_proj twice,
    in its linked original file and in ours; the file read last wins, and they read files in
    sorted order. So ours must sort after every original file, plainly and naturally."""
    for name in set(weight_files):
        if name >= MASKED_WEIGHTS_FILE or natural_sort_key(name) >= natural_sort_key(MASKED_WEIGHTS_FILE):
            raise ValueError(f"weight file {name!r} sorts after {MASKED_WEIGHTS_FILE!r}, so an engine reading files "
                             "in sorted order would load its unmasked o_proj last; rename the model's shards "
                             "(model-00001-of-0000N.safetensors, as transformers writes them)")


def head_dim(config) -> int:
    return getattr(config, "head_dim", None) or config.hidden_size // config.num_attention_heads


def o_proj_name(layer: int, pattern: str = DEFAULT_O_PROJ) -> str:
    return pattern.format(layer=layer)


def find_o_proj_pattern(names) -> str:
    """The o_proj path pattern of a model, from its module or tensor names (layer 0's attention
    output projection): e.g. model.layers.{layer}.self_attn.o_proj. Raises if there is none."""
    for name in names:
        name = name.removesuffix(".weight")
        match = re.fullmatch(r"(.*\.layers)\.0\.(self_attn|attn|attention)\.(o_proj|out_proj|dense)", name)
        if match:
            return f"{match.group(1)}.{{layer}}.{match.group(2)}.{match.group(3)}"
    raise ValueError("no attention output projection found (looked for <...>.layers.0.self_attn.o_proj and "
                     "similar); pass the model's o_proj path pattern, e.g. model.layers.{layer}.self_attn.o_proj")


def _o_proj(model, layer: int, pattern: str) -> torch.nn.Module:
    name = o_proj_name(layer, pattern)
    try:
        return model.get_submodule(name)
    except AttributeError:
        raise ValueError(f"module {name} not found in {type(model).__name__}; pass the model's o_proj path "
                         f"pattern (default {DEFAULT_O_PROJ})") from None


def zero_head_columns(weight: torch.Tensor, heads_in_layer: list[int], dim: int) -> torch.Tensor:
    """A copy of an o_proj weight with the columns of the given heads set to zero."""
    masked = weight.clone()
    for head in heads_in_layer:
        masked[:, head * dim:(head + 1) * dim] = 0
    return masked


def _by_layer(heads: list[Head]) -> dict[int, list[int]]:
    layers: dict[int, list[int]] = {}
    for layer, head in heads:
        layers.setdefault(layer, []).append(head)
    return layers


@torch.no_grad()
def mask_heads_in_memory(model, heads: list[Head], pattern: str | None = None):
    """Ablate `heads` of a loaded HF model in place and return it (o_proj found from the model's
    own module names unless `pattern` is given)."""
    pattern = pattern or find_o_proj_pattern(name for name, _ in model.named_modules())
    config = model.config
    check_heads(heads, config.num_hidden_layers, config.num_attention_heads)
    dim = head_dim(config)
    for layer, layer_heads in _by_layer(heads).items():
        module = _o_proj(model, layer, pattern)
        module.weight.copy_(zero_head_columns(module.weight, layer_heads, dim))
    return model


def heads_from_names(names: list[str]) -> list[Head]:
    return [parse_head(name) for name in names]


def mask_fingerprint(model_path: str | Path, heads: list[Head]) -> str:
    """Names a masked checkpoint by what it is: the original model and the exact head set."""
    path = Path(model_path).resolve()
    weights = sorted(f.name for f in path.glob("*.safetensors"))
    stamp = [(name, (path / name).stat().st_size, (path / name).stat().st_mtime_ns) for name in weights]
    return fingerprint({"model": str(path), "weights": stamp, "heads": sorted(heads)})


def _weight_map(model_dir: Path) -> dict[str, str]:
    from safetensors import safe_open

    index = model_dir / "model.safetensors.index.json"
    if index.is_file():
        return dict(json.loads(index.read_text())["weight_map"])
    single = model_dir / "model.safetensors"
    if not single.is_file():
        raise FileNotFoundError(f"{model_dir} has no model.safetensors or model.safetensors.index.json")
    with safe_open(single, framework="pt") as handle:
        return {key: single.name for key in handle.keys()}


def write_masked_checkpoint(model_path: str | Path, heads: list[Head], out_dir: str | Path,
                            pattern: str | None = None) -> Path:
    """A loadable checkpoint of the masked model that reuses the original weight files.

    Every original file is linked; one new safetensors file holds only the changed o_proj
    weights, and the weight index points those tensors at it. Returns the checkpoint directory.
    """
    from safetensors import safe_open
    from safetensors.torch import save_file
    from transformers import AutoConfig

    model_dir = Path(model_path).resolve()
    config = AutoConfig.from_pretrained(model_dir)
    check_heads(heads, config.num_hidden_layers, config.num_attention_heads)
    dim = head_dim(config)
    weight_map = _weight_map(model_dir)
    pattern = pattern or find_o_proj_pattern(weight_map)
    out_dir = Path(out_dir)
    changed: dict[str, torch.Tensor] = {}
    for layer, layer_heads in _by_layer(heads).items():
        key = o_proj_name(layer, pattern) + ".weight"
        if key not in weight_map:
            raise ValueError(f"tensor {key} not found in {model_dir}; pass the model's o_proj path pattern")
        with safe_open(model_dir / weight_map[key], framework="pt") as handle:
            changed[key] = zero_head_columns(handle.get_tensor(key), layer_heads, dim).contiguous()
    # A lone model.safetensors would be loaded in preference to any index: link it under a
    # shard name so the index below is what the loader follows.
    renamed = {"model.safetensors": LINKED_SINGLE_FILE}
    weight_map = {key: renamed.get(name, name) for key, name in weight_map.items()}
    check_masked_file_read_last(weight_map.values())
    used = set(weight_map.values()) | set(renamed)
    with atomic_directory(out_dir) as tmp:
        for item in model_dir.iterdir():
            if item.name in ("model.safetensors.index.json", MASK_RECORD) or item.name.startswith("."):
                continue
            if item.suffix in WEIGHT_SUFFIXES and item.name not in used:
                # e.g. Mistral's consolidated.safetensors: engines would load it instead of the index.
                continue
            os.symlink(item, tmp / renamed.get(item.name, item.name))
        save_file(changed, tmp / MASKED_WEIGHTS_FILE, metadata={"format": "pt"})
        for key in changed:
            weight_map[key] = MASKED_WEIGHTS_FILE
        write_json(tmp / "model.safetensors.index.json", {"metadata": {}, "weight_map": weight_map})
        write_json(tmp / MASK_RECORD, {"model": str(model_dir), "heads": [head_name(h) for h in sorted(heads)],
                                       "o_proj_pattern": pattern})
    return out_dir
