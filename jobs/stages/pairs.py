"""Stage: join chosen and rejected rows into DPO pairs (or, for SFT, the chosen conversations),
with drop counts and Table-11 statistics; the saved dataset carries its card."""
from __future__ import annotations

from retmask.config import ExperimentConfig
from retmask.io import atomic_directory, read_json, write_json, write_jsonl
from retmask.rundir import RunDir


def pairs_dir(run: RunDir):
    return run.stage_dir("pairs")


def sample_rows(run: RunDir, stage: str) -> list[dict]:
    """A synthesis stage's rows, all of one model and sampling."""
    from jobs.stages.synthesize import check_row_fingerprints

    rows = run.finished_rows(stage)
    check_row_fingerprints(rows, None, run.stage_dir(stage))
    return rows


def masked_heads(cfg: ExperimentConfig, run: RunDir) -> dict | None:
    """select_heads' record of the heads the strategy masks; None for a strategy without a mask,
    whose pairs and training do not wait for head selection."""
    from retmask.strategies import get_strategy

    if get_strategy(cfg.strategy).mask_rule is None:
        return None
    return read_json(run.stage_dir("select_heads") / "heads.json")


def run(cfg: ExperimentConfig, run: RunDir, shard: int) -> None:
    import datasets
    from transformers import AutoTokenizer

    from jobs.stages.prompts import prompt_statistics
    from retmask.cards import dataset_card, write_card
    from retmask.pairs import build_pairs, build_sft, order_by_verdicts
    from retmask.strategies import get_strategy
    from retmask.synthesis_config import model_sampling_defaults

    # Reasoning goes into `reasoning_content` only where the model's chat template reads it back.
    reasoning_field = "reasoning_content" in (AutoTokenizer.from_pretrained(cfg.model.path).chat_template or "")
    strategy = get_strategy(cfg.strategy)
    judged = None  # the judge's statistics, for win-lose pairs
    if strategy.trainer == "sft":
        build = build_sft(sample_rows(run, "synthesize_chosen"), cfg.pairs, reasoning_field)
        columns = ["prompt_id", "prompt", "completion"]
    else:
        chosen, rejected = sample_rows(run, "synthesize_chosen"), sample_rows(run, "synthesize_rejected")
        undecided = None
        if strategy.judged:
            from jobs.stages.judge import read_verdicts
            from retmask.judging import judge_statistics

            verdicts = read_verdicts(run)
            judged = judge_statistics(verdicts.values(), cfg.judge.ties)
            chosen, rejected, undecided = order_by_verdicts(chosen, rejected, verdicts, cfg.judge.ties)
        build = build_pairs(chosen, rejected, cfg.pairs, reasoning_field)
        if undecided:
            build.prompts += sum(undecided.values())
            build.dropped.update(undecided)
        columns = ["prompt_id", "prompt", "chosen", "rejected"]
    if not build.pairs:
        raise ValueError(f"no training example survived the filters (dropped: {dict(build.dropped)}); "
                         "check the synthesis outputs")
    out = pairs_dir(run)
    write_jsonl(out / "pairs.jsonl", build.pairs)
    dataset = datasets.Dataset.from_list([{k: p[k] for k in columns} for p in build.pairs])
    statistics = build.statistics()
    if judged:
        statistics["judge"] = judged
    card = dataset_card(cfg, statistics, prompt_statistics(run), masked_heads(cfg, run), columns,
                        model_sampling_defaults(cfg.synthesis_source().path))
    with atomic_directory(out / "dataset") as tmp:  # the dataset and its card appear together
        dataset.save_to_disk(str(tmp))
        write_card(tmp, card)
    write_json(out / "statistics.json", statistics)
