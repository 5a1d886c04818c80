"""How many positions a checkpoint serves, and evaluation copies of it with rope scaling.

A length past a model's positions is refused before any job (HELMET at 128K on Qwen3-8B, whose
config.json says 40,960); a config may name a rope scaling (YaRN, as Qwen3's model card gives it)
that evaluation applies to a copy of the checkpoint: the weights linked, config.json rewritten,
the checkpoint itself and everything trained from it untouched.
"""
from __future__ import annotations

import json
import os
from pathlib import Path

from retmask.io import fingerprint, write_json
from retmask.typed_yaml import ConfigError

# Rope types whose max_position_embeddings already counts the scaling (vLLM's
# _get_and_verify_max_len skips their factor); any other type with a factor multiplies it.
SCALED_IN_PLACE = ("su", "longrope", "llama3", "yarn", "deepseek_yarn", "deepseek_llama_scaling")
EXAMPLE = "{rope_type: yarn, factor: 4.0, original_max_position_embeddings: 32768}"


def _text_config(config: dict) -> dict:
    return config.get("text_config", config)  # a multimodal checkpoint's language model


def _scaling(text: dict) -> dict:
    """The rope settings: `rope_scaling` (transformers 4), or `rope_parameters` (5, rope_theta with them)."""
    return text.get("rope_scaling") or text.get("rope_parameters") or {}


def _rope_type(scaling: dict) -> str:
    return str(scaling.get("rope_type", scaling.get("type", "default")))


def max_positions(config: dict) -> int | None:
    """The longest sequence (prompt and generation) the checkpoint's config serves, as vLLM derives
    it: max_position_embeddings, times the rope factor unless the rope type already counts it."""
    text = _text_config(config)
    positions = text.get("max_position_embeddings")
    if positions is None:
        return None
    scaling = _scaling(text)
    if scaling and _rope_type(scaling) not in SCALED_IN_PLACE and scaling.get("factor"):
        return int(positions * float(scaling["factor"]))
    return int(positions)


def checkpoint_positions(model_path: str | Path) -> int | None:
    path = Path(model_path).expanduser() / "config.json"
    return max_positions(json.loads(path.read_text())) if path.is_file() else None


def check_rope_scaling(key: str, scaling: dict) -> None:
    if not scaling:
        return
    if "factor" not in scaling or not isinstance(scaling["factor"], (int, float)) or scaling["factor"] < 1:
        raise ConfigError(f"{key}: a rope scaling needs a factor >= 1, got {scaling}; e.g. {EXAMPLE}")
    if _rope_type(scaling) in ("yarn", "deepseek_yarn") and not scaling.get("original_max_position_embeddings"):
        raise ConfigError(f"{key}: YaRN needs original_max_position_embeddings (the length the model was trained "
                        f"at), got {scaling}; e.g. {EXAMPLE}")


def scaled_config(config: dict, scaling: dict) -> dict:
    """config.json with `scaling` as its rope scaling. For the types whose max_position_embeddings
    counts the scaling (YaRN, ...) it is set to original x factor, as transformers and vLLM read
    it then."""
    config = json.loads(json.dumps(config))
    text = _text_config(config)
    if "rope_parameters" in text:  # written by transformers 5: the scaling joins rope_theta there
        text["rope_parameters"] = {**(text["rope_parameters"] or {}), **scaling}
    else:
        text["rope_scaling"] = dict(scaling)
    if _rope_type(scaling) in SCALED_IN_PLACE and scaling.get("original_max_position_embeddings"):
        text["max_position_embeddings"] = int(scaling["original_max_position_embeddings"] * float(scaling["factor"]))
    return config


def scaled_positions(model_path: str | Path, scaling: dict) -> int | None:
    """The positions of `model_path` evaluated with `scaling` (none: as it is)."""
    path = Path(model_path).expanduser() / "config.json"
    if not path.is_file():
        return None
    config = json.loads(path.read_text())
    return max_positions(scaled_config(config, scaling) if scaling else config)


def copy_path(model_path: str | Path, scaling: dict, parent: Path) -> Path:
    """Where `evaluation_copy` puts (or finds) the copy; `model_path` itself without a scaling."""
    if not scaling:
        return Path(model_path)
    source = Path(model_path).expanduser().resolve()
    return parent / f"{source.name}-rope-{fingerprint({'source': str(source), 'scaling': scaling})}"


def evaluation_copy(model_path: str | Path, scaling: dict, parent: Path) -> Path:
    """`model_path` as evaluation reads it: itself without a scaling, else a folder under `parent`
    of links to its files with config.json rewritten (named by source and scaling: made once)."""
    out = copy_path(model_path, scaling, parent)
    if not scaling or (out / "config.json").is_file():
        return out
    source = Path(model_path).expanduser().resolve()
    partial = out.with_name(out.name + f".partial-{os.getpid()}")
    partial.mkdir(parents=True, exist_ok=True)
    for item in source.iterdir():
        if item.name != "config.json" and not (partial / item.name).exists():
            (partial / item.name).symlink_to(item)
    write_json(partial / "config.json", scaled_config(json.loads((source / "config.json").read_text()), scaling))
    try:
        partial.rename(out)
    except OSError:  # another task made it first
        if not (out / "config.json").is_file():
            raise
    return out


def check_lengths(key: str, model_path: str | Path, lengths: list[int], scaling: dict, scaling_key: str) -> None:
    """Refuse evaluation lengths past the positions of `model_path` (with `scaling`, if any)."""
    positions = scaled_positions(model_path, scaling)
    if positions is None or not lengths or max(lengths) <= positions:
        return
    past = [n for n in lengths if n > positions]
    hint = (f"raise {scaling_key}.factor" if scaling else
            f"set {scaling_key} (applied to evaluation copies only), e.g. {EXAMPLE} for Qwen3-8B at 131072")
    raise ConfigError(f"{key} {past}: past the {positions} positions of {model_path}"
                    f"{' with ' + json.dumps(scaling) if scaling else ''}; drop those lengths or {hint}")
