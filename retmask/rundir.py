"""The run directory: the contract between stages.

    <run>/config.yaml                     resolved experiment config
    <run>/manifest.json                   per stage: fingerprint, shards, states, job ids, times
    <run>/stages/<stage>/...              the stage's outputs
    <run>/stages/<stage>/done/<k>.json    marker of finished shard k, with the stage fingerprint
    <run>/stages/<stage>/progress/<k>.json how far shard k is (retmask/progress.py), kept when done
    <run>/logs/<stage>/                   job logs
    <run>/superseded/<stage>-<fp>/        outputs of an earlier fingerprint, kept, never deleted

Only the orchestrating process writes the manifest; a shard writes its own outputs and marker.
"""
from __future__ import annotations

import hashlib
import os
import time
from pathlib import Path

from retmask.claims import Attempt, ShardClaim
from retmask.errors import UserError
from retmask.io import read_json, write_json
from retmask.progress import ProgressReporter, ShardProgress

CLAIMS_DIR = "claims"  # stages/<stage>/claims/: who writes each shard now (retmask/claims.py)


def shard_slice(total: int, shards: int, shard: int) -> range:
    """Contiguous slice `shard` of `shards` over `total` items (sizes differ by at most one)."""
    return range(total * shard // shards, total * (shard + 1) // shards)


def file_record(path: Path) -> dict:
    """What a finished file holds: its rows (lines), bytes and sha256."""
    data = Path(path).read_bytes()
    return {"rows": data.count(b"\n"), "bytes": len(data), "sha256": hashlib.sha256(data).hexdigest()}


def file_damage(path: Path, record: dict, deep: bool = False) -> str | None:
    """How a file differs from its record (None: it does not): missing, another size, or (`deep`)
    other bytes."""
    if not path.is_file():
        return f"{path} is gone since its shard finished"
    size = path.stat().st_size
    if size != record["bytes"]:
        return f"{path} holds {size} bytes, its shard finished with {record['bytes']} ({record['rows']} rows)"
    if deep and hashlib.sha256(path.read_bytes()).hexdigest() != record["sha256"]:
        return f"{path} changed since its shard finished (another checksum, same size)"
    return None


class RunDir:
    def __init__(self, root: str | Path):
        self.root = Path(root).absolute()  # jobs may start in another directory
        self.attempts: dict[tuple[str, int], Attempt] = {}  # the shards this process claimed

    def claim(self, stage: str, shard: int) -> ShardClaim:
        """The one-writer claim of a shard (retmask/claims.py)."""
        return ShardClaim(self.stage_dir(stage) / CLAIMS_DIR, shard)

    def write_guard(self, stage: str, shard: int):
        """What a shard's writer calls before each write: refuses when another attempt has taken
        the shard this process claimed (nothing to check for a shard it did not claim)."""
        attempt = self.attempts.get((stage, shard))
        return (lambda: self.claim(stage, shard).check(attempt)) if attempt else (lambda: None)

    @property
    def config_path(self) -> Path:
        return self.root / "config.yaml"

    @property
    def manifest_path(self) -> Path:
        return self.root / "manifest.json"

    @property
    def report_dir(self) -> Path:
        return self.root / "report"

    def stage_dir(self, stage: str) -> Path:
        return self.root / "stages" / stage

    def log_dir(self, stage: str) -> Path:
        return self.root / "logs" / stage

    def marker(self, stage: str, shard: int) -> Path:
        return self.stage_dir(stage) / "done" / f"{shard:05d}.json"

    def shard_file(self, stage: str, shard: int) -> Path:
        """The row file of one shard of a sharded stage (detection, synthesis)."""
        return self.stage_dir(stage) / "shards" / f"{shard:05d}.jsonl"

    def shard_files(self, stage: str) -> list[Path]:
        return sorted((self.stage_dir(stage) / "shards").glob("*.jsonl"))

    def finished_rows(self, stage: str) -> list[dict]:
        """Every row of a finished sharded stage, each file checked against what its done marker
        recorded (a shard damaged since it finished is refused, naming it) and never changed."""
        from retmask.rows import DamagedShard, read_finished

        rows: list[dict] = []
        for path in self.shard_files(stage):
            marker = self.marker(stage, int(path.stem))
            record = read_json(marker).get("output") if marker.is_file() else None
            problem = file_damage(path, record, deep=True) if record else None
            if problem:
                raise DamagedShard(f"{problem}; `retmask resume` (or rerunning the same command) reruns that shard")
            rows.extend(read_finished(path))
        return rows

    def progress_file(self, stage: str, shard: int) -> Path:
        return self.stage_dir(stage) / "progress" / f"{shard:05d}.json"

    def report_progress(self, stage: str, shard: int, progress: ShardProgress) -> None:
        """A running shard's latest count (shown by whoever watches the run; a pilot's rates)."""
        write_json(self.progress_file(stage, shard), progress.to_dict())

    def progress_reporter(self, stage: str, shard: int, unit: str, total: int | None, done: int = 0,
                          every_s: float = 1.0) -> ProgressReporter:
        """What a shard counts its work with; `done`: what it finds already written."""
        return ProgressReporter(lambda progress: self.report_progress(stage, shard, progress), unit, total, done,
                                every_s)

    def read_progress(self, stage: str, shard: int) -> ShardProgress | None:
        try:
            return ShardProgress.from_dict(read_json(self.progress_file(stage, shard)))
        except (OSError, ValueError):  # not written yet
            return None

    def stage_progress(self, stage: str) -> dict[int, ShardProgress]:
        """shard -> its progress, for the shards of `stage` that reported any (one listing)."""
        folder = self.stage_dir(stage) / "progress"
        if not folder.is_dir():
            return {}
        found = {}
        for entry in os.scandir(folder):
            if entry.name.endswith(".json") and entry.name[:-5].isdigit():
                progress = self.read_progress(stage, int(entry.name[:-5]))
                if progress is not None:
                    found[int(entry.name[:-5])] = progress
        return dict(sorted(found.items()))

    def mark_done(self, stage: str, shard: int, stage_fingerprint: str, seconds: float, **extra) -> None:
        """The shard's done marker; a shard with a row file records what the file holds (rows, bytes,
        sha256), so a file damaged after it finished is not taken for done."""
        rows_file = self.shard_file(stage, shard)
        record = {"output": file_record(rows_file)} if rows_file.is_file() else {}
        write_json(self.marker(stage, shard), {"fingerprint": stage_fingerprint, "seconds": round(seconds, 3),
                                               "finished": time.time(), **record, **extra})

    def done_shards(self, stage: str, stage_fingerprint: str) -> set[int]:
        """Shards of `stage` marked done under this fingerprint whose output is as they wrote it
        (one directory listing, a stat per row file)."""
        return set(self._markers(stage, stage_fingerprint)) - set(self.damaged_shards(stage, stage_fingerprint))

    def damaged_shards(self, stage: str, stage_fingerprint: str, deep: bool = False) -> dict[int, str]:
        """Shards marked done under this fingerprint whose row file changed since: missing, another
        size, or (`deep`) other bytes -> what is wrong."""
        damaged = {}
        for shard, marker in self._markers(stage, stage_fingerprint).items():
            if "output" in marker:
                problem = file_damage(self.shard_file(stage, shard), marker["output"], deep)
                if problem:
                    damaged[shard] = problem
        return damaged

    def _markers(self, stage: str, stage_fingerprint: str) -> dict[int, dict]:
        done_dir = self.stage_dir(stage) / "done"
        if not done_dir.is_dir():
            return {}
        markers = {}
        for entry in os.scandir(done_dir):
            if entry.name.endswith(".json") and not entry.name.startswith("."):
                marker = read_json(entry.path)
                if marker.get("fingerprint") == stage_fingerprint:
                    markers[int(entry.name[:-5])] = marker
        return markers

    def stage_fingerprints_on_disk(self, stage: str) -> set[str]:
        """Every fingerprint the stage's done markers were written under: one for a stage of one
        config, two when a shard of an earlier config finished after the config changed."""
        done_dir = self.stage_dir(stage) / "done"
        if not done_dir.is_dir():
            return set()
        return {str(read_json(entry.path).get("fingerprint")) for entry in os.scandir(done_dir)
                if entry.name.endswith(".json") and not entry.name.startswith(".")}

    def stale_fingerprints(self, stage: str, stage_fingerprint: str) -> set[str]:
        """The fingerprints of the stage's outputs that are not `stage_fingerprint` (made under
        another config): any one of them puts the whole stage aside before it runs again."""
        return self.stage_fingerprints_on_disk(stage) - {stage_fingerprint}

    def supersede(self, stage: str) -> Path | None:
        """Move outputs of another fingerprint aside (never delete them) before a stage reruns."""
        stage_dir = self.stage_dir(stage)
        # The report stage writes its pages to <run>/report, outside its stage folder: they go too.
        beside = [self.report_dir] if stage == "report" and self.report_dir.exists() else []
        if not stage_dir.exists() and not beside:
            return None
        found = sorted(self.stage_fingerprints_on_disk(stage))
        old = found[0] if len(found) == 1 else ("mixed" if found else "unfinished")
        target = self.root / "superseded" / f"{stage}-{old}-{int(time.time())}"
        target.parent.mkdir(parents=True, exist_ok=True)
        if stage_dir.exists():
            os.replace(stage_dir, target)
        else:
            target.mkdir()
        for path in beside:
            os.replace(path, target / path.name)
        return target

    def adopt(self, stage: str, donor: "RunDir") -> None:
        """Take a stage another run finished under the same fingerprint (a study's shared stage):
        its files are hard-linked (copied across file systems) into a staging folder, which is
        then renamed into place, so a half-adopted stage is never seen. Outputs are only ever
        replaced, never changed in place, so a link stays the donor's file as written."""
        import shutil

        def link(source: str, target: str) -> None:
            try:
                os.link(source, target)
            except OSError:
                shutil.copy2(source, target)

        target = self.stage_dir(stage)
        staging = target.with_name(f".{stage}.adopting")
        if staging.exists():
            shutil.rmtree(staging)  # an adoption cut short: only links and copies, nothing of our own
        donor_dir = str(donor.stage_dir(stage))
        # a claim is the donor's writer's, released (deleted) as its shard ends: never adopted
        shutil.copytree(donor_dir, staging, copy_function=link, symlinks=True,
                        ignore=lambda folder, names: [CLAIMS_DIR] if folder == donor_dir and CLAIMS_DIR in names else [])
        os.replace(staging, target)

    def shard_seconds(self, stage: str) -> list[float]:
        done_dir = self.stage_dir(stage) / "done"
        if not done_dir.is_dir():
            return []
        return [read_json(path)["seconds"] for path in sorted(done_dir.glob("*.json"))]

    def read_manifest(self) -> dict:
        if not self.manifest_path.is_file():
            return {"stages": {}}
        restore = ("it records the run's jobs. Restore it, or move it aside and submit the run again: finished "
                   "shards are kept (their done markers are on disk)")
        try:
            manifest = read_json(self.manifest_path)
        except ValueError as error:  # retmask replaces it atomically: something else cut or edited it
            raise UserError(f"{self.manifest_path} is not valid JSON ({error}); {restore}") from None
        stages = manifest.get("stages", {}) if isinstance(manifest, dict) else None
        if not isinstance(stages, dict) or not all(isinstance(entry, dict) for entry in stages.values()) \
                or not isinstance(manifest.get("order", []), list):
            raise UserError(f"{self.manifest_path} is not a run manifest (expected an object with \"stages\": "
                            f"{{stage: {{...}}}} and \"order\": [...], found {str(manifest)[:80]}); {restore}")
        return manifest

    def write_manifest(self, manifest: dict) -> None:
        write_json(self.manifest_path, manifest)
