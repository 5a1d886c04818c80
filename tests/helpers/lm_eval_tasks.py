"""lm-eval tasks for the tests under the names Table 5's configs use (gpqa_main_cot_zeroshot,
minerva_math500, the mmlu_pro group, humaneval_instruct), with the metric keys their built-in versions report and
the stage reads (exact_match,flexible-extract; math_verify,none from the task's process_results;
the group's exact_match,custom-extract): their datasets live on the hub, so these read a few items
of our own from local files, as a user with offline compute nodes points general.include_path at
task files that replace the built-in ones (lm-eval lets a task of the include path override one
of its own of the same name)."""
from __future__ import annotations

import json
from pathlib import Path

ITEMS = [{"question": "What is two plus two?", "answer": "4"},
         {"question": "Name the largest planet.", "answer": "Jupiter"},
         {"question": "What gas do plants take in?", "answer": "carbon dioxide"}]


def _task(name: str, data: str, metric: str = "exact_match", filter_name: str = "", process: bool = False) -> str:
    text = (f"task: {name}\ndataset_path: json\ndataset_kwargs:\n  data_files:\n    test: {data}\ntest_split: test\n"
            "output_type: generate_until\ndoc_to_text: \"{{question}}\"\ndoc_to_target: \"{{answer}}\"\n"
            "generation_kwargs:\n  until: []\n  do_sample: false\n  max_gen_toks: 8\n"
            f"metric_list:\n  - metric: {metric}\n    aggregation: mean\n    higher_is_better: true\n"
            "metadata:\n  version: 1.0\n")
    if filter_name:
        text += f"filter_list:\n  - name: {filter_name}\n    filter:\n      - function: take_first\n"
    if process:
        text += "process_results: !function utils.process_results\n"
    return text


# minerva_math500's utils.process_results returns math_verify beside exact_match; here the answer as
# written, stripped, is the match
UTILS = ("def process_results(doc, results):\n"
         "    return {\"math_verify\": float(results[0].strip() == doc[\"answer\"])}\n")


# HumanEval's shape: a function to complete, run against its test (lm-eval marks such a task
# unsafe_code: it runs only when the caller confirms); here the test runs in this process
HUMANEVAL_ITEMS = [{"question": "def add(a, b):\n", "answer": "    return a + b", "test": "assert add(2, 3) == 5"},
                   {"question": "def double(x):\n", "answer": "    return 2 * x", "test": "assert double(4) == 8"}]
HUMANEVAL = ("task: humaneval_instruct\ndataset_path: json\ndataset_kwargs:\n  data_files:\n    test: humaneval/items.jsonl\n"
             "test_split: test\nunsafe_code: true\noutput_type: generate_until\ndoc_to_text: \"{{question}}\"\n"
             "doc_to_target: \"{{test}}\"\ngeneration_kwargs:\n  until: []\n  do_sample: false\n  max_gen_toks: 8\n"
             "filter_list:\n  - name: create_test\n    filter:\n      - function: take_first\n"
             "process_results: !function utils.process_results\n"
             "metric_list:\n  - metric: pass@1\n    aggregation: mean\n    higher_is_better: true\n"
             "metadata:\n  version: 1.0\n")
HUMANEVAL_UTILS = ("def process_results(doc, results):\n"
                   "    try:\n"
                   "        exec(doc[\"question\"] + results[0] + \"\\n\" + doc[\"test\"], {})\n"
                   "        return {\"pass@1\": 1.0}\n"
                   "    except Exception:\n"
                   "        return {\"pass@1\": 0.0}\n")


def write_lm_eval_tasks(root: Path) -> Path:
    tasks = {("gpqa", "gpqa_main_cot_zeroshot"): {"filter_name": "flexible-extract"},
             ("minerva_math500", "minerva_math500"): {"metric": "math_verify", "process": True},
             ("mmlu_pro", "mmlu_pro_local"): {"filter_name": "custom-extract"}}
    for (folder, name), settings in tasks.items():
        (root / folder).mkdir(parents=True, exist_ok=True)
        (root / folder / "items.jsonl").write_text("".join(json.dumps(item) + "\n" for item in ITEMS))
        (root / folder / f"{name}.yaml").write_text(_task(name, f"{folder}/items.jsonl", **settings))
    (root / "minerva_math500" / "utils.py").write_text(UTILS)
    (root / "humaneval").mkdir(parents=True, exist_ok=True)
    (root / "humaneval" / "items.jsonl").write_text("".join(json.dumps(item) + "\n" for item in HUMANEVAL_ITEMS))
    (root / "humaneval" / "humaneval_instruct.yaml").write_text(HUMANEVAL)
    (root / "humaneval" / "utils.py").write_text(HUMANEVAL_UTILS)
    (root / "mmlu_pro" / "_mmlu_pro.yaml").write_text(
        "group: mmlu_pro\ntask: [mmlu_pro_local]\naggregate_metric_list:\n  - metric: exact_match\n"
        "    aggregation: mean\n    weight_by_size: true\n    filter_list: [custom-extract]\nmetadata:\n  version: 1.0\n")
    return root
