"""Shared fixtures: the built binaries and a fresh vault folder per test."""

import json
import os
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
TARGET = Path(os.environ.get("CARGO_TARGET_DIR", ROOT / "target"))
ARTIFACTS = ROOT / "tests" / "artifacts"


def binary(name: str) -> Path:
    path = TARGET / "debug" / name
    if not path.exists():
        pytest.fail(f"{path} is missing: run `cargo build -p chartroom-cli -p chartroom-desktop` first")
    return path


class Cli:
    """The chartroom command line against one vault folder."""

    def __init__(self, tmp: Path):
        self.vault = tmp / "vault"
        self.env = {
            "PATH": os.environ.get("PATH", ""),
            "HOME": str(tmp),
            "CHARTROOM_STATE_DIR": str(tmp / "state"),
            # The floor of the KDF policy (RFC 9106 option 2), never below it.
            "CHARTROOM_KDF_TARGET_MS": "1",
        }
        self.bin = binary("chartroom")

    def run(self, *args: str, password: str | None = None, new_password: str | None = None, check: bool = True,
            extra_env: dict | None = None):
        env = dict(self.env)
        env.update(extra_env or {})
        if password is not None:
            env["CHARTROOM_PASSWORD"] = password
        if new_password is not None:
            env["CHARTROOM_NEW_PASSWORD"] = new_password
        proc = subprocess.run(
            [str(self.bin), "--vault", str(self.vault), "--json", *args],
            env=env,
            capture_output=True,
            text=True,
            stdin=subprocess.DEVNULL,
            timeout=120,
        )
        if check and proc.returncode != 0:
            raise AssertionError(f"chartroom {' '.join(args)} exited {proc.returncode}: {proc.stderr}")
        return proc

    def json(self, *args: str, **kw) -> dict:
        return json.loads(self.run(*args, **kw).stdout)


@pytest.fixture
def cli(tmp_path: Path) -> Cli:
    return Cli(tmp_path)
