"""Cluster profiles: data files in slurm_templates/, loaded into a typed profile."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import yaml

from retmask.config import ConfigError, from_dict

PROFILE_DIR = Path(__file__).resolve().parents[1] / "slurm_templates"


@dataclass
class ClusterProfile:
    kind: str = "local"  # local: processes on this machine
    max_parallel: int = 2
    timeout_min: int = 1440

    def validate(self, key: str = "") -> None:
        if self.kind != "local":
            raise ConfigError(f"profile kind {self.kind!r} is not supported here; use kind: local")
        if self.max_parallel < 1:
            raise ConfigError(f"profile max_parallel must be >= 1, got {self.max_parallel}")


def available_profiles() -> list[str]:
    return sorted(path.stem for path in PROFILE_DIR.glob("*.yaml"))


def load_profile(name_or_path: str) -> ClusterProfile:
    """A profile by name (a file of slurm_templates/) or by path to a user's own YAML file."""
    path = Path(name_or_path)
    if not path.suffix:
        path = PROFILE_DIR / f"{name_or_path}.yaml"
    if not path.is_file():
        raise ConfigError(f"cluster profile {name_or_path!r} not found; known profiles: "
                          f"{', '.join(available_profiles())}, or give a path to a profile YAML")
    profile = from_dict(ClusterProfile, yaml.safe_load(path.read_text()) or {}, key=f"profile {path.name}")
    profile.validate()
    return profile
