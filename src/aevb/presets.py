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
    # Convolutional networks for images (aevb.networks.conv): Fashion-MNIST by default; give
    # --dataset an image folder (grey or colour) or array for one's own.
    "conv-images": dict(dataset="fashion-mnist", network="conv", activation="relu",
                        hidden=(256,), latent_dim=32, optimizer="adam", lr=1e-3,
                        batch_size=100, mc_samples=1, weight_prior_std=None, init_std=0.01),
}
