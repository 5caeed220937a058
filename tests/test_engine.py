"""aevb.compute.engine: which engine runs a step and why; the compiled step against the eager one."""
import copy
import json

import pytest
import torch

import aevb
from aevb.algorithms.sgvb import AevbStep
from aevb.compute import engine
from aevb.maths.objectives import ESTIMATORS
from aevb.model import VAE, ModelConfig, initialize
from aevb.training.build import make_optimizer, saved_config

CPU = torch.device("cpu")


def test_auto_takes_eager_for_short_runs_and_says_why():
    short = engine.choose("auto", "it serves only Adam", CPU, engine.COMPILE_MIN_STEPS - 1)
    assert short.name == "eager" and "too short" in short.reason
    assert engine.choose("eager", None, CPU, 10**9) == engine.Choice("eager", "asked for")
    assert engine.choose("auto", None, CPU, 10).name == "native"


def test_a_model_whose_eager_step_is_slow_compiles_shorter_runs():
    plain = VAE(ModelConfig((64,), 2, (16,)))
    vamp = VAE(ModelConfig((64,), 2, (16,), prior="vamp", prior_components=5))
    assert engine.compile_min_steps_of(plain) == engine.COMPILE_MIN_STEPS
    assert engine.compile_min_steps_of(vamp) == 1_000 < engine.COMPILE_MIN_STEPS
    choice = engine.choose("auto", "it serves only Adagrad", CPU, 999, 1_000)
    assert choice.name == "eager" and "starts at 1000 for this model" in choice.reason
    if engine.compile_unavailable_reason(CPU) is None:
        assert engine.choose("auto", "it serves only Adagrad", CPU, 1_000, 1_000).name == \
            "compiled"


def test_compiled_is_taken_where_torch_compile_works_and_eager_otherwise(monkeypatch):
    long = engine.COMPILE_MIN_STEPS
    if engine.compile_unavailable_reason(CPU) is None:
        assert engine.choose("auto", "it serves only Adam", CPU, long).name == "compiled"
    monkeypatch.setattr(engine, "compile_unavailable_reason", lambda device: "no C++ compiler")
    choice = engine.choose("native", "it serves only Adam", CPU, long)
    assert choice == engine.Choice("eager", "native backend: it serves only Adam; "
                                            "no C++ compiler")


def _gaussian_model():
    model = VAE(ModelConfig((28, 20), 4, (32, 16), "gaussian"))
    initialize(model, 0.05, torch.Generator().manual_seed(0))
    return model


@pytest.mark.skipif(engine.compile_unavailable_reason(CPU) is not None,
                    reason="torch.compile unavailable here")
@pytest.mark.parametrize("optimizer", ["adagrad", "adam"])
def test_the_compiled_step_follows_the_eager_step(optimizer):
    """Ten steps of the Gaussian decoder (which the native step does not serve) compiled and
    eager, with the same data and noise, end at the same parameters up to float32 rounding;
    a smaller minibatch in between takes the eager path of the same definition."""
    cfg = aevb.resolve("frey-paper", optimizer=optimizer, hidden=(32, 16), latent_dim=4,
                       batch_size=20)
    models = {}
    for compiled in (True, False):
        model = _gaussian_model()
        opt = make_optimizer(cfg, model, 1000)
        step = AevbStep(model, opt, ESTIMATORS["B"], 1, compiled=compiled, batch_size=20)
        gen = torch.Generator().manual_seed(1)
        for size in (20,) * 5 + (7,) + (20,) * 4:
            step(torch.rand(size, 560, generator=gen), torch.arange(size), gen)
        models[compiled] = model
    start = _gaussian_model()
    for p, q, p0 in zip(models[True].parameters(), models[False].parameters(),
                        start.parameters()):
        torch.testing.assert_close(p, q, rtol=1e-4, atol=1e-5)
        assert not torch.equal(p, p0)


def test_a_failed_compile_falls_back_to_eager_with_one_warning(monkeypatch):
    def broken(fn, **options):
        def call(*args):
            raise RuntimeError("simulated: the C++ compiler crashed\nsecond line")
        return call

    monkeypatch.setattr(torch, "compile", broken)
    model = _gaussian_model()
    twin = copy.deepcopy(model)
    cfg = aevb.resolve("frey-paper", hidden=(32, 16), latent_dim=4, batch_size=20)
    opt, twin_opt = make_optimizer(cfg, model, 1000), make_optimizer(cfg, twin, 1000)
    step = AevbStep(model, opt, ESTIMATORS["B"], 1, compiled=True, batch_size=20)
    eager = AevbStep(twin, twin_opt, ESTIMATORS["B"], 1)
    x = torch.rand(20, 560, generator=torch.Generator().manual_seed(2))
    with pytest.warns(aevb.errors.AevbWarning, match=r"simulated: the C.. compiler crashed\); "
                                                     "continuing eagerly") as caught:
        for _ in range(3):
            step(x, torch.arange(20), torch.Generator().manual_seed(3))
            eager(x, torch.arange(20), torch.Generator().manual_seed(3))
    assert len([w for w in caught if "loss" in str(w.message)]) == 1
    for p, q in zip(model.parameters(), twin.parameters()):
        assert torch.equal(p, q)


def test_the_run_records_its_engine_and_old_runs_map_to_one(tmp_path, capsys):
    cfg = aevb.resolve(dataset="digits", latent_dim=2, hidden=(16,), samples=3000,
                       eval_points=1, likelihood="gaussian", activation="relu",
                       out=str(tmp_path / "run"),
                       download=False)
    run = aevb.train(cfg, progress=True)
    info = json.loads((run / "config.json").read_text())
    assert info["engine"]["name"] == "eager" and "too short" in info["engine"]["reason"]
    assert "native backend: it serves only tanh MLPs" in info["engine"]["reason"]
    assert f"aevb: engine eager: {info['engine']['reason']}" in capsys.readouterr().err
    assert saved_config(info).engine == "auto"
    # Runs from before the engines: `fused` chose the hand-written step, else autograd.
    old = {**info, "config": {k: v for k, v in info["config"].items() if k != "engine"}}
    assert saved_config({**old, "config": {**old["config"], "fused": True}}).engine == "auto"
    assert saved_config({**old, "config": {**old["config"], "fused": False}}).engine == "eager"
    del old["config"]["kernels"]
    assert saved_config(old).engine == "eager" and saved_config(old).kernels is False


def test_an_unknown_engine_is_refused():
    with pytest.raises(aevb.AevbError, match="engine must be one of auto, native, compiled"):
        aevb.resolve(engine="jit")
