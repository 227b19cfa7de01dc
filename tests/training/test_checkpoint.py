"""Checkpoint folders that cannot be read back: each is an error naming the folder.

Cases made by hand from good checkpoints: a state of another shape or structure (another
configuration), files missing from the newest epoch, orbax's unfinished write, corrupt
bytes, and a run's ``final/`` parameters missing, unfinished or damaged.
"""

import os
import shutil

import numpy as np
import pytest

from cnn_jax.training.checkpoint import (
    Checkpointer,
    CheckpointError,
    load_final_params,
    save_final_params,
)
from cnn_jax.training.restore import restore

TREE = {"w": np.arange(12.0, dtype=np.float32).reshape(3, 4), "b": np.ones(2, np.float32)}


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    """checkpoints/ with epochs 0 and 1 (epoch e holds TREE + e), and a run with final/."""
    root = tmp_path_factory.mktemp("ckpt")
    ckpt = Checkpointer(str(root / "checkpoints"))
    for epoch in range(2):
        ckpt.save(epoch, {k: v + epoch for k, v in TREE.items()}, {"epoch": epoch})
    ckpt.close()
    save_final_params(str(root / "run"), TREE)
    return root


@pytest.fixture
def copy(saved, tmp_path):
    shutil.copytree(saved, tmp_path, dirs_exist_ok=True)
    return tmp_path


def _restore(folder, like=TREE):
    ckpt = Checkpointer(str(folder))
    try:
        return ckpt.restore(ckpt.latest_epoch(), like)
    finally:
        ckpt.close()


def test_a_good_checkpoint_restores_exactly(copy):
    tree, meta = _restore(copy / "checkpoints")
    assert meta == {"epoch": 1}
    for k in TREE:
        np.testing.assert_array_equal(tree[k], TREE[k] + 1)  # a copy: exact


@pytest.mark.parametrize("like", [
    {"w": np.zeros((4, 4), np.float32), "b": np.ones(2, np.float32)},  # wider layer
    {"w": np.zeros((2, 4), np.float32), "b": np.ones(2, np.float32)},  # narrower layer
    {"w": np.zeros((3, 4), np.float32), "c": np.ones(2, np.float32)},  # another parameter
    {**TREE, "extra": np.ones(1, np.float32)},  # one more parameter
], ids=["wider", "narrower", "renamed", "extra"])
def test_a_checkpoint_of_another_configuration_is_an_error_not_a_partial_restore(copy, like):
    folder = copy / "checkpoints" / "1"
    with pytest.raises(CheckpointError, match=f"^{folder}: the checkpoint does not fit this "
                                              "run's state"):
        _restore(copy / "checkpoints", like)


@pytest.mark.parametrize("missing", ["state", "meta", "state/_METADATA"])
def test_files_missing_from_the_newest_epoch_are_an_error_naming_it(copy, missing):
    path = copy / "checkpoints" / "1" / missing
    shutil.rmtree(path) if path.is_dir() else path.unlink()
    with pytest.raises(CheckpointError, match=f"^{copy / 'checkpoints' / '1'}: incomplete "
                                              "checkpoint .*resume after epoch 1"):
        Checkpointer(str(copy / "checkpoints")).latest_epoch()


def test_an_empty_epoch_folder_is_an_error_too(copy):
    os.mkdir(copy / "checkpoints" / "7")
    with pytest.raises(CheckpointError, match="7: incomplete checkpoint"):
        Checkpointer(str(copy / "checkpoints")).latest_epoch()


def test_an_unfinished_orbax_write_is_skipped_for_the_last_complete_epoch(copy):
    # what a run killed while saving epoch 1 leaves: orbax's temporary folder
    os.rename(copy / "checkpoints" / "1", copy / "checkpoints" / "1.orbax-checkpoint-tmp-99")
    tree, meta = _restore(copy / "checkpoints")
    assert meta == {"epoch": 0}
    np.testing.assert_array_equal(tree["w"], TREE["w"])


def _corrupt_data_files(folder):
    for path in folder.rglob("d/*"):
        content = bytearray(path.read_bytes())
        content[len(content) // 2] ^= 0x40
        path.write_bytes(bytes(content))


def test_corrupt_bytes_in_an_epoch_are_an_error_naming_it(copy):
    _corrupt_data_files(copy / "checkpoints" / "1" / "state")
    with pytest.raises(CheckpointError, match=f"^{copy / 'checkpoints' / '1'}: cannot read"):
        _restore(copy / "checkpoints")


def test_final_params_read_back_exactly(copy):
    params = load_final_params(str(copy / "run"))
    for k in TREE:
        np.testing.assert_array_equal(params[k], TREE[k])


def test_missing_final_params_are_an_error_naming_the_folder(copy):
    final = copy / "run" / "final"
    shutil.rmtree(final)
    with pytest.raises(CheckpointError, match=f"^{final}: no final parameters .*not finished"):
        load_final_params(str(copy / "run"))
    (copy / "run" / "final.orbax-checkpoint-tmp-5").mkdir()  # killed while saving
    with pytest.raises(CheckpointError, match="only an unfinished write, final.orbax-checkpoint"):
        load_final_params(str(copy / "run"))


@pytest.mark.parametrize("damage", ["metadata", "data", "manifest"])
def test_half_written_or_corrupt_final_params_are_an_error_naming_the_folder(copy, damage):
    final = copy / "run" / "final"
    if damage == "metadata":
        (final / "_METADATA").unlink()
    elif damage == "manifest":
        (final / "manifest.ocdbt").unlink()
    else:
        _corrupt_data_files(final)
    with pytest.raises(CheckpointError, match=f"^{final}: cannot read the final parameters"):
        load_final_params(str(copy / "run"))


@pytest.mark.parametrize("config, match", [
    (None, "config.json: no such file"),
    ("{\"model\": ", "config.json: not a training run's config.json \\(JSONDecodeError"),
    ("[1, 2]", "config.json: not a training run's config.json \\("),
    ("{\"no_such_field\": 1}", "config.json: not a training run's config.json \\("),
])
def test_restore_names_a_bad_config_file(copy, config, match):
    if config is not None:
        (copy / "run" / "config.json").write_text(config)
    with pytest.raises(CheckpointError, match=match):
        restore(str(copy / "run"))


def test_metadata_is_what_it_was_at_save_even_if_the_caller_changes_it_after(tmp_path):
    """Orbax writes in the background: the metadata saved is a snapshot taken at ``save``
    (the seeds loop appends the next epoch to the same history lists right after saving)."""
    ckpt = Checkpointer(str(tmp_path / "checkpoints"))
    history = [{"epoch": e} for e in range(1, 4)]
    meta = {"epoch": 2, "history": [history]}
    ckpt.save(2, TREE, meta)
    history.append({"epoch": 4})
    meta["epoch"] = 3
    ckpt.close()
    ckpt = Checkpointer(str(tmp_path / "checkpoints"))
    try:
        saved = ckpt.restore_meta(2)
        assert saved == {"epoch": 2, "history": [[{"epoch": e} for e in (1, 2, 3)]]}
    finally:
        ckpt.close()
