"""aevb.native (the hand-written C step) against the one autograd definition: objectives.elbo_b
in float64, torch.rand's bits, torch's Adagrad."""
import copy
import math
import time

import pytest
import torch

import aevb
from aevb.maths.objectives import elbo_b
from aevb.model import VAE, ModelConfig, initialize
from aevb.native import calls, interface
from aevb.native import library as kernels
from aevb.native import step as native
from aevb.training.build import make_optimizer


@pytest.mark.parametrize("drawn_before, n", [(0, 78_400), (5, 10), (623, 1250), (624, 624),
                                             (1, 5000), (300, 3)])
def test_bernoulli_draws_the_bits_of_torch_rand(lib, drawn_before, n):
    ours, theirs = torch.Generator().manual_seed(drawn_before), torch.Generator()
    torch.rand(drawn_before, generator=ours)
    theirs.set_state(ours.get_state())
    probs = torch.rand(n, generator=torch.Generator().manual_seed(99))
    got = calls.bernoulli(lib, probs, ours)
    assert torch.equal(got, (torch.rand(n, generator=theirs) < probs).float())
    assert torch.equal(ours.get_state(), theirs.get_state())  # the same state afterwards
    if n >= 1000:  # P(u < p) = E[p] = 1/2
        assert abs(float(got.mean()) - 0.5) < 0.03


def model32(hidden, latent_dim=5, std=0.05, likelihood="bernoulli"):
    model = VAE(ModelConfig((28, 28), latent_dim, hidden, likelihood))
    initialize(model, std, torch.Generator().manual_seed(0))
    return model


@pytest.mark.parametrize("hidden, samples, likelihood", [((500,), 1, "bernoulli"),
                                                         ((30, 20), 3, "bernoulli"),
                                                         ((200,), 1, "gaussian"),
                                                         ((30, 20), 2, "gaussian")])
def test_compiled_step_equals_float64_autograd(lib, hidden, samples, likelihood):
    model = model32(hidden, likelihood=likelihood)
    reference_model = copy.deepcopy(model).double()
    step = native.Step(model, None)
    gen = torch.Generator().manual_seed(1)
    for n in (7, 100):
        x = torch.rand(n, 784, generator=gen)
        x = (x < 0.4).float() if likelihood == "bernoulli" else x
        eps = torch.randn(samples, n, 5, generator=gen)
        reference = elbo_b(reference_model, x.double(), eps.double())
        expected = torch.autograd.grad(-reference.mean(), list(reference_model.parameters()))
        bound = step(x, eps)  # no optimizer given: .grad only
        # float32 rounding of a ~540-nat bound; the float64 sum over pixels keeps it small
        torch.testing.assert_close(bound.double(), reference.detach(), rtol=2e-6, atol=1e-4)
        for p, g in zip(model.parameters(), expected):
            torch.testing.assert_close(p.grad.double(), g, rtol=1e-4, atol=1e-6 * g.abs().max())


def test_extreme_logits_stay_exact(lib):
    """softplus and sigmoid far out in the tails, where exp(l) overflows float32."""
    logits = torch.tensor([[-1e4, -100.0, -30.0, -1e-3, 0.0, 1e-3, 30.0, 100.0, 1e4]])
    x = torch.tensor([[0.0, 1.0, 0.0, 1.0, 0.0, 1.0, 0.0, 1.0, 1.0]])
    rows, colsum, kl = torch.empty(1), torch.empty(9), torch.tensor([0.25])
    grad = logits.clone()
    bound = calls.bernoulli_logits(lib, grad, x, kl, rows, colsum)
    l64, x64 = logits.double(), x.double()
    expected = (x64 * l64 - torch.nn.functional.softplus(l64)).sum()
    torch.testing.assert_close(rows.double(), expected.reshape(1), rtol=1e-7, atol=0)
    torch.testing.assert_close(bound.double(), expected.reshape(1) - 0.25, rtol=1e-7, atol=0)
    # (below e^-87 the kernel's exp returns e^-87: 1.6e-38 where 0 is exact)
    torch.testing.assert_close(grad.double(), torch.sigmoid(l64) - x64, rtol=1e-6, atol=1e-37)
    assert torch.equal(colsum, grad[0])


def test_adagrad_kernel_follows_torch_adagrad(lib):
    params = [torch.randn(500, 784, generator=torch.Generator().manual_seed(i)) * 0.01
              for i in range(2)]
    ours = [torch.nn.Parameter(p.clone()) for p in params]
    theirs = [torch.nn.Parameter(p.clone()) for p in params]
    opt_ours = native.Adagrad(ours, lr=0.02, weight_decay=1e-4)
    opt_theirs = torch.optim.Adagrad(theirs, lr=0.02, weight_decay=1e-4, foreach=False)
    assert opt_ours.kernel_arguments() is not None
    gen = torch.Generator().manual_seed(5)
    for _ in range(50):
        for a, b in zip(ours, theirs):
            a.grad = torch.randn(a.shape, generator=gen) * 1e-2
            b.grad = a.grad.clone()
        opt_ours.step()
        opt_theirs.step()
    for a, b, start in zip(ours, theirs, params):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-7)  # parameters ~0.01
        torch.testing.assert_close(opt_ours.state[a]["sum"], opt_theirs.state[b]["sum"],
                                   rtol=1e-6, atol=0)
        assert float(opt_ours.state[a]["step"]) == 50
        assert (a - start).abs().max() > 0.1  # it moved


def test_update_inside_the_step_equals_the_update_after_it(lib):
    cfg = aevb.resolve("mnist-paper")
    a = model32((50,), latent_dim=4, std=0.01)
    b = copy.deepcopy(a)
    opt_a, opt_b = make_optimizer(cfg, a, 1000, True), make_optimizer(cfg, b, 1000, True)
    inside, after = native.Step(a, opt_a), native.Step(b, None)
    gen = torch.Generator().manual_seed(3)
    for _ in range(20):
        x = (torch.rand(100, 784, generator=gen) < 0.3).float()
        eps = torch.randn(1, 100, 4, generator=gen)
        assert torch.equal(inside(x, eps), after(x, eps))
        opt_b.step()  # the same kernel, after the whole backward pass
    for p, q in zip(a.parameters(), b.parameters()):
        assert torch.equal(p, q)
    # and the same state, so that checkpoints hold the same
    for p, q in zip(a.parameters(), b.parameters()):
        assert torch.equal(opt_a.state[p]["sum"], opt_b.state[q]["sum"])


def test_a_non_finite_bound_updates_nothing(lib):
    model = model32((20,), latent_dim=4)
    optimizer = make_optimizer(aevb.resolve("mnist-paper"), model, 1000, True)
    step = native.Step(model, optimizer)
    x, eps = (torch.rand(10, 784) < 0.3).float(), torch.randn(1, 10, 4)
    assert step(x, eps) is not None
    with torch.no_grad():
        model.decoder.net[-1].bias[3] = float("nan")
    before = [p.detach().clone() for p in model.parameters()]
    assert step(x, eps) is None
    for p, q in zip(model.parameters(), before):
        torch.testing.assert_close(p, q, rtol=0, atol=0, equal_nan=True)


def test_native_and_autograd_training_follow_one_trajectory(lib):
    """30 steps of the native step (bound, gradient and Adagrad in C) follow 30 steps of
    autograd through objectives.elbo_b with torch's Adagrad (float32 rounding apart)."""
    cfg = aevb.resolve("mnist-paper")
    models, gen_state = {}, torch.Generator().manual_seed(4).get_state()
    for use_native in (True, False):
        model = model32((50,), latent_dim=4, std=0.01)
        opt = make_optimizer(cfg, model, 1000, native_step=use_native)
        step = native.Step(model, opt) if use_native else None
        gen = torch.Generator()
        gen.set_state(gen_state)
        probs = torch.rand(1000, 784, generator=gen) ** 3
        for i in range(30):
            draw = aevb.native.binarize if use_native else aevb.maths.distributions.binarize
            x = draw(probs[i % 10 * 100:][:100], gen)
            eps = torch.randn(1, 100, 4, generator=gen)
            if use_native:
                assert step(x, eps) is not None
            else:
                opt.zero_grad()
                (-elbo_b(model, x, eps).mean()).backward()
                opt.step()
        models[use_native] = model
    # Element by element Adagrad magnifies rounding where a gradient is near 0 (its first
    # step is lr * sign(g)), so the comparison is of whole tensors.
    for p, q in zip(models[True].parameters(), models[False].parameters()):
        assert (p - q).norm() <= 1e-4 * q.norm()
    start = model32((50,), latent_dim=4, std=0.01)
    assert max((p - p0).abs().max() for p, p0 in zip(models[True].parameters(),
                                                      start.parameters())) > 0.01


def test_only_models_it_knows():
    assert native.supports(model32((20,)))
    assert native.supports(VAE(ModelConfig((28, 28), 5, (20,), "gaussian")))
    relu = VAE(ModelConfig((28, 28), 5, (20,), "gaussian", activation="relu"))
    conv = VAE(ModelConfig((28, 28), 5, (20,), "bernoulli", network="conv"))
    for model in (relu, conv):
        assert not native.supports(model)
        with pytest.raises(ValueError, match="tanh-MLP"):
            native.Step(model, None)
        assert "tanh MLPs" in aevb.native.unavailable_reason(model, "adagrad",
                                                             torch.device("cpu"))
    assert "Adagrad" in aevb.native.unavailable_reason(model32((20,)), "adam",
                                                       torch.device("cpu"))


def test_the_library_declares_the_step_interface_of_the_structs(lib):
    import ctypes

    sizes = (ctypes.c_int64 * 2)()
    lib.aevb_interface_sizes(sizes)
    structs = interface.declared()[0]
    layer, step_args = structs["aevb_layer"], structs["aevb_step_args"]
    assert tuple(sizes) == (ctypes.sizeof(layer), ctypes.sizeof(step_args))
    assert [f[0] for f in layer._fields_][:2] == ["weight", "bias"]


def test_no_compiler_means_no_kernels(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    monkeypatch.setenv("CC", "false")  # a "compiler" that fails
    assert kernels.load() is None
    monkeypatch.setenv("AEVB_KERNELS", "0")
    monkeypatch.delenv("CC")
    assert kernels.load() is None
    with pytest.raises(ValueError, match="float32"):
        calls.bernoulli_logits(None, torch.zeros(2, 2, dtype=torch.float64),
                                 torch.zeros(2, 2), torch.zeros(2), torch.zeros(2),
                                 torch.zeros(2))


def test_training_without_kernels_warns_and_trains(tmp_path, monkeypatch):
    monkeypatch.setenv("AEVB_KERNELS", "0")
    cfg = aevb.resolve(dataset="digits", latent_dim=2, hidden=(16,), samples=2000, eval_points=1,
                       out=str(tmp_path / "run"), download=False)
    with pytest.warns(UserWarning, match="aevb.native unavailable"):
        run = aevb.train(cfg, progress=False)
    assert math.isfinite(aevb.rundir.logs.read_metrics(run)[-1]["test_elbo"])


@pytest.mark.parametrize("compiled", [True, False])
def test_binarize_reads_rows_in_place_with_the_bits_of_the_gather(lib, compiled):
    probs = torch.rand(300, 28, 28, generator=torch.Generator().manual_seed(7))
    rows = torch.randperm(300, generator=torch.Generator().manual_seed(8))[:100]
    ours, theirs = torch.Generator().manual_seed(9), torch.Generator().manual_seed(9)
    draw = aevb.native.binarize if compiled else aevb.maths.distributions.binarize
    got = draw(probs, ours, rows)
    assert torch.equal(got, (torch.rand(100, 28, 28, generator=theirs) < probs[rows]).float())
    assert torch.equal(ours.get_state(), theirs.get_state())
    before = ours.get_state()
    with pytest.raises((ValueError, IndexError)):
        draw(probs, ours, torch.tensor([0, 300]))
    if compiled:  # refused before drawing anything
        assert torch.equal(ours.get_state(), before)


def test_softplus_sums_against_float64(lib):
    logits = torch.cat([torch.randn(50, 784, generator=torch.Generator().manual_seed(2)) * 4,
                        torch.full((1, 784), -1e4), torch.full((1, 784), 1e4),
                        torch.linspace(-30, 30, 784).reshape(1, 784)])
    bias = torch.randn(784, generator=torch.Generator().manual_seed(3))
    expected = torch.nn.functional.softplus(logits.double() + bias.double()).sum(-1)
    torch.testing.assert_close(calls.softplus_sums(lib, logits, bias).double(), expected,
                               rtol=2e-7, atol=1e-5)
    with pytest.raises(ValueError, match="bias"):
        calls.softplus_sums(lib, logits, bias[:10])


@pytest.mark.parametrize("hidden, samples", [((500,), 40), ((30, 20), 7)])
def test_compiled_log_weights_equal_float64(lib, hidden, samples):
    from aevb.maths.objectives import log_weights

    model = model32(hidden, std=0.1)
    gen = torch.Generator().manual_seed(4)
    x = (torch.rand(30, 784, generator=gen) < 0.4).float()
    eps = torch.randn(samples, 30, 5, generator=gen)
    with torch.no_grad():
        got = native.log_weights(model, x, eps, lib)
        expected = log_weights(copy.deepcopy(model).double(), x.double(), eps.double())
        pytorch = log_weights(model, x, eps)
    assert got.shape == (samples, 30)
    # the float32 products dominate: the compiled softplus sum is no further off than torch's
    error, pytorch_error = (got.double() - expected).abs().max(), (pytorch - expected).abs().max()
    assert error <= 1.5 * pytorch_error + 1e-4


def test_importance_sampling_with_and_without_kernels_agree(lib, monkeypatch):
    from aevb.evaluation.evaluate import importance_log_likelihood

    model = model32((40,), std=0.1)
    x = (torch.rand(20, 784, generator=torch.Generator().manual_seed(5)) < 0.3).float()
    compiled = importance_log_likelihood(model, x, 300, seed=1, k_chunk=64)
    monkeypatch.setattr(kernels, "load", lambda: None)
    plain = importance_log_likelihood(model, x, 300, seed=1, k_chunk=64)
    torch.testing.assert_close(compiled, plain, rtol=1e-6, atol=1e-4)


def test_the_step_replans_when_tensors_are_replaced(lib):
    """The plan of pointers follows a new .grad, new optimizer state and new parameter data."""
    cfg = aevb.resolve("mnist-paper")
    model = model32((50,), latent_dim=4, std=0.01)
    twin = copy.deepcopy(model)
    opt = make_optimizer(cfg, model, 1000, True)
    twin_opt = make_optimizer(cfg, twin, 1000, True)
    step = native.Step(model, opt)
    gen = torch.Generator().manual_seed(6)

    def both():
        x = (torch.rand(50, 784, generator=gen) < 0.3).float()
        eps = torch.randn(1, 50, 4, generator=gen)
        twin_opt.zero_grad()
        reference = elbo_b(twin, x, eps)
        (-reference.mean()).backward()
        torch.testing.assert_close(step(x, eps), reference.detach(), rtol=1e-5, atol=1e-4)
        for p, q in zip(model.parameters(), twin.parameters()):  # in the current .grad
            torch.testing.assert_close(p.grad, q.grad, rtol=1e-3, atol=1e-6)
        twin_opt.step()

    both()
    for p in model.parameters():
        p.grad = torch.zeros_like(p)  # a new .grad: the old one is no longer written
    both()
    opt.load_state_dict(copy.deepcopy(opt.state_dict()))  # new state tensors
    both()
    with torch.no_grad():
        for p in model.parameters():
            p.data = p.data.clone()  # new parameter storage
    both()
    for p, q in zip(model.parameters(), twin.parameters()):
        assert (p - q).norm() <= 1e-4 * q.norm()
    for p, q in zip(model.parameters(), twin.parameters()):
        torch.testing.assert_close(opt.state[p]["sum"], twin_opt.state[q]["sum"],
                                   rtol=1e-3, atol=1e-9)


def test_plan_step_refuses_tensors_of_the_wrong_size(lib):
    model = model32((20,), latent_dim=4)
    step = native.Step(model, None)
    x, eps = (torch.rand(10, 784) < 0.3).float(), torch.randn(1, 10, 4)
    step(x, eps)

    def layers(shrink=None):
        out = []
        for i, layer in enumerate(step.encoder + step.decoder):
            rows = 10 - (shrink == i)
            out.append(calls.LayerTensors(
                layer.weight, layer.bias, None, None, None, None,
                torch.empty(rows, layer.out_features),
                None if i == 0 else torch.empty(10, layer.in_features)))
        return out

    scratch = {k: torch.empty(s) for k, s in zip(calls.SCRATCH, ((10, 4), (10, 4), (10,),
                                                                    (10,), (10, 8)))}
    plan = calls.plan_step(layers(), 2, scratch, x.shape, eps.shape)
    assert plan.n_encoder == 2
    for k in range(4):
        with pytest.raises(ValueError, match="size"):
            calls.plan_step(layers(shrink=k), 2, scratch, x.shape, eps.shape)
    with pytest.raises(ValueError, match="buffer"):
        calls.plan_step(layers(), 2, {**scratch, "de": torch.empty(10, 7)}, x.shape,
                          eps.shape)
    with pytest.raises(ValueError, match="chain"):
        calls.plan_step(layers(), 2, scratch, (10, 780), eps.shape)
    with pytest.raises(ValueError, match="shape of its plan"):
        calls.vae_step(lib, plan, x[:9], eps[:, :9], None)


def test_the_compiled_step_reports_where_its_time_went(lib):
    model = model32((50,), latent_dim=4)
    step = native.Step(model, None)
    x, eps = (torch.rand(100, 784) < 0.3).float(), torch.randn(1, 100, 4)
    step(x, eps)
    spent = torch.zeros(len(calls.STEP_KINDS), dtype=torch.float64)
    start = time.perf_counter()
    for _ in range(5):
        calls.vae_step(lib, step._plan[1], x, eps, None, spent=spent)
    wall = time.perf_counter() - start
    assert (spent > 0).all() and spent.sum() <= wall
