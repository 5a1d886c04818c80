"""Hugging Face cards for a run's two artefacts: the pairs dataset and the trained model.

Pure functions from the config and the stages' recorded outputs (the pairs' statistics.json,
prepare_prompts' statistics.json, select_heads' heads.json, train's summary.json, evaluate's
niah.json and retrieval_change.json) to card text, and one writer. A card restates what the stages
recorded; it computes no figure of its own.
"""
from __future__ import annotations

import dataclasses
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from huggingface_hub import DatasetCard, DatasetCardData, ModelCard, ModelCardData
from huggingface_hub.repocard import RepoCard

from retmask.config import ExperimentConfig
from retmask.errors import UserError
from retmask.io import write_text
from retmask.strategies import get_strategy

CARD_FILE = "README.md"  # the file the Hub reads a repository's card from
# `save_to_disk` writes the rows as data-NNNNN-of-NNNNN.arrow; the Hub's loader reads Arrow files.
DATA_FILES = "data-*.arrow"
SIZE_UNITS = ("", "K", "M", "B", "T")  # the Hub's size buckets step by powers of ten with these units


@dataclass(frozen=True)
class Evaluation:
    """What the stages after training found about the trained model."""

    niah: list[dict]  # evaluate's niah.json: one entry per model (its masked heads, its accuracy)
    retrieval_change: dict  # evaluate's retrieval_change.json
    health: dict  # the report's health of the run (metrics.json["health"])


def cell(value) -> str:
    """How a card writes a value: floats to six significant digits, booleans in lower case, an
    empty value as a dash."""
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, float):
        return f"{value:.6g}"
    if value is None or value == "" or value == []:
        return "-"
    if isinstance(value, list):
        return ", ".join(str(v) for v in value)
    return str(value)


def table(header: list[str], rows: Iterable[list]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in rows]
    return "\n".join(lines)


def key_values(pairs: dict) -> str:
    return table(["setting", "value"], [[f"`{key}`", value] for key, value in pairs.items()])


def size_category(rows: int) -> str:
    """The Hub's size bucket (`size_categories`) of a dataset of `rows` rows."""
    if rows < 0:
        raise ValueError(f"a dataset cannot have {rows} rows")
    decade = len(str(rows)) - 1  # 10**decade <= rows < 10**(decade + 1)
    if decade < 3:
        return f"n<1{SIZE_UNITS[1]}"
    if decade >= 3 * (len(SIZE_UNITS) - 1):  # the largest bucket is open-ended
        return f"n>1{SIZE_UNITS[-1]}"

    def power(exponent: int) -> str:
        return f"{10 ** (exponent % 3)}{SIZE_UNITS[exponent // 3]}"

    return f"{power(decade)}<n<{power(decade + 1)}"


def hub_model_id(path: str) -> str:
    """The Hub id of a checkpoint kept in the Hub's cache layout (…/models--org--name/snapshots/…),
    which is what `base_model` names; any other local checkpoint is named by its path."""
    for part in Path(path).parts:
        if part.startswith("models--"):
            return part[len("models--"):].replace("--", "/", 1)
    return path


def chosen_source(cfg: ExperimentConfig) -> str:
    return f"the synthesis model `{cfg.synthesis_model.path}`" if cfg.cross_model else "the model itself"


def rejected_source(cfg: ExperimentConfig) -> str:
    """Where the strategy's rejected responses come from, in words."""
    strategy = get_strategy(cfg.strategy)
    synthesizer = f"the synthesis model `{cfg.synthesis_model.path}`" if cfg.cross_model else "the same model"
    return {
        "masked": f"{synthesizer} with the masked heads ablated (their columns of W_o zeroed)",
        "rejected_model": f"a smaller model, `{cfg.rejected_model.path}`",
        "normal": (f"a second sample of {'the synthesis model' if cfg.cross_model else 'the normal model'}; a judge (`{cfg.judge.kind}`"
                   + (f", `{cfg.judge.path}`" if cfg.judge.kind == "model" else "")
                   + ") puts the response it prefers on the chosen side"),
        "none": "none: the strategy trains on the chosen responses alone (SFT)",
    }[strategy.rejected_from]


def _rule(selection: dict) -> str:
    """A selection rule with the parameter that decided it (select_heads' `retrieval_rule`)."""
    parameters = selection.get("parameters", {})
    decisive = {"threshold": ("τ", "tau"), "top_k": ("k", "top_k")}.get(selection["rule"])
    return f"`{selection['rule']}`" + (f", {decisive[0]} {cell(parameters[decisive[1]])}" if decisive else "")


def heads_section(heads: dict | None) -> list[str]:
    """The masked heads and the retrieval set they were chosen against (select_heads' heads.json)."""
    if heads is None or not heads["heads"]:
        return ["## Masked heads", "", "None: this strategy masks no heads."]
    retrieval = heads["retrieval_rule"]
    return [
        "## Masked heads",
        "",
        f"{heads['count']} heads masked (rule `{heads['rule']}`): {cell(heads['heads'])}.",
        "",
        f"Retrieval heads: {len(heads['retrieval_heads'])} (rule {_rule(retrieval)}): "
        f"{cell(heads['retrieval_heads'])}.",
    ]


def statistics_table(pairs: dict, sft: bool) -> str:
    """The paper's Table 11 for these pairs: their count and mean token lengths."""
    rows = [["prompts", pairs["prompts"]], ["examples" if sft else "pairs", pairs["pairs"]],
            ["mean input tokens", pairs["mean_input_tokens"]], ["mean chosen tokens", pairs["mean_chosen_tokens"]]]
    if not sft:  # SFT examples have no rejected side
        rows.append(["mean rejected tokens", pairs["mean_rejected_tokens"]])
    return table(["statistic", "value"], rows)


def _dropped(counts: dict) -> str:
    return table(["reason", "rows dropped"], sorted(counts.items())) if counts else "None dropped."


def dataset_card(cfg: ExperimentConfig, pairs: dict, prompts: dict | None, heads: dict | None,
                 columns: list[str], model_sampling: dict | None = None) -> DatasetCard:
    """The card of the pairs dataset. `pairs`: the pairs stage's statistics; `prompts`: the
    prepare_prompts stage's statistics (None: not recorded); `heads`: select_heads' heads.json when
    the strategy masks heads; `columns`: the dataset's columns; `model_sampling`: the sampling fields
    the synthesis model's generation_config.json sets (synthesis_config.model_sampling_defaults)."""
    strategy = get_strategy(cfg.strategy)
    sft = strategy.trainer == "sft"
    s = cfg.synthesis
    data = DatasetCardData(
        pretty_name=f"RetMask {'SFT examples' if sft else 'preference pairs'} ({cfg.strategy})",
        task_categories=["text-generation"],
        tags=["sft", "retmask"] if sft else ["dpo", "retmask", "preference"],
        size_categories=size_category(pairs["pairs"]),
        configs=[{"config_name": "default", "data_files": [{"split": "train", "path": DATA_FILES}]}],
    )
    what = "SFT conversations" if sft else "DPO preference pairs"
    prompt_lines = ["Not recorded."] if prompts is None else [
        f"{prompts['rows']} rows read, {prompts['prompts']} prompts kept (prompt limit {prompts['token_limit']} "
        "tokens).", "", _dropped(prompts["dropped"])]
    kept = {"kept with an empty rejected response": pairs["kept_empty_rejected"],
            "kept with the chosen response cut off at max_new_tokens": pairs["kept_truncated_chosen"],
            "kept with the rejected response cut off at max_new_tokens": pairs["kept_truncated_rejected"]}
    lines = [
        f"# {data.pretty_name}",
        "",
        f"{what} made by RetMask with strategy `{cfg.strategy}`: {pairs['pairs']} examples from "
        f"{pairs['prompts']} prompts. Columns: {', '.join(f'`{c}`' for c in columns)} "
        "(TRL's conversational form).",
        "",
        f"- Synthesis model (chosen responses): `{cfg.synthesis_source().path}`",
        f"- Rejected responses: {rejected_source(cfg)}",
        "",
        "## Source prompts",
        "",
        key_values({"synthesis.prompts": s.prompts, "synthesis.prompt_format": s.prompt_format,
                    "synthesis.prompt_column": s.prompt_column, "synthesis.turns": s.turns,
                    "synthesis.languages": s.languages, "synthesis.max_prompts": s.max_prompts}),
        "",
        "## Filters",
        "",
        "Prompt filters:",
        "",
        key_values({"synthesis.drop_redacted": s.drop_redacted, "synthesis.drop_flagged": s.drop_flagged,
                    "synthesis.dedup": s.dedup, "synthesis.max_prompt_tokens": s.max_prompt_tokens,
                    "synthesis.max_model_len": s.max_model_len}),
        "",
        "Prompts before synthesis: " + prompt_lines[0],
        *prompt_lines[1:],
        "",
        "Pair filters:",
        "",
        key_values({f"pairs.{key}": value for key, value in dataclasses.asdict(cfg.pairs).items()}),
        "",
        "Pairs dropped:",
        "",
        _dropped(pairs["dropped"]),
        "",
        table(["kept pairs", "count"], [[k, v] for k, v in kept.items()]),
        "",
        *heads_section(heads),
        "",
        "## Sampling",
        "",
        "The same settings for both sides; each prompt is seeded by its position and its side. As sent to "
        "the engine: fields left unset take the synthesis model's generation_config.json values, as the paper's "
        "vLLM server did" + (f" (here {', '.join(f'{k} {v}' for k, v in model_sampling.items())})"
                             if model_sampling else " (it sets none)") + "; a field shown as - takes the engine's neutral value.",
        "",
        key_values({"synthesis.backend": s.backend, "synthesis.enable_thinking": s.enable_thinking,
                    **{f"synthesis.sampling.{k}": v
                       for k, v in dataclasses.asdict(s.sampling.resolved(model_sampling or {})).items()}}),
        "",
        "## Statistics (Table 11)",
        "",
        statistics_table(pairs, sft),
        "",
        "## Loading",
        "",
        "```python",
        "import datasets",
        "",
        'pairs = datasets.load_from_disk("path/to/this/directory")',
        "```",
    ]
    return DatasetCard(_card_text(data.to_yaml(), lines))


def model_card(cfg: ExperimentConfig, heads: dict | None, pairs: dict, training: dict,
               evaluation: Evaluation | None = None) -> ModelCard:
    """The card of the trained model. `heads`: select_heads' heads.json when the strategy masks
    heads; `pairs`: the pairs stage's statistics; `training`: the train stage's summary;
    `evaluation`: None until the trained model has been evaluated."""
    strategy = get_strategy(cfg.strategy)
    trainer = strategy.trainer
    base = hub_model_id(cfg.model.path)
    data = ModelCardData(base_model=base, library_name="transformers", pipeline_tag="text-generation",
                         tags=[trainer, "trl", "retmask"])
    method = {"strategy": cfg.strategy, "trainer": f"{trainer.upper()} (TRL)",
              "rejected responses": rejected_source(cfg)}
    if trainer == "dpo":
        method |= {"reference model": f"the base model, `{cfg.model.path}`", "beta": cfg.train.beta,
                   "sequences": cfg.train.regime_description()}
    method["masked heads"] = heads["count"] if heads else 0
    if heads:
        method["τ"] = heads["retrieval_rule"]["parameters"]["tau"]
    lines = [
        f"# {Path(base).name} + RetMask {trainer.upper()} ({cfg.strategy})",
        "",
        f"`{cfg.model.path}` trained with {trainer.upper()} on RetMask "
        + (f"pairs: chosen responses sampled from {chosen_source(cfg)}, rejected ones from {rejected_source(cfg)}."
           if trainer == "dpo" else f"examples: chosen responses sampled from {chosen_source(cfg)}."),
        "",
        "## Method",
        "",
        table(["", "value"], [[k, v] for k, v in method.items()]),
        "",
        *heads_section(heads),
        "",
        "## Hyper-parameters",
        "",
        key_values({f"train.{key}": value for key, value in dataclasses.asdict(cfg.train).items()}),
        "",
        "## Training data",
        "",
        statistics_table(pairs, trainer == "sft"),
        "",
        "## Training summary",
        "",
        table(["", "value"], [[k, v] for k, v in training.items()]),
        "",
        "## Evaluation",
        "",
        *(evaluation_section(evaluation) if evaluation else ["Not evaluated yet."]),
        "",
        "## Usage",
        "",
        "```python",
        "from transformers import AutoModelForCausalLM, AutoTokenizer",
        "",
        'model = AutoModelForCausalLM.from_pretrained("path/to/this/directory")',
        'tokenizer = AutoTokenizer.from_pretrained("path/to/this/directory")',
        "```",
    ]
    return ModelCard(_card_text(data.to_yaml(), lines))


def evaluation_section(evaluation: Evaluation) -> list[str]:
    change = evaluation.retrieval_change
    return [
        f"Health: {evaluation.health['line']}.",
        "",
        f"Verdict: {evaluation.health['verdict']}.",
        "",
        "NIAH accuracy:",
        "",
        table(["model", "heads masked", "accuracy"],
              [[entry["model"], len(entry["masked_heads"]), entry["accuracy"]] for entry in evaluation.niah]),
        "",
        "Retrieval scores before vs after training:",
        "",
        table(["", "value"], [["mean retrieval score before", change["mean_before"]],
                              ["mean retrieval score after", change["mean_after"]],
                              ["mean change of the masked heads", change["masked_mean_delta"]],
                              ["mean change of the other heads", change["other_mean_delta"]]]),
    ]


def _card_text(metadata: str, lines: list[str]) -> str:
    return f"---\n{metadata}\n---\n\n" + "\n".join(lines) + "\n"


def write_card(directory: Path, card: RepoCard) -> Path:
    """Write `card` as the README.md of the dataset or model saved in `directory`, atomically (a
    reader sees the old card or the new one, never part of one)."""
    directory = Path(directory)
    if not directory.is_dir():
        raise UserError(f"{directory}: no such directory; a card is written beside the dataset or model it "
                        "describes, so that stage must have finished first")
    path = directory / CARD_FILE
    write_text(path, str(card))
    return path
