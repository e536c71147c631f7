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


class Collector:
    """The real chartroom-collector on a loopback port, with a self-signed certificate."""

    def __init__(self, tmp: Path):
        self.bin = TARGET / "collector" / "debug" / "chartroom-collector"
        if not self.bin.exists():
            pytest.fail(f"{self.bin} is missing: build crates/collector first (scripts/test.sh does)")
        self.dir = tmp / "collector"
        self.dir.mkdir()
        self.db = f"sqlite://{self.dir}/collector.db"
        import socket
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        subprocess.run([str(self.bin), "cert", "--out", str(self.dir)], check=True, capture_output=True)
        self.cert = self.dir / "collector.crt"
        self.url = f"https://localhost:{self.port}"
        self.proc = None
        self.start()

    def run(self, *args: str) -> str:
        out = subprocess.run([str(self.bin), "--db", self.db, *args], check=True, capture_output=True, text=True,
                             env={**os.environ, "CHARTROOM_COLLECTOR_LOG": "warn"})
        return out.stdout.strip()

    def start(self):
        import socket
        import time
        self.proc = subprocess.Popen(
            [str(self.bin), "--db", self.db, "serve", "--listen", f"127.0.0.1:{self.port}",
             "--cert", str(self.cert), "--key", str(self.dir / "collector.key")],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            env={**os.environ, "CHARTROOM_COLLECTOR_LOG": "warn"})
        deadline = time.time() + 20
        while time.time() < deadline:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.2).close()
                return
            except OSError:
                time.sleep(0.05)
        pytest.fail("the collector did not start")

    def stop(self):
        if self.proc:
            self.proc.kill()
            self.proc.wait()
            self.proc = None

    def audit(self, query: str) -> str:
        import ssl
        import urllib.request
        token = self.run("token", "--auditor")
        req = urllib.request.Request(f"{self.url}/v1/audit?{query}", headers={"Authorization": f"Bearer {token}"})
        ctx = ssl.create_default_context(cafile=str(self.cert))
        with urllib.request.urlopen(req, context=ctx, timeout=30) as r:
            return r.read().decode()


@pytest.fixture
def collector(tmp_path: Path):
    c = Collector(tmp_path)
    yield c
    c.stop()
