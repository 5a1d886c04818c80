import pytest

from retmask.config import ConfigError, ExperimentConfig, from_dict, load_config
from retmask.toy.recipe import toy_recipe_hash
from tests.conftest import REPO


def write(tmp_path, text):
    path = tmp_path / "exp.yaml"
    path.write_text(text)
    return path


def test_tiny_config_loads_and_resolves_toy_paths():
    cfg = load_config(REPO / "configs" / "tiny.yaml")
    assert cfg.name == "tiny"
    assert cfg.model.path.endswith(toy_recipe_hash(cfg.toy_model))
    assert cfg.detection.haystack.endswith("retmask_toy/haystack.txt")
    assert cfg.train.learning_rate == 1e-4  # "1.0e-4" in YAML
    assert cfg.run_dir == "runs/tiny"


def test_unknown_key_names_it_and_the_allowed_keys(tmp_path):
    path = write(tmp_path, "name: x\nmodel: {path: toy}\ntoy_model: {}\ntrain: {learnin_rate: 1}\n")
    with pytest.raises(ConfigError) as error:
        load_config(path)
    message = str(error.value)
    assert "train.learnin_rate: unknown key" in message and "learning_rate" in message


def test_the_old_pairs_drop_empty_key_names_the_side_specific_ones(tmp_path):
    path = write(tmp_path, "name: x\nmodel: {path: toy}\ntoy_model: {}\npairs: {drop_empty: false}\n")
    with pytest.raises(ConfigError) as error:
        load_config(path)
    assert "pairs.drop_empty: unknown key" in str(error.value)
    assert "drop_empty_chosen" in str(error.value) and "drop_empty_rejected" in str(error.value)


def test_wrong_type_names_key_and_expected_type():
    with pytest.raises(ConfigError, match=r"detection.shards: expected int, got str 'two'"):
        from_dict(ExperimentConfig, {"name": "x", "detection": {"shards": "two"}})


def test_missing_model_path_is_one_clear_error(tmp_path):
    path = write(tmp_path, "name: x\nmodel: {path: /no/such/model}\n")
    with pytest.raises(ConfigError, match=r"model.path: /no/such/model is not a HF checkpoint directory"):
        load_config(path)


def test_yaml_scientific_notation_without_dot_is_a_float():
    cfg = from_dict(ExperimentConfig, {"name": "x", "train": {"learning_rate": "5e-7"}})
    assert cfg.train.learning_rate == 5e-7


def test_overrides_apply_before_validation(tmp_path):
    cfg = load_config(REPO / "configs" / "tiny.yaml", ["train.learning_rate=1e-3", "selection.tau=0.2"])
    assert cfg.train.learning_rate == 1e-3 and cfg.selection.tau == 0.2
    with pytest.raises(ConfigError, match="selection.rule"):
        load_config(REPO / "configs" / "tiny.yaml", ["selection.rule=best"])


def test_section_fingerprint_changes_with_its_section_only():
    a = from_dict(ExperimentConfig, {"name": "x"})
    b = from_dict(ExperimentConfig, {"name": "x", "train": {"beta": 0.2}})
    assert a.section_fingerprint("train") != b.section_fingerprint("train")
    assert a.section_fingerprint("detection") == b.section_fingerprint("detection")


def test_a_name_that_would_reach_a_shell_is_refused():
    with pytest.raises(ConfigError, match="may hold only letters, digits"):
        from_dict(ExperimentConfig, {"name": "x; rm -rf ~"})


def test_tensor_parallel_size_zero_means_the_tasks_gpus_and_negative_is_refused():
    assert load_config(REPO / "configs" / "tiny.yaml").synthesis.tensor_parallel_size == 0
    with pytest.raises(ConfigError, match=r"synthesis.tensor_parallel_size must be >= 0 \(0: every GPU of the task\)"):
        load_config(REPO / "configs" / "tiny.yaml", ["synthesis.tensor_parallel_size=-1"])


def test_a_detection_only_experiment_needs_no_prompts(tmp_path):
    from retmask.config import ExperimentConfig, from_dict, resolve

    (tmp_path / "config.json").write_text("{}")  # resolve checks only that a checkpoint is there

    def experiment():
        return from_dict(ExperimentConfig, {"name": "d", "model": {"path": str(tmp_path)}})

    with pytest.raises(ConfigError, match="synthesis.prompts: missing"):
        resolve(experiment(), REPO)
    assert resolve(experiment(), REPO, detection_only=True).synthesis.prompts == ""


def test_prompts_leave_room_for_the_response_within_max_model_len():
    from retmask.synthesis_config import SynthesisConfig

    synthesis = SynthesisConfig()
    assert synthesis.prompt_token_limit(32768) == 32768 - 2048  # the paper's context and response budget
    synthesis.max_prompt_tokens = 1000
    assert synthesis.prompt_token_limit(32768) == 1000
    with pytest.raises(ConfigError, match="synthesis.max_model_len .* must exceed sampling.max_new_tokens"):
        load_config(REPO / "configs" / "tiny.yaml", ["synthesis.max_model_len=10"])


def test_report_to_defaults_to_no_tracker_and_takes_a_list_of_names():
    assert load_config(REPO / "configs" / "tiny.yaml").train.report_to == ["none"]
    assert load_config(REPO / "configs" / "tiny.yaml", ["train.report_to=[tensorboard, wandb]"]).train.report_to == [
        "tensorboard", "wandb"]
    with pytest.raises(ConfigError, match=r"train.report_to: expected a list of str, got 'tensorboard'"):
        load_config(REPO / "configs" / "tiny.yaml", ["train.report_to=tensorboard"])


@pytest.mark.parametrize("report_to, message", [
    ("[none, tensorboard]", r"train.report_to: 'none' stands alone, got \['none', 'tensorboard'\]; give \[none\]"),
    ("[all, wandb]", r"train.report_to: 'all' stands alone"),
    ("[]", r"train.report_to: expected distinct tracker names such as \[tensorboard\], or \[none\], got \[\]"),
    ("[tensorboard, tensorboard]", r"train.report_to: expected distinct tracker names"),
])
def test_report_to_of_the_wrong_shape_is_one_clear_error(report_to, message):
    with pytest.raises(ConfigError, match=message):
        load_config(REPO / "configs" / "tiny.yaml", [f"train.report_to={report_to}"])
