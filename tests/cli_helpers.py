"""Helpers the command-line tests share: run `aevb` in a subprocess, check its one-line error."""
import subprocess
import sys


def cli(*args, timeout=600, **kw):
    """`aevb ARGS...` in a fresh process; the CompletedProcess with text output."""
    return subprocess.run([sys.executable, "-m", "aevb", *map(str, args)], capture_output=True,
                          text=True, timeout=timeout, **kw)


def start(*args, **kw):
    """`aevb ARGS...` started in a fresh process, stdout and stderr piped as text."""
    return subprocess.Popen([sys.executable, "-m", "aevb", *map(str, args)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **kw)


def one_error_line(r, status=2):
    """The single `aevb: error:` line of a refused command (and exit `status`)."""
    lines = r.stderr.strip().splitlines()
    assert r.returncode == status, r.stderr
    assert len(lines) == 1 and lines[0].startswith("aevb: error:"), r.stderr
    return lines[0]


def no_traceback(r):
    """A command that ended without a Python traceback: exit 0, or 2 with one error line."""
    assert "Traceback" not in r.stderr, r.stderr
    if r.returncode != 0:
        one_error_line(r)
    return r


def snapshot(folder):
    """Every file below `folder` (bytes), to check that a command changed none."""
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*"))
            if p.is_file() and not p.is_symlink() and not p.name.endswith(".lock")}
