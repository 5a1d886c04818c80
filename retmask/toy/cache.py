"""The toy-model cache: one checkpoint per recipe, keyed by the recipe's hash."""
from __future__ import annotations

import fcntl
import logging
from collections.abc import Callable
from pathlib import Path

from retmask.toy.recipe import ToyModelConfig, toy_model_dir
from retmask.progress import ShardProgress
from retmask.toy.train import ASSETS_DIR, log_progress, train_toy_model

log = logging.getLogger(__name__)


def is_built(path: Path) -> bool:
    return (path / ASSETS_DIR / "summary.json").is_file() and (path / "config.json").is_file()


def ensure_toy_model(recipe: ToyModelConfig, on_progress: Callable[[ShardProgress], None] = log_progress,
                     every_s: float = 15.0) -> Path:
    """The checkpoint for `recipe`: the shipped one, else the cached one, trained first if absent.
    Concurrent callers wait on a lock rather than train twice."""
    path = toy_model_dir(recipe)
    if is_built(path):
        return path
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path.parent / f".{path.name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not is_built(path):
            log.info("training the toy model into %s", path)
            train_toy_model(recipe, path, on_progress, every_s)
    return path
