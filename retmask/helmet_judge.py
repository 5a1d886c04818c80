"""HELMET's GPT-4 judge of LongQA and Summ, run on a folder of eval.py outputs.

HELMET judges narrativeqa (scripts/eval_gpt4_longqa.py) and infbench_sum and multi_lexsum
(scripts/eval_gpt4_summ.py) after eval.py: each script's `check_metrics(model, results_file,
output_file)` prompts the judge per item and writes "<name>-gpt4eval_o.json", the outputs with
gpt-4-score (0-3) or gpt-4-f1 (0-1) in averaged_metrics. Their `__main__` fixes the judge
(OpenAIModel("gpt-4o-2024-05-13", temperature=0.1), through OpenAI's Batch API) and globs
output/<model>/; here the same functions run on the given files, with that judge or with HELMET's
own endpoint model class (TgiVllmModel: chat completions against an OpenAI-compatible server such
as `vllm serve`, which has no Batch API).

Run from the HELMET checkout (the Summ script reads its key points from data/ there):
    python -m retmask.helmet_judge --script longqa --endpoint URL|openai --model NAME FILE OUT
"""
from __future__ import annotations

import argparse
import importlib.util
import os
import sys
from pathlib import Path

SCRIPTS = {"longqa": "eval_gpt4_longqa", "summ": "eval_gpt4_summ"}  # shard order of the judge stages
DATASETS = {"longqa": ("narrativeqa",), "summ": ("infbench_sum", "multi_lexsum")}  # as the scripts glob them
# the judge's settings in each script's __main__
JUDGE_SETTINGS = {"longqa": {"temperature": 0.1}, "summ": {"temperature": 0.1, "generation_max_length": 4096}}
JUDGED_SUFFIX = "-gpt4eval_o.json"


def judged_name(output_name: str) -> str:
    """HELMET's name of the judged file of an eval.py output (`p.replace(".json", "-gpt4eval_o.json")`)."""
    return output_name.replace(".json", JUDGED_SUFFIX)


def judge_model(script: str, endpoint: str, model: str):
    """The judge as HELMET's model classes make it: OpenAI's API, or an OpenAI-compatible server."""
    import model_utils

    settings = JUDGE_SETTINGS[script]
    if endpoint == "openai":
        return model_utils.OpenAIModel(model, **settings)
    return model_utils.TgiVllmModel(model, endpoint_url=endpoint, **settings)


def _script(script: str):
    path = Path.cwd() / "scripts" / f"{SCRIPTS[script]}.py"
    if not path.is_file():
        raise SystemExit(f"{path}: not found; run from a HELMET checkout (princeton-nlp/HELMET) that has scripts/")
    spec = importlib.util.spec_from_file_location(SCRIPTS[script], path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--script", choices=tuple(SCRIPTS), required=True)
    parser.add_argument("--endpoint", required=True, help='"openai", or the base URL of an OpenAI-compatible server')
    parser.add_argument("--model", required=True)
    parser.add_argument("pairs", nargs="+", help="eval.py output file, then the judged file to write; repeated")
    args = parser.parse_args(argv)
    if len(args.pairs) % 2:
        parser.error("give each eval.py output with the judged file to write")
    sys.path.insert(0, str(Path.cwd()))  # HELMET's model_utils, as its scripts import it
    module = _script(args.script)
    model = judge_model(args.script, args.endpoint, args.model)
    for results_file, output_file in zip(args.pairs[::2], args.pairs[1::2]):
        partial = f"{output_file}.partial"
        module.check_metrics(model, results_file, partial)  # also writes <partial>.batch: the requests sent
        os.replace(partial, output_file)


if __name__ == "__main__":
    main()
