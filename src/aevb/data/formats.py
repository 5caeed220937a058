"""How each file format becomes an array of images: IDX (MNIST), .amat (binarized MNIST),
Frey Face's MAT file, .npy/.npz arrays and folders of images. Every reader checks what it
reads and raises AevbError with the file's name when it is not what it claims."""
from __future__ import annotations

import gzip
import struct
import warnings
import zlib
from pathlib import Path

import numpy as np

from ..errors import AevbError
from .labels import check_labels


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
        key = next((k for k in ("x", "X", "images", "data", "arr_0") if k in keys), keys[0] if keys else None)
        if key is None:
            raise AevbError(f"{path}: empty .npz archive")
        label_key = next((k for k in ("y", "labels") if k in keys), None)
        try:
            array = loaded[key]
            labels = loaded[label_key] if label_key else None
        except (ValueError, OSError, EOFError) as err:  # object arrays need pickle: refused
            raise AevbError(f"{path}: cannot read array ({err})") from None
        if labels is not None:
            labels = check_labels(labels, f"{path}[{label_key!r}]")
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


def read_image_folder(path: Path) -> np.ndarray:
    """Every PNG/JPEG in a folder, all of one size: uint8 [N, H, W] where every image is
    grey (R = G = B), else uint8 [N, 3, H, W] in colour, channels first (images that hold only
    the values 0 and 1 are binary data, as for arrays). 16-bit grey images are read at their
    depth, as float32 in [0, 1]; images whose mode would change on conversion are refused."""
    files = _images_in(path)
    if not files:
        raise AevbError(f"{path}: no PNG or JPEG images in this folder")
    return _stack(files)


def _images_in(path: Path) -> list[Path]:
    return sorted(p for p in Path(path).iterdir()
                  if p.suffix.lower() in {".png", ".jpg", ".jpeg"} and p.is_file())


def read_labelled_folder(path: Path) -> tuple[np.ndarray, np.ndarray | None]:
    """A folder of images (`read_image_folder`; labels None), or a folder with one sub-folder
    of images per class and no images of its own: the images of all sub-folders, and int64
    labels numbering the sub-folders in sorted order of their names."""
    path = Path(path)
    classes = sorted(p for p in path.iterdir() if p.is_dir() and _images_in(p))
    if _images_in(path) or not classes:
        return read_image_folder(path), None
    if len(classes) < 2:
        raise AevbError(f"{path}: one class folder ({classes[0].name}); a folder of classes "
                        "needs two or more (or put the images in the folder itself)")
    files = [f for c in classes for f in _images_in(c)]
    labels = np.concatenate([np.full(len(_images_in(c)), i, np.int64)
                             for i, c in enumerate(classes)])
    return _stack(files), labels


def _stack(files: list[Path]) -> np.ndarray:
    images: list[np.ndarray] = []
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
