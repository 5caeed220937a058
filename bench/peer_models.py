"""The peer side of bench/engines.py, run inside bench/.venv-pythae (pythae 0.1.2, torch 2.13.0).

Trains one of six models in pythae's own trainer and prints one JSON object with its
training samples/s: the best of `rounds` timed stretches, each of as many passes over the
first `points` training points as make at least `samples` samples (so that a stretch is as
long as aevb's timed stretch), after one untimed pass. The networks are those of aevb's model of the same name (see
bench/engines.py), written in pythae's terms.
Usage: python peer_models.py MODEL DATA_NPY POINTS SAMPLES ROUNDS
"""
import json
import sys
import tempfile
import time

import numpy as np
import torch
from torch import nn
from pythae.data.datasets import BaseDataset
from pythae.models import (IWAE, VAE, VAE_IAF, VAMP, IWAEConfig, VAE_IAF_Config, VAEConfig,
                           VAMPConfig)
from pythae.models.base.base_utils import ModelOutput
from pythae.models.nn import BaseDecoder, BaseEncoder
from pythae.trainers import BaseTrainer, BaseTrainerConfig


def mlp(sizes, last=None):
    layers = []
    for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:])):
        if i:
            layers.append(nn.Tanh())
        layers.append(nn.Linear(a, b))
    return nn.Sequential(*layers, *([last] if last else []))


class MlpEncoder(BaseEncoder):
    def __init__(self, sizes):
        BaseEncoder.__init__(self)
        self.body = nn.Sequential(mlp(sizes[:-1]), nn.Tanh())
        self.mu, self.log_var = nn.Linear(sizes[-2], sizes[-1]), nn.Linear(sizes[-2], sizes[-1])

    def forward(self, x):
        h = self.body(x.reshape(len(x), -1))
        return ModelOutput(embedding=self.mu(h), log_covariance=self.log_var(h))


class MlpDecoder(BaseDecoder):
    def __init__(self, sizes):
        BaseDecoder.__init__(self)
        self.net = mlp(sizes, nn.Sigmoid())

    def forward(self, z):
        return ModelOutput(reconstruction=self.net(z))


class MeanHalf(BaseDecoder):
    def __init__(self, sizes):
        BaseDecoder.__init__(self)
        self.net = mlp(sizes)

    def forward(self, z):
        out = self.net(z)
        return ModelOutput(reconstruction=torch.sigmoid(out[:, :out.shape[1] // 2]))


class ConvEncoder(BaseEncoder):  # aevb.networks.conv.ConvEncoder with hidden (256,), relu
    def __init__(self, latent):
        BaseEncoder.__init__(self)
        self.conv = nn.Sequential(nn.Conv2d(1, 32, 4, 2, 1), nn.ReLU(), nn.Conv2d(32, 64, 4, 2, 1),
                                  nn.ReLU(), nn.Flatten(), nn.Linear(64 * 7 * 7, 256), nn.ReLU())
        self.mu, self.log_var = nn.Linear(256, latent), nn.Linear(256, latent)

    def forward(self, x):
        h = self.conv(x.reshape(len(x), 1, 28, 28))
        return ModelOutput(embedding=self.mu(h), log_covariance=self.log_var(h))


class ConvDecoder(BaseDecoder):  # aevb.networks.conv.ConvDecoder, Bernoulli, (256,), relu
    def __init__(self, latent):
        BaseDecoder.__init__(self)
        self.dense = nn.Sequential(nn.Linear(latent, 256), nn.ReLU(), nn.Linear(256, 64 * 7 * 7))
        self.deconv = nn.Sequential(nn.ReLU(), nn.ConvTranspose2d(64, 32, 4, 2, 1), nn.ReLU(),
                                    nn.ConvTranspose2d(32, 1, 4, 2, 1), nn.Sigmoid())

    def forward(self, z):
        out = self.deconv(self.dense(z).reshape(-1, 64, 7, 7))
        return ModelOutput(reconstruction=out.reshape(len(z), 784))


def build(name):
    """(model, optimizer name, learning rate) as bench/engines.py's MODELS[name]."""
    if name == "mnist-paper":
        return VAE(VAEConfig(input_dim=(784,), latent_dim=20, reconstruction_loss="bce"),
                   encoder=MlpEncoder([784, 500, 20]), decoder=MlpDecoder([20, 500, 784])), \
            "Adagrad", 0.02
    if name == "frey-paper":
        # pythae's Gaussian likelihood has a fixed variance ("mse"): the decoder computes
        # aevb's 560 means and 560 log-variances and hands pythae the means.
        return VAE(VAEConfig(input_dim=(560,), latent_dim=10, reconstruction_loss="mse"),
                   encoder=MlpEncoder([560, 200, 10]), decoder=MeanHalf([10, 200, 1120])), \
            "Adagrad", 0.01
    if name == "iwae-k5":
        return IWAE(IWAEConfig(input_dim=(784,), latent_dim=50, reconstruction_loss="bce",
                               number_samples=5),
                    encoder=MlpEncoder([784, 200, 200, 50]),
                    decoder=MlpDecoder([50, 200, 200, 784])), "Adam", 1e-3
    if name == "vamp":  # pythae's pseudo-inputs: hardtanh(Linear(I_K)), aevb's hardtanh(U)
        return VAMP(VAMPConfig(input_dim=(784,), latent_dim=50, reconstruction_loss="bce",
                               number_components=500),
                    encoder=MlpEncoder([784, 200, 200, 50]),
                    decoder=MlpDecoder([50, 200, 200, 784])), "Adam", 1e-3
    if name == "iaf":
        # Two MADE steps of one hidden layer of 200 each, as aevb's (pythae's have ReLU and
        # no context from the encoder; aevb's tanh and the encoder's features as context).
        return VAE_IAF(VAE_IAF_Config(input_dim=(784,), latent_dim=50, reconstruction_loss="bce",
                                      n_made_blocks=2, n_hidden_in_made=1, hidden_size=200),
                       encoder=MlpEncoder([784, 200, 200, 50]),
                       decoder=MlpDecoder([50, 200, 200, 784])), "Adam", 1e-3
    if name == "conv":
        return VAE(VAEConfig(input_dim=(1, 28, 28), latent_dim=16, reconstruction_loss="bce"),
                   encoder=ConvEncoder(16), decoder=ConvDecoder(16)), "Adam", 1e-3
    raise SystemExit(f"unknown model {name}")


def main(name, data_npy, points, samples, rounds):
    torch.manual_seed(0)
    x = torch.from_numpy(np.load(data_npy)[:int(points)])
    if name == "conv":
        x = x.reshape(-1, 1, 28, 28)
    model, optimizer, lr = build(name)
    config = BaseTrainerConfig(output_dir=tempfile.mkdtemp(), num_epochs=1,
                               per_device_train_batch_size=100, learning_rate=lr,
                               optimizer_cls=optimizer, no_cuda=True)
    trainer = BaseTrainer(model=model, train_dataset=BaseDataset(x, torch.zeros(len(x))),
                          training_config=config)
    trainer.prepare_training()  # optimizer, callbacks, as trainer.train() does first
    trainer.train_step(epoch=1)  # warm-up pass
    passes = -(-int(samples) // len(x))  # ceil
    best, epoch = float("inf"), 2
    for r in range(int(rounds)):
        start = time.perf_counter()
        for _ in range(passes):
            trainer.train_step(epoch=epoch)
            epoch += 1
        best = min(best, time.perf_counter() - start)
    print(json.dumps({"model": name, "train_samples_per_second": passes * len(x) / best,
                      "threads": torch.get_num_threads(), "torch": torch.__version__}))


if __name__ == "__main__":
    main(*sys.argv[1:])
