"""`chartroom sync` against the real collector on loopback: enroll with a one-time token and
the pinned certificate, push, see the state; the collector down (exit 75, the queue waits,
the error in words) and back; the collector's copy verifies, and its FHIR AuditEvents
validate with fhir.resources."""

import json

from fhir.resources.R4B.auditevent import AuditEvent

ADMIN_PW = "admin-password-1"


def test_enroll_push_and_survive_a_collector_outage(cli, collector):
    cli.run("vault", "init", "--admin", "admin", password=ADMIN_PW)
    status = cli.json("--user", "admin", "sync", "status", password=ADMIN_PW)
    assert status["configured"] is False and status["queued"] > 0

    token = collector.run("token")
    # The token from the environment, so it is not in the process list for others to see.
    doc = cli.json("--user", "admin", "sync", "enroll", collector.url, "--cert", str(collector.cert),
                   password=ADMIN_PW, extra_env={"CHARTROOM_ENROLL_TOKEN": token})
    assert doc["configured"] is True and doc["url"] == collector.url
    # The token is spent: a second computer cannot reuse it (given as an argument, as
    # earlier scripts do).
    again = cli.run("--user", "admin", "sync", "enroll", collector.url, token, "--cert", str(collector.cert),
                    password=ADMIN_PW, check=False)
    assert again.returncode == 65, again.stderr
    assert json.loads(again.stderr)["error"]["code"] == "refused"

    # The collector goes away: charting goes on, the push waits with a clear reason.
    collector.stop()
    for _ in range(3):
        cli.run("--user", "admin", "user", "list", password=ADMIN_PW)
    proc = cli.run("--user", "admin", "sync", "push", password=ADMIN_PW, check=False)
    assert proc.returncode == 75, proc.stderr
    err = json.loads(proc.stderr)["error"]
    assert err["code"] == "unreachable"
    status = cli.json("--user", "admin", "sync", "status", password=ADMIN_PW)
    assert status["queued"] >= 6
    assert "cannot be reached" in status["last_error"]

    collector.start()
    pushed = cli.json("--user", "admin", "sync", "push", password=ADMIN_PW)
    assert pushed["pushed"] >= 6
    assert pushed["last_error"] is None
    assert "intact" in collector.run("verify")

    lines = collector.audit("format=ndjson").splitlines()
    assert len(lines) >= pushed["acknowledged"]
    for line in lines:
        AuditEvent.model_validate(json.loads(line))


def test_only_an_admin_enrolls(cli, collector):
    cli.run("vault", "init", "--admin", "admin", password=ADMIN_PW)
    cli.run("--user", "admin", "user", "add", "nurse.ho", "--role", "nurse",
            password=ADMIN_PW, new_password="nurse-password-1")
    proc = cli.run("--user", "nurse.ho", "sync", "enroll", collector.url, collector.run("token"),
                   "--cert", str(collector.cert), password="nurse-password-1", check=False)
    assert proc.returncode == 77
    assert json.loads(proc.stderr)["error"]["code"] == "forbidden"
    # Everyone may see the state.
    status = cli.json("--user", "nurse.ho", "sync", "status", password="nurse-password-1")
    assert status["configured"] is False


def test_enroll_without_a_token_anywhere_says_how_to_give_one(cli, collector):
    cli.run("vault", "init", "--admin", "admin", password=ADMIN_PW)
    proc = cli.run("--user", "admin", "sync", "enroll", collector.url, "--cert", str(collector.cert),
                   password=ADMIN_PW, check=False)
    assert proc.returncode == 64, proc.stderr
    assert "CHARTROOM_ENROLL_TOKEN" in json.loads(proc.stderr)["error"]["message"]
