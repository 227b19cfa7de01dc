"""Loading by name: every resolution path, slicing, validation splits and the errors.

No test touches the network: the TFDS paths run under ``tfds.testing.mock_data`` or read a
tiny dataset that a test prepares itself, and the download is made to fail by hand.
"""

import contextlib
import gzip
import io
import logging
import os

import numpy as np
import PIL.Image
import pytest
import tensorflow_datasets as tfds
from tensorflow_datasets.testing import mocking

from cnn_jax import data
from cnn_jax.data import cache, sources
from tests.data.test_idx import idx_bytes

# ----------------------------------------------------------------------------- helpers


def fake_mnist_arrays(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    return rng.integers(0, 256, (n, 28, 28), np.uint8), rng.integers(0, 10, n).astype(np.uint8)


def write_idx_pair(folder, prefix: str, images, labels, *, compress=True, sep="-"):
    """Writes ``{prefix}-images-idx3-ubyte[.gz]`` and the labels file the way MNIST ships."""
    os.makedirs(folder, exist_ok=True)
    suffix = ".gz" if compress else ""
    for kind, array, rank in (("images", images, 3), ("labels", labels, 1)):
        content = idx_bytes(0x08, array.shape, array.tobytes())
        path = os.path.join(folder, f"{prefix}-{kind}{sep}idx{rank}-ubyte{suffix}")
        with open(path, "wb") as f:
            f.write(gzip.compress(content) if compress else content)


@pytest.fixture
def mnist_dir(tmp_path):
    """A folder with a 7-example train and 3-example test "mnist" as IDX files."""
    train, test = fake_mnist_arrays(7, 0), fake_mnist_arrays(3, 1)
    write_idx_pair(tmp_path, "train", *train)
    write_idx_pair(tmp_path, "t10k", *test)
    return tmp_path, train, test


@contextlib.contextmanager
def mock_tfds(monkeypatch, num_examples: int):
    """``tfds.testing.mock_data`` with a working batched read.

    TFDS 4.9 installs the mock's ``__getitems__`` as an unbound function, so a batched read
    under the mock fails with a missing argument; this replacement returns the same examples.
    """
    monkeypatch.setattr(mocking, "_getitems",
                        lambda keys, generator, serialized=False: [generator[k] for k in keys])
    with tfds.testing.mock_data(num_examples=num_examples):
        yield


def mark_prepared(root, name: str, version: str) -> None:
    """What a TFDS-prepared copy looks like to the loader's first step."""
    folder = root / name / version
    folder.mkdir(parents=True)
    (folder / "dataset_info.json").write_text("{}")


# ----------------------------------------------------------------------------- IDX path


def test_idx_files_in_data_dir_load_exactly(mnist_dir):
    folder, (train_x, train_y), (test_x, test_y) = mnist_dir
    train = data.load("mnist", "train", data_dir=str(folder), download=False)
    test = data.load("mnist", "test", data_dir=str(folder), download=False)
    np.testing.assert_array_equal(train.images, train_x[..., None])
    np.testing.assert_array_equal(train.labels, train_y)
    np.testing.assert_array_equal(test.images, test_x[..., None])
    assert train.labels.dtype == np.int32 and train.images.dtype == np.uint8
    assert train.source == f"idx:{folder}" and train.params is None
    assert train.info == sources.IDX_DATASETS["mnist"]


@pytest.mark.parametrize("compress, sep", [(False, "-"), (True, "."), (False, ".")])
def test_idx_in_a_named_subfolder_uncompressed_or_dot_named(tmp_path, compress, sep):
    images, labels = fake_mnist_arrays(4, 2)
    write_idx_pair(tmp_path / "mnist", "train", images, labels, compress=compress, sep=sep)
    ds = data.load("mnist", "train", data_dir=str(tmp_path), download=False)
    np.testing.assert_array_equal(ds.images[..., 0], images)
    assert ds.source == f"idx:{tmp_path / 'mnist'}"


def test_data_dir_may_start_with_a_tilde(mnist_dir, monkeypatch):
    folder = mnist_dir[0]
    monkeypatch.setenv("HOME", str(folder.parent))
    ds = data.load("mnist", "test", data_dir=f"~/{folder.name}", download=False)
    assert ds.source == f"idx:{folder}" and len(ds) == 3


def test_system_copy_is_used_when_no_data_dir_is_given(tmp_path, monkeypatch):
    images, labels = fake_mnist_arrays(5, 3)
    write_idx_pair(tmp_path / "system", "t10k", images, labels)
    monkeypatch.setitem(sources.SYSTEM_IDX_DIRS, "mnist", (str(tmp_path / "system"), "pkg"))
    monkeypatch.setenv("TFDS_DATA_DIR", str(tmp_path / "tfds"))
    ds = data.load("mnist", "test", download=False)
    np.testing.assert_array_equal(ds.labels, labels)
    assert ds.source == f"idx:{tmp_path / 'system'}"


@pytest.mark.parametrize(
    "labels_shape, labels_value, message",
    [((7,), 10, r"labels must lie in \[0, 10\), got \[.*, 10\]"),
     ((6,), 0, "expected 7 labels")],
)
def test_inconsistent_idx_pair_is_an_error_naming_the_labels_file(
        tmp_path, labels_shape, labels_value, message):
    images, _ = fake_mnist_arrays(7, 0)
    labels = np.full(labels_shape, labels_value, np.uint8)
    write_idx_pair(tmp_path, "train", images, labels)
    with pytest.raises(data.IdxError, match="train-labels-idx1-ubyte.gz") as err:
        data.load("mnist", "train", data_dir=str(tmp_path), download=False)
    assert err.match(message)


def test_images_of_the_wrong_size_are_an_error(tmp_path):
    write_idx_pair(tmp_path, "train", np.zeros((2, 27, 28), np.uint8), np.zeros(2, np.uint8))
    with pytest.raises(data.IdxError, match=r"train-images-idx3-ubyte.gz: expected uint8 images"):
        data.load("mnist", "train", data_dir=str(tmp_path), download=False)


def test_a_corrupt_idx_file_is_reported_not_skipped(mnist_dir):
    folder = mnist_dir[0]
    path = folder / "train-images-idx3-ubyte.gz"
    path.write_bytes(path.read_bytes()[:-30])
    with pytest.raises(data.IdxError, match="train-images-idx3-ubyte.gz: corrupt or truncated"):
        data.load("mnist", "train", data_dir=str(folder), download=False)


def test_idx_metadata_matches_what_tfds_declares():
    for name, info in sources.IDX_DATASETS.items():
        tfds_info = tfds.builder(name, data_dir="/nonexistent").info
        assert info.class_names == tuple(tfds_info.features["label"].names)
        assert info.image_shape == tfds_info.features["image"].shape


# ----------------------------------------------------------------------------- TFDS paths


def test_tfds_prepared_copy_comes_first(tmp_path, monkeypatch, mnist_dir):
    folder = mnist_dir[0]  # holds IDX files as well: the prepared copy must win
    mark_prepared(folder, "mnist", "3.0.1")
    with mock_tfds(monkeypatch, num_examples=6):
        ds = data.load("mnist", "train", data_dir=str(folder), download=False)
    assert ds.source == f"tfds:{folder}"
    assert ds.images.shape == (6, 28, 28, 1) and ds.labels.shape == (6,)
    assert ds.info == sources.IDX_DATASETS["mnist"]
    assert not list(folder.rglob("*.npz"))  # fake examples are never cached


def test_tfds_metadata_of_cifar10_from_a_prepared_copy(tmp_path, monkeypatch):
    mark_prepared(tmp_path, "cifar10", "3.0.2")
    with mock_tfds(monkeypatch, num_examples=5):
        ds = data.load("cifar10", "test", data_dir=str(tmp_path), download=False)
    assert ds.images.shape == (5, 32, 32, 3) and ds.images.dtype == np.uint8
    label = tfds.builder("cifar10").info.features["label"]
    assert ds.info.num_classes == 10 and ds.info.class_names == tuple(label.names)
    assert ((ds.labels >= 0) & (ds.labels < 10)).all()


def test_tfds_download_is_the_last_resort(tmp_path, monkeypatch):
    monkeypatch.setattr(sources, "tensorflow_installed", lambda: True)
    with mock_tfds(monkeypatch, num_examples=3):  # the mock's download_and_prepare is a no-op
        ds = data.load("cifar10", "train", data_dir=str(tmp_path))
    assert ds.source == f"tfds+download:{tmp_path}" and len(ds) == 3


class CnnJaxTestImages(tfds.core.GeneratorBasedBuilder):
    """A real TFDS dataset of 6x5x3 images whose pixels encode their example number."""

    VERSION = tfds.core.Version("1.0.0")
    SIZES = {"train": 12, "test": 4}

    @staticmethod
    def image(i: int) -> np.ndarray:
        return (np.arange(90).reshape(6, 5, 3) + 7 * i).astype(np.uint8)

    def _info(self):
        features = tfds.features.FeaturesDict({
            "image": tfds.features.Image(shape=(6, 5, 3)),
            "label": tfds.features.ClassLabel(names=["a", "b", "c"]),
        })
        return tfds.core.DatasetInfo(builder=self, features=features,
                                     supervised_keys=("image", "label"))

    def _split_generators(self, dl_manager):
        del dl_manager
        return {split: self._generate_examples(n) for split, n in self.SIZES.items()}

    def _generate_examples(self, n):
        for i in range(n):
            png = io.BytesIO()  # PNG bytes: TFDS would need TensorFlow to encode arrays
            PIL.Image.fromarray(self.image(i)).save(png, format="PNG")
            yield i, {"image": png.getvalue(), "label": i % 3}


@pytest.fixture
def prepared(tmp_path):
    """A real, TFDS-prepared copy of CnnJaxTestImages under tmp_path."""
    CnnJaxTestImages(data_dir=str(tmp_path), file_format="array_record").download_and_prepare()
    return tmp_path


def test_a_real_tfds_prepared_copy_is_read_without_tensorflow(prepared):
    ds = data.load("cnn_jax_test_images", "train", data_dir=str(prepared), download=False)
    assert ds.source == f"tfds:{prepared}"
    assert ds.info == data.DatasetInfo("cnn_jax_test_images", 3, ("a", "b", "c"), (6, 5, 3))
    ids = (ds.images[:, 0, 0, 0].astype(int)) // 7  # TFDS stores the examples shuffled
    assert sorted(ids) == list(range(12))
    for image, label, i in zip(ds.images, ds.labels, ids, strict=True):
        np.testing.assert_array_equal(image, CnnJaxTestImages.image(i))
        assert label == i % 3


def test_prepared_splits_are_cached_and_the_cache_is_checked(prepared, monkeypatch):
    folder = prepared / "cnn_jax_test_images" / "1.0.0"
    first = data.load("cnn_jax_test_images", "test", data_dir=str(prepared))
    assert sorted(p.name for p in folder.glob("*.npz")) == ["cnn_jax-test.npz"]
    assert not list(folder.glob(".tmp-*"))

    decoded = []
    real_decode = sources._decode_all
    monkeypatch.setattr(sources, "_decode_all", lambda *a: decoded.append(1) or real_decode(*a))
    again = data.load("cnn_jax_test_images", "test", data_dir=str(prepared))
    assert not decoded  # served from the cache
    np.testing.assert_array_equal(again.images, first.images)
    np.testing.assert_array_equal(again.labels, first.labels)

    info = folder / "dataset_info.json"
    info.write_text(info.read_text() + " ")  # another copy: the cache is stale
    data.load("cnn_jax_test_images", "test", data_dir=str(prepared))
    (folder / "cnn_jax-test.npz").write_bytes(b"not an npz file")  # unreadable: decode again
    data.load("cnn_jax_test_images", "test", data_dir=str(prepared))
    assert len(decoded) == 2
    assert np.load(folder / "cnn_jax-test.npz")["images"].shape == (4, 6, 5, 3)


def test_mocked_examples_over_real_metadata_are_not_cached(prepared, monkeypatch):
    monkeypatch.setattr(mocking, "_getitems",
                        lambda keys, generator, serialized=False: [generator[k] for k in keys])
    with tfds.testing.mock_data(num_examples=2, policy=tfds.testing.MockPolicy.USE_FILES,
                                data_dir=str(prepared)):
        ds = data.load("cnn_jax_test_images", "train", data_dir=str(prepared))
    assert len(ds) == 2
    assert not list(prepared.rglob("*.npz"))


def test_cache_write_is_atomic(tmp_path, monkeypatch):
    assert not cache.write(str(tmp_path / "absent" / "x.npz"), np.zeros(1), np.zeros(1), "s")

    def broken(f, **arrays):
        f.write(b"half a file")
        raise OSError("disk full")

    monkeypatch.setattr(np, "savez", broken)
    with pytest.raises(OSError, match="disk full"):
        cache.write(str(tmp_path / "x.npz"), np.zeros(1), np.zeros(1), "s")
    assert not list(tmp_path.iterdir())


def test_an_unreadable_prepared_copy_falls_back_to_idx_and_says_so(mnist_dir, caplog):
    folder, (train_x, _), _ = mnist_dir
    mark_prepared(folder, "mnist", "3.0.1")  # an empty dataset_info.json: TFDS cannot read it
    with caplog.at_level(logging.WARNING):
        ds = data.load("mnist", "train", data_dir=str(folder), download=False)
    assert ds.source == f"idx:{folder}"
    np.testing.assert_array_equal(ds.images[..., 0], train_x)
    copy = folder / "mnist" / "3.0.1"
    assert f"TFDS-prepared copy under {folder / 'mnist'} ({copy}): failed with" in caplog.text


# ----------------------------------------------------------------------------- not found


def _not_found(name, tmp_path, **kwargs) -> str:
    with pytest.raises(data.DatasetNotFound) as err:
        data.load(name, "train", data_dir=str(tmp_path), **kwargs)
    return str(err.value)


def _assert_three_fixes(message: str):
    assert "Fix it in one of three ways:" in message
    assert "pass data_dir=DIR" in message and "download=True" in message
    assert "pip install tensorflow" in message


def test_not_found_without_download_lists_each_attempt(tmp_path):
    message = _not_found("mnist", tmp_path, download=False)
    assert f"1. TFDS-prepared copy: none under {tmp_path / 'mnist'}" in message
    assert f"2. IDX files in {tmp_path}: no train-images-idx3-ubyte[.gz]" in message
    assert f"3. IDX files in {tmp_path / 'mnist'}: no such folder" in message
    assert "4. TFDS download: not allowed (download=False)" in message
    assert "none is known for 'mnist'" in message
    _assert_three_fixes(message)


def test_not_found_when_tensorflow_is_missing(tmp_path, monkeypatch):
    monkeypatch.setattr(sources, "tensorflow_installed", lambda: False)
    message = _not_found("mnist", tmp_path)
    assert "TFDS download: skipped, TensorFlow is not installed" in message
    _assert_three_fixes(message)


def test_not_found_when_the_download_fails_offline(tmp_path, monkeypatch):
    def offline(self, *args, **kwargs):
        raise ConnectionError(f"Failed to resolve 'storage.googleapis.com' for {self.name}")

    monkeypatch.setattr(sources, "tensorflow_installed", lambda: True)
    monkeypatch.setattr(tfds.core.DatasetBuilder, "download_and_prepare", offline)
    message = _not_found("mnist", tmp_path)
    assert (f"TFDS download into {tmp_path}: failed with ConnectionError: Failed to resolve "
            "'storage.googleapis.com' for mnist") in message
    _assert_three_fixes(message)


def test_fashion_mnist_not_found_points_to_the_debian_package(tmp_path, monkeypatch):
    monkeypatch.setitem(sources.SYSTEM_IDX_DIRS, "fashion_mnist",
                        (str(tmp_path / "absent"), "dataset-fashion-mnist"))
    message = _not_found("fashion_mnist", tmp_path, download=False)
    assert f"IDX files in {tmp_path / 'absent'}: no such folder" in message
    assert "sudo apt-get install dataset-fashion-mnist" in message


# ----------------------------------------------------------------------------- arguments


@pytest.mark.parametrize("name", ["nope", "", "MNIST"])
def test_unknown_name_is_a_value_error(name):
    with pytest.raises(ValueError, match=f"unknown dataset name {name!r}; expected one of"):
        data.load(name, "train")


@pytest.mark.parametrize("split", ["validation", "train[:", "train[a:b]", "Train", "train[::2]"])
def test_bad_split_is_a_value_error(split):
    with pytest.raises(ValueError, match=r"split must be one of \('train', 'test'\).*got "
                       + repr(split).replace("[", r"\[")):
        data.load("synthetic_bars", split)


def test_split_slices_by_count_and_percent(mnist_dir):
    folder, (train_x, _), _ = mnist_dir
    full = train_x[..., None]  # 7 examples

    def images(split):
        return data.load("mnist", split, data_dir=str(folder), download=False).images

    np.testing.assert_array_equal(images("train[2:5]"), full[2:5])
    np.testing.assert_array_equal(images("train[-2:]"), full[5:])
    # 7 * 50% = 3.5 rounds away from zero to 4; 7 * 10% = 0.7 rounds to 1.
    np.testing.assert_array_equal(images("train[:50%]"), full[:4])
    np.testing.assert_array_equal(images("train[50%:]"), full[4:])
    np.testing.assert_array_equal(images("train[-10%:]"), full[6:])
    np.testing.assert_array_equal(images("train[:100%]"), full)
    with pytest.raises(ValueError, match="percentages must lie in"):
        images("train[:150%]")


# ----------------------------------------------------------------------------- load_splits


def test_validation_on_test_is_the_default():
    train, valid = data.load_splits("synthetic_bars")
    np.testing.assert_array_equal(train.images, data.load("synthetic_bars", "train").images)
    np.testing.assert_array_equal(valid.images, data.load("synthetic_bars", "test").images)


def test_holdout_is_disjoint_covering_stratified_and_seeded():
    full = data.load("synthetic_bars", "train")
    train, valid = data.load_splits("synthetic_bars", validation="holdout",
                                    validation_fraction=0.1, seed=3)
    assert len(train) + len(valid) == len(full)
    # Each image appears in exactly one part (the synthetic images are all distinct).
    rows = {im.tobytes(): i for i, im in enumerate(full.images)}
    assert len(rows) == len(full)
    train_rows = [rows[im.tobytes()] for im in train.images]
    valid_rows = [rows[im.tobytes()] for im in valid.images]
    assert sorted(train_rows + valid_rows) == list(range(len(full)))
    assert train_rows == sorted(train_rows) and valid_rows == sorted(valid_rows)
    np.testing.assert_array_equal(full.labels[valid_rows], valid.labels)
    # 1024 examples per class -> round(102.4) = 102 of each class held out.
    np.testing.assert_array_equal(np.bincount(valid.labels), [102] * 4)
    assert "holdout(fraction=0.1, seed=3):valid" in valid.source

    again = data.load_splits("synthetic_bars", validation="holdout", seed=3)[1]
    other = data.load_splits("synthetic_bars", validation="holdout", seed=4)[1]
    np.testing.assert_array_equal(again.images, valid.images)
    assert not np.array_equal(other.images, valid.images)


@pytest.mark.parametrize("fraction", [0.0, 1.0, -0.1, 1.5])
def test_holdout_fraction_outside_zero_one_is_rejected(fraction):
    with pytest.raises(ValueError, match=f"validation_fraction must lie in .*got {fraction!r}"):
        data.load_splits("synthetic_bars", validation="holdout", validation_fraction=fraction)


def test_holdout_that_leaves_nothing_is_rejected():
    with pytest.raises(ValueError, match="leaves an empty train or validation part"):
        data.load_splits("synthetic_bars", validation="holdout", validation_fraction=1e-4)


def test_unknown_validation_is_rejected():
    with pytest.raises(ValueError, match="validation must be one of .*got 'train'"):
        data.load_splits("synthetic_bars", validation="train")


# ----------------------------------------------------------------------------- bad files


def _flip_middle_byte(path):
    content = bytearray(path.read_bytes())
    content[len(content) // 2] ^= 0x01
    path.write_bytes(bytes(content))


def _rewrite_with(**changes):
    def rewrite(path):
        with np.load(path) as z:
            arrays = {k: z[k] for k in z.files}
        np.savez(path, **{**arrays, **changes})  # keeps the right fingerprint
    return rewrite


@pytest.mark.parametrize("damage", [
    lambda p: p.write_bytes(p.read_bytes()[: p.stat().st_size // 2]),  # truncated
    _flip_middle_byte,  # one bit in the image bytes: the zip CRC no longer matches
    _rewrite_with(images=np.zeros((3, 6, 5, 3), np.uint8)),  # one example short
    _rewrite_with(labels=np.full(4, 7, np.int32)),  # labels outside the 3 classes
    _rewrite_with(labels=np.zeros(4, np.int64)),  # another dtype
], ids=["truncated", "bit_flip", "short", "label_range", "label_dtype"])
def test_a_corrupt_cache_is_rebuilt_with_a_log_line(prepared, damage, caplog):
    folder = prepared / "cnn_jax_test_images" / "1.0.0"
    first = data.load("cnn_jax_test_images", "test", data_dir=str(prepared))
    cached = folder / "cnn_jax-test.npz"
    damage(cached)
    with caplog.at_level(logging.WARNING):
        again = data.load("cnn_jax_test_images", "test", data_dir=str(prepared))
    np.testing.assert_array_equal(again.images, first.images)  # decoded again, not the cache
    np.testing.assert_array_equal(again.labels, first.labels)
    assert f"data cache {cached} is corrupt" in caplog.text and "rewriting it" in caplog.text
    with np.load(cached) as z:  # rewritten whole
        np.testing.assert_array_equal(z["images"], first.images)
        np.testing.assert_array_equal(z["labels"], first.labels)


@pytest.mark.parametrize("damage", [
    lambda p: p.write_bytes(p.read_bytes()[: p.stat().st_size // 2]),  # truncated shard
    lambda p: p.write_bytes(p.read_bytes()[:300] + bytes([p.read_bytes()[300] ^ 1])
                            + p.read_bytes()[301:]),  # one bit in a record: hash mismatch
    lambda p: p.unlink(),  # a missing shard
], ids=["truncated", "bit_flip", "missing_shard"])
def test_a_corrupt_prepared_copy_is_an_error_naming_it(prepared, damage):
    folder = prepared / "cnn_jax_test_images" / "1.0.0"
    (shard,) = folder.glob("*-train.array_record*")
    damage(shard)
    with pytest.raises(data.DatasetNotFound) as err:
        data.load("cnn_jax_test_images", "train", data_dir=str(prepared), download=False)
    message = str(err.value)
    assert f"({folder}): failed with" in message
    assert "it is corrupt or incomplete: delete it to prepare it again" in message
    assert not list(folder.glob("*.npz"))  # nothing was cached from it
