"""Where the known datasets' files are: their names, SHA-256 and mirrors (as in SOURCES.md),
the folders searched (--data-dir, $AEVB_DATA, ~/.cache/aevb) and the download into the
cache with pooch, each file verified by its checksum."""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from ..errors import AevbError


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
