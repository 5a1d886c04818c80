"""Prompts prepared once vs per task, on an LMSYS-Chat-1M-shaped parquet file (1M conversations,
the dataset's own columns: conversation_id, model, conversation, turn, language,
openai_moderation, redacted).

    python benchmarks/prompts.py [--rows 1000000] [--shards 64] [--work DIR]

Prints the full preparation (load, filter, de-duplicate, token-count, save; what every synthesis
task used to do itself), one task's load of its slice at `--shards` shards, their ratio (goal
<= 0.02) and each one's peak RSS. Both run in fresh processes; the slice load is timed after the
imports a synthesis task makes anyway. Token counts use the shipped toy tokenizer: a real BPE
tokenizer makes the preparation slower and the ratio smaller.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

CATEGORIES = ["harassment", "harassment/threatening", "hate", "hate/threatening", "self-harm",
              "self-harm/instructions", "self-harm/intent", "sexual", "sexual/minors", "violence", "violence/graphic"]
LANGUAGES = ["English"] * 77 + ["Portuguese"] * 5 + ["Chinese"] * 4 + ["Russian"] * 4 + ["Spanish"] * 4 + \
    ["unknown"] * 6
MODELS = ["vicuna-13b", "koala-13b", "alpaca-13b", "chatglm-6b", "llama-13b", "oasst-pythia-12b"]
WORDS = ("the of and to a in is you that it for what how can write me with please explain code python list "
         "story about an why are this be give example function data make best way between difference").split()


def write_lmsys_shaped(path: Path, rows: int, seed: int = 0, batch: int = 50_000) -> None:
    """LMSYS-Chat-1M's layout: 1-4 turns (user/assistant), a moderation entry per message, about 5%
    redacted, 3% flagged, a language mix, and one prompt in ten repeated from an earlier one."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.parquet as pq

    rng = np.random.default_rng(seed)
    moderation_type = pa.struct([("categories", pa.struct([(c, pa.bool_()) for c in CATEGORIES])),
                                 ("category_scores", pa.struct([(c, pa.float64()) for c in CATEGORIES])),
                                 ("flagged", pa.bool_())])
    schema = pa.schema([("conversation_id", pa.string()), ("model", pa.string()),
                        ("conversation", pa.list_(pa.struct([("content", pa.string()), ("role", pa.string())]))),
                        ("turn", pa.int64()), ("language", pa.string()),
                        ("openai_moderation", pa.list_(moderation_type)), ("redacted", pa.bool_())])
    clean = {"categories": {c: False for c in CATEGORIES}, "category_scores": {c: 1e-5 for c in CATEGORIES},
             "flagged": False}
    flagged = {**clean, "categories": {**clean["categories"], "harassment": True}, "flagged": True}
    prompts: list[str] = []
    with pq.ParquetWriter(path, schema) as writer:
        for start in range(0, rows, batch):
            count = min(batch, rows - start)
            table = {name: [] for name in schema.names}
            for k in range(count):
                if prompts and rng.random() < 0.1:
                    first = prompts[int(rng.integers(len(prompts)))]
                else:
                    first = " ".join(WORDS[i] for i in rng.integers(len(WORDS), size=int(rng.integers(4, 120))))
                    prompts.append(first) if len(prompts) < 100_000 else None
                turns = int(rng.choice([1, 1, 1, 2, 2, 3, 4]))
                conversation = []
                for t in range(turns):
                    conversation.append({"content": first if t == 0 else f"and then {t}?", "role": "user"})
                    conversation.append({"content": "a reply " * int(rng.integers(5, 60)), "role": "assistant"})
                is_flagged = rng.random() < 0.03
                table["conversation_id"].append(f"{start + k:032x}")
                table["model"].append(MODELS[int(rng.integers(len(MODELS)))])
                table["conversation"].append(conversation)
                table["turn"].append(turns)
                table["language"].append(LANGUAGES[int(rng.integers(len(LANGUAGES)))])
                table["openai_moderation"].append([flagged if is_flagged and i == 0 else clean
                                                   for i in range(len(conversation))])
                table["redacted"].append(bool(rng.random() < 0.05))
            writer.write_table(pa.table(table, schema=schema))


PREPARE = """
import json, resource, sys, time
sys.path.insert(0, {repo!r})
from jobs.stages.prompts import filters, processes
from retmask.config import load_config
from retmask.prompts import prepare_prompts
cfg = load_config({repo!r} + "/configs/tiny.yaml", ["synthesis.prompts=" + {source!r}, "synthesis.prompt_format=lmsys",
                  "synthesis.max_prompts=0", "synthesis.max_model_len=4096", "synthesis.sampling.max_new_tokens=2048"])
started = time.perf_counter()
prepared, counts = prepare_prompts(cfg.synthesis.prompts, filters(cfg), cfg.model.path, processes())
prepared.save_to_disk({out!r})
seconds = time.perf_counter() - started
print(json.dumps({{"seconds": seconds, "rss_kb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,
                  "worker_rss_kb": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss,
                  "rows": counts.rows, "prompts": len(prepared),
                  "dropped": dict(counts.dropped)}}))
"""

LOAD = """
import json, resource, sys, time
sys.path.insert(0, {repo!r})
import datasets
from retmask.prompts import prompts_of
from retmask.rundir import shard_slice
started = time.perf_counter()
prepared = datasets.load_from_disk({out!r})
mine = prompts_of(prepared.select(shard_slice(len(prepared), {shards}, {shard})))
seconds = time.perf_counter() - started
print(json.dumps({{"seconds": seconds, "rss_kb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,
                  "prompts": len(mine)}}))
"""


def run_python(code: str) -> dict:
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO,
                          env={**os.environ, "HF_HUB_OFFLINE": "1"})
    if done.returncode != 0:
        raise SystemExit(done.stderr[-3000:])
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--shards", type=int, default=64)
    parser.add_argument("--work", help="folder for the parquet file and the prepared set (default: a temporary one)")
    args = parser.parse_args()
    work = Path(args.work or tempfile.mkdtemp(prefix="retmask-prompts-bench-"))
    work.mkdir(parents=True, exist_ok=True)
    source = work / f"lmsys-shaped-{args.rows}.parquet"
    if not source.is_file():
        started = time.perf_counter()
        write_lmsys_shaped(source, args.rows)
        print(f"wrote {source} ({args.rows} conversations, {source.stat().st_size / 2**20:.0f} MiB) in "
              f"{time.perf_counter() - started:.1f}s")
    out = work / "prepared"
    prepare = run_python(PREPARE.format(repo=str(REPO), source=str(source), out=str(out)))
    load = run_python(LOAD.format(repo=str(REPO), out=str(out), shards=args.shards, shard=args.shards // 2))
    print(f"rows {prepare['rows']}, prompts kept {prepare['prompts']}, dropped {prepare['dropped']}")
    print(f"full preparation (once per run): {prepare['seconds']:.1f}s, peak RSS {prepare['rss_kb'] / 2**20:.2f} GiB "
          f"(largest worker process {prepare['worker_rss_kb'] / 2**20:.2f} GiB)")
    print(f"one task's slice at {args.shards} shards ({load['prompts']} prompts): {load['seconds']:.3f}s, "
          f"peak RSS {load['rss_kb'] / 2**20:.2f} GiB")
    print(f"ratio slice / full preparation: {load['seconds'] / prepare['seconds']:.4f} (goal <= 0.02)")


if __name__ == "__main__":
    main()
