"""The real desktop app under Xvfb, driven over WebDriver (tauri-driver + WebKitWebDriver):
first run, unlock, a clinician's day in a chart, what the front desk may not do even from
the webview's console, break-the-glass, the idle lock, and hostile text in a patient's name.
Vaults are prepared with the real `chartroom` CLI. Screenshots of each step go to
tests/artifacts/e2e/."""

import json
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
from selenium.webdriver.support.ui import Select, WebDriverWait

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
def app(tmp_path: Path, request):
    """The app on this test's vault folder; `@pytest.mark.app_args("--demo")` passes arguments."""
    marker = request.node.get_closest_marker("app_args")
    args = list(marker.args) if marker else []
    if not os.environ.get("DISPLAY"):
        pytest.fail("no DISPLAY: run under xvfb-run (the test script does)")
    driver_bin = shutil.which("tauri-driver") or str(Path.home() / ".cargo" / "bin" / "tauri-driver")
    env = dict(os.environ)
    env.update(
        CHARTROOM_VAULT=str(tmp_path / "vault"),
        CHARTROOM_DEMO_VAULT=str(tmp_path / "demo-vault"),
        CHARTROOM_STATE_DIR=str(tmp_path / "state"),
        CHARTROOM_KDF_TARGET_MS="1",
        WEBKIT_DISABLE_COMPOSITING_MODE="1",
        CHARTROOM_DEMO_PATIENTS="300",
        CHARTROOM_EXPORT_DIR=str(tmp_path / "exports"),
    )
    # Starting a WebDriver session now and then fails before the app is up (tauri-driver
    # closes the connection: a port taken between picking and binding it, or the previous
    # test's WebKitWebDriver not yet gone). That is the harness, not the app: a fresh driver
    # on fresh ports is tried, three times at most; a failing app fails every time.
    server = driver = None
    for attempt in range(3):
        port, native_port = free_port(), free_port()
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
            options.set_capability("tauri:options", {"application": str(binary("chartroom-desktop")), "args": args})
            driver = webdriver.Remote(command_executor=f"http://127.0.0.1:{port}", options=options)
            break
        except Exception:
            server.terminate()
            server.wait(timeout=10)
            if attempt == 2:
                raise
            time.sleep(2)
    driver.set_script_timeout(30)
    try:
        yield driver
    finally:
        try:
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
    # The window scrolls inside its content pane; bring the element into view as a person would.
    driver.execute_script("arguments[0].scrollIntoView({block: 'center'})", el)
    el.click()


def visible(driver, css: str, timeout: float = 30):
    return WebDriverWait(driver, timeout).until(EC.visibility_of_element_located((By.CSS_SELECTOR, css)))


def sign_in(d, user: str, password: str) -> None:
    visible(d, "#unlock-user").send_keys(user)
    d.find_element(By.ID, "unlock-password").send_keys(password)
    click(d, d.find_element(By.ID, "unlock-submit"))
    assert visible(d, "#signed-in-user").text == user


def lock(d) -> None:
    click(d, d.find_element(By.ID, "lock-button"))
    visible(d, "#unlock-user")


def search(d, text: str):
    box = visible(d, "#search-input")
    box.clear()
    box.send_keys(text)
    WebDriverWait(d, 20).until(lambda _: d.find_elements(By.CSS_SELECTOR, "#search-results .hit"))
    return d.find_elements(By.CSS_SELECTOR, "#search-results .hit")


def invoke(d, command: str, args: dict | None = None) -> dict:
    """Calls a Tauri command the way code in the webview's console could."""
    return d.execute_async_script(
        """const [cmd, args, done] = arguments;
        window.__TAURI_INTERNALS__.invoke(cmd, args)
          .then(value => done({ok: true, value}))
          .catch(error => done({ok: false, error}));""",
        command,
        args or {},
    )


def page_text(d) -> str:
    return d.find_element(By.TAG_NAME, "body").text


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

    lock(d)
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


DOC, DOC_PW = "dr.lee", "physician-password"
DESK, DESK_PW = "desk.ana", "front-desk-password"
NURSE, NURSE_PW = "nurse.kim", "nurse-password-1"
AUDITOR, AUDITOR_PW = "audit.kim", "auditor-password"


@pytest.fixture
def clinic(cli):
    """A vault made with the CLI: an admin, a physician, a nurse, front desk and an auditor,
    one ordinary patient and one restricted patient on the physician's care team."""
    cli.recovery_key = cli.json("vault", "init", "--admin", ADMIN, password=ADMIN_PW)["recovery_key"]
    for name, role, pw in [(DOC, "physician", DOC_PW), (DESK, "front_desk", DESK_PW),
                           (NURSE, "nurse", NURSE_PW), (AUDITOR, "auditor", AUDITOR_PW)]:
        cli.run("--user", ADMIN, "user", "add", name, "--role", role, password=ADMIN_PW, new_password=pw)
    okafor = cli.json("--user", DOC, "patient", "add", "--family", "Okafor", "--given", "Chidi",
                      "--birth-date", "1961-04-23", "--sex", "male", password=DOC_PW)
    vip = cli.json("--user", DOC, "patient", "add", "--family", "Vanderbilt", "--given", "Cora",
                   "--birth-date", "1975-09-02", "--sex", "female", "--restricted", password=DOC_PW)
    cli.patients = {"okafor": okafor, "vip": vip}
    return cli


def test_a_physicians_day_search_chart_vitals_note_sign_addendum(clinic, app):
    d = app
    sign_in(d, DOC, DOC_PW)
    hits = search(d, "okaf")
    assert "Okafor, Chidi" in hits[0].text
    assert "23 Apr 1961" in hits[0].text, "birth dates read 23 Apr 1961, never 04/23/1961"
    assert "MRN" in hits[0].text
    shot(d, "10-search")
    d.find_element(By.ID, "search-input").send_keys(Keys.ENTER)  # keyboard only

    assert visible(d, "#chart-name").text == "Okafor, Chidi"
    assert "Male" in d.find_element(By.ID, "chart-sex").text
    banner = d.find_element(By.ID, "allergy-banner")
    assert "Allergies unknown" in banner.text, "an allergy list never asked about says unknown"
    shot(d, "11-chart")

    # Vitals: a normal set and a high one; both land in the table and the plot.
    click(d, d.find_element(By.ID, "tab-vitals"))
    assert visible(d, "#vitals-empty")
    for values in [{"v-systolic": "122", "v-diastolic": "78", "v-heart-rate": "64", "v-weight": "81.5"},
                   {"v-systolic": "168", "v-diastolic": "96", "v-heart-rate": "88", "v-temperature": "37,1"}]:
        click(d, visible(d, "#record-vitals"))
        for field, value in values.items():
            visible(d, f"#{field}").send_keys(value)
        click(d, d.find_element(By.ID, "vitals-save"))
        visible(d, "#vitals-saved")
        time.sleep(1.1)  # a second set, a second apart, is a second point in time
    table = visible(d, "#vitals-table")
    rows = table.find_elements(By.CSS_SELECTOR, "tbody tr")
    assert len(rows) == 2, table.text
    assert "168" in rows[0].text and "H" in rows[0].text, rows[0].text
    assert rows[0].find_elements(By.CSS_SELECTOR, "td.abnormal"), "the high pressure is marked"
    assert "37.1" in rows[0].text
    plots = d.find_elements(By.CSS_SELECTOR, "#vitals-plots .uplot canvas")
    assert len(plots) >= 2, "blood pressure and heart rate are plotted"
    legend = d.find_element(By.ID, "vitals-plots").text
    assert "Systolic (mmHg)" in legend and "abnormal" in legend
    shot(d, "12-vitals-plot")

    # A note: draft, sign, then an addendum, itself signed.
    click(d, d.find_element(By.ID, "tab-notes"))
    click(d, visible(d, "#new-note"))
    visible(d, "#note-text").send_keys("Reviewed home blood pressure readings; raised today.")
    click(d, d.find_element(By.ID, "note-submit"))
    draft = visible(d, ".note[data-status='draft']")
    note_id = draft.get_attribute("id").split("-")[1]
    shot(d, "13-note-draft")
    click(d, d.find_element(By.ID, f"sign-{note_id}"))
    signed = visible(d, f"#note-{note_id}[data-status='signed']")
    assert f"Signed by {DOC}" in signed.text
    assert not d.find_elements(By.ID, f"edit-{note_id}"), "a signed note cannot be edited"
    click(d, d.find_element(By.ID, f"addendum-{note_id}"))
    visible(d, f"#add-{note_id}-text").send_keys("Addendum: amlodipine started after discussion.")
    click(d, d.find_element(By.ID, f"add-{note_id}-submit"))
    addendum = visible(d, f"#note-{note_id} .addendum")
    assert "Addendum" in addendum.text and "amlodipine" in addendum.text
    add_id = addendum.get_attribute("id").split("-")[1]
    click(d, d.find_element(By.ID, f"sign-{add_id}"))
    WebDriverWait(d, 10).until(lambda _: d.find_element(By.ID, f"note-{add_id}").get_attribute("data-status") == "signed")
    assert "Reviewed home blood pressure" in d.find_element(By.ID, f"note-{note_id}").text, "the signed note is unchanged"
    shot(d, "14-note-signed-addendum")

    # The CLI (another door into the same vault) sees the same record.
    notes = clinic.json("--user", DOC, "note", "list", "--patient", str(clinic.patients["okafor"]["id"]),
                        password=DOC_PW)
    statuses = sorted((n["kind"], n["status"]) for n in notes["notes"])
    assert statuses == [("addendum", "signed"), ("note", "signed")], statuses


def test_front_desk_sees_no_clinical_data_and_the_console_is_refused(clinic, app):
    d = app
    okafor = clinic.patients["okafor"]["id"]
    clinic.run("--user", DOC, "vitals", "add", "--patient", str(okafor), "--bp", "150/95", password=DOC_PW)
    sign_in(d, DESK, DESK_PW)
    search(d, "okafor")
    d.find_element(By.ID, "search-input").send_keys(Keys.ENTER)
    assert visible(d, "#chart-name").text == "Okafor, Chidi"
    tabs = [t.text for t in d.find_elements(By.CSS_SELECTOR, "[role=tab]")]
    assert tabs == ["Demographics"], tabs
    assert not d.find_elements(By.ID, "allergy-banner")
    assert "150" not in page_text(d)
    shot(d, "20-front-desk-chart")

    # What the webview is sent for this role holds no clinical section at all.
    chart = invoke(d, "open_chart", {"patient_id": okafor})
    assert chart["ok"], chart
    for section in ["vitals", "notes", "problems", "allergies", "medications", "immunizations", "encounters",
                    "allergy_status"]:
        assert section not in chart["value"], section

    # Calling clinical commands from the console: Rust refuses, and the refusal is audited.
    for command, args in [
        ("record_vitals", {"patient_id": okafor, "vitals": {"systolic": "120", "diastolic": "80", "heart_rate": None,
                           "respiratory_rate": None, "temperature": None, "spo2": None, "weight": None,
                           "height": None, "effective": None, "encounter_id": None}}),
        ("draft_note", {"patient_id": okafor, "encounter_id": None, "note": {"format": "free", "text": "x"}}),
        ("audit_entries", {"query": {}}),
        ("list_users", {}),
    ]:
        result = invoke(d, command, args)
        assert not result["ok"], (command, result)
        assert result["error"]["code"] == "forbidden", (command, result)
        assert "Front desk" in result["error"]["message"], result
    # Commands the app does not have do not exist for the webview either.
    result = invoke(d, "plugin:fs|read_text_file", {"path": "/etc/passwd"})
    assert not result["ok"], result
    shot(d, "21-front-desk-refused")

    denied = clinic.json("--user", AUDITOR, "audit", "list", "--by", DESK, "--outcome", "denied",
                         password=AUDITOR_PW)["entries"]
    assert len(denied) >= 4, denied
    assert {e["event"] for e in denied} >= {"vitals.create", "note.create"}, [e["event"] for e in denied]
    vitals_after = clinic.json("--user", DOC, "vitals", "list", "--patient", str(okafor),
                               password=DOC_PW)["observations"]
    assert sorted(o["value"] for o in vitals_after) == [95.0, 150.0], "the refused vitals were not written"
    notes_after = clinic.json("--user", DOC, "note", "list", "--patient", str(okafor), password=DOC_PW)["notes"]
    assert notes_after == []


def test_restricted_chart_break_the_glass_and_the_auditor_sees_it(clinic, app):
    d = app
    sign_in(d, NURSE, NURSE_PW)
    # Her name finds nothing for someone who may not open her chart: the search does not
    # confirm that she is a patient here. Her exact MRN finds her, masked.
    box = visible(d, "#search-input")
    box.clear()
    box.send_keys("vanderbilt")
    empty = visible(d, "#search-empty")
    assert "exact MRN" in empty.text, empty.text
    assert not d.find_elements(By.CSS_SELECTOR, "#search-results .hit")
    shot(d, "29-restricted-name-finds-nothing")
    hits = search(d, clinic.patients["vip"]["mrn"])
    assert hits[0].text.startswith("Restricted patient"), hits[0].text
    assert "Vanderbilt" not in hits[0].text, "a restricted name is not shown to others"
    click(d, hits[0])
    dialog = visible(d, "#break-glass-dialog")
    assert "recorded" in dialog.text and "reported" in dialog.text
    assert "lasts 60 minutes" in dialog.text, dialog.text
    click(d, d.find_element(By.ID, "break-glass-confirm"))
    assert "reason" in visible(d, "#break-glass-error").text.lower()
    shot(d, "30-break-glass-dialog")
    d.find_element(By.ID, "break-glass-reason").send_keys("Unconscious in the waiting room; need allergies now")
    click(d, d.find_element(By.ID, "break-glass-confirm"))
    assert visible(d, "#chart-name").text == "Vanderbilt, Cora"
    banner = d.find_element(By.ID, "break-glass-banner").text
    assert "Unconscious in the waiting room" in banner
    assert re.search(r"\d+ minutes left", banner), banner
    shot(d, "31-break-glass-chart")
    lock(d)

    sign_in(d, AUDITOR, AUDITOR_PW)
    click(d, visible(d, "#nav-alerts"))
    alert = visible(d, "#alert-list [data-rule='break_glass']")
    assert NURSE in alert.text
    shot(d, "32-auditor-alert")
    click(d, alert.find_element(By.CSS_SELECTOR, "button"))
    visible(d, "#ack-note").send_keys("Checked with the ward: genuine emergency.")
    click(d, d.find_element(By.ID, "ack-submit"))
    visible(d, "#alerts-empty")
    acked = clinic.json("--user", AUDITOR, "alerts", "list", "--all", password=AUDITOR_PW)["alerts"]
    assert [a["note"] for a in acked if a["rule"] == "break_glass"] == ["Checked with the ward: genuine emergency."]
    click(d, d.find_element(By.ID, "nav-audit"))
    WebDriverWait(d, 20).until(lambda _: d.find_elements(By.CSS_SELECTOR, "#audit-table tr[data-event='break_glass']"))
    row = d.find_element(By.CSS_SELECTOR, "#audit-table tr[data-event='break_glass']")
    assert "emergency treatment (break the glass)" in row.text and NURSE in row.text
    click(d, d.find_element(By.ID, "verify-audit"))
    result = visible(d, "#verify-result")
    assert result.text.startswith("Intact"), result.text
    shot(d, "33-audit-view")


def test_hostile_text_in_a_name_is_shown_as_text_and_runs_nothing(clinic, app):
    d = app
    hostile = "<img src=x onerror=alert(1)>"
    clinic.run("--user", DOC, "patient", "add", "--family", hostile, "--given", "Script",
               "--birth-date", "1990-01-01", password=DOC_PW)
    sign_in(d, DOC, DOC_PW)
    d.execute_script("window.__pwned = false; window.alert = () => { window.__pwned = true; };")
    hits = search(d, "script")
    assert hostile in hits[0].text, hits[0].text
    d.find_element(By.ID, "search-input").send_keys(Keys.ENTER)
    name = visible(d, "#chart-name")
    assert name.text == f"{hostile}, Script"
    assert name.get_property("textContent") == f"{hostile}, Script"
    assert not d.find_elements(By.CSS_SELECTOR, "#content img"), "the name did not become an element"
    time.sleep(0.5)
    assert d.execute_script("return window.__pwned") is False
    shot(d, "40-hostile-name")


def test_an_idle_window_locks_itself_and_leaves_no_patient_behind(clinic, app):
    d = app
    clinic.run("--user", ADMIN, "settings", "set", "idle_timeout_minutes", "1", password=ADMIN_PW)
    sign_in(d, DOC, DOC_PW)
    search(d, "okafor")
    d.find_element(By.ID, "search-input").send_keys(Keys.ENTER)
    assert visible(d, "#chart-name").text == "Okafor, Chidi"
    # Hands off the keyboard: the backend locks after one minute, the window follows.
    notice = visible(d, "#unlock-notice", timeout=100)
    assert "locked itself after 1 minute" in notice.text, notice.text
    source = d.page_source
    assert "Okafor" not in source and "OKAFOR" not in source, "no patient name is left in the DOM"
    assert "Signed in as" not in source
    shot(d, "07-idle-locked")
    # Nothing of the chart was kept in web storage.
    assert d.execute_script("return [localStorage.length, sessionStorage.length]") == [0, 0]
    logoffs = clinic.json("--user", AUDITOR, "audit", "list", "--event", "session.idle_logoff",
                          password=AUDITOR_PW)["entries"]
    assert [e["actor"] for e in logoffs] == [DOC]


def test_the_admin_adds_resets_and_disables_a_user_and_changes_settings(clinic, app):
    d = app
    sign_in(d, ADMIN, ADMIN_PW)
    nav = [b.text for b in d.find_elements(By.CSS_SELECTOR, "nav .navlink")]
    assert "Users" in nav and "Settings" in nav and "Register patient" not in nav, nav
    click(d, d.find_element(By.ID, "nav-users"))
    visible(d, "#users-table")
    d.find_element(By.ID, "new-user-name").send_keys("nurse.ola")
    Select(d.find_element(By.ID, "new-user-role")).select_by_visible_text("Nurse")
    d.find_element(By.ID, "new-user-password").send_keys("first-password-1")
    click(d, d.find_element(By.ID, "add-user-submit"))
    assert "Added nurse.ola" in visible(d, "#users-done").text
    # Her key for clinical content waits for a clinician's sign-in; the table says so.
    table = d.find_element(By.ID, "users-table").text
    assert "waiting for: Clinical content" in table, table
    assert "Database, Clinical content" in table, "the clinicians already hold it"
    click(d, visible(d, "#reset-nurse\\.ola"))
    visible(d, "#reset-password").send_keys("second-password-2")
    click(d, d.find_element(By.ID, "reset-submit"))
    assert "new password" in visible(d, "#users-done").text
    shot(d, "50-admin-users")
    clinic.run("--user", "nurse.ola", "patient", "search", "okafor", password="second-password-2")
    assert clinic.run("--user", "nurse.ola", "patient", "search", "okafor", password="first-password-1",
                      check=False).returncode != 0, "the old password no longer opens the vault"
    # A role changes only on an explicit Save and a confirmation that says what will happen;
    # an arrow key in the drop-down changes nothing.
    role = d.find_element(By.ID, "role-nurse\\.ola")
    role.send_keys(Keys.ARROW_DOWN)
    Select(role).select_by_visible_text("Front desk")
    time.sleep(0.5)
    users = {u["name"]: u for u in clinic.json("--user", ADMIN, "user", "list", password=ADMIN_PW)["users"]}
    assert users["nurse.ola"]["role"] == "nurse", "nothing saved by touching the drop-down"
    click(d, visible(d, "#save-role-nurse\\.ola"))
    confirm = visible(d, "#confirm-dialog")
    assert "lose access to clinical content" in confirm.text, confirm.text
    shot(d, "52-admin-role-confirm")
    click(d, d.find_element(By.ID, "confirm-no"))
    users = {u["name"]: u for u in clinic.json("--user", ADMIN, "user", "list", password=ADMIN_PW)["users"]}
    assert users["nurse.ola"]["role"] == "nurse", "cancelled"
    click(d, visible(d, "#save-role-nurse\\.ola"))
    click(d, visible(d, "#confirm-yes"))
    WebDriverWait(d, 10).until(lambda _: "nurse.ola is now Front desk" in d.find_element(By.ID, "users-done").text)
    users = {u["name"]: u for u in clinic.json("--user", ADMIN, "user", "list", password=ADMIN_PW)["users"]}
    assert users["nurse.ola"]["role"] == "front_desk"
    click(d, d.find_element(By.ID, "disable-nurse\\.ola"))
    assert "stops opening the vault" in visible(d, "#confirm-dialog").text
    click(d, d.find_element(By.ID, "confirm-yes"))
    WebDriverWait(d, 10).until(lambda _: "nurse.ola is disabled" in d.find_element(By.ID, "users-done").text)
    users = {u["name"]: u for u in clinic.json("--user", ADMIN, "user", "list", password=ADMIN_PW)["users"]}
    assert users["nurse.ola"]["disabled"] is True and users["nurse.ola"]["role"] == "front_desk"
    # Enabled again, with a new password.
    click(d, visible(d, "#enable-nurse\\.ola"))
    visible(d, "#enable-password").send_keys("third-password-3")
    click(d, d.find_element(By.ID, "enable-submit"))
    WebDriverWait(d, 10).until(lambda _: "enabled again" in d.find_element(By.ID, "users-done").text)
    clinic.run("--user", "nurse.ola", "patient", "search", "okafor", password="third-password-3")

    click(d, d.find_element(By.ID, "nav-settings"))
    idle = visible(d, "#set-idle_timeout_minutes")
    assert idle.get_attribute("value") == "10"
    idle.clear()
    idle.send_keys("15")
    hours = d.find_element(By.ID, "set-clinic_hours")
    hours.clear()
    hours.send_keys("8 till late")
    click(d, d.find_element(By.ID, "settings-save"))
    err = visible(d, "#set-clinic_hours-error")
    assert err.text, "a bad value is explained next to its field"
    hours.clear()
    hours.send_keys("08:00-18:00")
    click(d, d.find_element(By.ID, "settings-save"))
    assert "Saved" in visible(d, "#settings-saved").text
    shot(d, "51-admin-settings")
    settings = clinic.json("--user", ADMIN, "settings", "show", password=ADMIN_PW)["settings"]
    assert settings["idle_timeout_minutes"] == 15 and settings["clinic_hours"] == "08:00-18:00", settings


def test_front_desk_registers_a_patient(clinic, app):
    d = app
    sign_in(d, DESK, DESK_PW)
    click(d, d.find_element(By.ID, "nav-register"))
    visible(d, "#reg-family").send_keys("Nakamura")
    d.find_element(By.ID, "reg-given").send_keys("Emi")
    d.find_element(By.ID, "reg-birth").send_keys("02/03/2001")
    Select(d.find_element(By.ID, "reg-sex")).select_by_visible_text("Female")
    click(d, d.find_element(By.ID, "register-submit"))
    err = visible(d, "#register-error")
    assert "birth date" in err.text.lower(), err.text
    birth = d.find_element(By.ID, "reg-birth")
    birth.clear()
    birth.send_keys("2001-03-02")
    # The USCDI answers are asked here too (issue 17).
    for field, value in [("reg-race", "2039-6"), ("reg-language", "ja")]:
        box = visible(d, f"#{field}")
        d.execute_script("arguments[0].scrollIntoView({block: 'center'})", box)
        Select(box).select_by_value(value)
    click(d, d.find_element(By.ID, "register-submit"))
    assert visible(d, "#chart-name").text == "Nakamura, Emi"
    assert "born 02 Mar 2001" in d.find_element(By.CSS_SELECTOR, ".demo-line").text
    found = clinic.json("--user", DOC, "patient", "search", "nakamura", password=DOC_PW)
    assert len(found["patients"]) == 1, found
    shown = clinic.json("--user", DOC, "patient", "show", str(found["patients"][0]["id"]), password=DOC_PW)
    assert (shown["race"], shown["language"]) == (["2039-6"], "ja"), shown
    assert "ethnicity" not in shown, "left unasked"

    # The same person again: the possible match is shown before anything is saved, and a
    # second chart needs an explicit "this is a different person".
    click(d, d.find_element(By.ID, "nav-register"))
    visible(d, "#reg-family").send_keys("Nakamura")
    d.find_element(By.ID, "reg-given").send_keys("Emi")
    d.find_element(By.ID, "reg-birth").send_keys("2001-03-02")
    click(d, d.find_element(By.ID, "register-submit"))
    dup = visible(d, "#register-duplicates")
    assert "Nakamura, Emi" in dup.text and "born 02 Mar 2001" in dup.text and "MRN" in dup.text, dup.text
    shot(d, "45-possible-duplicate")
    found = clinic.json("--user", DOC, "patient", "search", "nakamura", password=DOC_PW)
    assert len(found["patients"]) == 1, "nothing was saved"
    click(d, d.find_element(By.ID, "reg-new-person"))
    click(d, d.find_element(By.ID, "register-submit"))
    assert visible(d, "#chart-name").text == "Nakamura, Emi"
    found = clinic.json("--user", DOC, "patient", "search", "nakamura", password=DOC_PW)
    assert len(found["patients"]) == 2, found


def test_repeated_wrong_passwords_pause_sign_in_with_a_clear_message(clinic, app):
    d = app
    visible(d, "#unlock-user").send_keys(DESK)
    messages = []
    for _ in range(6):
        d.find_element(By.ID, "unlock-password").send_keys("wrong password")
        click(d, d.find_element(By.ID, "unlock-submit"))
        WebDriverWait(d, 20).until(
            lambda _: d.find_elements(By.ID, "unlock-error") and d.find_element(By.ID, "unlock-submit").is_enabled())
        messages.append(d.find_element(By.ID, "unlock-error").text)
    assert "password is wrong" in messages[0], messages
    assert "paused" in messages[-1] and "try again in" in messages[-1], messages
    shot(d, "08-sign-in-paused")


@pytest.mark.app_args("--demo")
def test_demo_mode_opens_a_synthetic_clinic_with_full_charts(app, cli):
    """A newcomer's first look: --demo builds a synthetic clinic and signs in as its physician.
    These screenshots are the README's (docs/screenshots, cropped to the window)."""
    d = app
    card = visible(d, "#demo-title")
    assert "Demo clinic" in card.text
    click(d, d.find_element(By.ID, "open-demo"))
    assert visible(d, "#signed-in-user", timeout=120).text == "dr.demo"
    # The fictional clinic, with its published passwords, is built in its own folder, never
    # where CHARTROOM_VAULT says the clinic's real vault is.
    assert (cli.vault.parent / "demo-vault" / "keyslots.json").exists()
    assert not cli.vault.exists()
    hits = search(d, "an")
    assert len(hits) >= 5
    time.sleep(0.3)
    shot(d, "60-demo-search")

    # Patient 1 of a demo clinic has a long history (200 encounters, ~2,000 observations).
    search(d, "0000018")
    d.find_element(By.ID, "search-input").send_keys(Keys.ENTER)
    visible(d, "#chart-name")
    assert "allerg" in d.find_element(By.ID, "allergy-banner").text.lower()
    click(d, d.find_element(By.ID, "tab-vitals"))
    WebDriverWait(d, 20).until(lambda _: len(d.find_elements(By.CSS_SELECTOR, "#vitals-plots canvas")) >= 3)
    rows = d.find_elements(By.CSS_SELECTOR, "#vitals-table tbody tr")
    assert len(rows) == 200, "the table shows the newest 200 sets; the plots all of them"
    d.execute_script("document.getElementById('content').scrollTop = 0")
    time.sleep(0.3)
    shot(d, "61-demo-chart-vitals")
    click(d, d.find_element(By.ID, "tab-notes"))
    visible(d, "#notes-timeline .note")
    shot(d, "62-demo-chart-notes")
    lock(d)

    demo = visible(d, "#demo-accounts").text
    assert "audit.demo" in demo and "chartroom-demo" in demo, demo
    sign_in(d, "audit.demo", "chartroom-demo")
    WebDriverWait(d, 20).until(lambda _: d.find_elements(By.CSS_SELECTOR, "#audit-table tbody tr"))
    click(d, d.find_element(By.ID, "verify-audit"))
    assert visible(d, "#verify-result").text.startswith("Intact")
    time.sleep(0.3)
    shot(d, "63-demo-audit")


def test_a_physician_exports_a_chart_and_the_admin_the_whole_clinic(clinic, app, tmp_path):
    d = app
    key = tmp_path / "receiver.txt"
    subprocess.run(["age-keygen", "-o", str(key)], check=True, capture_output=True)
    recipient = subprocess.run(["age-keygen", "-y", str(key)], check=True, capture_output=True, text=True).stdout.strip()

    sign_in(d, DOC, DOC_PW)
    search(d, "okaf")
    d.find_element(By.ID, "search-input").send_keys(Keys.ENTER)
    visible(d, "#chart-name")
    click(d, d.find_element(By.ID, "export-chart"))
    visible(d, "#export-dialog")
    # Nothing leaves without a purpose: the message sits next to the field.
    click(d, d.find_element(By.ID, "export-confirm"))
    assert "accounting of disclosures" in visible(d, "#export-purpose-error").text
    d.find_element(By.ID, "export-recipient").send_keys("Dr. Osei, Harbour Cardiology")
    d.find_element(By.ID, "export-purpose").send_keys("Referral for a cardiology opinion")
    click(d, d.find_element(By.CSS_SELECTOR, "#export-method-more summary"))
    click(d, d.find_element(By.ID, "export-method-key"))
    d.find_element(By.ID, "export-keys").send_keys(recipient)
    shot(d, "80-export-dialog")
    click(d, d.find_element(By.ID, "export-confirm"))
    done = visible(d, "#export-done")
    assert "1 patient" in done.text and "disclosure" in done.text
    shot(d, "81-export-done")
    path = Path(d.find_element(By.ID, "export-path").text)
    assert path.parent == tmp_path / "exports"
    assert "Okafor" not in path.name, "file names never carry patient details"
    plain = subprocess.run(["age", "-d", "-i", str(key), str(path)], check=True, capture_output=True).stdout
    bundle = json.loads(plain)
    assert bundle["resourceType"] == "Bundle"
    assert bundle["entry"][0]["resource"]["name"][0]["family"] == "Okafor"
    click(d, d.find_element(By.ID, "export-close"))

    # The chart's accounting of disclosures lists it.
    click(d, visible(d, "#tab-disclosures"))
    table = visible(d, "#disclosures-table")
    assert "Referral for a cardiology opinion" in table.text
    assert "Dr. Osei, Harbour Cardiology" in table.text
    shot(d, "82-disclosures")
    lock(d)

    # The admin exports the whole clinic with a passphrase; the restricted chart stays home.
    sign_in(d, ADMIN, ADMIN_PW)
    click(d, visible(d, "#nav-export"))
    click(d, visible(d, "#export-clinic-start"))
    visible(d, "#export-dialog")
    d.find_element(By.ID, "export-purpose").send_keys("Moving to the new practice system")
    click(d, d.find_element(By.ID, "export-method-passphrase"))
    visible(d, "#export-passphrase").send_keys("tulip anchor velvet ninety")
    d.find_element(By.ID, "export-again").send_keys("tulip anchor velvet ninetY")
    click(d, d.find_element(By.ID, "export-confirm"))
    assert "do not match" in visible(d, "#export-again-error").text
    d.find_element(By.ID, "export-again").send_keys(Keys.BACKSPACE + "y")
    click(d, d.find_element(By.ID, "export-confirm"))
    done = visible(d, "#export-done")
    assert "1 patient" in done.text
    assert "1 restricted patient you may not see was left out" in done.text
    shot(d, "83-export-clinic")
    assert len(list((tmp_path / "exports").glob("*.age"))) == 2
    # The passphrase does not stay in the window.
    assert "tulip" not in d.page_source


@pytest.fixture
def synced(clinic, collector):
    """The clinic's computer enrolled with a running collector."""
    clinic.run("--user", ADMIN, "sync", "enroll", collector.url, collector.run("token"), "--cert",
               str(collector.cert), password=ADMIN_PW)
    clinic.collector = collector
    return clinic


def test_the_status_bar_shows_the_audit_sync_state(synced, app):
    d = app
    sign_in(d, DOC, DOC_PW)
    state = visible(d, "#sync-state")
    # The background worker pushes what the sign-in wrote; the status bar says so.
    WebDriverWait(d, 40).until(lambda _: "up to date" in d.find_element(By.ID, "sync-state").text)
    shot(d, "90-sync-up-to-date")
    # The collector goes away: charting goes on, the bar says what waits and why.
    synced.collector.stop()
    search(d, "okaf")
    WebDriverWait(d, 60).until(lambda _: "waiting" in d.find_element(By.ID, "sync-state").text)
    assert "collector unreachable" in state.text
    assert "cannot be reached" in state.get_attribute("title")
    shot(d, "91-sync-waiting")
    synced.collector.start()
    WebDriverWait(d, 90).until(lambda _: "up to date" in d.find_element(By.ID, "sync-state").text)


def test_the_admin_enrolls_this_computer_with_the_collector(clinic, collector, app):
    d = app
    sign_in(d, ADMIN, ADMIN_PW)
    click(d, visible(d, "#nav-settings"))
    assert "not set up" in visible(d, "#sync-settings-state").text
    visible(d, "#sync-url").send_keys(collector.url)
    d.find_element(By.ID, "sync-token").send_keys("not-a-real-token")
    # Pasted, as an admin does (typing base64 through WebDriver is not what people do).
    d.execute_script(
        "const t = document.getElementById('sync-cert'); t.value = arguments[0];"
        "t.dispatchEvent(new Event('input', {bubbles: true}));",
        collector.cert.read_text())
    click(d, d.find_element(By.ID, "sync-enroll"))
    assert "Enrollment failed" in visible(d, "#sync-error").text
    token = d.find_element(By.ID, "sync-token")
    token.clear()
    token.send_keys(collector.run("token"))
    click(d, d.find_element(By.ID, "sync-enroll"))
    assert "enrolled" in visible(d, "#sync-done").text
    assert "up to date" in d.find_element(By.ID, "sync-settings-state").text
    shot(d, "92-sync-enrolled")
    assert "intact" in collector.run("verify")
    WebDriverWait(d, 30).until(lambda _: "up to date" in d.find_element(By.ID, "sync-state").text)


def test_the_front_desk_books_and_checks_in_and_the_physician_starts_the_visit(clinic, app):
    """Front desk books a patient into a free slot and checks them in; the physician lands on
    "My day", sees them waiting, starts the visit and lands in the chart with the encounter."""
    cli = clinic
    cli.run("--user", ADMIN, "settings", "set", "clinic_time_zone", "Europe/Berlin", password=ADMIN_PW)
    # Working all day, every day, so a free slot is today whenever the suite runs.
    cli.run("--user", ADMIN, "schedule", "set", DOC, "--day", "mon-sun", "--hours", "00:00-23:55",
            password=ADMIN_PW)
    cli.run("--user", ADMIN, "appointment-type", "add", "Follow-up", "--minutes", "15", password=ADMIN_PW)

    d = app
    sign_in(d, DESK, DESK_PW)
    click(d, visible(d, "#nav-book"))
    visible(d, "#day-view")
    click(d, visible(d, "#book-new"))
    visible(d, "#book-patient").send_keys("okaf")
    hit = WebDriverWait(d, 20).until(lambda _: d.find_elements(By.CSS_SELECTOR, "#book-hits .hit button"))[0]
    assert "Okafor, Chidi" in hit.text
    click(d, hit)
    Select(visible(d, "#book-type")).select_by_value("Follow-up")
    slot = WebDriverWait(d, 20).until(lambda _: d.find_elements(By.CSS_SELECTOR, "#book-slots .slot"))[0]
    start = slot.get_attribute("data-start")
    click(d, slot)
    visible(d, "#book-reason").send_keys("Blood pressure review")
    click(d, d.find_element(By.ID, "book-submit"))
    card = WebDriverWait(d, 20).until(
        lambda _: [c for c in d.find_elements(By.CSS_SELECTOR, "#day-view .appt") if "Okafor, Chidi" in c.text])[0]
    assert start[11:16] in card.text, (start, card.text)
    assert "Booked" in card.text and "Blood pressure review" in card.text
    appt_id = card.get_attribute("id").split("-")[1]

    # The same slot again is refused in words; nothing is booked twice.
    booked = invoke(d, "book_appointment", {"patient_id": cli.patients["okafor"]["id"],
                                            "booking": {"clinician": DOC, "at": start, "overbook": False}})
    assert not booked["ok"] and booked["error"]["code"] == "conflict", booked
    # Starting is a clinician's, not the front desk's.
    assert invoke(d, "start_appointment", {"appointment_id": int(appt_id)})["error"]["code"] == "forbidden"

    click(d, visible(d, f"#arrive-{appt_id}"))
    WebDriverWait(d, 20).until(lambda _: "Arrived" in d.find_element(By.ID, f"appt-{appt_id}").text)
    waiting = visible(d, "#waiting-room")
    assert "Okafor, Chidi" in waiting.text and "waiting 0 min" in waiting.text, waiting.text
    shot(d, "40-appointments-day")
    click(d, d.find_element(By.ID, "view-week"))
    visible(d, "#week-view")
    shot(d, "41-appointments-week")
    lock(d)

    sign_in(d, DOC, DOC_PW)
    row = visible(d, f"#myday-{appt_id}")
    assert visible(d, "#myday-title").text == "My day", "a clinician lands on My day"
    assert "Okafor, Chidi" in row.text and "Arrived" in row.text and "waiting" in row.text, row.text
    assert visible(d, "#search-input"), "and can still find any patient at once"
    shot(d, "42-my-day")
    click(d, d.find_element(By.ID, f"start-{appt_id}"))
    assert visible(d, "#chart-name").text == "Okafor, Chidi"
    assert "Encounter opened" in visible(d, "#chart-notice").text
    listed = invoke(d, "list_appointments", {"query": {"clinician": DOC, "active_only": False}})
    mine = [a for a in listed["value"] if a["id"] == int(appt_id)][0]
    assert mine["status"] == "seen" and mine["encounter_id"], mine
    panel = visible(d, "#chart-panel")
    assert "Blood pressure review" in panel.text, panel.text
    shot(d, "43-visit-started")


def test_the_admin_sets_the_time_zone_working_hours_and_appointment_types(clinic, app):
    d = app
    sign_in(d, ADMIN, ADMIN_PW)
    click(d, visible(d, "#nav-settings"))
    zone = visible(d, "#set-clinic_time_zone")
    zone.clear()
    zone.send_keys("Mars/Olympus")
    click(d, d.find_element(By.ID, "settings-save"))
    assert "IANA" in visible(d, "#set-clinic_time_zone-error").text
    zone.clear()
    zone.send_keys("America/Chicago")
    click(d, d.find_element(By.ID, "settings-save"))
    assert "Saved" in visible(d, "#settings-saved").text

    Select(visible(d, "#schedule-clinician")).select_by_value(DOC)
    monday = visible(d, "#hours-mon")
    monday.clear()
    monday.send_keys("9 to 5")
    click(d, d.find_element(By.ID, "save-hours"))
    assert "08:00-12:00" in visible(d, "#hours-mon-error").text, "the error shows the shape to type"
    monday.clear()
    monday.send_keys("08:00-12:00,13:00-17:00")
    click(d, d.find_element(By.ID, "save-hours"))
    WebDriverWait(d, 10).until(lambda _: "saved" in page_text(d))
    visible(d, "#type-name").send_keys("New patient")
    minutes = d.find_element(By.ID, "type-minutes")
    minutes.clear()
    minutes.send_keys("30")
    click(d, d.find_element(By.ID, "add-type"))
    WebDriverWait(d, 10).until(lambda _: "New patient: 30 min" in d.find_element(By.ID, "appointment-types").text)
    d.execute_script("document.getElementById('schedule-settings').scrollIntoView({block: 'start'})")
    time.sleep(0.3)
    shot(d, "44-admin-schedules")

    shown = clinic.json("--user", ADMIN, "schedule", "show", DOC, password=ADMIN_PW)
    assert shown["time_zone"] == "America/Chicago"
    assert shown["hours"]["mon"] == "08:00-12:00,13:00-17:00" and shown["hours"]["tue"] == "off", shown
    types = clinic.json("--user", DESK, "appointment-type", "list", password=DESK_PW)["appointment_types"]
    assert types == [{"name": "New patient", "minutes": 30}]


def test_a_medication_against_a_recorded_allergy_warns_and_needs_a_reason(clinic, app):
    okafor = str(clinic.patients["okafor"]["id"])
    clinic.run("--user", DOC, "allergy", "add", "--patient", okafor, "--substance", "Penicillin",
               "--reaction", "Anaphylaxis", "--severity", "severe", password=DOC_PW)
    d = app
    sign_in(d, DOC, DOC_PW)
    search(d, "okaf")
    d.find_element(By.ID, "search-input").send_keys(Keys.ENTER)
    visible(d, "#chart-name")
    click(d, d.find_element(By.ID, "tab-medications"))
    visible(d, "#f-name").send_keys("Amoxicillin")
    d.find_element(By.ID, "f-dose").send_keys("500 mg")
    click(d, d.find_element(By.ID, "list-add"))
    warning = visible(d, "#allergy-conflict")
    for words in ["Penicillin", "severe", "penicillins"]:
        assert words in warning.text, warning.text
    assert d.find_element(By.ID, "list-add").text == "Save anyway"
    d.execute_script("document.getElementById('allergy-conflict').scrollIntoView({block: 'center'})")
    time.sleep(0.3)
    shot(d, "46-allergy-warning")
    meds = clinic.json("--user", DOC, "medication", "list", "--patient", okafor, password=DOC_PW)["medications"]
    assert meds == [], "nothing saved before a reason"
    click(d, d.find_element(By.ID, "list-add"))  # no reason yet: the browser asks for one
    assert visible(d, "#allergy-conflict")
    d.find_element(By.ID, "f-override").send_keys("Tolerated a graded challenge in 2024")
    click(d, d.find_element(By.ID, "list-add"))
    note = WebDriverWait(d, 10).until(lambda _: d.find_elements(By.CSS_SELECTOR, "#medication-list .override"))[0]
    assert "Tolerated a graded challenge in 2024" in note.text
    meds = clinic.json("--user", DOC, "medication", "list", "--patient", okafor, password=DOC_PW)["medications"]
    assert [(m["name"], m["allergy_override"]) for m in meds] == [("Amoxicillin", "Tolerated a graded challenge in 2024")]


@pytest.mark.app_args("--demo")
def test_a_long_chart_keeps_the_patient_pinned_at_the_top_when_scrolled(app, cli):
    """Issue 18, item 10: at the bottom of a long chart a compact header still says whose chart
    it is (name, birth date, MRN) and how their allergies stand."""
    d = app
    visible(d, "#demo-title")
    click(d, d.find_element(By.ID, "open-demo"))
    assert visible(d, "#signed-in-user", timeout=120).text == "dr.demo"
    search(d, "0000018")  # the demo's long history (200 encounters)
    d.find_element(By.ID, "search-input").send_keys(Keys.ENTER)
    name = visible(d, "#chart-name").text
    mrn = d.find_element(By.ID, "chart-mrn").text.removeprefix("MRN").strip()
    assert mrn, d.find_element(By.ID, "chart-mrn").text
    pinned = d.find_element(By.ID, "chart-sticky-header")
    assert not pinned.is_displayed(), "while the full header is in view, the compact one keeps out of the way"

    click(d, d.find_element(By.ID, "tab-notes"))
    visible(d, "#notes-timeline .note")
    d.execute_script("const c = document.getElementById('content'); c.scrollTop = c.scrollHeight;")
    WebDriverWait(d, 10).until(lambda _: pinned.is_displayed())
    box = d.execute_script(
        """const pane = document.getElementById('content');
        const p = arguments[0].getBoundingClientRect();
        const c = pane.getBoundingClientRect();
        const top = document.elementFromPoint(p.left + p.width / 2, p.top + p.height / 2);
        return {atBottom: pane.scrollTop + pane.clientHeight >= pane.scrollHeight - 2,
                top: p.top, bottom: p.bottom, paneTop: c.top, paneBottom: c.bottom, window: window.innerHeight,
                nameBottom: document.getElementById('chart-name').getBoundingClientRect().bottom,
                onTop: arguments[0].contains(top)};""",
        pinned)
    assert box["atBottom"], box
    assert box["nameBottom"] < box["paneTop"], ("the full header has scrolled out of view", box)
    assert box["paneTop"] - 1 <= box["top"] < box["bottom"] <= min(box["paneBottom"], box["window"]), box
    assert box["onTop"], ("nothing covers the compact header", box)
    text = pinned.text
    assert mrn in text and name in text and "born" in text, text
    assert "allerg" in text.lower(), text
    time.sleep(0.3)
    shot(d, "64-demo-chart-pinned-header")


def test_notes_filter_by_encounter_author_and_kind_and_fold_without_losing_an_addendum(clinic, app):
    """Issue 18, item 10: a long timeline narrows to one encounter, author or kind, and folds;
    neither loses an addendum being written."""
    okafor = str(clinic.patients["okafor"]["id"])
    visit = clinic.json("--user", DOC, "encounter", "add", "--patient", okafor, "--reason", "Blood pressure review",
                        password=DOC_PW)
    signed = clinic.json("--user", DOC, "note", "draft", "--patient", okafor, "--encounter", str(visit["id"]),
                         "--text", "Blood pressure controlled on amlodipine.", password=DOC_PW)["id"]
    clinic.run("--user", DOC, "note", "sign", str(signed), password=DOC_PW)
    clinic.run("--user", DOC, "note", "addendum", str(signed), "--text", "Home readings reviewed by phone.", "--sign",
               password=DOC_PW)
    draft = clinic.json("--user", NURSE, "note", "draft", "--patient", okafor,
                        "--text", "Knee pain since Tuesday; for the doctor to review.", password=NURSE_PW)["id"]

    d = app
    sign_in(d, DOC, DOC_PW)
    search(d, "okaf")
    d.find_element(By.ID, "search-input").send_keys(Keys.ENTER)
    visible(d, "#chart-name")
    click(d, d.find_element(By.ID, "tab-notes"))
    visible(d, "#notes-timeline .note")

    def shown() -> list[int]:
        return sorted(int(n.get_attribute("id").split("-")[1])
                      for n in d.find_elements(By.CSS_SELECTOR, "#notes-timeline > li.note") if n.is_displayed())

    def choose(select: str, value: str, expect: list[int]) -> None:
        Select(d.find_element(By.ID, select)).select_by_value(value)
        WebDriverWait(d, 10).until(lambda _: shown() == sorted(expect), f"{select}={value}: {shown()}")

    assert shown() == sorted([signed, draft])
    for select in ["notes-filter-encounter", "notes-filter-author", "notes-filter-kind"]:
        assert Select(d.find_element(By.ID, select)).first_selected_option.text.startswith("All"), select
        assert d.find_element(By.CSS_SELECTOR, f"label[for='{select}']").text, f"{select} has a label"
    choose("notes-filter-kind", "draft", [draft])
    assert "Showing 1 of 2" in d.find_element(By.ID, "notes-filter-count").text
    choose("notes-filter-kind", "addendum", [signed])
    choose("notes-filter-kind", "", [signed, draft])
    choose("notes-filter-encounter", str(visit["id"]), [signed])
    choose("notes-filter-encounter", "none", [draft])
    choose("notes-filter-encounter", "", [signed, draft])
    choose("notes-filter-author", NURSE, [draft])
    choose("notes-filter-author", DOC, [signed])
    click(d, d.find_element(By.ID, "notes-filter-clear"))
    WebDriverWait(d, 10).until(lambda _: shown() == sorted([signed, draft]))
    shot(d, "15-notes-filters")

    # An addendum half written: filtering its note away or folding everything keeps it, typed text and all.
    click(d, d.find_element(By.ID, f"addendum-{signed}"))
    editor = visible(d, f"#add-{signed}-text")
    editor.send_keys("Repeat the renal panel in three months.")
    choose("notes-filter-kind", "draft", [signed, draft])
    assert editor.is_displayed() and editor.get_attribute("value") == "Repeat the renal panel in three months."
    click(d, d.find_element(By.ID, "notes-filter-clear"))
    click(d, d.find_element(By.ID, "notes-collapse-all"))
    WebDriverWait(d, 10).until(lambda _: not d.find_element(By.ID, f"note-body-{draft}").is_displayed())
    assert not d.find_element(By.ID, f"note-body-{signed}").is_displayed()
    assert d.find_element(By.ID, f"note-toggle-{draft}").get_attribute("aria-expanded") == "false"
    # (WebKit's driver leaves an ellipsised line out of .text, so its text is read as is.)
    preview = d.find_element(By.CSS_SELECTOR, f"#note-{draft} .preview").get_attribute("textContent")
    assert "Knee pain since Tuesday" in preview, "a folded note keeps a line"
    assert editor.is_displayed() and editor.get_attribute("value") == "Repeat the renal panel in three months."
    shot(d, "16-notes-folded")
    d.find_element(By.ID, f"note-toggle-{draft}").send_keys(Keys.ENTER)  # by keyboard
    WebDriverWait(d, 10).until(lambda _: d.find_element(By.ID, f"note-body-{draft}").is_displayed())
    assert d.find_element(By.ID, f"note-toggle-{draft}").get_attribute("aria-expanded") == "true"
    click(d, d.find_element(By.ID, "notes-expand-all"))
    WebDriverWait(d, 10).until(lambda _: d.find_element(By.ID, f"note-body-{signed}").is_displayed())
    click(d, d.find_element(By.ID, f"add-{signed}-submit"))
    WebDriverWait(d, 10).until(lambda _: len(d.find_elements(By.CSS_SELECTOR, f"#note-{signed} .addendum")) == 2)
    assert "renal panel" in d.find_element(By.ID, f"note-{signed}").text


def test_the_export_dialog_defaults_to_a_passphrase_and_counts_in_plain_words(clinic, app):
    """Issue 18, item 13: a passphrase unless asked otherwise; the result in a clinic's words,
    with the FHIR names, the file format and the age command one click away for IT."""
    okafor = str(clinic.patients["okafor"]["id"])
    note = clinic.json("--user", DOC, "note", "draft", "--patient", okafor, "--text", "Referral letter follows.",
                       password=DOC_PW)["id"]
    clinic.run("--user", DOC, "note", "sign", str(note), password=DOC_PW)
    clinic.run("--user", DOC, "vitals", "add", "--patient", okafor, "--bp", "150/95", password=DOC_PW)

    d = app
    sign_in(d, DOC, DOC_PW)
    search(d, "okaf")
    d.find_element(By.ID, "search-input").send_keys(Keys.ENTER)
    visible(d, "#chart-name")
    click(d, d.find_element(By.ID, "export-chart"))
    visible(d, "#export-dialog")
    assert d.find_element(By.ID, "export-method-passphrase").is_selected(), "a passphrase is the default"
    assert visible(d, "#export-passphrase").is_displayed()
    assert not d.find_elements(By.ID, "export-keys")
    assert not d.find_element(By.ID, "export-method-key").is_displayed(), "the age key waits under another choice"
    d.find_element(By.ID, "export-recipient").send_keys("Chidi Okafor (his own copy)")
    d.find_element(By.ID, "export-purpose").send_keys("The patient asked for a copy of his record")
    d.find_element(By.ID, "export-passphrase").send_keys("tulip anchor velvet ninety")
    d.find_element(By.ID, "export-again").send_keys("tulip anchor velvet ninety")
    click(d, d.find_element(By.ID, "export-confirm"))

    done = visible(d, "#export-done")
    text = done.text
    assert "1 patient" in text, text
    counts = d.find_element(By.ID, "export-counts").text
    assert "notes 1" in counts and "vitals" in counts and "patients 1" in counts, counts
    for word in ["DocumentReference", "Observation", "FHIR", "age -d"]:
        assert word not in text, (word, text)
    assert "passphrase they were given" in d.find_element(By.ID, "export-next").text
    assert visible(d, "#export-show-folder").text == "Show in folder"
    shot(d, "84-export-plain-words")

    click(d, d.find_element(By.CSS_SELECTOR, "#export-technical summary"))
    resources = visible(d, "#export-resources").text
    assert "DocumentReference: 1" in resources and "Observation" in resources, resources
    command = d.find_element(By.ID, "export-command").text
    path = Path(d.find_element(By.ID, "export-path").text)
    assert command.startswith("age -d") and path.name in command, command
    assert "FHIR R4" in d.find_element(By.ID, "export-technical").text
    shot(d, "85-export-technical")
    click(d, d.find_element(By.ID, "export-close"))
    assert "tulip" not in d.page_source


def test_vitals_show_every_error_in_words_ask_did_you_mean_and_a_wrong_value_is_struck_out(clinic, app):
    okafor = str(clinic.patients["okafor"]["id"])
    clinic.run("--user", NURSE, "vitals", "add", "--patient", okafor, "--weight", "55.5", "--height", "162",
               password=NURSE_PW)
    d = app
    sign_in(d, NURSE, NURSE_PW)
    search(d, "okaf")
    d.find_element(By.ID, "search-input").send_keys(Keys.ENTER)
    visible(d, "#chart-name")
    click(d, d.find_element(By.ID, "tab-vitals"))
    click(d, visible(d, "#record-vitals"))
    # Every field's problem at once, beside its field, in words: °C, never Cel.
    visible(d, "#v-temperature").send_keys("98.6")
    d.find_element(By.ID, "v-heart-rate").send_keys("fast")
    d.find_element(By.ID, "v-systolic").send_keys("120")
    click(d, d.find_element(By.ID, "vitals-save"))
    temp = visible(d, "#v-temperature-error")
    assert "98.6 °C is not possible" in temp.text and "Cel" not in temp.text, temp.text
    assert "beats per minute" in visible(d, "#v-heart-rate-error").text
    assert "diastolic" in visible(d, "#v-diastolic-error").text
    shot(d, "47-vitals-field-errors")
    click(d, d.find_element(By.ID, "v-temperature-use"))
    assert d.find_element(By.ID, "v-temperature").get_attribute("value") == "98.6F"
    for field in ["v-heart-rate", "v-systolic"]:
        box = d.find_element(By.ID, field)
        box.send_keys(Keys.CONTROL, "a")
        box.send_keys(Keys.BACKSPACE)  # as typed, so the form hears it
    # Pounds typed as kilograms: asked before anything is saved.
    d.find_element(By.ID, "v-weight").send_keys("180")
    click(d, d.find_element(By.ID, "vitals-save"))
    question = visible(d, "#vitals-question")
    assert "Did you mean 180 lb" in question.text, question.text
    shot(d, "48-vitals-did-you-mean")
    listed = clinic.json("--user", NURSE, "vitals", "list", "--patient", okafor, password=NURSE_PW)["observations"]
    assert len(listed) == 3, "nothing saved before the answer"
    # The form survives a tab switch while the question is open.
    click(d, d.find_element(By.ID, "tab-summary"))
    click(d, d.find_element(By.ID, "tab-vitals"))
    assert visible(d, "#v-weight").get_attribute("value") == "180"
    click(d, d.find_element(By.ID, "vitals-save"))
    click(d, visible(d, "#vitals-confirm"))
    visible(d, "#vitals-saved")
    listed = clinic.json("--user", NURSE, "vitals", "list", "--patient", okafor, password=NURSE_PW)["observations"]
    wrong = next(o for o in listed if o["vital"] == "weight" and o["value"] == 180)
    temperature = next(o for o in listed if o["vital"] == "temperature")
    assert temperature["value"] == 37.0, "98.6F is stored as 37.0 °C"
    # Marked entered in error: kept, struck out with the reason, the BMI with it.
    click(d, visible(d, f"#vital-eie-{wrong['id']}"))
    visible(d, "#vitals-mark-reason").send_keys("Pounds typed as kilograms")
    click(d, d.find_element(By.ID, "vitals-mark-save"))
    struck = visible(d, f"#vital-{wrong['id']}.struck")
    assert "180" in struck.text
    assert "Pounds typed as kilograms" in struck.get_attribute("title")
    shot(d, "49-vitals-entered-in-error")
    listed = clinic.json("--user", NURSE, "vitals", "list", "--patient", okafor, password=NURSE_PW)["observations"]
    marked = [o["vital"] for o in listed if o["status"] == "entered-in-error"]
    assert sorted(marked) == ["bmi", "weight"], marked


def test_a_problem_entered_in_error_is_struck_out_with_its_reason(clinic, app):
    okafor = str(clinic.patients["okafor"]["id"])
    clinic.run("--user", DOC, "problem", "add", "--patient", okafor, "--text", "Asthma", password=DOC_PW)
    d = app
    sign_in(d, DOC, DOC_PW)
    search(d, "okaf")
    d.find_element(By.ID, "search-input").send_keys(Keys.ENTER)
    visible(d, "#chart-name")
    click(d, d.find_element(By.ID, "tab-problems"))
    button = visible(d, "#problem-list [id^='eie-problem-']")
    click(d, button)
    visible(d, "#list-eie-reason").send_keys("Recorded for the wrong patient")
    click(d, d.find_element(By.ID, "list-eie-save"))
    WebDriverWait(d, 10).until(lambda _: not d.find_elements(By.ID, "list-eie-form"))
    assert "Asthma" not in d.find_element(By.ID, "problem-list").text, "no longer an active problem"
    click(d, d.find_element(By.ID, "list-show-inactive"))
    item = visible(d, "#problem-list li.struck")
    assert "entered in error: Recorded for the wrong patient" in item.text, item.text
    problems = clinic.json("--user", DOC, "problem", "list", "--patient", okafor, password=DOC_PW)["problems"]
    assert problems[0]["status"] == "entered-in-error"


def open_chart_of(d, text: str) -> None:
    search(d, text)
    d.find_element(By.ID, "search-input").send_keys(Keys.ENTER)
    visible(d, "#chart-name")


def retype(el, text: str) -> None:
    """Replaces a field's text the way a person does (so the form hears every key)."""
    el.send_keys(Keys.CONTROL, "a")
    el.send_keys(Keys.BACKSPACE)
    el.send_keys(text)


def test_the_front_desk_edits_contact_details_and_the_earlier_version_stays_visible(clinic, app):
    okafor = str(clinic.patients["okafor"]["id"])
    d = app
    sign_in(d, DESK, DESK_PW)
    open_chart_of(d, "okaf")
    click(d, d.find_element(By.ID, "tab-demographics"))
    click(d, visible(d, "#edit-demographics"))
    retype(visible(d, "#dem-phone"), "+1 (415) 555-0111")
    retype(d.find_element(By.ID, "dem-address"), "12 Harbour Road, Demo Town")
    shot(d, "53-edit-demographics")
    click(d, d.find_element(By.ID, "dem-save"))
    assert "version 2" in visible(d, "#demographics-done").text.lower()
    assert visible(d, "#dem-shown-phone").text == "+1 (415) 555-0111"
    click(d, d.find_element(By.ID, "show-history"))
    history = visible(d, "#patient-history")
    assert "Version 2" in history.text and "changed phone, address" in history.text, history.text
    assert "Version 1" in history.text and "registered" in history.text
    chart = clinic.json("--user", DESK, "patient", "show", okafor, password=DESK_PW)
    assert chart["phone"] == "+1 (415) 555-0111" and chart["version"] == 2
    # A phone call is matched on the number's last digits.
    hits = clinic.json("--user", DESK, "patient", "search", "4155550111", password=DESK_PW)["patients"]
    assert [h["id"] for h in hits] == [int(okafor)]


def test_a_restricted_patient_registered_by_the_desk_names_the_physician_who_opens_it_without_breaking_the_glass(
        clinic, app):
    d = app
    sign_in(d, DESK, DESK_PW)
    click(d, d.find_element(By.ID, "nav-register"))
    visible(d, "#reg-family").send_keys("Quist")
    d.find_element(By.ID, "reg-given").send_keys("Mara")
    d.find_element(By.ID, "reg-birth").send_keys("1982-02-03")
    click(d, d.find_element(By.ID, "reg-restricted"))
    visible(d, "#reg-care-team")
    click(d, d.find_element(By.ID, "register-submit"))
    assert "at least one physician or nurse" in visible(d, "#register-error").text
    click(d, WebDriverWait(d, 10).until(lambda _: d.find_element(By.ID, f"reg-team-{DOC}")))
    shot(d, "54-register-restricted-care-team")
    click(d, d.find_element(By.ID, "register-submit"))
    visible(d, "#chart-name")
    hits = clinic.json("--user", DOC, "patient", "search", "quist", password=DOC_PW)["patients"]
    chart = clinic.json("--user", DOC, "patient", "show", str(hits[0]["id"]), password=DOC_PW)
    assert sorted(chart["care_team"]) == sorted([DESK, DOC]), chart["care_team"]
    assert chart["access"]["via"] == "care_team", chart["access"]
    alerts = clinic.json("--user", AUDITOR, "alert", "list", password=AUDITOR_PW)
    assert "break" not in json.dumps(alerts).lower(), "no false alarm"


def test_the_physician_adds_a_nurse_to_a_care_team_chosen_from_the_clinics_users(clinic, app):
    vip = str(clinic.patients["vip"]["id"])
    d = app
    sign_in(d, DOC, DOC_PW)
    open_chart_of(d, "vanderbilt")
    click(d, d.find_element(By.ID, "tab-demographics"))
    choice = visible(d, "#care-team-add")
    WebDriverWait(d, 10).until(lambda _: len(Select(choice).options) > 1)
    Select(choice).select_by_value(NURSE)
    click(d, d.find_element(By.ID, "care-team-add-submit"))
    WebDriverWait(d, 10).until(lambda _: NURSE in d.find_element(By.ID, "care-team-list").text)
    chart = clinic.json("--user", NURSE, "patient", "show", vip, password=NURSE_PW)
    assert NURSE in chart["care_team"]


def test_a_user_changes_their_own_password_and_the_recovery_key_signs_in(clinic, app):
    d = app
    sign_in(d, NURSE, NURSE_PW)
    click(d, d.find_element(By.ID, "own-password-button"))
    visible(d, "#own-current").send_keys("not-my-password")
    d.find_element(By.ID, "own-new").send_keys("a-brand-new-password-1")
    d.find_element(By.ID, "own-again").send_keys("a-brand-new-password-1")
    click(d, d.find_element(By.ID, "own-save"))
    assert visible(d, "#own-password-error").text, "the current password is checked"
    visible(d, "#own-current").send_keys(NURSE_PW)
    d.find_element(By.ID, "own-new").send_keys("a-brand-new-password-1")
    d.find_element(By.ID, "own-again").send_keys("a-brand-new-password-1")
    click(d, d.find_element(By.ID, "own-save"))
    assert "changed" in visible(d, "#own-password-done").text
    lock(d)
    sign_in(d, NURSE, "a-brand-new-password-1")
    lock(d)
    assert clinic.run("--user", NURSE, "patient", "search", "x", password=NURSE_PW, check=False).returncode != 0
    # Every administrator password lost: the recovery key signs in, and the session says so.
    click(d, visible(d, "#use-recovery-key"))
    visible(d, "#recovery-key").send_keys(clinic.recovery_key)
    click(d, d.find_element(By.ID, "recovery-submit"))
    assert "Recovery session" in visible(d, "#content").text
    shot(d, "55-recovery-session")


def audit_events(d) -> set:
    """The events of the audit table's rows, read in one go (the table re-renders as it loads)."""
    return set(d.execute_script(
        "return [...document.querySelectorAll('#audit-table tbody tr')].map(r => r.dataset.event)"))


def test_the_auditor_finds_entries_by_mrn_and_reads_them_in_words(clinic, app):
    okafor, vip = clinic.patients["okafor"], clinic.patients["vip"]
    okafor_id = str(okafor["id"])
    clinic.run("--user", DOC, "patient", "show", okafor_id, password=DOC_PW)
    clinic.run("--user", NURSE, "vitals", "add", "--patient", okafor_id, "--heart-rate", "72", password=NURSE_PW)
    # The nurse breaks the glass into the restricted chart: an alert, cheaply.
    clinic.run("--user", NURSE, "patient", "show", str(vip["id"]), "--break-glass", "Fainted at the desk",
               password=NURSE_PW)
    d = app
    sign_in(d, AUDITOR, AUDITOR_PW)
    visible(d, "#audit-table")

    # The patient by MRN, as the chart shows it: every row about them shows that MRN, and
    # events and purposes read in words, the stored names in their tooltips.
    visible(d, "#af-patient").send_keys(okafor["mrn"])
    click(d, d.find_element(By.ID, "audit-filter"))
    WebDriverWait(d, 20).until(lambda _: "vitals.create" in audit_events(d) and "session.unlock" not in audit_events(d))
    rows = d.find_elements(By.CSS_SELECTOR, "#audit-table tbody tr")
    assert {r.find_element(By.CSS_SELECTOR, "td.mrn").text for r in rows} == {okafor["mrn"]}
    read = d.find_element(By.CSS_SELECTOR, "#audit-table tr[data-event='chart.read'] td.event")
    assert read.text == "Opened a chart" and read.get_attribute("title") == "chart.read"
    vitals = d.find_element(By.CSS_SELECTOR, "#audit-table tr[data-event='vitals.create']")
    assert "Recorded vitals" in vitals.text and NURSE in vitals.text
    assert vitals.find_element(By.CSS_SELECTOR, ".purpose").text == "treatment"
    assert vitals.find_element(By.CSS_SELECTOR, ".purpose").get_attribute("title") == "TREAT"
    assert "chart.read" not in d.find_element(By.ID, "audit-table").text, "events show as words"
    # The event from the list in words.
    Select(d.find_element(By.ID, "audit-event")).select_by_visible_text("Recorded vitals")
    click(d, d.find_element(By.ID, "audit-filter"))
    WebDriverWait(d, 20).until(lambda _: audit_events(d) == {"vitals.create"})
    shot(d, "62-auditor-view")

    # A restricted patient's name finds nothing for the auditor; her MRN finds her entries.
    Select(d.find_element(By.ID, "audit-event")).select_by_index(0)
    patient = d.find_element(By.ID, "af-patient")
    patient.clear()
    patient.send_keys("Vanderbilt")
    click(d, d.find_element(By.ID, "audit-filter"))
    WebDriverWait(d, 20).until(lambda _: "No patient matches" in d.find_element(By.ID, "audit-summary").text)
    assert not d.find_elements(By.CSS_SELECTOR, "#audit-table tbody tr")

    # The alert names the patient by MRN (the auditor reads no names) and links to its entries.
    click(d, d.find_element(By.ID, "nav-alerts"))
    alert = visible(d, "#alert-list [data-rule='break_glass']")
    assert f"MRN {vip['mrn']}" in alert.text and "Vanderbilt" not in alert.text, alert.text
    assert f"patient {vip['id']}:" not in alert.text, "never the internal id"
    shot(d, "62-auditor-alert-by-mrn")
    link = alert.find_element(By.CSS_SELECTOR, "[id^='alert-entries-']")
    ids = [a["id"] for a in clinic.json("--user", AUDITOR, "alerts", "list", password=AUDITOR_PW)["alerts"]
           if a["rule"] == "break_glass"]
    assert link.get_attribute("id") == f"alert-entries-{ids[0]}"
    click(d, link)
    WebDriverWait(d, 20).until(lambda _: audit_events(d) == {"break_glass", "chart.read"})
    assert d.find_element(By.ID, "af-patient").get_attribute("value") == vip["mrn"]
    assert d.find_element(By.ID, "af-user").get_attribute("value") == NURSE
    glass = d.find_element(By.CSS_SELECTOR, "#audit-table tr[data-event='break_glass']")
    assert "Broke the glass" in glass.text and "emergency treatment (break the glass)" in glass.text
    assert "Fainted at the desk" in glass.text
    shot(d, "63-auditor-alert-entries")


def test_a_half_written_note_survives_a_tab_switch_and_a_lock(clinic, app):
    """Issue 18, item 7: what is typed survives switching tabs; a note being written saves itself
    as a draft in the vault (one draft, however often it saves), so neither leaving the tab nor
    the lock takes it; the window keeps nothing typed after the lock; closing an editor with
    text not saved anywhere asks first."""
    okafor = str(clinic.patients["okafor"]["id"])
    d = app
    sign_in(d, DOC, DOC_PW)
    search(d, "okaf")
    d.find_element(By.ID, "search-input").send_keys(Keys.ENTER)
    visible(d, "#chart-name")

    # A problem and a note, half written; other tabs and back keep both.
    click(d, d.find_element(By.ID, "tab-problems"))
    visible(d, "#f-text").send_keys("Hypertension")
    click(d, d.find_element(By.ID, "tab-notes"))
    click(d, visible(d, "#new-note"))
    visible(d, "#note-text").send_keys("Half-written: chest pain on exertion")
    click(d, d.find_element(By.ID, "tab-vitals"))  # leaving the tab saves the draft at once
    click(d, visible(d, "#tab-problems"))
    assert visible(d, "#f-text").get_attribute("value") == "Hypertension"
    click(d, d.find_element(By.ID, "tab-notes"))
    editor = visible(d, "#note-text")
    assert editor.get_attribute("value") == "Half-written: chest pain on exertion"
    status = d.find_element(By.ID, "note-autosave-status")
    WebDriverWait(d, 10).until(lambda _: re.fullmatch(r"Draft saved \d\d:\d\d", status.text.strip()), status.text)
    drafts = d.find_elements(By.CSS_SELECTOR, "#notes-timeline .note[data-status='draft']")
    assert len(drafts) == 1, "the draft is in the timeline, once"
    shot(d, "80-note-autosaved")

    # More typed and Lock pressed at once: the last words are saved before the vault closes.
    editor.send_keys(", two weeks; worse on stairs.")
    lock(d)
    full = "Half-written: chest pain on exertion, two weeks; worse on stairs."
    notes = clinic.json("--user", DOC, "note", "list", "--patient", okafor, password=DOC_PW)["notes"]
    assert [(n["status"], n.get("text")) for n in notes] == [("draft", full)], notes
    assert d.execute_script("return [localStorage.length, sessionStorage.length]") == [0, 0]

    # Signed in again: the draft is in the chart; nothing typed was kept in the window.
    sign_in(d, DOC, DOC_PW)
    search(d, "okaf")
    d.find_element(By.ID, "search-input").send_keys(Keys.ENTER)
    visible(d, "#chart-name")
    click(d, d.find_element(By.ID, "tab-notes"))
    draft = visible(d, "#notes-timeline .note[data-status='draft']")
    assert "worse on stairs" in draft.text, draft.text
    assert not d.find_elements(By.ID, "note-text"), "the editor went with the lock; its text is the draft"
    note_id = draft.get_attribute("id").split("-")[1]
    click(d, d.find_element(By.ID, "tab-problems"))
    assert visible(d, "#f-text").get_attribute("value") == "", "the problem typed but not added went with the lock"

    # An addendum typed and cancelled: asked first; "Keep writing" keeps it, "Discard" drops it.
    click(d, d.find_element(By.ID, "tab-notes"))
    click(d, visible(d, f"#sign-{note_id}"))
    visible(d, f"#note-{note_id}[data-status='signed']")
    click(d, visible(d, f"#addendum-{note_id}"))
    add = visible(d, f"#add-{note_id}-text")
    add.send_keys("ECG booked.")
    click(d, d.find_element(By.ID, f"add-{note_id}-cancel"))
    dialog = visible(d, "#discard-dialog")
    assert dialog.get_attribute("role") == "alertdialog"
    assert "Discard the text you typed?" in dialog.text, dialog.text
    shot(d, "81-discard-confirm")
    click(d, d.find_element(By.ID, "discard-cancel"))
    WebDriverWait(d, 10).until(lambda _: not d.find_elements(By.ID, "discard-dialog"))
    assert d.find_element(By.ID, f"add-{note_id}-text").get_attribute("value") == "ECG booked."
    click(d, d.find_element(By.ID, f"add-{note_id}-cancel"))
    click(d, visible(d, "#discard-confirm"))
    WebDriverWait(d, 10).until(lambda _: not d.find_elements(By.ID, f"add-{note_id}-text"))
    assert not d.find_elements(By.CSS_SELECTOR, f"#note-{note_id} .addendum"), "nothing was saved"
    notes = clinic.json("--user", DOC, "note", "list", "--patient", okafor, password=DOC_PW)["notes"]
    assert [(n["kind"], n["status"]) for n in notes] == [("note", "signed")], notes


def test_the_idle_lock_warns_a_minute_before(clinic, app):
    """Issue 18, item 7: the idle lock warns before it strikes, "Stay signed in" keeps the
    session, and a note being written is a saved draft when it strikes. The warning comes a
    minute before the lock, or halfway through a timeout shorter than two minutes: with the
    one-minute timeout set here it shows 30 s after the last activity the backend heard of
    (at this timeout it hears of activity within 15 s), and the lock follows 30 s later."""
    okafor = str(clinic.patients["okafor"]["id"])
    clinic.run("--user", ADMIN, "settings", "set", "idle_timeout_minutes", "1", password=ADMIN_PW)
    d = app
    sign_in(d, DOC, DOC_PW)
    search(d, "okaf")
    d.find_element(By.ID, "search-input").send_keys(Keys.ENTER)
    visible(d, "#chart-name")
    click(d, d.find_element(By.ID, "tab-notes"))
    click(d, visible(d, "#new-note"))
    visible(d, "#note-text").send_keys("Seen for a cough; chest clear.")
    WebDriverWait(d, 10).until(lambda _: "Draft saved" in d.find_element(By.ID, "note-autosave-status").text)

    # Hands off: the warning shows over the chart; "Stay signed in" keeps the session and the editor.
    warning = visible(d, "#idle-warning", timeout=60)
    assert warning.get_attribute("role") == "alertdialog"
    assert "locks in" in warning.text and "Stay signed in" in warning.text, warning.text
    shot(d, "82-idle-warning")
    click(d, d.find_element(By.ID, "idle-stay"))
    WebDriverWait(d, 10).until(lambda _: not d.find_elements(By.ID, "idle-warning"))
    assert d.find_element(By.ID, "signed-in-user").text == DOC
    assert d.find_element(By.ID, "note-text").get_attribute("value") == "Seen for a cough; chest clear."

    # Hands off again: the warning, and the lock half a minute after it; the note is a draft.
    visible(d, "#idle-warning", timeout=60)
    warned = time.monotonic()
    notice = visible(d, "#unlock-notice", timeout=60)
    assert time.monotonic() - warned >= 20, "the warning came in time to answer it"
    assert "locked itself after 1 minute" in notice.text, notice.text
    assert "Okafor" not in d.page_source, "no patient is left behind the lock"
    notes = clinic.json("--user", DOC, "note", "list", "--patient", okafor, password=DOC_PW)["notes"]
    assert [(n["status"], n.get("text")) for n in notes] == [("draft", "Seen for a cough; chest clear.")], notes
    logoffs = clinic.json("--user", AUDITOR, "audit", "list", "--event", "session.idle_logoff",
                          password=AUDITOR_PW)["entries"]
    assert [e["actor"] for e in logoffs] == [DOC], "the lock is the backend's idle logoff, audited as such"


def test_lab_results_a_panel_typed_in_flagged_corrected_with_the_old_value_kept_and_trended(clinic, app):
    """Issue 17: a nurse types a lipid panel from the lab's paper report; the low HDL is
    flagged, a corrected LDL keeps the first value visible, and total cholesterol is plotted
    over a year (two earlier results typed through the CLI)."""
    okafor = str(clinic.patients["okafor"]["id"])
    for at, value in [("2025-12-01T09:00:00Z", "242"), ("2026-06-01T09:00:00Z", "221")]:
        clinic.run("--user", DOC, "result", "add", "--patient", okafor, "--loinc", "2093-3", "--value", value,
                   "--range", "<200", "--at", at, password=DOC_PW)
    d = app
    sign_in(d, NURSE, NURSE_PW)
    open_chart_of(d, "okaf")
    click(d, d.find_element(By.ID, "tab-results"))
    visible(d, "#results-panel")

    # The report first, then its results picked from the report.
    click(d, d.find_element(By.ID, "add-report"))
    Select(visible(d, "#rep-test")).select_by_value("57698-3")
    click(d, d.find_element(By.ID, "rep-save"))
    report = visible(d, "article.report[data-report-id]")
    report_id = report.get_attribute("data-report-id")
    for loinc, value, rng in [("2093-3", "198", "<200"), ("2085-9", "35", ">40"), ("18262-6", "162", "<130")]:
        if not d.find_elements(By.ID, "result-form"):
            click(d, d.find_element(By.ID, "add-result"))
        Select(visible(d, "#rf-test")).select_by_value(loinc)
        Select(d.find_element(By.ID, "rf-report")).select_by_value(report_id)
        retype(d.find_element(By.ID, "rf-value"), value)
        retype(d.find_element(By.ID, "rf-range"), rng)
        click(d, d.find_element(By.ID, "rf-save"))
        WebDriverWait(d, 10).until(lambda _: len(d.find_elements(By.CSS_SELECTOR, f"#report-{report_id} tr[data-result-id]"))
                                   == 1 + ["2093-3", "2085-9", "18262-6"].index(loinc))
    results = clinic.json("--user", DOC, "result", "list", "--patient", okafor, password=DOC_PW)["results"]
    by_code = {r["loinc"]: r for r in results if r["report_id"] == int(report_id)}
    assert by_code["2085-9"]["flag"] == "L" and by_code["18262-6"]["flag"] == "H", by_code
    assert by_code["2093-3"]["flag"] == "N"
    hdl = d.find_element(By.ID, f"result-{by_code['2085-9']['id']}")
    assert hdl.find_element(By.CSS_SELECTOR, ".result-flag").get_attribute("data-flag") == "L", hdl.text
    panel = d.find_element(By.ID, f"report-{report_id}")
    assert "Final" in panel.text or "final" in panel.text.lower(), panel.text

    # The lab calls: the LDL was 126, not 162. The correction keeps 162 visible, struck out.
    ldl_id = by_code["18262-6"]["id"]
    click(d, d.find_element(By.ID, f"result-correct-{ldl_id}"))
    retype(visible(d, "#cf-value"), "126")
    visible(d, "#cf-reason").send_keys("Lab sent a corrected report")
    click(d, d.find_element(By.ID, "cf-save"))
    WebDriverWait(d, 10).until(lambda _: d.find_elements(By.CSS_SELECTOR, f"#report-{report_id} .result-earlier"))
    row = d.find_element(By.CSS_SELECTOR, f"#report-{report_id} .result-earlier").find_element(By.XPATH, "./ancestor::tr")
    assert "126" in row.find_element(By.CSS_SELECTOR, ".result-current").text, row.text
    assert "162" in row.find_element(By.CSS_SELECTOR, ".result-earlier").text, row.text
    assert not row.find_elements(By.CSS_SELECTOR, ".result-flag"), "126 is inside <130: no flag any more"
    assert "Lab sent a corrected report" in row.text
    listed = clinic.json("--user", DOC, "result", "list", "--patient", okafor, "--loinc", "18262-6",
                         password=DOC_PW)["results"]
    assert [r["status"] for r in listed] == ["corrected"] and listed[0]["earlier"][0]["value"] == 162.0, listed
    click(d, d.find_element(By.ID, "add-result"))  # closes the form
    d.execute_script("document.getElementById('content').scrollTop = 0")
    time.sleep(0.3)
    shot(d, "65-results-report")

    # The trend of total cholesterol: three results over a year, one plot.
    total_id = by_code["2093-3"]["id"]
    click(d, d.find_element(By.CSS_SELECTOR, f"#result-{total_id} .result-trend"))
    trend = visible(d, "#results-trend")
    assert "over time" in trend.text
    WebDriverWait(d, 10).until(lambda _: d.find_elements(By.CSS_SELECTOR, "#results-trend canvas"))
    assert "reference range" in trend.text, trend.text
    d.execute_script("document.getElementById('content').scrollTop = 0")
    time.sleep(0.3)
    shot(d, "66-results-trend")

    # The front desk has no Results tab and cannot read them from the console either.
    lock(d)
    sign_in(d, DESK, DESK_PW)
    open_chart_of(d, "okaf")
    assert not d.find_elements(By.ID, "tab-results")
    refused = invoke(d, "add_lab_result", {"patient_id": int(okafor), "result": {"loinc": "2345-7", "value": "98"}})
    assert not refused["ok"] and refused["error"]["code"] == "forbidden", refused
    after = clinic.json("--user", DOC, "result", "list", "--patient", okafor, "--loinc", "2345-7",
                        password=DOC_PW)["results"]
    assert after == [], "the refused result was not written"


def test_the_front_desk_records_race_ethnicity_language_birth_sex_and_sexual_orientation(clinic, app):
    """Issue 17: the USCDI demographics are chosen from the code lists, shown in words, kept
    as codes (CLI) and named in the history."""
    okafor = str(clinic.patients["okafor"]["id"])
    d = app
    sign_in(d, DESK, DESK_PW)
    open_chart_of(d, "okaf")
    click(d, d.find_element(By.ID, "tab-demographics"))
    assert visible(d, "#dem-shown-race").text == "Not recorded"
    click(d, visible(d, "#edit-demographics"))
    def choose(field: str, *values: str) -> None:
        box = visible(d, f"#{field}")
        d.execute_script("arguments[0].scrollIntoView({block: 'center'})", box)
        for value in values:
            Select(box).select_by_value(value)

    choose("dem-race", "2054-5", "2060-2")
    choose("dem-ethnicity", "2186-5")
    choose("dem-language", "fr")
    choose("dem-birth_sex", "M")
    choose("dem-sexual_orientation", "ASKU")
    d.execute_script("document.getElementById('dem-race').scrollIntoView({block: 'center'})")
    time.sleep(0.3)
    shot(d, "54-edit-uscdi")
    click(d, d.find_element(By.ID, "dem-save"))
    assert "version 2" in visible(d, "#demographics-done").text.lower()
    assert visible(d, "#dem-shown-race").text == "Black or African American, African"
    assert d.find_element(By.ID, "dem-shown-ethnicity").text == "Not Hispanic or Latino"
    assert d.find_element(By.ID, "dem-shown-language").text == "French"
    assert d.find_element(By.ID, "dem-shown-birth-sex").text == "Male"
    assert d.find_element(By.ID, "dem-shown-sexual-orientation").text == "Chose not to answer"
    chart = clinic.json("--user", DESK, "patient", "show", okafor, password=DESK_PW)
    assert chart["race"] == ["2054-5", "2060-2"], chart
    assert (chart["ethnicity"], chart["language"], chart["birth_sex"], chart["sexual_orientation"]) == (
        ["2186-5"], "fr", "M", "ASKU")
    click(d, d.find_element(By.ID, "show-history"))
    history = visible(d, "#patient-history").text
    assert "race, ethnicity, preferred language, sex assigned at birth, sexual orientation" in history, history


def test_a_patient_imported_from_another_system_says_where_each_item_was_recorded(clinic, app):
    """Issue 17: the administrator imports a Synthea patient's FHIR Bundle (another system's
    file, unencrypted); a physician opens the chart: its items say they were recorded in that
    system, and its results read as a lab prints them."""
    synthea = Path(__file__).resolve().parents[3] / "shared" / "fhir" / "synthea-sample"
    path = next(synthea.glob("Alden_Considine_*.json"))
    report = clinic.json("--user", ADMIN, "import", str(path), password=ADMIN_PW)
    assert report["foreign"] and report["patients_added"] == 1
    pid = str(report["patients"][0]["id"])
    d = app
    sign_in(d, DOC, DOC_PW)
    open_chart_of(d, "considine")
    origin = visible(d, "#chart-origin").text
    assert "from https://github.com/synthetichealth/synthea" in origin, origin
    assert "recorded and signed in that system" in origin, origin
    problems = clinic.json("--user", DOC, "problem", "list", "--patient", pid, password=DOC_PW)["problems"]
    click(d, d.find_element(By.ID, "tab-problems"))
    words = visible(d, f"#origin-problem-{problems[0]['id']}").text
    assert "recorded and signed in that system" in words, words
    time.sleep(0.3)
    shot(d, "67-imported-problems")

    click(d, d.find_element(By.ID, "tab-results"))
    visible(d, "#results-panel")
    reports = WebDriverWait(d, 10).until(lambda _: d.find_elements(By.CSS_SELECTOR, "article.report[data-report-id]"))
    first = reports[0]
    assert "synthetichealth" in first.find_element(By.CSS_SELECTOR, ".origin").text, first.text
    # A value as the file carries it (77.41418673109915 mg/dL) reads as a lab prints it.
    assert re.search(r"\b\d+(\.\d{1,5})? mg/dL", first.text), first.text
    assert not re.search(r"\d\.\d{7,}", first.text), first.text
    d.execute_script("document.getElementById('content').scrollTop = 0")
    time.sleep(0.3)
    shot(d, "68-imported-results")
