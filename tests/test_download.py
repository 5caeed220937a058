"""Missing files are fetched with pooch and verified; served here from a loopback HTTP server."""
import functools
import hashlib
import http.server
import threading

import pytest

from aevb import data
from aevb.errors import AevbError


@pytest.fixture
def server(tmp_path):
    root = tmp_path / "served"
    root.mkdir()
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(root))
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield root, f"http://127.0.0.1:{httpd.server_address[1]}/"
    httpd.shutdown()


def test_missing_file_is_downloaded_into_the_cache_and_verified(server, tmp_path, monkeypatch):
    root, url = server
    payload = b"frey bytes"
    (root / "frey_rawface.mat").write_bytes(payload)
    home = tmp_path / "home"
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.delenv("AEVB_DATA", raising=False)
    rf = data.RemoteFile("frey/frey_rawface.mat", hashlib.sha256(payload).hexdigest(),
                         (url + "gone.mat", url + "frey_rawface.mat"))  # first mirror is dead
    path = data.locate(rf, data_dir=tmp_path / "empty")
    assert path == home / ".cache" / "aevb" / "frey" / "frey_rawface.mat"
    assert path.read_bytes() == payload
    assert data.locate(rf, download=False) == path  # found in the cache the second time


def test_download_with_the_wrong_checksum_is_refused(server, tmp_path, monkeypatch):
    root, url = server
    (root / "f.mat").write_bytes(b"tampered")
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.delenv("AEVB_DATA", raising=False)
    rf = data.RemoteFile("frey/f.mat", "0" * 64, (url + "f.mat",))
    with pytest.raises(AevbError, match="could not download"):
        data.locate(rf)
    assert not (tmp_path / ".cache" / "aevb" / "frey" / "f.mat").exists()
