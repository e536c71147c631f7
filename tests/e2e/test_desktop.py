"""The real desktop app under Xvfb, driven over WebDriver (tauri-driver + WebKitWebDriver):
create a vault, lock, fail a wrong password, unlock. Screenshots of each step go to
tests/artifacts/e2e/."""

import os
import re
import shutil
import socket
import subprocess
import time
from pathlib import Path

import pytest
from selenium import webdriver
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.common.options import ArgOptions
from selenium.webdriver.support import expected_conditions as EC
from selenium.webdriver.support.ui import WebDriverWait

from conftest import ARTIFACTS, binary

SHOTS = ARTIFACTS / "e2e"
ADMIN = "admin"
ADMIN_PW = "correct horse battery"


def wait_for_port(port: int, timeout: float = 30) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline:
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.1)
    raise RuntimeError(f"nothing listening on {port}")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def app(tmp_path: Path):
    if not os.environ.get("DISPLAY"):
        pytest.fail("no DISPLAY: run under xvfb-run (the test script does)")
    driver_bin = shutil.which("tauri-driver") or str(Path.home() / ".cargo" / "bin" / "tauri-driver")
    port, native_port = free_port(), free_port()
    env = dict(os.environ)
    env.update(
        CHARTROOM_VAULT=str(tmp_path / "vault"),
        CHARTROOM_STATE_DIR=str(tmp_path / "state"),
        CHARTROOM_KDF_TARGET_MS="1",
        WEBKIT_DISABLE_COMPOSITING_MODE="1",
    )
    server = subprocess.Popen(
        [driver_bin, "--port", str(port), "--native-port", str(native_port)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_for_port(port)
        options = ArgOptions()
        options.set_capability("browserName", "wry")
        options.set_capability("tauri:options", {"application": str(binary("chartroom-desktop"))})
        driver = webdriver.Remote(command_executor=f"http://127.0.0.1:{port}", options=options)
        driver.set_script_timeout(30)
        try:
            yield driver
        finally:
            driver.quit()
    finally:
        server.terminate()
        server.wait(timeout=10)


def shot(driver, name: str) -> None:
    # WebKitWebDriver's own screenshot hangs on the second call under Xvfb, so the screen is
    # captured from the X display with ImageMagick's `import`, as a person would see it.
    del driver
    SHOTS.mkdir(parents=True, exist_ok=True)
    subprocess.run(["import", "-window", "root", str(SHOTS / f"{name}.png")], check=True, timeout=30)


def click(driver, el) -> None:
    el.click()


def visible(driver, css: str, timeout: float = 30):
    return WebDriverWait(driver, timeout).until(EC.visibility_of_element_located((By.CSS_SELECTOR, css)))


def test_create_lock_wrong_password_unlock(app):
    d = app
    visible(d, "#admin-name").send_keys(ADMIN)
    d.find_element(By.ID, "admin-password").send_keys(ADMIN_PW)
    d.find_element(By.ID, "admin-password-confirm").send_keys(ADMIN_PW)
    shot(d, "01-first-run")
    click(d, d.find_element(By.ID, "create-vault"))

    key_el = visible(d, "#recovery-key")
    key = key_el.text.strip()
    assert re.fullmatch(r"([0-9A-Z]{4}-){7}[0-9A-Z]{4}", key), key
    cont = d.find_element(By.ID, "recovery-continue")
    assert cont.get_property("disabled") is True, "continuing needs the written-down confirmation"
    shot(d, "02-recovery-key")
    click(d, d.find_element(By.ID, "recovery-confirm"))
    click(d, cont)

    assert visible(d, "#signed-in-user").text == ADMIN
    assert d.find_element(By.ID, "signed-in-role").text == "Administrator"
    assert key not in d.page_source, "the recovery key is gone once acknowledged"
    shot(d, "03-signed-in")

    click(d, d.find_element(By.ID, "lock-button"))
    visible(d, "#unlock-user")
    assert "Signed in as" not in d.page_source
    shot(d, "04-locked")

    d.find_element(By.ID, "unlock-user").send_keys(ADMIN)
    d.find_element(By.ID, "unlock-password").send_keys("not the password")
    click(d, d.find_element(By.ID, "unlock-submit"))
    err = visible(d, "#unlock-error")
    assert "password is wrong" in err.text, err.text
    assert d.find_element(By.ID, "unlock-password").get_attribute("value") == ""
    shot(d, "05-wrong-password")

    d.find_element(By.ID, "unlock-password").send_keys(ADMIN_PW)
    click(d, d.find_element(By.ID, "unlock-submit"))
    assert visible(d, "#signed-in-user").text == ADMIN
    shot(d, "06-unlocked")

    # The keyboard shortcut locks too.
    d.find_element(By.TAG_NAME, "body").send_keys(Keys.CONTROL, "l")
    visible(d, "#unlock-user")


@pytest.fixture
def idle_vault(cli):
    """A vault made with the CLI whose idle timeout is one minute, with an auditor."""
    cli.run("vault", "init", "--admin", ADMIN, password=ADMIN_PW)
    cli.run("--user", ADMIN, "settings", "set", "idle_timeout_minutes", "1", password=ADMIN_PW)
    cli.run("--user", ADMIN, "user", "add", "audit.kim", "--role", "auditor",
            password=ADMIN_PW, new_password="auditor-password")
    return cli


def test_an_idle_window_locks_itself_and_the_trail_says_so(idle_vault, app):
    d = app
    visible(d, "#unlock-user").send_keys(ADMIN)
    d.find_element(By.ID, "unlock-password").send_keys(ADMIN_PW)
    click(d, d.find_element(By.ID, "unlock-submit"))
    assert visible(d, "#signed-in-user").text == ADMIN
    # Hands off the keyboard: the backend locks after one minute, the window follows.
    notice = visible(d, "#unlock-notice", timeout=100)
    assert "locked itself after 1 minute" in notice.text, notice.text
    assert "Signed in as" not in d.page_source
    shot(d, "07-idle-locked")
    logoffs = idle_vault.json("--user", "audit.kim", "audit", "list", "--event", "session.idle_logoff",
                              password="auditor-password")["entries"]
    assert [e["actor"] for e in logoffs] == [ADMIN]
