"""The paper's probability maths, free of parameters and networks: the distributions
q_phi(z|x), p_theta(x|z) and p(z) (`distributions`), the SGVB estimators of section 2.3
(`objectives`), the importance-sampled log-likelihood (`importance`) and Hamiltonian
Monte Carlo (`hmc`). Every value is in nats. Nothing here imports a higher layer."""


def __getattr__(name):  # the modules here as attributes, imported on first use
    from .. import _submodule

    return _submodule(__name__, name)
