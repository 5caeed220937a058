"""Datasets: where their files are found, how each format is parsed, and the train/test split.

Every dataset becomes a `Dataset` of float32 tensors with values in [0, 1], one flattened data
point per row. Files of the known datasets are looked up under --data-dir, then $AEVB_DATA,
then ~/.cache/aevb, always with the layout of SOURCES.md (mnist/, fashion_mnist/,
binarized_mnist/, frey/, original file names) and verified by SHA-256; missing ones are
downloaded into the cache with pooch.
"""
from __future__ import annotations

import gzip
import os
import struct
import warnings
import zlib
import dataclasses
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from ..errors import AevbError


@dataclass(frozen=True)
class Dataset:
    """train [N, D] and test [M, D] float32 in [0, 1]; labels int64 or None."""

    name: str
    train: torch.Tensor
    test: torch.Tensor
    shape: tuple[int, ...]
    train_labels: torch.Tensor | None = None
    test_labels: torch.Tensor | None = None

    @property
    def is_binary(self) -> bool:
        """True when every value is exactly 0 or 1 (the Bernoulli decoder needs no binarizing)."""
        return all(bool(((t == 0) | (t == 1)).all()) for t in (self.train, self.test))


@dataclass(frozen=True)
class RemoteFile:
    path: str  # relative to a data directory
    sha256: str
    urls: tuple[str, ...]


def _idx_files(folder: str, hashes: dict[str, str], mirrors: tuple[str, ...]):
    return {
        name: RemoteFile(f"{folder}/{name}", sha, tuple(m + name for m in mirrors))
        for name, sha in hashes.items()
    }


MNIST_FILES = _idx_files("mnist", {
    "train-images-idx3-ubyte.gz": "440fcabf73cc546fa21475e81ea370265605f56be210a4024d2ca8f203523609",
    "train-labels-idx1-ubyte.gz": "3552534a0a558bbed6aed32b30c495cca23d567ec52cac8be1a0730e8010255c",
    "t10k-images-idx3-ubyte.gz": "8d422c7b0a1c1c79245a5bcf07fe86e33eeafee792b84584aec276f5a2dbc4e6",
    "t10k-labels-idx1-ubyte.gz": "f7ae60f92e00ec6debd23a6088c31dbd2371eca3ffa0defaefb259924204aec6",
}, ("https://ossci-datasets.s3.amazonaws.com/mnist/",
    "https://storage.googleapis.com/cvdf-datasets/mnist/",
    "http://yann.lecun.com/exdb/mnist/"))
FASHION_FILES = _idx_files("fashion_mnist", {
    "train-images-idx3-ubyte.gz": "3aede38d61863908ad78613f6a32ed271626dd12800ba2636569512369268a84",
    "train-labels-idx1-ubyte.gz": "a04f17134ac03560a47e3764e11b92fc97de4d1bfaf8ba1a3aa29af54cc90845",
    "t10k-images-idx3-ubyte.gz": "346e55b948d973a97e58d2351dde16a484bd415d4595297633bb08f03db6a073",
    "t10k-labels-idx1-ubyte.gz": "67da17c76eaffca5446c3361aaab5c3cd6d1c2608764d35dfb1850b086bf8dd5",
}, ("http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",))
# The gzipped copies (as in shared/data) and the plain originals (the only download) differ in
# hash; either is accepted.
_AMAT_URL = "http://www.cs.toronto.edu/~larocheh/public/datasets/binarized_mnist/"
BINARIZED_FILES = {
    split: (
        RemoteFile(f"binarized_mnist/binarized_mnist_{split}.amat.gz", gz, ()),
        RemoteFile(f"binarized_mnist/binarized_mnist_{split}.amat", plain,
                   (f"{_AMAT_URL}binarized_mnist_{split}.amat",)),
    )
    for split, gz, plain in [
        ("train", "af247bd6075cf9adc4715459dcd5f13eaa99a2c92d8d81379a05da94770b6c0e",
         "ad693b29f94c14277b095f5238ddefbbdaaae0939789dd2f4f0205278cee3e4d"),
        ("valid", "533b71bc0198f4d73c54ae5fe6c96fc08dc3cf1b3fae24c5521dbc0452507e38",
         "1de3d397c40fe8eeb33dafd4099a1f665ec01e96d9be234aaeeac8a34930e2e2"),
        ("test", "32a3c54d03504632bf9f131b4a148c7567aa6fc87da017049b044bdc14c2a0f2",
         "e6687bfea3f820c174f33b7865140b2a2dd2930ef786f35d45795fc193b5ab2c"),
    ]
}
FREY_FILE = RemoteFile(
    "frey/frey_rawface.mat",
    "265a83a23adb081755cd3de375509828e690324d1d60f076b8ecebc840d59c64",
    ("https://cs.nyu.edu/~roweis/data/frey_rawface.mat",),
)


# ---------------------------------------------------------------- locating and fetching files

def search_dirs(data_dir: str | os.PathLike | None = None) -> list[Path]:
    """Where data files are looked for, in order: data_dir, $AEVB_DATA, ~/.cache/aevb."""
    dirs = [Path(data_dir)] if data_dir else []
    if os.environ.get("AEVB_DATA"):
        dirs.append(Path(os.environ["AEVB_DATA"]))
    dirs.append(Path.home() / ".cache" / "aevb")
    return dirs


def sha256_of(path: Path) -> str:
    import hashlib

    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def locate(candidates, data_dir=None, download: bool = True) -> Path:
    """The first existing candidate file (a RemoteFile or a tuple of alternatives), verified.

    A file that exists with the wrong SHA-256 is refused, never silently replaced.
    """
    candidates = candidates if isinstance(candidates, tuple) else (candidates,)
    dirs = search_dirs(data_dir)
    for root in dirs:
        for rf in candidates:
            path = root / rf.path
            if path.is_file():
                if sha256_of(path) != rf.sha256:
                    raise AevbError(f"{path}: SHA-256 does not match the published checksum "
                                    "(corrupt or different file); delete or replace it")
                return path
    wanted = candidates[0].path
    if not download or not any(rf.urls for rf in candidates):
        raise AevbError(f"data file {wanted} not found under {', '.join(map(str, dirs))}")
    return _download([rf for rf in candidates if rf.urls][0], dirs[-1])


def _download(rf: RemoteFile, cache: Path) -> Path:
    try:
        import pooch
    except ImportError:
        raise AevbError(f"data file {rf.path} not found, and downloading it needs the pooch "
                        "package (pip install pooch), or give --data-dir / AEVB_DATA") from None

    target = cache / rf.path
    errors = []
    for url in rf.urls:
        try:
            fetched = pooch.retrieve(url, known_hash=f"sha256:{rf.sha256}",
                                     fname=target.name, path=target.parent, progressbar=False)
            return Path(fetched)
        except Exception as err:  # every mirror is tried before giving up
            errors.append(f"{url}: {type(err).__name__}")
    raise AevbError(f"could not download {rf.path} ({'; '.join(errors)})")


# ---------------------------------------------------------------- parsers, one per format

def _read_bytes(path: Path) -> bytes:
    try:
        if path.suffix == ".gz":
            with gzip.open(path, "rb") as f:
                return f.read()
        return path.read_bytes()
    except (OSError, EOFError, zlib.error) as err:
        raise AevbError(f"{path}: cannot read ({err})") from None


def read_idx(path: Path) -> np.ndarray:
    """An IDX file (LeCun's format, optionally gzipped) of unsigned bytes: magic 0x0000080N."""
    raw = _read_bytes(Path(path))
    if len(raw) < 4 or raw[:3] != b"\x00\x00\x08" or not 1 <= raw[3] <= 4:
        raise AevbError(f"{path}: not an IDX file of unsigned bytes (bad magic number)")
    ndim = raw[3]
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise AevbError(f"{path}: truncated IDX header")
    shape = struct.unpack(f">{ndim}I", raw[4:header])
    if len(raw) != header + int(np.prod(shape)):
        raise AevbError(f"{path}: IDX size does not match its header shape {shape}")
    return np.frombuffer(raw, dtype=np.uint8, offset=header).reshape(shape)


def read_amat(path: Path) -> np.ndarray:
    """Larochelle & Murray's .amat text: one data point per line, 784 values of 0 or 1."""
    raw = np.frombuffer(_read_bytes(Path(path)), dtype=np.uint8)
    # The text is only "0", "1", spaces and newlines; anything else is not this format.
    is_digit = (raw == ord("0")) | (raw == ord("1"))
    if not np.all(is_digit | (raw == ord(" ")) | (raw == ord("\n")) | (raw == ord("\r"))) \
            or np.any(is_digit[1:] & is_digit[:-1]):
        raise AevbError(f"{path}: .amat files hold only 0/1 values separated by spaces")
    values = raw[is_digit] - ord("0")
    text_lines = [line for line in bytes(raw).splitlines() if line.strip()]
    if not text_lines or any(len(line.split()) != 784 for line in (text_lines[0], text_lines[-1])) \
            or values.size != len(text_lines) * 784:
        raise AevbError(f"{path}: expected lines of 784 binary values")
    return values.astype(np.float32).reshape(len(text_lines), 784)


def read_frey(path: Path) -> np.ndarray:
    """frey_rawface.mat: variable `ff`, uint8 [560, 1965]; returns images [1965, 28, 20]."""
    import scipy.io

    try:
        ff = scipy.io.loadmat(str(path))["ff"]
    except Exception as err:  # scipy raises several types for broken .mat files
        raise AevbError(f"{path}: cannot read MAT file ({type(err).__name__})") from None
    if ff.shape[0] != 560 or ff.dtype != np.uint8:
        raise AevbError(f"{path}: expected uint8 `ff` with 560 rows, got {ff.dtype} {ff.shape}")
    return np.ascontiguousarray(ff.T).reshape(-1, 28, 20)


def read_array(path: Path) -> tuple[np.ndarray, np.ndarray | None]:
    """A user's .npy or .npz: [N, H, W] or [N, D], uint8 (grey levels 0..255, or binary 0/1)
    or float in [0, 1]; npz may add labels."""
    labels = None
    try:
        loaded = np.load(path, allow_pickle=False)
    except Exception as err:
        raise AevbError(f"{path}: cannot read array ({type(err).__name__}: {err})") from None
    if isinstance(loaded, np.lib.npyio.NpzFile):
        keys = loaded.files
        key = next((k for k in ("x", "X", "data", "arr_0") if k in keys), keys[0] if keys else None)
        if key is None:
            raise AevbError(f"{path}: empty .npz archive")
        label_key = next((k for k in ("y", "labels") if k in keys), None)
        try:
            array = loaded[key]
            labels = loaded[label_key] if label_key else None
        except (ValueError, OSError, EOFError) as err:  # object arrays need pickle: refused
            raise AevbError(f"{path}: cannot read array ({err})") from None
        if labels is not None:
            labels = _check_labels(labels, f"{path}[{label_key!r}]")
    else:
        array = loaded
    return _check_user_array(array, str(path)), labels


# PIL modes read as they are stored; any other would be changed by the conversion to RGB
# without a word (16-bit levels clipped to 255, transparency dropped, CMYK mapped naively).
_READ_AS_IS = {"1", "L", "RGB"}
_SIXTEEN_BIT = {"I;16", "I;16L", "I;16B", "I;16N"}


def _read_image(f: Path) -> np.ndarray:
    """One image as uint8 [H, W, 3], or float32 [H, W, 3] in [0, 1] for 16-bit grey levels
    (read at their depth: value / 65535); AevbError for what cannot be read faithfully."""
    from PIL import Image, UnidentifiedImageError

    with warnings.catch_warnings():
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        try:
            image = Image.open(f)
            mode = image.mode
            if mode == "P":
                image = image.convert("RGBA" if "transparency" in image.info else "RGB")
                mode = image.mode
            if mode in ("RGBA", "LA", "PA") and image.getchannel("A").getextrema() == (255, 255):
                image, mode = image.convert("RGB"), "RGB"  # opaque: the alpha changes nothing
            if mode in _READ_AS_IS:
                if getattr(image, "format", None) == "PNG" and _png_bit_depth(f) == 16:
                    raise AevbError(f"{f}: a 16-bit colour PNG, which Pillow reads at 8 bits; "
                                    "save it as 8-bit or 16-bit grey")
                return np.asarray(image.convert("RGB"))
            if mode in _SIXTEEN_BIT or (mode == "I" and _png_bit_depth(f) == 16):
                grey = np.asarray(image, dtype=np.float64) / 65535.0  # [H, W]
                if grey.min() < 0 or grey.max() > 1:
                    raise AevbError(f"{f}: 16-bit levels outside 0..65535")
                return np.repeat(grey.astype(np.float32)[..., None], 3, axis=2)
        except AevbError:
            raise
        except (Image.DecompressionBombWarning, Image.DecompressionBombError):
            raise AevbError(f"{f}: an image of more than {Image.MAX_IMAGE_PIXELS:,} pixels "
                            "(Pillow's limit against decompression bombs); resize it") from None
        except (UnidentifiedImageError, OSError, ValueError) as err:
            raise AevbError(f"{f}: cannot read image ({err})") from None
    what = {"P": "a palette with transparency", "PA": "a palette with transparency",
            "LA": "transparency", "RGBA": "transparency", "CMYK": "CMYK colour",
            "F": "32-bit float levels", "I": "32-bit integer levels"}.get(mode, f"mode {mode}")
    raise AevbError(f"{f}: the image has {what}, which converting to RGB would change "
                    "silently; save it as 8-bit grey or RGB (or 16-bit grey)")


def _png_bit_depth(f: Path) -> int | None:
    """The bit depth in a PNG's header (its byte 24), None if it is not a PNG."""
    try:
        with open(f, "rb") as handle:
            head = handle.read(25)
    except OSError:
        return None
    return head[24] if len(head) == 25 and head[:8] == b"\x89PNG\r\n\x1a\n" else None


def _check_labels(labels: np.ndarray, where: str) -> np.ndarray:
    """Class labels: one whole number per data point."""
    if labels.ndim != 1 or labels.dtype.kind not in "iub":
        if labels.ndim == 1 and labels.dtype.kind == "f" and np.isfinite(labels).all() \
                and (labels == np.round(labels)).all():
            return labels.astype(np.int64)
        raise AevbError(f"{where}: labels must be one whole number per data point, got "
                        f"dtype {labels.dtype} and shape {labels.shape}")
    return labels.astype(np.int64)


def read_image_folder(path: Path) -> np.ndarray:
    """Every PNG/JPEG in a folder, all of one size: uint8 [N, H, W] where every image is
    grey (R = G = B), else uint8 [N, 3, H, W] in colour, channels first (images that hold only
    the values 0 and 1 are binary data, as for arrays). 16-bit grey images are read at their
    depth, as float32 in [0, 1]; images whose mode would change on conversion are refused."""
    files = sorted(p for p in Path(path).iterdir()
                   if p.suffix.lower() in {".png", ".jpg", ".jpeg"})
    if not files:
        raise AevbError(f"{path}: no PNG or JPEG images in this folder")
    images = []
    for f in files:
        images.append(_read_image(f))  # [H, W, 3]
        if images[-1].shape != images[0].shape:
            raise AevbError(f"{f}: size {images[-1].shape[::-1]} differs from "
                            f"{files[0].name}'s {images[0].shape[::-1]}; resize them to one size")
    if len({im.dtype for im in images}) > 1:  # 8-bit beside 16-bit: all as float in [0, 1]
        images = [im.astype(np.float32) / (255.0 if im.dtype == np.uint8 else 1.0)
                  for im in images]
    rgb = np.stack(images)  # [N, H, W, 3]
    if (rgb == rgb[..., :1]).all():  # grey: one channel, the values PIL's "L" gives for R = G = B
        return np.ascontiguousarray(rgb[..., 0])
    return np.ascontiguousarray(rgb.transpose(0, 3, 1, 2))


def _check_user_array(array: np.ndarray, where: str) -> np.ndarray:
    if array.ndim == 4 and array.shape[-1] == 3 and array.shape[1] != 3:
        array = np.ascontiguousarray(array.transpose(0, 3, 1, 2))  # [N, H, W, 3] -> [N, 3, H, W]
    if array.ndim == 4 and array.shape[1] == 1:
        array = array[:, 0]  # one channel: [N, H, W]
    if array.ndim not in (2, 3, 4) or (array.ndim == 4 and array.shape[1] != 3) \
            or array.shape[0] == 0 or array.size == 0:
        raise AevbError(f"{where}: expected shape [N, D], [N, H, W], [N, 3, H, W] or "
                        f"[N, H, W, 3] with N > 0, got {array.shape}")
    if array.dtype == np.uint8:
        return array
    if array.dtype.kind not in "fiub":
        raise AevbError(f"{where}: expected uint8 or float values, got dtype {array.dtype}")
    array = array.astype(np.float32)
    if not np.isfinite(array).all():
        raise AevbError(f"{where}: contains NaN or infinite values")
    if array.min() < 0 or array.max() > 1:
        raise AevbError(f"{where}: float values must lie in [0, 1] "
                        f"(found {array.min():g} to {array.max():g}); scale them first")
    return array


# ---------------------------------------------------------------- datasets by name

def binary_uint8(images: np.ndarray) -> bool:
    """Whether a uint8 array holds only 0 and 1: binary data (the usual way to store binarized
    MNIST), not grey levels out of 255, which would make it near-blank images."""
    return images.dtype == np.uint8 and int(images.max(initial=0)) <= 1


def _to_tensor(images: np.ndarray, scale: float | None = None) -> torch.Tensor:
    """uint8 or float [N, ...] -> float32 [N, D] in [0, 1]. uint8 grey levels are divided by
    255, except uint8 that holds only 0 and 1, which is binary and kept as it is; `scale`
    (255.0 or 1.0) overrides that decision, made once for a whole array before it is split."""
    with warnings.catch_warnings():  # read-only arrays (np.frombuffer) are only read here
        warnings.simplefilter("ignore", UserWarning)
        flat = torch.from_numpy(np.ascontiguousarray(images.reshape(images.shape[0], -1)))
    if images.dtype != np.uint8:
        return flat.to(torch.float32)
    if scale is None:
        scale = 1.0 if binary_uint8(images) else 255.0
    out = flat.to(torch.float32)  # one float copy, scaled in place
    return out.div_(scale) if scale != 1.0 else out


def split_indices(n: int, test_fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """A fixed random split of range(n): (train, test) indices, reproducible from the seed."""
    if not 0 < test_fraction < 1:
        raise AevbError(f"test fraction must lie strictly between 0 and 1, got {test_fraction}")
    order = np.random.default_rng(seed).permutation(n)
    n_test = max(1, int(round(n * test_fraction)))
    if n_test >= n:
        raise AevbError(f"only {n} data points: too few to hold out a test set")
    return np.sort(order[n_test:]), np.sort(order[:n_test])


def _split(name, images, labels, test_fraction, seed) -> Dataset:
    train, test = split_indices(len(images), test_fraction, seed)
    scale = 1.0 if images.dtype != np.uint8 or binary_uint8(images) else 255.0
    lab = None if labels is None else torch.as_tensor(np.asarray(labels), dtype=torch.int64)
    if lab is not None and len(lab) != len(images):
        raise AevbError(f"{name}: {len(lab)} labels for {len(images)} data points")
    return Dataset(name, _to_tensor(images[train], scale), _to_tensor(images[test], scale),
                   tuple(images.shape[1:]),
                   None if lab is None else lab[train], None if lab is None else lab[test])


def _load_idx_pair(name, files, data_dir, download) -> Dataset:
    def get(key):
        return read_idx(locate(files[key], data_dir, download))

    train, test = get("train-images-idx3-ubyte.gz"), get("t10k-images-idx3-ubyte.gz")
    train_y, test_y = get("train-labels-idx1-ubyte.gz"), get("t10k-labels-idx1-ubyte.gz")
    if train.ndim != 3 or test.ndim != 3 or len(train_y) != len(train) or len(test_y) != len(test):
        raise AevbError(f"{name}: image and label files do not match")
    return Dataset(name, _to_tensor(train, 255.0), _to_tensor(test, 255.0), tuple(train.shape[1:]),
                   torch.from_numpy(train_y.astype(np.int64)),
                   torch.from_numpy(test_y.astype(np.int64)))


def load_dataset(name: str, *, data_dir=None, download: bool = True,
                 test_fraction: float = 0.1, seed: int = 0) -> Dataset:
    """A dataset by name, or a user's own .npy/.npz file or image folder by path.

    mnist, fashion-mnist: the original 60,000/10,000 split. binarized-mnist: the 50,000 train
    and 10,000 test rows (the 10,000 validation rows are left out). frey-face, digits and user
    data: a random split with `test_fraction` held out, fixed by `seed`.
    """
    if name == "mnist":
        return _load_idx_pair(name, MNIST_FILES, data_dir, download)
    if name == "fashion-mnist":
        return _load_idx_pair(name, FASHION_FILES, data_dir, download)
    if name == "binarized-mnist":
        train, test = (read_amat(locate(BINARIZED_FILES[s], data_dir, download))
                       for s in ("train", "test"))
        return Dataset(name, torch.from_numpy(train), torch.from_numpy(test), (28, 28))
    if name == "frey-face":
        return _split(name, read_frey(locate(FREY_FILE, data_dir, download)), None,
                      test_fraction, seed)
    if name == "digits":
        from sklearn.datasets import load_digits

        bunch = load_digits()  # bundled with scikit-learn: no file, no network
        images = (bunch.images / 16.0).astype(np.float32)
        return _split(name, images, bunch.target, test_fraction, seed)
    path = Path(name)
    if path.is_dir():
        return _split(str(path), read_image_folder(path), None, test_fraction, seed)
    if path.suffix in (".npy", ".npz"):
        if not path.is_file():
            raise AevbError(f"{path}: no such file")
        images, labels = read_array(path)
        return _split(str(path), images, labels, test_fraction, seed)
    raise AevbError(f"unknown dataset {name!r}; choose one of {', '.join(DATASETS)}, "
                    "or give a .npy/.npz file or a folder of images")


def load_user_data(path: str) -> torch.Tensor:
    """All rows of a user's .npy/.npz file or image folder as float32 [N, D] in [0, 1], by the
    same rules as training data (uint8 holding only 0 and 1 is binary)."""
    return read_user_data(path)[0]


def read_user_data(path: str) -> tuple[torch.Tensor, tuple[int, ...]]:
    """`load_user_data` and the shape of one data point as stored ((D,), (H, W), (3, H, W))."""
    p = Path(path)
    if p.is_dir():
        images = read_image_folder(p)
    elif p.suffix in (".npy", ".npz") and p.is_file():
        images = read_array(p)[0]
    else:
        raise AevbError(f"{path}: no such .npy/.npz file or image folder")
    return _to_tensor(images), tuple(images.shape[1:])


def load_for_config(config) -> Dataset:
    """The dataset (and split) a TrainConfig or a run's config.json section names."""
    get = config.get if isinstance(config, dict) else lambda k: getattr(config, k)
    data = load_dataset(get("dataset"), data_dir=get("data_dir"), download=get("download"),
                        test_fraction=get("test_fraction"), seed=get("seed"))
    n = get("train_examples")  # absent from configs written before the field existed
    if n is not None:
        if n > len(data.train):
            raise AevbError(f"train-examples {n} exceeds the {len(data.train)} training points "
                            f"of {data.name}")
        labels = data.train_labels[:n] if data.train_labels is not None else None
        data = dataclasses.replace(data, train=data.train[:n], train_labels=labels)
    return data


def typical_range(x: torch.Tensor) -> list[float]:
    """The 0.1% and 99.9% quantiles of the data points' mean values (x [N, D] in [0, 1]):
    recorded with a model, so that data scored later can be compared with what it learned."""
    means = x.double().mean(1)
    return [float(torch.quantile(means, 0.001)), float(torch.quantile(means, 0.999))]


def outside_range(x: torch.Tensor, typical: list[float]) -> str | None:
    """A warning if most points of x [N, D] have a mean value far outside `typical` (from
    `typical_range` of the training data): wrongly scaled data, e.g. binary images stored as
    0/255 read as grey levels, or 0/1 values divided by 255. None if x looks like it."""
    lo, hi = typical
    means = x.double().mean(1)
    # Far: a third of the lowest typical mean, or a third as far from 1 as the highest.
    outside = float(((means < lo / 3) | (1 - means < (1 - hi) / 3)).double().mean())
    if outside <= 0.5:
        return None
    return (f"{outside:.0%} of the data points have a mean value far outside the training "
            f"data's range [{lo:.4g}, {hi:.4g}] (median {float(means.median()):.4g}): check "
            "how the data is scaled (uint8 grey levels 0..255, uint8 binary 0/1, or float "
            "in [0, 1])")


DATASETS = ("mnist", "fashion-mnist", "binarized-mnist", "frey-face", "digits")
# Grey-level datasets modelled with the Bernoulli decoder on dynamically binarized batches.
BINARIZED_BY_DEFAULT = ("mnist", "fashion-mnist", "digits")
