"""Rehearsal: the same experiment with every expensive input swapped for a cheap one of the same
shape, so that every code path of the real run is taken, on CPU, in minutes, before any GPU hour.

- Each model becomes a **twin**: its own config.json with depth and width cut (the model class,
  layer types such as sliding windows, the attention/KV head ratio, head size, rope settings,
  vocabulary and special tokens kept), random weights, and its tokenizer files, chat template and
  generation config copied beside them. A twin needs the checkpoint's config and tokenizer files
  only, never its weights; twins are cached by what they are built from.
- Every workload is cut to a handful, as config values: NIAH grids mapped onto a few hundred
  tokens (the study's long band with them), a few prompts, new tokens, DPO steps, HELMET samples,
  lm-eval items and judge calls. The rehearsal config is an ordinary config: no stage knows it is
  rehearsing.
- Random weights have learned nothing, so the keys that wait for learned behaviour are set so the
  pipeline goes on: every detection test is kept (a twin answers no needle), the two best heads
  are taken when none reaches tau (it has no retrieval heads), a chosen response cut off at the
  new-token cap is kept (it never stops), and a judge's pair it could not rate is kept in sampled
  order (it writes no rating).

What the rehearsal changes is listed by `changes`, printed and kept in the run directory.
"""
from __future__ import annotations

import copy
import hashlib
import json
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

from retmask.config import ExperimentConfig
from retmask.errors import UserError
from retmask.io import cache_root, write_json

SUFFIX = "-rehearsal"
TWIN_VERSION = 2  # part of every twin's cache key: bump when the recipe below changes
TWIN_HEAD_WIDTH = 16  # the twin's hidden size per query head (transformers wants a multiple of the heads)
TWIN_INTERMEDIATE = 128
TWIN_MIN_LAYERS = 2
WEIGHT_FILES = (".safetensors", ".bin", ".pt", ".pth", ".gguf", ".msgpack", ".h5", ".ckpt")

# Workload caps (each a ceiling: a smaller value in the config stays)
NIAH_SPAN = (160, 480)  # the evaluation NIAH grid and the long band, mapped onto these many tokens
DETECTION_SPAN = (160, 320)
DEPTHS = 2
LENGTHS = 3  # grid points: a long band and a short one stay (an affine map keeps a length's side of long_from)
DETECTION_NEW_TOKENS = 8
CONTROL_DRAWS = 1
PROMPTS = 8
NEW_TOKENS = 8
SHARDS = 2
TRAIN_STEPS = 2
MICRO_BATCH = 2  # per device; two micro-batches a step, so gradient accumulation is taken too
HELMET_SAMPLES = 2
GENERAL_LIMIT = 2
MIN_HEADS = 2


class RehearsalError(UserError):
    pass


# ---------------------------------------------------------------------------------------------- twins


def _layer_kinds(text: dict) -> list[str] | None:
    """The model's per-layer attention kinds, written out or implied by a sliding pattern."""
    if isinstance(text.get("layer_types"), list):
        return text["layer_types"]
    pattern = text.get("sliding_window_pattern") or (6 if text.get("model_type") == "gemma3_text" else None)
    if pattern and text.get("num_hidden_layers"):
        return ["full_attention" if (i + 1) % pattern == 0 else "sliding_attention"
                for i in range(text["num_hidden_layers"])]
    return None


def twin_text_config(text: dict) -> dict:
    """A language model's config cut to a few narrow layers: the fewest layers (at least two) that
    hold every kind of layer the model has, one or two KV heads with the model's query/KV ratio,
    its head size, TWIN_HEAD_WIDTH per query head wide. Everything else (vocabulary, rope, windows,
    norms) stays."""
    twin = copy.deepcopy(text)
    heads = text.get("num_attention_heads", 8)
    kv_heads = text.get("num_key_value_heads") or heads
    ratio = max(1, heads // kv_heads)
    twin_kv = 2 if ratio == 1 else 1  # two heads a layer at least: masking picks heads within a layer
    head_dim = text.get("head_dim") or text.get("hidden_size", heads * 64) // heads
    kinds = _layer_kinds(text)
    layers = TWIN_MIN_LAYERS
    if kinds:
        layers = max(layers, next(n for n in range(1, len(kinds) + 1) if set(kinds[:n]) == set(kinds)))
        if "layer_types" in text:
            twin["layer_types"] = kinds[:layers]
    twin.update(num_hidden_layers=layers, num_attention_heads=twin_kv * ratio, num_key_value_heads=twin_kv,
                head_dim=head_dim, hidden_size=max(48, twin_kv * ratio * TWIN_HEAD_WIDTH),
                intermediate_size=TWIN_INTERMEDIATE)
    if "max_window_layers" in text:  # Qwen's count of full-attention layers, past the twin's depth otherwise
        twin["max_window_layers"] = min(text["max_window_layers"], layers)
    return twin


def twin_config(config: dict) -> dict:
    """config.json of the twin: the language model cut (a multimodal model's text part; its vision
    tower to one narrow layer)."""
    twin = copy.deepcopy(config)
    if isinstance(config.get("text_config"), dict):
        twin["text_config"] = twin_text_config(config["text_config"])
        vision = twin.get("vision_config")
        if isinstance(vision, dict):
            vision.update(num_hidden_layers=1, hidden_size=32, intermediate_size=64, num_attention_heads=2)
        return twin
    return twin_text_config(config)


def _source_key(source: Path) -> str:
    """What a twin is built from: the checkpoint's files other than weights, and the recipe."""
    digest = hashlib.sha256(f"twin-v{TWIN_VERSION}".encode())
    for path in sorted(p for p in source.iterdir() if p.is_file() and not p.name.endswith(WEIGHT_FILES)
                       and not p.name.endswith(".index.json")):
        digest.update(path.name.encode() + b"\0" + hashlib.sha256(path.read_bytes()).digest())
    return digest.hexdigest()[:16]


def twin_dir(source: str | Path) -> Path:
    source = Path(source).expanduser().resolve()
    return cache_root() / "twins" / f"{source.name}-{_source_key(source)}"


def build_twin(source: str | Path) -> Path:
    """The twin of the checkpoint at `source` (built once, then taken from the cache)."""
    import fcntl

    source = Path(source).expanduser().resolve()
    if not (source / "config.json").is_file():
        raise RehearsalError(f"{source}: no config.json; a twin is built from a checkpoint's config.json and "
                             "tokenizer files")
    out = twin_dir(source)
    if (out / "config.json").is_file():
        return out
    out.parent.mkdir(parents=True, exist_ok=True)
    with open(out.parent / f".{out.name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not (out / "config.json").is_file():
            staging = out.parent / f".{out.name}.building"
            shutil.rmtree(staging, ignore_errors=True)
            _write_twin(source, staging)
            os.replace(staging, out)
    return out


def twin_scores(scores_file: str, model: str, twin: str) -> Path:
    """A published score file, checked against the real model's layers and heads, cut to the
    twin's (the heads both have), beside the twin: the run reads a file as the real one does."""
    from transformers import AutoConfig

    from retmask.heads import parse_head, read_score_file

    real, small = AutoConfig.from_pretrained(model), AutoConfig.from_pretrained(twin)
    scores = read_score_file(scores_file, real.num_hidden_layers, real.num_attention_heads)
    out = Path(twin) / "head_scores" / f"{hashlib.sha256(Path(scores_file).read_bytes()).hexdigest()[:16]}.json"
    if not out.is_file():
        shape = (small.num_hidden_layers, small.num_attention_heads)
        write_json(out, {name: values for name, values in scores.items()
                         if all(index < size for index, size in zip(parse_head(name), shape))})
    return out


def _write_twin(source: Path, out: Path) -> None:
    import torch
    import transformers

    out.mkdir(parents=True)
    config_data = twin_config(json.loads((source / "config.json").read_text()))
    (out / "config.json").write_text(json.dumps(config_data, indent=2))
    config = transformers.AutoConfig.from_pretrained(out)
    architecture = (config_data.get("architectures") or [None])[0]
    model_class = getattr(transformers, architecture, None) if architecture else None
    torch.manual_seed(0)
    model = model_class(config) if model_class is not None else transformers.AutoModelForCausalLM.from_config(config)
    dtype = config_data.get("torch_dtype") or config_data.get("dtype")
    if isinstance(dtype, str) and hasattr(torch, dtype):
        model = model.to(getattr(torch, dtype))
    model.save_pretrained(out)
    for path in source.iterdir():  # then the checkpoint's own tokenizer, chat template and generation config
        if path.is_file() and path.name != "config.json" and not path.name.endswith(WEIGHT_FILES) \
                and not path.name.endswith(".index.json"):
            shutil.copy2(path, out / path.name)


# ---------------------------------------------------------------------------------------------- workloads


@dataclass(frozen=True)
class LengthMap:
    """An affine map of token lengths [low, high] onto a rehearsal span: a NIAH grid (start, end,
    count) stays a grid of as many lengths, and a length between keeps its place between them."""
    low: int
    high: int
    span: tuple[int, int]

    def __call__(self, length: int) -> int:
        if self.high == self.low:
            return self.span[0]
        share = (length - self.low) / (self.high - self.low)
        return round(self.span[0] + share * (self.span[1] - self.span[0]))

    def grid(self, lengths: list[int]) -> list[int]:
        start, end, count = lengths
        return [self(start), self(end), count]


def niah_map(configs: list[ExperimentConfig]) -> LengthMap:
    """One map for all of a study's evaluation grids, so its long band keeps its place in each."""
    return LengthMap(min(c.evaluation.niah_lengths[0] for c in configs),
                     max(c.evaluation.niah_lengths[1] for c in configs), NIAH_SPAN)


def _cap(value: int, ceiling: int) -> int:
    return min(value, ceiling) if value > 0 else ceiling


def rehearsal_config(cfg: ExperimentConfig, niah: LengthMap, notes: list[str] | None = None,
                     world_size: int = 1) -> ExperimentConfig:
    """The rehearsal of `cfg`: twins for its models, its workloads cut (see the module docstring);
    `world_size`: the processes its training runs on (a cluster profile's GPUs of the training job).
    Each change worth knowing is appended to `notes`."""
    import importlib.util

    notes = notes if notes is not None else []
    r = copy.deepcopy(cfg)
    for key in ("model", "rejected_model", "synthesis_model"):
        model = getattr(r, key)
        if model.path and not _is_toy(model.path):
            model.path = str(build_twin(model.path))
    if r.judge.kind == "model" and r.judge.path:
        r.judge.path = str(build_twin(r.judge.path))
    if r.detection.scores_file:
        r.detection.scores_file = str(twin_scores(r.detection.scores_file, cfg.synthesis_source().path,
                                                  r.synthesis_source().path))
        notes.append("detection.scores_file: checked against the real model's heads, then cut to the twin's "
                     "(its layers and heads that the twin has)")
    d = r.detection
    detection = LengthMap(d.lengths[0], d.lengths[1], DETECTION_SPAN)
    d.lengths = detection.grid(d.lengths) if d.lengths[1] > DETECTION_SPAN[1] else d.lengths
    d.lengths[2] = min(d.lengths[2], LENGTHS)
    d.depths, d.max_new_tokens, d.shards = min(d.depths, DEPTHS), min(d.max_new_tokens, DETECTION_NEW_TOKENS), \
        min(d.shards, SHARDS)
    d.rouge_threshold = -1.0  # a twin answers no needle: every test is scored
    r.selection.min_heads = max(r.selection.min_heads, MIN_HEADS)  # and it has no retrieval heads
    e = r.evaluation
    e.niah_lengths = niah.grid(e.niah_lengths) if niah.high > NIAH_SPAN[1] else list(e.niah_lengths)
    e.niah_lengths[2] = min(e.niah_lengths[2], LENGTHS)
    e.niah_depths, e.random_control_draws = min(e.niah_depths, DEPTHS), min(e.random_control_draws, CONTROL_DRAWS)
    s = r.synthesis
    s.max_prompts, s.shards, s.batch_size = _cap(s.max_prompts, PROMPTS), min(s.shards, SHARDS), min(s.batch_size,
                                                                                                     PROMPTS)
    s.sampling.max_new_tokens = min(s.sampling.max_new_tokens, NEW_TOKENS)
    s.max_model_len = min(s.max_model_len or 4096, 4096)
    if s.backend == "vllm" and importlib.util.find_spec("vllm") is None:
        s.backend = "hf"
        notes.append("synthesis.backend: vllm is not installed here, so the rehearsal samples with the HF engine")
    if r.judge.backend == "vllm" and importlib.util.find_spec("vllm") is None:
        r.judge.backend = "hf"
    r.pairs.drop_truncated_chosen = False  # a twin never stops before the new-token cap
    r.pairs.drop_empty_chosen = False  # nor leaves a reasoning block its template opened: no answer
    r.judge.max_new_tokens = min(r.judge.max_new_tokens, NEW_TOKENS)
    r.judge.ties = "keep"  # a twin writes no rating
    t = r.train
    t.max_steps = _cap(t.max_steps, TRAIN_STEPS)
    t.per_device_batch_size = MICRO_BATCH
    t.global_batch_size = 2 * MICRO_BATCH * world_size
    t.save_steps = min(t.save_steps, TRAIN_STEPS)
    if r.helmet.path:
        r.helmet.extra_args = [*r.helmet.extra_args, "--max_test_samples", str(HELMET_SAMPLES)]
    if r.general.tasks:
        r.general.limit = _cap(r.general.limit, GENERAL_LIMIT)
        if "max_gen_toks" in r.general.gen_kwargs:  # a reasoning model's room: a twin writes no reasoning
            r.general.gen_kwargs["max_gen_toks"] = min(int(r.general.gen_kwargs["max_gen_toks"]), NEW_TOKENS)
    return r


def _is_toy(path: str) -> bool:
    return (Path(path) / "retmask_toy").is_dir()


def changes(real: ExperimentConfig, rehearsal: ExperimentConfig) -> dict[str, tuple]:
    """Every config key the rehearsal set differently: dotted key -> (real, rehearsal)."""
    found: dict[str, tuple] = {}

    def walk(a, b, where: str) -> None:
        if isinstance(a, dict) and isinstance(b, dict):
            for key in a:
                walk(a[key], b.get(key), f"{where}.{key}" if where else key)
        elif a != b:
            found[where] = (a, b)

    walk(real.to_dict(), rehearsal.to_dict(), "")
    return found


def record(run_root: Path, real: ExperimentConfig, rehearsal: ExperimentConfig, notes: list[str]) -> None:
    """What the rehearsal changed, beside its run (the report marks such a run's pages)."""
    write_json(Path(run_root) / "rehearsal.json", {
        "changes": {key: list(pair) for key, pair in changes(real, rehearsal).items()}, "notes": notes})


def rehearsal_dir(path: str | Path) -> str:
    """Where a rehearsal writes: beside the real run or study, its name ending in -rehearsal."""
    path = Path(path)
    return str(path if path.name.endswith(SUFFIX) else path.with_name(path.name + SUFFIX))
