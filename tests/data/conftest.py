"""Fixtures of the data tests."""

import tempfile

import pytest


@pytest.fixture(autouse=True)
def _temporary_files_in_pytests_folder(tmp_path_factory, monkeypatch):
    """TFDS makes an empty ``tempfile.mkdtemp`` folder for every builder over a folder
    without a prepared copy (``DatasetInfo.initialize_from_bucket``) and never removes it;
    under this fixture such folders land in pytest's temporary folders, which pytest prunes,
    not in /tmp (and not in the test's ``tmp_path``, whose contents some tests check)."""
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path_factory.mktemp("tempfile")))
