"""Scheduling units: which light stages ride in which job, and the waits they save."""
from jobs.local import upstream_of
from jobs.pipeline import build_stages
from jobs.units import critical_waits, direct_waits, scheduling_units
from retmask.config import load_config
from tests.conftest import REPO


def units_of(until=None, overrides=()):
    cfg = load_config(REPO / "configs" / "tiny.yaml", list(overrides))
    stages = build_stages(cfg)
    return scheduling_units(upstream_of(stages, until) if until else stages, cfg)


def test_light_stages_run_first_in_the_jobs_that_need_them_and_the_report_last():
    units = {unit.name: unit for unit in units_of()}
    assert list(units) == ["toy_model", "detect", "synthesize_chosen", "synthesize_rejected", "train",
                           "evaluate_base", "evaluate"]
    assert units["synthesize_rejected"].before == ("merge_scores", "select_heads", "mask", "prepare_prompts")
    assert units["train"].before == ("pairs",) and units["train"].after == ()
    # report needs evaluate, which starts after train ends: only evaluate's end can complete it
    assert units["evaluate"].after == ("report",)
    assert direct_waits(list(units.values()), units["evaluate"]) == ("train", "evaluate_base")
    assert critical_waits(list(units.values()), "detect") == 3


def test_a_pipeline_cut_short_runs_its_last_light_stages_after_the_jobs_that_feed_them():
    units = {unit.name: unit for unit in units_of("pairs")}
    assert units["synthesize_chosen"].after == units["synthesize_rejected"].after == ("pairs",)
    units = {unit.name: unit for unit in units_of("merge_scores")}
    assert list(units) == ["toy_model", "detect"] and units["detect"].after == ("merge_scores",)


def test_every_stage_runs_in_exactly_one_kind_of_place():
    for until in (None, "pairs", "select_heads", "evaluate_base"):
        units = units_of(until)
        hosted = {name for unit in units for name in unit.before + unit.after}
        mains = {unit.name for unit in units}
        cfg = load_config(REPO / "configs" / "tiny.yaml")
        stages = build_stages(cfg)
        wanted = {stage.name for stage in (upstream_of(stages, until) if until else stages)}
        assert hosted | mains == wanted and not hosted & mains, until
