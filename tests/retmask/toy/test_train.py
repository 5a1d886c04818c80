"""Toy training: deterministic under its seed on one machine, and it says how far it is."""
from safetensors.torch import load_file

from retmask.toy.recipe import ToyModelConfig
from retmask.toy.train import train_toy_model

SHORT = dict(steps=12, warmup_steps=2, eval_examples=4, prompts=4, batch_size=8)


def test_training_twice_from_one_seed_gives_the_same_weights_and_reports_progress(tmp_path):
    said = []
    train_toy_model(ToyModelConfig(**SHORT), tmp_path / "a", on_progress=said.append, every_s=0)
    train_toy_model(ToyModelConfig(**SHORT), tmp_path / "b", on_progress=lambda progress: None)
    first, second = load_file(tmp_path / "a" / "model.safetensors"), load_file(tmp_path / "b" / "model.safetensors")
    assert all((first[name] == second[name]).all() for name in first)
    assert [p.done for p in said] == list(range(13))  # every step, from 0 (every_s=0)
    assert said[-1].finished and said[-1].unit == "steps" and said[-1].note.startswith("loss ")
    assert said[-1].line().startswith("12/12 steps, ") and " steps/s" in said[-1].line()
