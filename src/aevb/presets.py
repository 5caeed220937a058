"""The named settings of `aevb train --preset NAME` (`aevb.resolve(NAME)`): each a dict of
TrainConfig fields, applied over the defaults and under explicit flags."""
from __future__ import annotations

# The paper's settings (section 5): Adagrad, minibatches of M = 100, L = 1, N(0, 0.01^2)
# initialisation and a N(0, I) prior on the weights. Step sizes were picked from
# {0.01, 0.02, 0.1}; these are the ones that trained fastest here without diverging.
PRESETS: dict[str, dict] = {
    "mnist-paper": dict(dataset="mnist", hidden=(500,), latent_dim=20, likelihood="bernoulli",
                        optimizer="adagrad", lr=0.02, batch_size=100, mc_samples=1,
                        weight_prior_std=1.0, init_std=0.01),
    "frey-paper": dict(dataset="frey-face", hidden=(200,), latent_dim=10, likelihood="gaussian",
                       optimizer="adagrad", lr=0.01, batch_size=100, mc_samples=1,
                       weight_prior_std=1.0, init_std=0.01),
    # Burda, Grosse & Salakhutdinov (2015), section 5: 784-200-200-50 tanh networks on
    # dynamically binarized MNIST, Adam at 1e-3 on their schedule (3^i epochs at
    # 10^(-i/7), i = 0..7: 3,280 epochs), minibatches of 20, no weight prior. k = 1 is their
    # VAE row; --mc-samples 5 or 50 gives their IWAE rows (--estimator A: their k-sample VAE).
    # init 0.05: about Glorot's scale for the first layer, which they used.
    "iwae-paper": dict(dataset="mnist", hidden=(200, 200), latent_dim=50, likelihood="bernoulli",
                       optimizer="adam", lr=1e-3, lr_schedule="iwae", batch_size=20,
                       estimator="iwae", mc_samples=1, weight_prior_std=None, init_std=0.05),
    # The best test log p(x) found for 2 hours of this project's 2-core CPU (docs/mnist_best.sh,
    # docs/reproduction.md): the iwae-paper networks trained with the IWAE bound at k = 5,
    # minibatches of 50 and Adam annealed to 0 by a cosine over 850 epochs.
    "mnist-best": dict(dataset="mnist", hidden=(200, 200), latent_dim=50, likelihood="bernoulli",
                       optimizer="adam", lr=1e-3, lr_schedule="cosine", batch_size=50,
                       estimator="iwae", mc_samples=5, weight_prior_std=None, init_std=0.05,
                       epochs=850.0),
    # Kingma, Rezende, Mohamed & Welling (2014), section 4.1: M1, a VAE of MNIST with 50
    # latent values and two softplus layers of 600 each side; M2 with one layer of 500, 50
    # latent values, a classifier of 500 and 100 labels, alpha = 0.1 N. Both take their
    # optimizer's step size of 3e-4 and weights from N(0, 0.001), i.e. std 0.03. M1 + M2 is
    # `--preset m2-paper --features RUN` with RUN an m1-paper run (aevb.features).
    "m1-paper": dict(dataset="mnist", hidden=(600, 600), latent_dim=50, activation="softplus",
                     likelihood="bernoulli", optimizer="adam", lr=3e-4, batch_size=100,
                     weight_prior_std=None, init_std=0.03),
    "m2-paper": dict(dataset="mnist", conditional=True, classifier=(500,), labels=100,
                     classifier_weight=0.1, hidden=(500,), latent_dim=50, activation="softplus",
                     optimizer="adam", lr=3e-4, batch_size=100, weight_prior_std=None,
                     init_std=0.03),
    # M1 + M2 as Kingma et al.'s code runs it for 100 labels (github.com/dpkingma/nips14-ssl,
    # run_2layer_ssl.py): the m2-paper settings with layers of 300, M2 trained on M1's active
    # units only, and every minibatch a fresh draw z1 ~ q(z1|x) rather than its mean. Needs
    # --features RUN (an m1-paper run).
    "m1m2-paper": dict(dataset="mnist", conditional=True, classifier=(300,), labels=100,
                       classifier_weight=0.1, hidden=(300,), latent_dim=50,
                       activation="softplus", optimizer="adam", lr=3e-4, batch_size=100,
                       weight_prior_std=None, init_std=0.03, feature_draws=True,
                       active_features=True),
    # Convolutional networks for images (aevb.networks.conv): Fashion-MNIST by default; give
    # --dataset an image folder (grey or colour) or array for one's own.
    "conv-images": dict(dataset="fashion-mnist", network="conv", activation="relu",
                        hidden=(256,), latent_dim=32, optimizer="adam", lr=1e-3,
                        batch_size=100, mc_samples=1, weight_prior_std=None, init_std=0.01),
}
