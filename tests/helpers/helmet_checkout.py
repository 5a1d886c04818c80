"""A HELMET checkout for the tests: HELMET's data lives on the hub, so its eval.py is a stand-in that
follows HELMET's own command line (arguments.py: the --config YAML gives the defaults, the command
line wins; do_sample False forces temperature 0), its loop over a config's datasets and lengths, its
output names and files (<name>.json with averaged_metrics, <name>.json.score, which eval_alce writes
for the ALCE datasets), its "already exists, skipping" and "done, results are written to" log lines,
and its refusal of a model path it cannot load. Its scores are numbers drawn from the model path
and dataset, not a model's answers; the outputs of the datasets HELMET's GPT-4 judge reads carry
items with the fields its judge scripts read. The checkout holds HELMET's real model_utils.py and
judge scripts (tests/helpers/helmet_upstream/).

configs/ holds HELMET's fourteen files of the paper's seven categories (the *_short.yaml files at
8K-64K, the others at 128K) with HELMET's dataset names and lengths."""
from __future__ import annotations

import json
import textwrap
from pathlib import Path

EVAL_PY = textwrap.dedent('''
    import argparse, ast, hashlib, json, logging, os, sys
    import yaml

    logging.basicConfig(level=logging.INFO, format="%(levelname)s - %(name)s - %(message)s")
    logger = logging.getLogger("__main__")
    flag = lambda value: ast.literal_eval(str(value))
    parser = argparse.ArgumentParser()
    parser.add_argument("--config", type=str, default=None)
    parser.add_argument("--tag", type=str, default="eval")
    parser.add_argument("--model_name_or_path", type=str, default=None)
    parser.add_argument("--use_vllm", action="store_true")
    parser.add_argument("--use_sglang", action="store_true")
    parser.add_argument("--use_tgi_or_vllm_serving", action="store_true")
    parser.add_argument("--endpoint_url", type=str, default="http://localhost:8080/v1/")
    parser.add_argument("--datasets", type=str, default=None)
    parser.add_argument("--demo_files", type=str, default=None)
    parser.add_argument("--test_files", type=str, default=None)
    parser.add_argument("--output_dir", type=str, default=None)
    parser.add_argument("--overwrite", action="store_true")
    parser.add_argument("--max_test_samples", type=int, default=None)
    parser.add_argument("--num_workers", type=int, default=4)
    parser.add_argument("--shots", type=int, default=2)
    parser.add_argument("--input_max_length", type=str, default="8192")
    parser.add_argument("--do_sample", type=flag, choices=[True, False], default=False)
    parser.add_argument("--generation_max_length", type=str, default="10")
    parser.add_argument("--generation_min_length", type=int, default=0)
    parser.add_argument("--temperature", type=float, default=0.0)
    parser.add_argument("--top_p", type=float, default=1.0)
    parser.add_argument("--stop_newline", type=flag, choices=[True, False], default=False)
    parser.add_argument("--system_message", type=str, default=None)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--no_cuda", action="store_true")
    parser.add_argument("--no_bf16", action="store_true")
    parser.add_argument("--no_torch_compile", action="store_true")
    parser.add_argument("--use_chat_template", type=flag, choices=[True, False], default=False)
    parser.add_argument("--rope_theta", type=int, default=None)
    parser.add_argument("--thinking", action="store_true")
    parser.add_argument("--debug", action="store_true")
    parser.add_argument("--count_tokens", action="store_true")
    args = parser.parse_args()
    parser.set_defaults(**(yaml.safe_load(open(args.config)) if args.config else {}))
    args = parser.parse_args()
    if not args.do_sample and args.temperature != 0.0:
        args.temperature = 0.0
    assert args.model_name_or_path is not None
    model = args.model_name_or_path
    # HELMET loads the model (and its tokenizer) before any dataset: a path it cannot load ends the run
    for needed in ("config.json", "tokenizer_config.json"):
        if not os.path.isfile(os.path.join(model, needed)):
            raise SystemExit(f"OSError: {model} is not a model checkpoint: no {needed}")
    out_dir = args.output_dir or f"output/{os.path.basename(model)}"
    os.makedirs(out_dir, exist_ok=True)

    def values(text):
        return [int(v) if v.strip().isdigit() else v for v in str(text).split(",")]

    datasets, tests, demos = str(args.datasets).split(","), str(args.test_files).split(","), str(args.demo_files).split(",")
    lengths, generation = values(args.input_max_length), values(args.generation_max_length)
    lengths = lengths * len(datasets) if len(lengths) == 1 else lengths
    generation = generation * len(datasets) if len(generation) == 1 else generation
    ITEMS = 3  # judged items per file
    METRICS = [("alce_asqa", ["str_em", "citation_rec", "citation_prec", "rougeLsum"]),
               ("alce_qampari", ["qampari_rec_top5", "citation_rec", "citation_prec"]),
               ("msmarco", ["NDCG@10"]), ("icl_", ["exact_match"]), ("ruler_", ["ruler_recall"]),
               ("infbench_choice", ["exact_match"]), ("json_kv", ["substring_exact_match"]),
               ("kilt_", ["substring_exact_match"]),
               ("", ["rougeL_f1", "rougeL_recall", "rougeLsum_f1", "rougeLsum_recall"])]
    def judged_items(dataset, model):
        """Outputs of the datasets HELMET's GPT-4 judge reads, with the fields its scripts read."""
        items = []
        for i in range(ITEMS):
            right = hashlib.sha256(f"{model}|{dataset}|{i}".encode()).digest()[0] % 2 == 0
            if dataset.startswith("narrativeqa"):
                items.append({"id": f"nqa{i}", "question": f"Who keeps the lighthouse {i}?", "answer": [f"keeper {i}"],
                              "output": f"Answer: keeper {i}" if right else "Answer: the sailor"})
            elif dataset.startswith("infbench_sum"):
                items.append({"id": f"book{i}", "answer": [f"The expert summary of book {i}."],
                              "output": f"Book {i} is summarized. Its hero returns."})
            elif dataset.startswith("multi_lexsum"):
                items.append({"id": f"case{i}", "summary/long": f"The expert summary of case {i}.",
                              "output": f"Case {i} settled. The court agreed."})
        return items

    for dataset, test_file, demo_file, length, gen_length in zip(datasets, tests, demos, lengths, generation):
        test_name = os.path.splitext(os.path.basename(test_file))[0]
        path = os.path.join(out_dir, f"{dataset}_{args.tag}_{test_name}_in{length}_size{args.max_test_samples}_shots"
                            f"{args.shots}_samp{args.do_sample}max{gen_length}min{args.generation_min_length}"
                            f"t{args.temperature}p{args.top_p}_chat{args.use_chat_template}_{args.seed}.json")
        if os.path.exists(path) and not args.overwrite:
            logger.info(f"{path} already exists, skipping...")
            continue
        names = next(m for prefix, m in METRICS if dataset.startswith(prefix))
        averaged = {}
        for name in names:
            digest = hashlib.sha256(f"{model}|{dataset}|{length}|{name}".encode()).digest()
            averaged[name] = round(100 * digest[0] / 255, 2)
        json.dump({"args": vars(args), "data": judged_items(dataset, model), "metrics": {}, "averaged_metrics": averaged},
                  open(path, "w"))
        json.dump(averaged, open(path + ".score", "w"))
        logger.info(f"done, results are written to {path}")
''')

SHORT = (8192, 16384, 32768, 65536)
CONFIGS = {  # file stem -> (datasets at 8K-64K as HELMET names them, per length; the 128K ones)
    "recall": ([["json_kv", "ruler_niah_mk_2", "ruler_niah_mk_3", "ruler_niah_mv"]] * 4,
               ["json_kv", "ruler_niah_mk_2", "ruler_niah_mk_3", "ruler_niah_mv"]),
    "rag": ([["kilt_nq", "kilt_triviaqa", "kilt_hotpotqa", "kilt_popqa_3"]] * 4,
            ["kilt_nq", "kilt_triviaqa", "kilt_hotpotqa", "kilt_popqa_3"]),
    "rerank": ([["msmarco_rerank_psg"]] * 4, ["msmarco_rerank_psg"]),
    "cite": ([[f"alce_asqa_{n}", f"alce_qampari_{n}"] for n in (30, 75, 165, 345)], ["alce_asqa_700", "alce_qampari_700"]),
    "longqa": ([[f"narrativeqa_{a}", f"infbench_qa_eng_{b}", f"infbench_choice_eng_{b}"]
                for a, b in ((7892, 7982), (16084, 16174), (32468, 32558), (65236, 65326))],
               ["narrativeqa_130772", "infbench_qa_eng_130862", "infbench_choice_eng_130862"]),
    "summ": ([[f"infbench_sum_eng_{a}", f"multi_lexsum_{b}"]
              for a, b in ((6792, 7492), (14984, 15684), (31368, 32068), (64136, 64836))],
             ["infbench_sum_eng_129672", "multi_lexsum_130372"]),
    "icl": ([[f"icl_{t}_{n}shot_balance" for t, n in zip(("trec_coarse", "trec_fine", "banking77", "clinic150", "nlu"),
                                                          shots)]
             for shots in ((400, 400, 360, 440, 510), (800, 800, 720, 880, 1020), (1600, 1600, 1450, 1750, 2040),
                           (3300, 3200, 2900, 3525, 4080))],
            [f"icl_{t}_{n}shot_balance" for t, n in zip(("trec_coarse", "trec_fine", "banking77", "clinic150", "nlu"),
                                                          (6600, 6400, 5900, 7050, 8296))]),
}


def _config_text(names: list[str], lengths: list[int]) -> str:
    files = ",".join(f"data/{name}.jsonl" for name in names)
    return (f"input_max_length: {','.join(map(str, lengths))}\ndatasets: {','.join(names)}\n"
            f"generation_max_length: {','.join('20' for _ in names)}\ntest_files: {files}\ndemo_files: {files}\n"
            "use_chat_template: false\nmax_test_samples: 100\nshots: 2\nstop_new_line: true\n")


UPSTREAM = Path(__file__).parent / "helmet_upstream"  # HELMET's own files (its LICENSE beside them)
KEYPOINTS = {"data/infbench/longbook_sum_eng_keypoints.jsonl": ("book", "keypoints"),
             "data/multi_lexsum/multi_lexsum_val.jsonl": ("case", "summary/short_keypoints")}


def keypoints(item_id: str) -> list[str]:
    """The key points of a summarized item: i + 1 of them for item i."""
    count = int(item_id.lstrip("abcdefghijklmnopqrstuvwxyz")) + 1
    return [f"key point {k + 1} of {item_id}" for k in range(count)]


def write_helmet_checkout(root: Path) -> Path:
    (root / "configs").mkdir(parents=True, exist_ok=True)
    (root / "eval.py").write_text(EVAL_PY)
    # HELMET's judge code as HELMET ships it: model_utils.py and the GPT-4 judge scripts (commit
    # 4526dfb of princeton-nlp/HELMET, unmodified), with the key point files the Summ judge reads
    (root / "scripts").mkdir(exist_ok=True)
    (root / "model_utils.py").write_text((UPSTREAM / "model_utils.py").read_text())
    for script in ("eval_gpt4_longqa.py", "eval_gpt4_summ.py"):
        (root / "scripts" / script).write_text((UPSTREAM / script).read_text())
    for name, (prefix, field) in KEYPOINTS.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text("".join(json.dumps({"id": f"{prefix}{i}", field: keypoints(f"{prefix}{i}")}) + "\n"
                                         for i in range(3)))
    for stem, (short, long) in CONFIGS.items():
        names = [name for per_length in short for name in per_length]
        lengths = [n for n, per_length in zip(SHORT, short) for _ in per_length]
        (root / "configs" / f"{stem}_short.yaml").write_text(_config_text(names, lengths))
        (root / "configs" / f"{stem}.yaml").write_text(_config_text(long, [131072] * len(long)))
    return root


def cache_cite_nli_model(cache: Path) -> Path:
    """A Hugging Face hub cache holding the entry of HELMET's Cite NLI model as the hub lays a
    download out (refs/main naming a snapshot, its config.json): what the check before submission
    looks for. The model itself (11B) is never loaded by the tests' eval.py."""
    from retmask.helmet import CITE_NLI_MODEL

    entry = cache / f"models--{CITE_NLI_MODEL.replace('/', '--')}"
    (entry / "refs").mkdir(parents=True, exist_ok=True)
    (entry / "refs" / "main").write_text("0" * 40)
    (entry / "snapshots" / ("0" * 40)).mkdir(parents=True, exist_ok=True)
    (entry / "snapshots" / ("0" * 40) / "config.json").write_text(json.dumps({"model_type": "t5"}))
    return cache

