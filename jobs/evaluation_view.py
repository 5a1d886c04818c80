"""What a run's evaluation will run, as `--dry-run` prints it: each HELMET command, the lm-eval
call, the judge, and how NIAH prompts end (whether a reasoning model reasons there). Nothing is
written: an evaluation copy is named, not made."""
from __future__ import annotations

import functools
import shlex
from pathlib import Path

from retmask.config import ExperimentConfig
from retmask.rundir import RunDir


def evaluation_lines(cfg: ExperimentConfig, run: RunDir) -> list[str]:
    from jobs.stages import general, helmet, helmet_judge
    from retmask.helmet_judge import SCRIPTS

    lines = ["# ----- evaluation -----", f"# NIAH prompts (detection, evaluation) end: {_niah_ending(cfg)}"]
    if cfg.helmet.path:
        for model in cfg.helmet.models:
            path = helmet.evaluated_path(cfg, run, model, make=False)
            for config_file in cfg.helmet.configs:
                command = helmet.eval_command(cfg, path, config_file, helmet.output_dir(run, model))
                lines.append(f"# {helmet.STAGES[model]}: (cd {cfg.helmet.path} && {shlex.join(command)})")
            if cfg.helmet_judge.endpoint:
                for script in SCRIPTS:
                    command = helmet_judge.judge_command(cfg, script, [(Path("<output>.json"),
                                                                        Path("<output>-gpt4eval_o.json"))])
                    lines.append(f"# {helmet_judge.STAGES[model]}: (cd {cfg.helmet.path} && {shlex.join(command)})")
    if cfg.general.tasks:
        lines.append(f"# general: {general.lm_eval_arguments(cfg)}, one task per array task: {cfg.general.runnable_tasks()}")
    return lines


def _niah_ending(cfg: ExperimentConfig) -> str:
    return _prompt_ending(cfg.synthesis_source().path, cfg.detection.template)


@functools.lru_cache(maxsize=None)
def _prompt_ending(path: str, template: str) -> str:
    """A study's runs share a few models: each tokenizer is loaded once."""
    from transformers import AutoTokenizer

    from retmask.niah import render_prompt

    if not (Path(path) / "tokenizer_config.json").is_file():
        return "(the model does not exist yet)"
    prompt, _ = render_prompt(AutoTokenizer.from_pretrained(path), template, "<context>", "<question>")
    return repr(prompt[-48:])
