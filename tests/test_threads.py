"""Sharing the cores (aevb.compute.threads): fewer threads while other processes need the
cores, all of them when the machine is quiet, the user's own setting never changed, and the
results the same whatever the count."""
import itertools
import json
import os
import subprocess
import sys

import pytest
import torch

import aevb
from aevb.compute import threads
from aevb.compute.threads import Load, spare_cores, user_choice
from aevb.errors import AevbError


def test_spare_cores_are_what_other_processes_leave():
    assert spare_cores(Load(cores=2, idle=0.0, own=2.0), most=2) == 2   # alone, spinning
    assert spare_cores(Load(cores=2, idle=1.0, own=1.0), most=2) == 2   # alone, one thread
    assert spare_cores(Load(cores=2, idle=0.0, own=1.0), most=2) == 1   # another takes a core
    assert spare_cores(Load(cores=2, idle=0.0, own=0.5), most=2) == 1   # three others
    assert spare_cores(Load(cores=8, idle=0.0, own=3.0), most=8) == 3
    assert spare_cores(Load(cores=8, idle=6.0, own=0.0), most=4) == 4   # never above `most`
    assert spare_cores(Load(cores=2, idle=0.0, own=0.0), most=2) == 1   # never below one


def test_the_users_setting_comes_first():
    assert user_choice({}) is None
    assert user_choice({"AEVB_THREADS": "auto"}) is None
    assert user_choice({"OMP_NUM_THREADS": "2"}) == "fixed"
    assert user_choice({"OMP_NUM_THREADS": "2", "AEVB_THREADS": "auto"}) == "fixed"
    assert user_choice({"AEVB_THREADS": "fixed"}) == "fixed"
    assert user_choice({"AEVB_THREADS": "3"}) == 3
    for bad in ("0", "two", "-1"):
        with pytest.raises(AevbError, match="AEVB_THREADS"):
            user_choice({"AEVB_THREADS": bad})


class FakeMachine:
    """/proc/stat, the clock and this process's CPU time as a test sets them: each `advance`
    adds one second in which the other processes used `others` cores and this one `own`."""

    def __init__(self, cores=2):
        self.cores, self.t, self.cpu, self.idle, self.all = cores, 0.0, 0.0, 0.0, 0.0

    def advance(self, others, own):
        self.t += 1.0
        self.cpu += own
        self.idle += self.cores - others - own
        self.all += self.cores

    def read(self):
        return self.cores, self.idle, self.all


@pytest.fixture
def two_threads(monkeypatch):
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    monkeypatch.delenv("AEVB_THREADS", raising=False)
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    yield
    torch.set_num_threads(before)


def test_threads_follow_the_load_and_come_back(two_threads):
    m = FakeMachine()
    sharing = threads.Sharing(read=m.read, clock=lambda: m.t, own=lambda: m.cpu)
    seen = []
    with sharing:
        for others, own in [(0, 2), (1.0, 1.0), (1.0, 1.0), (0.0, 1.0), (0.0, 2.0), (1.5, 0.5)]:
            m.advance(others, own)
            sharing.tick()
            seen.append(torch.get_num_threads())
        with threads.Sharing(read=m.read, clock=lambda: m.t, own=lambda: m.cpu):
            pass  # an evaluation inside the training leaves the count alone
        assert torch.get_num_threads() == 1
    assert seen == [2, 1, 1, 2, 2, 1]
    assert torch.get_num_threads() == 2  # the count it found


def test_a_fixed_count_is_never_changed(two_threads, monkeypatch):
    m = FakeMachine()
    monkeypatch.setenv("OMP_NUM_THREADS", "2")
    with threads.Sharing(read=m.read, clock=lambda: m.t, own=lambda: m.cpu) as sharing:
        m.advance(others=2.0, own=0.5)
        sharing.tick()
        assert torch.get_num_threads() == 2
    monkeypatch.delenv("OMP_NUM_THREADS")
    monkeypatch.setenv("AEVB_THREADS", "1")
    with threads.Sharing(read=m.read, clock=lambda: m.t, own=lambda: m.cpu) as sharing:
        m.advance(others=0.0, own=1.0)
        sharing.tick()
        assert torch.get_num_threads() == 1


@pytest.mark.parametrize("engine", ["native", "eager",
                                    pytest.param("compiled", marks=pytest.mark.slow)])
def test_changing_the_count_mid_run_changes_no_bit(engine, tmp_path, two_threads, monkeypatch,
                                                   request):
    if engine == "native":
        request.getfixturevalue("lib")  # skips where the native backend is off
    def train(name):
        cfg = aevb.resolve(dataset="digits", latent_dim=2, hidden=(32,), samples=20000,
                           eval_points=2, out=str(tmp_path / name), download=False,
                           engine=engine)
        return aevb.load(aevb.train(cfg, progress=False))

    monkeypatch.setenv("AEVB_THREADS", "fixed")
    steady = train("steady")
    monkeypatch.delenv("AEVB_THREADS")
    counts = iter([1, 2] * 10**6)
    chosen = []
    monkeypatch.setattr(threads, "INTERVAL", 0.0)
    ticks = itertools.count()
    monkeypatch.setattr(threads, "_cpu_times", lambda: (2, 0.0, float(next(ticks))))
    monkeypatch.setattr(threads, "spare_cores",
                        lambda load, most: chosen.append(1) or next(counts))
    switching = train("switching")
    assert len(chosen) > 100  # it did switch, many times, mid-run
    for (name, a), (_, b) in zip(steady.state_dict().items(), switching.state_dict().items()):
        assert torch.equal(a, b), name


def _busy(n):
    """n processes that each keep a core busy."""
    return [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(n)]


TRAIN = ["--dataset", "digits", "--latent-dim", "2", "--eval-points", "2", "--download", "false"]
API = ("import sys, aevb; aevb.train(aevb.resolve(dataset='digits', latent_dim=2, "
       "samples=int(sys.argv[2]), eval_points=2, download=False, out=sys.argv[1]), "
       "progress=False)")


@pytest.mark.skipif(not os.path.exists("/proc/stat") or (os.cpu_count() or 1) < 2,
                    reason="reads the load from Linux's /proc/stat, on 2 cores or more")
@pytest.mark.parametrize("how", ["command", "api"])
def test_a_busy_machine_trains_on_fewer_threads_unless_the_user_chose(how, tmp_path):
    env = {k: v for k, v in os.environ.items() if k not in ("OMP_NUM_THREADS", "AEVB_THREADS")}

    def last_threads(name, extra, samples=20000):
        out = tmp_path / name
        args = ([sys.executable, "-m", "aevb", "train", *TRAIN, "--samples", str(samples),
                 "--out", str(out)]
                if how == "command" else [sys.executable, "-c", API, str(out), str(samples)])
        subprocess.run(args, check=True, capture_output=True, env={**env, **extra}, timeout=600)
        return [json.loads(line)["threads"] for line in (out / "metrics.jsonl").open()]

    hogs = _busy(os.cpu_count())
    try:
        assert last_threads("busy", {}, samples=100000)[-1] == 1  # long enough to look
        assert set(last_threads("fixed", {"OMP_NUM_THREADS": "2"})) == {2}
        if how == "command":
            assert set(last_threads("chosen", {"AEVB_THREADS": "2"})) == {2}
    finally:
        for h in hogs:
            h.kill()
            h.wait()
    default = subprocess.run([sys.executable, "-c", "import torch; print(torch.get_num_threads())"],
                             capture_output=True, text=True, env=env, check=True).stdout
    assert last_threads("quiet", {})[-1] == int(default)


def test_a_bad_setting_is_one_line_before_any_run_directory(tmp_path):
    from cli_helpers import cli, one_error_line

    out = tmp_path / "run"
    r = cli("train", *TRAIN, "--samples", "2000", "--out", out,
            env={**os.environ, "AEVB_THREADS": "two"})
    assert "AEVB_THREADS" in one_error_line(r)
    assert not out.exists()
