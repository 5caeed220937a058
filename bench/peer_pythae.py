"""The peer side of bench/run.py, run inside bench/.venv-pythae (pythae 0.1.2, torch 2.13.0).

The paper's MNIST model in pythae's own terms: 784-500-20 tanh encoder and decoder, Bernoulli
likelihood (pythae's "bce"), minibatches of 100, fp32. Prints one JSON object.
Usage: python peer_pythae.py MNIST_DIR BINARY_TEST_NPY
"""
import gzip
import json
import sys
import tempfile
import time

import numpy as np
import torch
from torch import nn
from pythae.data.datasets import BaseDataset
from pythae.models import VAE, VAEConfig
from pythae.models.base.base_utils import ModelOutput
from pythae.models.nn import BaseDecoder, BaseEncoder
from pythae.trainers import BaseTrainer, BaseTrainerConfig


class Encoder(BaseEncoder):
    def __init__(self):
        BaseEncoder.__init__(self)
        self.hidden = nn.Sequential(nn.Linear(784, 500), nn.Tanh())
        self.mu, self.log_var = nn.Linear(500, 20), nn.Linear(500, 20)

    def forward(self, x):
        h = self.hidden(x.reshape(len(x), -1))
        return ModelOutput(embedding=self.mu(h), log_covariance=self.log_var(h))


class Decoder(BaseDecoder):
    def __init__(self):
        BaseDecoder.__init__(self)
        self.net = nn.Sequential(nn.Linear(20, 500), nn.Tanh(), nn.Linear(500, 784),
                                 nn.Sigmoid())

    def forward(self, z):
        return ModelOutput(reconstruction=self.net(z))


def main(mnist_dir, test_npy):
    torch.manual_seed(0)
    with gzip.open(f"{mnist_dir}/train-images-idx3-ubyte.gz") as f:
        images = np.frombuffer(f.read(), np.uint8, offset=16).reshape(-1, 784)
    x = (np.random.default_rng(0).random(images.shape) < images / 255).astype(np.float32)
    model = VAE(VAEConfig(input_dim=(784,), latent_dim=20, reconstruction_loss="bce"),
                encoder=Encoder(), decoder=Decoder())
    config = BaseTrainerConfig(output_dir=tempfile.mkdtemp(), num_epochs=1,
                               per_device_train_batch_size=100, learning_rate=0.02,
                               optimizer_cls="Adagrad", no_cuda=True)
    dataset = BaseDataset(torch.from_numpy(x), torch.zeros(len(x)))
    trainer = BaseTrainer(model=model, train_dataset=dataset, training_config=config)
    trainer.prepare_training()  # optimizer, callbacks, as trainer.train() does first
    trainer.train_step(epoch=1)  # warm-up epoch
    start = time.perf_counter()
    trainer.train_step(epoch=2)
    train_seconds = time.perf_counter() - start

    test = torch.from_numpy(np.load(test_npy))
    model.eval()
    start = time.perf_counter()
    with torch.no_grad():
        nll = model.get_nll(test, n_samples=1000, batch_size=100)
    nll_seconds = time.perf_counter() - start
    print(json.dumps({"train_samples_per_second": len(x) / train_seconds,
                      "nll_points": len(test), "nll_samples": 1000,
                      "nll_seconds": nll_seconds, "nll": float(nll),
                      "torch": torch.__version__, "threads": torch.get_num_threads()}))


if __name__ == "__main__":
    main(*sys.argv[1:])
