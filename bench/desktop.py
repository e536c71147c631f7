"""The desktop app's benchmark: the real release binary under Xvfb, driven over WebDriver.

Prints
  - cold start: process start to the first screen painted (the app's own clock, printed
    with CHARTROOM_TIMINGS=1), and spawn to painted as the operating system sees it;
  - unlock: the unlock command split into key derivation and the rest, and from the unlock's
    answer to the search screen painted;
  - a big chart in a 100,000-patient demo clinic: open to painted (Summary), and the Vitals
    and Notes sections to painted (performance.measure entries the UI records);
  - memory (RSS of the app and its web process) after unlock and after an hour-like
    scripted session of searches and chart reads.

Run with scripts/bench-desktop.sh (it builds, installs what is missing and starts Xvfb).
CHARTROOM_BENCH_PATIENTS sets the clinic size (100000), CHARTROOM_BENCH_ROUNDS the session
length (300 chart visits).
"""

import json
import os
import random
import re
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from selenium import webdriver
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.common.options import ArgOptions
from selenium.webdriver.support import expected_conditions as EC
from selenium.webdriver.support.ui import WebDriverWait

ROOT = Path(__file__).resolve().parent.parent
TARGET = Path(os.environ.get("CARGO_TARGET_DIR", ROOT / "target")) / "release"
APP = TARGET / "chartroom-desktop"
CLI = TARGET / "chartroom"
PATIENTS = int(os.environ.get("CHARTROOM_BENCH_PATIENTS", "100000"))
ROUNDS = int(os.environ.get("CHARTROOM_BENCH_ROUNDS", "300"))
ADMIN, ADMIN_PW = "bench.admin", "bench-admin-password"
DOC, DOC_PW = "bench.doc", "bench-physician-password"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def env_for(work: Path) -> dict:
    env = dict(os.environ)
    env.update(
        CHARTROOM_VAULT=str(work / "vault"),
        CHARTROOM_STATE_DIR=str(work / "state"),
        # The floor of the KDF policy (RFC 9106's second option); reported separately.
        CHARTROOM_KDF_TARGET_MS="1",
        WEBKIT_DISABLE_COMPOSITING_MODE="1",
        CHARTROOM_TIMINGS="1",
    )
    return env


def cli(env: dict, *args: str, password: str, new_password: str | None = None) -> dict:
    e = dict(env, CHARTROOM_PASSWORD=password)
    if new_password:
        e["CHARTROOM_NEW_PASSWORD"] = new_password
    out = subprocess.run([str(CLI), "--json", *args], env=e, check=True, capture_output=True, text=True)
    return json.loads(out.stdout) if out.stdout.strip() else {}


def rss_kib(pid: int) -> tuple[int, int]:
    """Resident memory (KiB) of the app process, and of its descendants (WebKit's web and
    network processes)."""
    def one(p: int) -> int:
        for line in Path(f"/proc/{p}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
        return 0

    own, children = one(pid), 0
    todo = [int(c) for c in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    while todo:
        p = todo.pop()
        try:
            children += one(p)
            todo.extend(int(c) for c in Path(f"/proc/{p}/task/{p}/children").read_text().split())
        except FileNotFoundError:
            pass
    return own, children


def mib(kib: tuple[int, int]) -> str:
    return f"app {kib[0] / 1024:6.1f} MiB + web {kib[1] / 1024:6.1f} MiB = {sum(kib) / 1024:6.1f} MiB"


def cold_start(env: dict, runs: int = 7) -> None:
    own, spawn = [], []
    for _ in range(runs):
        started = time.perf_counter()
        proc = subprocess.Popen([str(APP)], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        try:
            deadline = time.time() + 30
            for line in proc.stderr:
                m = re.search(r"first screen painted ([\d.]+) ms", line)
                if m:
                    spawn.append((time.perf_counter() - started) * 1000)
                    own.append(float(m.group(1)))
                    break
                if time.time() > deadline:
                    raise RuntimeError("the window never reported its first paint")
        finally:
            proc.terminate()
            proc.wait(timeout=10)
    print(f"cold start to the unlock screen painted ({runs} runs, release build)")
    print(f"  app clock (main() to painted)   median {statistics.median(own):7.1f} ms   max {max(own):7.1f} ms")
    print(f"  spawn to painted (incl. exec)   median {statistics.median(spawn):7.1f} ms   max {max(spawn):7.1f} ms")


def measures(d, name: str) -> list[float]:
    return d.execute_script("return performance.getEntriesByName(arguments[0]).map(e => e.duration)", name)


def main() -> None:
    if not APP.exists() or not CLI.exists():
        sys.exit(f"build first: cargo build --release -p chartroom-desktop -p chartroom-cli ({APP})")
    work = Path(tempfile.mkdtemp(prefix="chartroom-bench-"))
    env = env_for(work)
    try:
        print(f"== generating a {PATIENTS:,}-patient demo clinic …", flush=True)
        t = time.perf_counter()
        summary = cli(env, "--user", ADMIN, "demo", "--patients", str(PATIENTS), "--long-chart-every", "1000",
                      password=ADMIN_PW)
        print(f"   {time.perf_counter() - t:.0f} s; {summary.get('observations', '?'):,} observations")
        cli(env, "--user", ADMIN, "user", "add", DOC, "--role", "physician", password=ADMIN_PW, new_password=DOC_PW)
        long_id = summary["long_charts"][0]
        long_mrn = cli(env, "--user", DOC, "patient", "show", str(long_id), password=DOC_PW)["mrn"]
        hits = cli(env, "--user", DOC, "patient", "search", "an", password=DOC_PW)["patients"]
        names = [p["family"] for p in hits if not p["masked"] and len(p["family"]) >= 2]

        print()
        cold_start(env)

        driver_bin = shutil.which("tauri-driver") or str(Path.home() / ".cargo" / "bin" / "tauri-driver")
        port, native = free_port(), free_port()
        app_log = open(work / "app.log", "w")
        server = subprocess.Popen([driver_bin, "--port", str(port), "--native-port", str(native)], env=env,
                                  stdout=subprocess.DEVNULL, stderr=app_log)
        time.sleep(1)
        options = ArgOptions()
        options.set_capability("browserName", "wry")
        options.set_capability("tauri:options", {"application": str(APP)})
        d = webdriver.Remote(command_executor=f"http://127.0.0.1:{port}", options=options)
        try:
            wait = WebDriverWait(d, 60)
            wait.until(EC.visibility_of_element_located((By.ID, "unlock-user"))).send_keys(DOC)
            d.find_element(By.ID, "unlock-password").send_keys(DOC_PW)
            d.find_element(By.ID, "unlock-submit").click()
            wait.until(EC.visibility_of_element_located((By.ID, "search-input")))
            time.sleep(0.5)
            app_pid = int(subprocess.run(["pgrep", "-n", "-f", str(APP)], capture_output=True, text=True).stdout)
            rss_start = rss_kib(app_pid)
            to_search = measures(d, "unlock-to-search")
            app_log.flush()
            unlock_line = next((l for l in open(work / "app.log") if "unlock " in l), "").strip()
            print("\nunlock (KDF at the policy floor: Argon2id 64 MiB, t=3, p=4)")
            print(f"  {unlock_line.replace('chartroom-desktop: ', '')}")
            print(f"  unlock's answer to the search screen painted: {to_search[0]:.1f} ms")

            def open_by(text: str) -> None:
                box = d.find_element(By.ID, "search-input")
                box.clear()
                box.send_keys(text)
                wait.until(lambda _: d.find_elements(By.CSS_SELECTOR, "#search-results .hit"))
                box.send_keys(Keys.ENTER)
                wait.until(EC.visibility_of_element_located((By.ID, "chart-name")))

            def back() -> None:
                d.find_element(By.ID, "back-to-search").click()
                wait.until(EC.visibility_of_element_located((By.ID, "search-input")))

            def tab(name: str) -> None:
                d.find_element(By.ID, f"tab-{name}").click()
                time.sleep(0.05)

            opens, vitals, notes = [], [], []
            for _ in range(7):
                d.execute_script("performance.clearMeasures()")
                open_by(long_mrn)
                time.sleep(0.2)
                opens += measures(d, "chart-open")
                tab("vitals")
                wait.until(lambda _: d.find_elements(By.CSS_SELECTOR, "#vitals-plots canvas"))
                time.sleep(0.2)
                vitals += measures(d, "tab-vitals")
                tab("notes")
                time.sleep(0.2)
                notes += measures(d, "tab-notes")
                back()
            print(f"\na long chart in the {PATIENTS:,}-patient clinic (200 encounters, ~2,000 observations; 7 opens)")
            print(f"  open to painted (Summary)        median {statistics.median(opens):6.1f} ms   max {max(opens):6.1f} ms")
            print(f"  Vitals section (3 plots, table)  median {statistics.median(vitals):6.1f} ms   max {max(vitals):6.1f} ms")
            print(f"  Notes section (timeline)         median {statistics.median(notes):6.1f} ms   max {max(notes):6.1f} ms")

            rng = random.Random(7)
            t = time.perf_counter()
            print(f"\nmemory: an hour-like session of {ROUNDS} chart visits (search, open, a section, back)")
            print(f"  after unlock        {mib(rss_start)}")
            for i in range(1, ROUNDS + 1):
                open_by(rng.choice(names))
                tab(rng.choice(["vitals", "notes", "problems", "summary"]))
                back()
                if i % (ROUNDS // 3 or 1) == 0 or i == ROUNDS:
                    print(f"  after {i:4d} visits  {mib(rss_kib(app_pid))}", flush=True)
            print(f"  ({time.perf_counter() - t:.0f} s of scripted use)")
        finally:
            d.quit()
            server.terminate()
            server.wait(timeout=10)
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
