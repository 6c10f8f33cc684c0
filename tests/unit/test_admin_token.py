"""The embedded run's admin token file (var/admin-token): readable by its owner only, from the
moment it exists, and made once."""

from __future__ import annotations

import contextlib
import os
import pathlib
import stat

import pytest

from cli import up


@pytest.fixture
def umask_022():
    """The commonest umask: a file created without a mode of its own is world-readable."""
    previous = os.umask(0o022)
    yield
    os.umask(previous)


def mode(path: pathlib.Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_the_token_file_is_made_owner_only_and_kept(tmp_path, umask_022):
    path = tmp_path / "admin-token"
    token = up._admin_token(path)
    assert len(token) >= 32
    assert mode(path) == 0o600
    assert path.read_text() == token
    assert up._admin_token(path) == token, "a second run keeps the token"
    assert os.listdir(tmp_path) == ["admin-token"], "no temporary file left behind"


def test_an_empty_token_file_is_replaced_by_an_owner_only_one(tmp_path, umask_022):
    path = tmp_path / "admin-token"
    path.write_text("")
    path.chmod(0o644)
    token = up._admin_token(path)
    assert token and path.read_text() == token
    assert mode(path) == 0o600


def test_the_token_is_never_on_disk_readable_by_others(tmp_path, umask_022, monkeypatch):
    """Interrupted right after the token is written (Ctrl-C, a full disk, a filesystem without
    chmod): whatever is on disk then must already be owner-only."""
    path = tmp_path / "admin-token"

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(pathlib.Path, "chmod", interrupted)
    monkeypatch.setattr(os, "chmod", interrupted)
    with contextlib.suppress(KeyboardInterrupt):
        up._admin_token(path)
    for written in tmp_path.iterdir():
        assert mode(written) == 0o600, f"{written.name} is readable by others: {oct(mode(written))}"
