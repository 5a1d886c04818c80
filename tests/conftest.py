import os
from dataclasses import dataclass

os.environ["HF_HUB_OFFLINE"] = "1"  # tests never reach for a model hub
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.helpers.background import BackgroundCommand
from tests.helpers.helmet_checkout import cache_cite_nli_model

# The tests' own hub cache (CI's is empty anyway), holding HELMET's Cite NLI model as downloaded:
# a HELMET config that runs Cite is refused without it (retmask/helmet.py: check_cite_nli_model)
os.environ["HF_HUB_CACHE"] = str(cache_cite_nli_model(Path(tempfile.mkdtemp(prefix="hf-hub-"))))

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session")
def toy_model_dir() -> Path:
    """The trained toy model of the default recipe (trained once, then cached by recipe)."""
    from retmask.toy.recipe import ToyModelConfig
    from retmask.toy.cache import ensure_toy_model

    return ensure_toy_model(ToyModelConfig())


@pytest.fixture(scope="session")
def toy_tokenizer():
    from retmask.toy.vocab import build_tokenizer

    return build_tokenizer()


# configs/tiny.yaml made small: 32 prompts (still dropping rows at both filters: prompts over 56
# tokens before synthesis, chosen responses cut off at 8 new tokens when pairing), 4 DPO steps,
# a smaller NIAH evaluation, TensorBoard tracking.
SMALL_RUN = ["synthesis.max_prompts=32", "synthesis.max_prompt_tokens=56", "synthesis.sampling.max_new_tokens=8",
             "train.max_steps=4", "train.per_device_batch_size=8", "train.global_batch_size=8",
             "evaluation.random_control_draws=1", "evaluation.niah_lengths=[32,64,2]", "evaluation.niah_depths=3",
             "train.report_to=[tensorboard]"]


@dataclass
class SmallRun:
    run: object  # RunDir
    cfg: object  # ExperimentConfig, as the run recorded it
    model_card_after_training: str  # before the report stage adds the evaluation to it


@pytest.fixture(scope="session")
def small_toy_run(tmp_path_factory, toy_model_dir) -> SmallRun:
    """SMALL_RUN run locally through the report, in two steps so that the model card training
    wrote can be read before the report rewrites it: the run the plan (as a pilot), card and
    tracking tests read."""
    from jobs.local import LocalPipeline
    from jobs.runner import load_run_config, record_config
    from jobs.stages.train import trained_model_dir
    from retmask.config import load_config

    cfg = load_config(REPO / "configs" / "tiny.yaml", SMALL_RUN)
    cfg.run_dir = str(tmp_path_factory.mktemp("small") / "run")
    run = record_config(cfg)
    LocalPipeline(cfg, run, log=lambda line: None, until="train").execute(max_parallel=2)
    card = (trained_model_dir(run) / "README.md").read_text()
    LocalPipeline(cfg, run, log=lambda line: None).execute(max_parallel=2)
    return SmallRun(run, load_run_config(run), card)


TOY_PAIRS = ["synthesis.max_prompts=32"]


@pytest.fixture(scope="session")
def toy_pairs_run(tmp_path_factory, toy_model_dir) -> Path:
    """configs/tiny.yaml with TOY_PAIRS run locally through its pairs: the training tests copy it
    and set their own train keys (which no stage before training reads)."""
    from jobs.local import LocalPipeline
    from jobs.runner import record_config
    from retmask.config import load_config

    cfg = load_config(REPO / "configs" / "tiny.yaml", TOY_PAIRS)
    cfg.run_dir = str(tmp_path_factory.mktemp("toy-pairs") / "run")
    run = record_config(cfg)
    LocalPipeline(cfg, run, log=lambda line: None, until="pairs").execute(max_parallel=2)
    return run.root


@pytest.fixture(scope="session")
def paper_inputs(tmp_path_factory) -> dict[str, str]:
    """inputs.NAME -> path for the paper's studies: the six models' checkpoint folders (config and
    tokenizer, no weights), prompt sets, a HELMET checkout and lm-eval task files, made here."""
    from tests.helpers.paper_inputs import write_paper_inputs

    return write_paper_inputs(tmp_path_factory.mktemp("paper-inputs"))


def _in_background(tmp_path_factory, name: str, cwd: Path, *python_args: str) -> BackgroundCommand:
    """This python with the checkout importable, its output in a folder of its own."""
    return BackgroundCommand([sys.executable, *python_args], cwd, {**os.environ, "PYTHONPATH": str(REPO)},
                             tmp_path_factory.mktemp(f"{name}-output"))


@pytest.fixture(scope="session")
def paper_rehearsal_command(tmp_path_factory, paper_inputs) -> Iterator[tuple[Path, BackgroundCommand]]:
    """(its folder, the command): `retmask study configs/paper/*.yaml --rehearse` with the paper's
    inputs, running in the background (tests/test_paper_rehearsal.py waits for it)."""
    from tests.helpers.paper_inputs import PAPER_STUDIES, input_arguments

    cwd = tmp_path_factory.mktemp("paper-rehearsal")
    command = _in_background(tmp_path_factory, "paper-rehearsal", cwd, "-m", "jobs.cli", "study",
                             *map(str, PAPER_STUDIES), "--rehearse", *input_arguments(paper_inputs))
    yield cwd, command
    command.stop()


@pytest.fixture(scope="session")
def vllm_environment_build(tmp_path_factory) -> Iterator[BackgroundCommand | None]:
    """The build of vLLM's CPU environment (tests/helpers/vllm_env.py) running in the background;
    None when the cache already holds it."""
    from tests.helpers.vllm_env import vllm_env_ready

    if vllm_env_ready():
        yield None
        return
    command = _in_background(tmp_path_factory, "vllm-env", REPO, "-c",
                             "from tests.helpers.vllm_env import vllm_python; vllm_python()")
    yield command
    command.stop()


# Started at the first test when a selected test needs them, in this order (tests/helpers/background.py)
BACKGROUND_FIXTURES = ("vllm_environment_build", "paper_rehearsal_command")


@pytest.fixture(scope="session", autouse=True)
def start_background_commands(request) -> None:
    wanted = {name for item in request.session.items for name in item.fixturenames}
    for name in BACKGROUND_FIXTURES:
        if name in wanted:
            request.getfixturevalue(name)


def wait_for(command: BackgroundCommand, what: str) -> subprocess.CompletedProcess:
    """The command's outcome once it ended; a failure names `what` with the end of its output."""
    result = command.wait()
    assert result.returncode == 0, f"{what} failed:\n" + result.stdout[-5000:] + result.stderr[-5000:]
    return result


from tests.gridengine_cluster import local_gridengine  # noqa: F401  (session fixture: a real single-host Grid Engine)
from tests.slurm_cluster import local_slurm  # noqa: F401  (session fixture: a real single-node SLURM)
