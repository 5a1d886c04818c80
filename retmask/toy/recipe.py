"""The toy model's recipe (typed config) and where the checkpoint of a recipe lives: shipped with
the package, else trained once into the local cache, keyed by the recipe's hash."""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path

from retmask.io import cache_root, fingerprint
from retmask.typed_yaml import ConfigError


@dataclass
class ToyModelConfig:
    """Recipe of the toy model; its hash keys the cache."""

    seed: int = 0
    steps: int = 1150
    batch_size: int = 32
    learning_rate: float = 2e-3
    warmup_steps: int = 100
    decay_fraction: float = 0.3
    hidden_size: int = 128
    intermediate_size: int = 384
    layers: int = 4
    heads: int = 8
    # Decoupled from hidden_size / heads: vLLM's CPU attention refuses head dimensions below 32,
    # and eight heads (rather than four of a 128-wide model) keep the copy circuit in few heads.
    head_dim: int = 32
    min_haystack: int = 16
    max_haystack: int = 48
    min_values: int = 4
    max_values: int = 10
    eval_examples: int = 300
    prompts: int = 512
    # Each head's output is dropped with this probability during training (per example and
    # layer): the model must spread its copying over many heads (a distributed-retrieval toy).
    head_dropout: float = 0.0

    def to_dict(self) -> dict:
        data = dataclasses.asdict(self)
        if not self.head_dropout:  # added later: unset, it leaves the hashes of earlier recipes alone
            del data["head_dropout"]
        return data

    def validate(self, key: str) -> None:
        if not 0 <= self.head_dropout < 1:
            raise ConfigError(f"{key}.head_dropout must be within [0, 1), got {self.head_dropout}")



# Toy checkpoints trained once and shipped with the package, one folder per recipe hash: training
# on another CPU (other vector kernels, other rounding) would give other weights.
SHIPPED_TOY_MODELS = Path(__file__).resolve().parent / "checkpoints"


def toy_cache_root() -> Path:
    return cache_root() / "toy-models"


def toy_recipe_hash(recipe: ToyModelConfig) -> str:
    return fingerprint(recipe.to_dict())


def toy_model_dir(recipe: ToyModelConfig) -> Path:
    """The shipped checkpoint of this recipe if there is one, else its place in the local cache."""
    shipped = SHIPPED_TOY_MODELS / toy_recipe_hash(recipe)
    return shipped if (shipped / "config.json").is_file() else toy_cache_root() / toy_recipe_hash(recipe)
