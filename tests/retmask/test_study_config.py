"""Study files: the shipped study loads, its runs take their strategy and seed, and a study
that would mislead (report seeds among the development ones, unknown names) is refused."""
import pytest

from retmask.config import ConfigError
from tests.conftest import REPO


def test_the_shipped_study_loads_and_its_runs_take_their_strategy_and_seed():
    from retmask.study_config import load_study, study_run_config

    study, experiment, base = load_study(REPO / "configs" / "toy-study.yaml")
    assert len(study.seeds) >= 3 and not set(study.seeds) & set(study.development_seeds)
    assert {"retrieval-mask", "random-mask", "non-retrieval-mask", "smaller-model", "sft",
            "win-lose-pair"} <= set(study.strategies)
    cfg = study_run_config(experiment, base, "s", "win-lose-pair", 7)
    assert (cfg.strategy, cfg.synthesis.sampling.seed, cfg.train.seed) == ("win-lose-pair", 7, 7)
    assert experiment["strategy" if "strategy" in experiment else "name"] != "s"  # the study's mapping is untouched


@pytest.mark.parametrize("change, message", [
    ("study.seeds=[0, 1]", "seeds \\[0\\] are also development seeds"),
    ("study.strategies=[retmask]", "study.strategies\\[\\]: 'retmask' is not one of"),
    ("study.metric=bleu", "study.metric: 'bleu' is not one of rouge_recall, accuracy"),
])
def test_a_study_that_would_mislead_is_refused(change, message):
    from retmask.study_config import load_study

    with pytest.raises(ConfigError, match=message):
        load_study(REPO / "configs" / "toy-study.yaml", [change])


def test_a_config_without_a_study_section_is_not_a_study():
    from retmask.study_config import load_study

    with pytest.raises(ConfigError, match="no `study` section"):
        load_study(REPO / "configs" / "tiny.yaml")


def test_inputs_fill_the_study_and_those_referenced_wrongly_are_named_together(tmp_path):
    from retmask.study_config import load_study

    model = tmp_path / "m"
    model.mkdir()
    (tmp_path / "study.yaml").write_text(
        "extends: base.yaml\nname: s\ninputs: {model: '', extra: ''}\nmodel: {path: '${model}'}\n"
        "synthesis: {prompts: '${prompts}'}\ndetection: {needles: '${needles}'}\nstudy: {seeds: [1]}\n")
    (tmp_path / "base.yaml").write_text("inputs: {prompts: /no/such/prompts.jsonl}\ntrain: {epochs: 1}\n")
    with pytest.raises(ConfigError) as error:
        load_study(tmp_path / "study.yaml")
    assert str(error.value) == ("inputs: prompts = /no/such/prompts.jsonl does not exist; needles (used by "
                                "experiment.detection.needles) is not among inputs (prompts, model, extra). Give each "
                                "as --set inputs.NAME=PATH")
    study, experiment, _ = load_study(tmp_path / "study.yaml", [f"inputs.model={model}", "inputs.prompts=",
                                                                "detection.needles=builtin"])
    assert experiment["model"]["path"] == str(model) and experiment["train"] == {"epochs": 1}  # extends: base first
    # inputs not given are left to the runs that need them, which name them
    assert experiment["synthesis"]["prompts"] == "" and study.unset_inputs == {"prompts": ["synthesis.prompts"]}


def test_extends_that_loops_and_variants_that_name_nothing_are_refused(tmp_path):
    from retmask.study_config import load_study

    (tmp_path / "a.yaml").write_text("extends: b.yaml\n")
    (tmp_path / "b.yaml").write_text("extends: a.yaml\nstudy: {}\n")
    with pytest.raises(ConfigError, match=r"extends a.yaml makes a loop \(a.yaml -> b.yaml -> a.yaml\)"):
        load_study(tmp_path / "a.yaml")
    with pytest.raises(ConfigError, match="study.variants.qwen3-8B: not among the file's variants .* and it sets no "
                                          "config"):
        load_study(REPO / "configs/paper/table8-sft.yaml", ["study.variants={qwen3-8B: {}}"])


def test_a_cluster_profile_that_is_not_yaml_or_not_a_mapping_is_one_line(tmp_path):
    from jobs.profiles import load_profile

    (tmp_path / "broken.yaml").write_text("kind: slurm\npartition: [gpu\n")
    (tmp_path / "list.yaml").write_text("- slurm\n")
    with pytest.raises(ConfigError, match=r"broken.yaml is not valid YAML"):
        load_profile(str(tmp_path / "broken.yaml"))
    with pytest.raises(ConfigError, match=r"list.yaml: expected a mapping of sections at the top level"):
        load_profile(str(tmp_path / "list.yaml"))
