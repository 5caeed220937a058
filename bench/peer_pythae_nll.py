"""pythae's `get_nll` alone, for bench/is_floor.py, inside bench/.venv-pythae: the model of
peer_pythae.py (784-500-20 tanh, Bernoulli) as initialised, since the time of importance
sampling does not depend on the weights. Prints one JSON object.
Usage: python peer_pythae_nll.py BINARY_TEST_NPY
"""
import json
import sys
import time

import numpy as np
import torch
from peer_pythae import Decoder, Encoder
from pythae.models import VAE, VAEConfig


def main(test_npy):
    torch.manual_seed(0)
    model = VAE(VAEConfig(input_dim=(784,), latent_dim=20, reconstruction_loss="bce"),
                encoder=Encoder(), decoder=Decoder()).eval()
    test = torch.from_numpy(np.load(test_npy))
    with torch.no_grad():
        model.get_nll(test[:5], n_samples=1000, batch_size=100)  # warm-up
        start = time.perf_counter()
        model.get_nll(test, n_samples=1000, batch_size=100)
    print(json.dumps({"nll_seconds": time.perf_counter() - start, "points": len(test)}))


if __name__ == "__main__":
    main(*sys.argv[1:])
