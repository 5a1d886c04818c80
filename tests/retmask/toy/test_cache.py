"""The toy model every machine uses: the default recipe is shipped, so nothing is trained."""
import json

from retmask.toy.recipe import SHIPPED_TOY_MODELS, ToyModelConfig, toy_model_dir, toy_recipe_hash
from retmask.toy.cache import ensure_toy_model, is_built
from retmask.toy.train import read_summary


def test_the_default_recipe_is_shipped_and_used_without_training(tmp_path, monkeypatch):
    monkeypatch.setenv("RETMASK_CACHE", str(tmp_path))  # an empty cache, as on a new machine
    recipe = ToyModelConfig()
    said = []
    path = ensure_toy_model(recipe, on_progress=said.append)
    assert path == SHIPPED_TOY_MODELS / toy_recipe_hash(recipe) and is_built(path)
    assert said == [] and not any(tmp_path.iterdir()), "a shipped recipe is never trained"
    assert read_summary(path)["recipe"] == recipe.to_dict()


def test_every_shipped_checkpoint_is_keyed_by_the_hash_of_its_own_recipe():
    shipped = [p for p in SHIPPED_TOY_MODELS.iterdir() if p.is_dir()]
    assert shipped
    for path in shipped:
        recipe = ToyModelConfig(**read_summary(path)["recipe"])
        assert path.name == toy_recipe_hash(recipe), path
        config = json.loads((path / "config.json").read_text())
        assert config["head_dim"] >= 32  # vLLM's CPU build refuses 16


def test_a_recipe_without_a_shipped_checkpoint_goes_to_the_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("RETMASK_CACHE", str(tmp_path))
    assert toy_model_dir(ToyModelConfig(seed=12345)).is_relative_to(tmp_path)
