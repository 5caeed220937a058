"""The file names of a run directory, in one place: every module that reads or writes one
takes its name from here."""

CONFIG = "config.json"  # the TrainConfig and ModelConfig, and what the data decided
WEIGHTS = "model.safetensors"  # theta and phi (and a prior's parameters)
STATE = "state.safetensors"  # optimizer, generators, progress: what a resume needs
METRICS = "metrics.jsonl"  # one record per evaluation during training
EVALUATIONS = "evaluations.jsonl"  # one record per `aevb evaluate`
MANIFEST = "manifest.json"  # the SHA-256 of every file above and below (`integrity`)
FEATURES = "features"  # M1 + M2: a copy of M1's config, weights and manifest (`aevb.features`)
FEATURES_PARTIAL = ".features.partial"  # that copy while it is written
LOCK = ".lock"  # held while a run is trained (`folder.exclusive`)
MANIFEST_LOCK = ".manifest.lock"  # held while the manifest changes
REPORT = "report.html"
EXPLORER = "explorer.html"
# the figures (`outputs.plots`), each one PNG
CURVES = "curves.png"
MANIFOLD = "manifold.png"
SAMPLES = "samples.png"
RECONSTRUCTIONS = "reconstructions.png"
LATENT = "latent.png"
THETA_DRAWS = "theta-draws.png"
AGGREGATE = "aggregate-posterior.png"
PSEUDO_INPUTS = "pseudo-inputs.png"
ANALOGIES = "analogies.png"

RUN_FILES = (CONFIG, WEIGHTS, STATE, METRICS)  # what training writes and a resume continues
FIGURES = (CURVES, MANIFOLD, SAMPLES, RECONSTRUCTIONS, LATENT, THETA_DRAWS, AGGREGATE,
           PSEUDO_INPUTS, ANALOGIES)
