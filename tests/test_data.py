"""Each parser on the real files (counts, shapes, value ranges) and on broken ones."""
import gzip
import shutil

import numpy as np
import pytest
import torch

from aevb.data import (MNIST_FILES, load_dataset, locate, read_amat, read_idx, read_image_folder,
                       split_indices)
from aevb.errors import AevbError


def test_mnist_counts_shapes_ranges_and_mean(data_dir):
    d = load_dataset("mnist", data_dir=data_dir, download=False)
    assert d.train.shape == (60000, 784) and d.test.shape == (10000, 784)
    assert d.shape == (28, 28) and d.train.dtype == torch.float32
    assert d.train.min() == 0 and d.train.max() == 1
    assert abs(float(d.train.mean()) - 0.1307) < 5e-4  # SOURCES.md
    assert set(d.train_labels.unique().tolist()) == set(range(10)) and len(d.test_labels) == 10000
    assert not d.is_binary


def test_fashion_mnist_has_6000_images_per_class(data_dir):
    d = load_dataset("fashion-mnist", data_dir=data_dir, download=False)
    assert d.train.shape == (60000, 784) and d.test.shape == (10000, 784)
    assert torch.bincount(d.train_labels).tolist() == [6000] * 10
    assert torch.bincount(d.test_labels).tolist() == [1000] * 10
    assert abs(float(d.train.mean()) - 0.2860) < 5e-4


def test_binarized_mnist_rows_are_binary_with_published_means(data_dir):
    d = load_dataset("binarized-mnist", data_dir=data_dir, download=False)
    assert d.train.shape == (50000, 784) and d.test.shape == (10000, 784)
    assert d.is_binary
    assert abs(float(d.train.mean()) - 0.1306) < 5e-4
    assert abs(float(d.test.mean()) - 0.1325) < 5e-4


def test_binarized_mnist_plain_amat_is_read_like_the_gzipped_one(data_dir, tmp_path):
    src = data_dir / "binarized_mnist" / "binarized_mnist_valid.amat.gz"
    plain = tmp_path / "valid.amat"
    with gzip.open(src) as f:
        plain.write_bytes(f.read())
    a, b = read_amat(src), read_amat(plain)
    assert a.shape == (10000, 784) and np.array_equal(a, b)


def test_frey_face_images_and_fixed_split(data_dir):
    d = load_dataset("frey-face", data_dir=data_dir, download=False, seed=3)
    assert d.shape == (28, 20)
    assert len(d.train) + len(d.test) == 1965 and len(d.test) == 196
    raw = torch.cat([d.train, d.test]) * 255
    assert float(raw.min()) == pytest.approx(8) and float(raw.max()) == pytest.approx(238)
    again = load_dataset("frey-face", data_dir=data_dir, download=False, seed=3)
    other = load_dataset("frey-face", data_dir=data_dir, download=False, seed=4)
    assert torch.equal(d.test, again.test) and not torch.equal(d.test, other.test)


def test_bundled_digits_need_no_files(tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.delenv("AEVB_DATA", raising=False)
    d = load_dataset("digits", download=False)
    assert len(d.train) + len(d.test) == 1797 and d.shape == (8, 8)
    assert d.train.max() == 1 and d.train.min() == 0


def test_split_is_a_partition():
    train, test = split_indices(100, 0.25, seed=0)
    assert len(test) == 25 and sorted(np.concatenate([train, test]).tolist()) == list(range(100))


def _copy_mnist(data_dir, tmp_path):
    shutil.copytree(data_dir / "mnist", tmp_path / "mnist")
    for f in (tmp_path / "mnist").iterdir():
        f.chmod(0o644)
    return tmp_path / "mnist"


def test_checksum_mismatch_is_refused(data_dir, tmp_path):
    folder = _copy_mnist(data_dir, tmp_path)
    target = folder / "t10k-labels-idx1-ubyte.gz"
    raw = bytearray(target.read_bytes())
    raw[-10] ^= 0xFF
    target.write_bytes(bytes(raw))
    with pytest.raises(AevbError, match="SHA-256"):
        load_dataset("mnist", data_dir=tmp_path, download=False)


def test_data_dir_comes_before_aevb_data(data_dir, tmp_path, monkeypatch):
    folder = _copy_mnist(data_dir, tmp_path)
    monkeypatch.setenv("AEVB_DATA", str(data_dir))
    found = locate(MNIST_FILES["t10k-labels-idx1-ubyte.gz"], data_dir=tmp_path, download=False)
    assert found == folder / "t10k-labels-idx1-ubyte.gz"


def test_missing_file_without_download_is_a_clear_error(tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.delenv("AEVB_DATA", raising=False)
    with pytest.raises(AevbError, match="not found"):
        load_dataset("mnist", data_dir=tmp_path, download=False)


def test_truncated_gzip_is_refused(data_dir, tmp_path):
    raw = (data_dir / "mnist" / "t10k-images-idx3-ubyte.gz").read_bytes()
    cut = tmp_path / "cut.gz"
    cut.write_bytes(raw[: len(raw) // 2])
    with pytest.raises(AevbError, match="cannot read"):
        read_idx(cut)


def test_wrong_idx_magic_and_wrong_size_are_refused(tmp_path):
    bad = tmp_path / "bad.idx"
    bad.write_bytes(b"\x00\x00\x0d\x03" + (2).to_bytes(4, "big") * 3 + bytes(8))
    with pytest.raises(AevbError, match="magic"):
        read_idx(bad)
    short = tmp_path / "short.idx"
    short.write_bytes(b"\x00\x00\x08\x03" + (2).to_bytes(4, "big") * 3 + bytes(7))
    with pytest.raises(AevbError, match="size"):
        read_idx(short)
    good = tmp_path / "good.idx"
    good.write_bytes(b"\x00\x00\x08\x03" + (2).to_bytes(4, "big") * 3 + bytes(range(8)))
    assert read_idx(good).tolist() == [[[0, 1], [2, 3]], [[4, 5], [6, 7]]]


def test_malformed_amat_is_refused(tmp_path):
    bad = tmp_path / "bad.amat"
    bad.write_text("0 1 0\n")
    with pytest.raises(AevbError, match="784"):
        read_amat(bad)


def test_user_array_uint8_and_float(tmp_path):
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, size=(50, 6, 5), dtype=np.uint8)
    np.save(tmp_path / "u8.npy", images)
    d = load_dataset(str(tmp_path / "u8.npy"), test_fraction=0.2)
    assert d.shape == (6, 5) and len(d.train) == 40 and len(d.test) == 10
    assert torch.allclose(torch.sort(torch.cat([d.train, d.test]).flatten())[0],
                          torch.sort(torch.from_numpy(images.reshape(50, -1) / 255.0)
                                     .float().flatten())[0])
    binary = (rng.random((30, 12)) < 0.5).astype(np.float64)
    np.savez(tmp_path / "b.npz", x=binary, y=np.arange(30) % 3)
    d = load_dataset(str(tmp_path / "b.npz"))
    assert d.is_binary and d.shape == (12,) and d.train_labels is not None


@pytest.mark.parametrize("array, message", [
    (np.full((4, 3), 2.0), r"\[0, 1\]"),
    (np.array([[0.5, np.nan]]), "NaN"),
    (np.zeros((0, 3)), "N > 0"),
    (np.zeros(5), "shape"),
    (np.array([["a", "b"]]), "dtype"),
])
def test_bad_user_arrays_are_refused(tmp_path, array, message):
    np.save(tmp_path / "bad.npy", array)
    with pytest.raises(AevbError, match=message):
        load_dataset(str(tmp_path / "bad.npy"))


def test_image_folder(tmp_path):
    from PIL import Image

    rng = np.random.default_rng(0)
    for i in range(12):
        Image.fromarray(rng.integers(0, 256, (7, 9), dtype=np.uint8)).save(tmp_path / f"{i}.png")
    assert read_image_folder(tmp_path).shape == (12, 7, 9)
    d = load_dataset(str(tmp_path))
    assert d.shape == (7, 9) and len(d.train) + len(d.test) == 12
    Image.fromarray(np.zeros((8, 9), dtype=np.uint8)).save(tmp_path / "odd.png")
    with pytest.raises(AevbError, match="differs"):
        read_image_folder(tmp_path)


def test_empty_image_folder_and_unknown_name(tmp_path):
    with pytest.raises(AevbError, match="no PNG"):
        load_dataset(str(tmp_path))
    with pytest.raises(AevbError, match="unknown dataset"):
        load_dataset("cifar-100")


def test_amat_with_joined_digits_is_refused(tmp_path):
    bad = tmp_path / "joined.amat"
    bad.write_text("10 " + " ".join(["0"] * 782) + "\n")
    with pytest.raises(AevbError, match="0/1"):
        read_amat(bad)
