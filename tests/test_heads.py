"""Network bodies and heads (aevb.networks.heads): every body outputs head.per_value numbers a
value in the head's order, and a new likelihood is one Head subclass plus one registry line."""
import numpy as np
import pytest
import scipy.stats
import torch
from torch.distributions import Independent, Laplace

from aevb.maths import objectives
from aevb.model import VAE, ModelConfig
from aevb.networks import heads
from aevb.networks.conv import ConvDecoder
from aevb.networks.mlp import MLPNetwork

torch.manual_seed(0)


class _Laplace(heads.Head):
    """prod_d Laplace(x_d; sigmoid(m_d), exp(s_d)): a likelihood aevb does not ship."""

    name = "laplace"
    per_value = 2

    def __call__(self, out):
        m, s = out.chunk(2, dim=-1)
        return Independent(Laplace(torch.sigmoid(m), torch.exp(s)), 1)


@pytest.mark.parametrize("network,shape", [("mlp", (12,)), ("conv", (2, 6, 5))])
def test_a_new_likelihood_is_one_head_and_one_registry_line(monkeypatch, network, shape):
    monkeypatch.setitem(heads.LIKELIHOODS, "laplace", _Laplace())
    model = VAE(ModelConfig(data_shape=shape, latent_dim=3, hidden=(7,), likelihood="laplace",
                            network=network, activation="relu")).double()
    d = int(np.prod(shape))
    z = torch.randn(4, 5, 3, dtype=torch.float64)
    x = torch.rand(5, d, dtype=torch.float64)
    p = model.decode(z)
    assert p.batch_shape == (4, 5) and p.event_shape == (d,)
    # The body's raw output, read independently: the first D numbers are the locations.
    body = model.decoder.net if network == "mlp" else model.decoder.trunk
    raw = body(z).reshape(4, 5, 2 * d).detach().numpy()
    want = scipy.stats.laplace.logpdf(x.numpy(), loc=scipy.special.expit(raw[..., :d]),
                                      scale=np.exp(raw[..., d:])).sum(-1)
    np.testing.assert_allclose(p.log_prob(x).detach().numpy(), want, rtol=1e-10)
    # and the objectives train it: the bound has a gradient for every parameter
    eps = torch.randn(1, 5, 3, dtype=torch.float64)
    objectives.elbo_b(model, x, eps).mean().backward()
    assert all(p.grad is not None and torch.isfinite(p.grad).all()
               for p in model.parameters())


def test_the_conv_gaussian_head_reads_all_means_then_all_log_variances():
    dec = ConvDecoder(3, (8,), (2, 4, 6), heads.LIKELIHOODS["gaussian"]).double()
    z = torch.randn(5, 3, dtype=torch.float64)
    maps = dec.trunk(z).detach().numpy()  # [5, 2C, H W]: channels 0..C-1 the means
    x = torch.rand(5, 48, dtype=torch.float64)
    want = scipy.stats.norm.logpdf(x.numpy(), loc=scipy.special.expit(maps[:, :2].reshape(5, -1)),
                                   scale=np.exp(0.5 * maps[:, 2:].reshape(5, -1))).sum(-1)
    np.testing.assert_allclose(dec(z).log_prob(x).detach().numpy(), want, rtol=1e-10)


def test_the_bernoulli_head_after_a_linear_layer_is_the_head_of_its_logits():
    net = MLPNetwork(3, (9,), 11, heads.LIKELIHOODS["bernoulli"]).double()
    z = torch.randn(4, 6, 3, dtype=torch.float64)
    x = torch.bernoulli(torch.full((6, 11), 0.4, dtype=torch.float64))
    logits = net.net(z).detach().numpy()
    want = scipy.stats.bernoulli.logpmf(x.numpy(), scipy.special.expit(logits)).sum(-1)
    np.testing.assert_allclose(net(z).log_prob(x).detach().numpy(), want, rtol=1e-9)
    np.testing.assert_allclose(heads.Bernoulli()(net.net(z)).log_prob(x).detach().numpy(),
                               want, rtol=1e-9)


def test_heads_have_no_parameters_and_checkpoints_keep_their_keys():
    model = VAE(ModelConfig(data_shape=(784,), latent_dim=20, hidden=(500,)))
    assert list(model.state_dict()) == [
        "encoder.net.0.weight", "encoder.net.0.bias", "encoder.net.2.weight",
        "encoder.net.2.bias", "decoder.net.0.weight", "decoder.net.0.bias",
        "decoder.net.2.weight", "decoder.net.2.bias"]
    assert model.encoder.net[-1].out_features == 40 and model.decoder.net[-1].out_features == 784
