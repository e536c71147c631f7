"""Files only for their owner, checked on the files the real programs leave: the vault folder,
a backup, the sign-in failure count, an export and the collector's database, certificate and key.
Another account on the computer must not be able to copy any of them for offline guessing."""

import os
import stat
from pathlib import Path

ADMIN_PW = "admin-password-1"


def modes(root: Path) -> dict[str, int]:
    """The permission bits of `root` and of everything under it."""
    out = {str(root): stat.S_IMODE(root.stat().st_mode)}
    for path in root.rglob("*"):
        out[str(path)] = stat.S_IMODE(path.stat().st_mode)
    return out


def assert_private(root: Path):
    assert root.exists(), root
    for path, mode in modes(root).items():
        want = 0o700 if os.path.isdir(path) else 0o600
        assert mode == want, f"{path} is {oct(mode)}, not {oct(want)}"


def test_vault_backup_state_and_export_are_private(cli, tmp_path):
    cli.run("vault", "init", "--admin", "admin", password=ADMIN_PW)
    cli.run("--user", "admin", "user", "add", "front.desk", "--role", "front_desk",
            password=ADMIN_PW, new_password="front-password-1")
    # A wrong password writes the sign-in failure count, which lives in the vault folder.
    bad = cli.run("--user", "front.desk", "user", "list", password="not-the-password", check=False)
    assert bad.returncode != 0
    assert (cli.vault / "unlock-failures.json").exists()
    assert not (tmp_path / "state").exists(), "the state folder no longer holds the count"
    cli.run("--user", "admin", "vault", "backup", "--out", str(tmp_path / "backup"), password=ADMIN_PW)
    assert_private(cli.vault)
    assert_private(tmp_path / "backup")
    assert not (tmp_path / "backup" / "unlock-failures.json").exists(), "a backup holds no count"


def test_a_vault_left_readable_is_tightened_at_unlock(cli):
    cli.run("vault", "init", "--admin", "admin", password=ADMIN_PW)
    os.chmod(cli.vault, 0o755)
    for f in cli.vault.iterdir():
        os.chmod(f, 0o644)
    cli.run("--user", "admin", "user", "list", password=ADMIN_PW)
    assert_private(cli.vault)


def test_the_collectors_files_are_private(collector):
    # The fixture's collector is running: it has made its database; a token writes to it.
    collector.run("token")
    collector.stop()
    for path in collector.dir.iterdir():
        mode = stat.S_IMODE(path.stat().st_mode)
        assert mode == (0o700 if path.is_dir() else 0o600), f"{path} is {oct(mode)}"
