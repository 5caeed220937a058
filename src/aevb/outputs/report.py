"""A run's pictures and its self-contained report.html (images embedded, opens offline)."""
from __future__ import annotations

import base64
import html
import json
from pathlib import Path

from .. import algorithms
from ..data import Dataset
from ..features import pictured
from ..rundir import integrity, names
from ..rundir.checkpoint import load, read_config
from ..rundir.evaluations import dataset_of_run, test_set_of_run
from ..rundir.logs import read_evaluations, read_metrics
from . import plots

FIGURES = {  # file name -> caption
    names.CURVES: "Lower bound per data point against training samples evaluated (paper, Fig. 2)",
    names.MANIFOLD: "Decoder means over a grid of z through the inverse Gaussian CDF (Fig. 4)",
    names.SAMPLES: "Decoder means for z drawn from the prior (Fig. 5)",
    names.RECONSTRUCTIONS: "Test data (top) and decoder means at the mean of q(z|x) (bottom)",
    names.LATENT: "Means of q(z|x) over the test set",
    names.THETA_DRAWS: "The same z decoded under the posterior mean of theta (top row) and "
                       "under draws theta ~ q(theta) (rows below): the model's uncertainty",
    names.AGGREGATE: "One draw of q(z|x) per test point (the aggregate posterior) beside as many "
                     "draws of the prior p(z), on the aggregate's first two principal directions",
    names.PSEUDO_INPUTS: "The VampPrior's pseudo-inputs u_k: p(z) is the mean of q(z|u_k)",
    names.ANALOGIES: "Analogies (Kingma et al. 2014, Fig. 1): a test image (left), then its "
                     "z = mean of q(z|x, y) decoded with every class",
}


def run_label(info: dict) -> str:
    c = info["config"]
    return (f"{Path(c['dataset']).name} N_z={c['latent_dim']} "
            f"h={','.join(map(str, c['hidden']))} {c['optimizer']} {c['lr']:g}")


def write_figures(run_dir, data: Dataset | None = None) -> list[Path]:
    """Every figure of FIGURES into run_dir; returns their paths."""
    run_dir = Path(run_dir)
    info = read_config(run_dir)
    model, images = pictured(run_dir, load(run_dir))
    if images is not None:  # M1 + M2: its pictures are M1's images
        return _label_figures(model, info, images, images.test, run_dir)
    data = data if data is not None else dataset_of_run(run_dir)
    test = test_set_of_run(run_dir, data)
    if model.config.classes:
        return _label_figures(model, info, data, test, run_dir)
    paths = [plots.manifold(model, run_dir / names.MANIFOLD),
             plots.samples(model, run_dir / names.SAMPLES)]
    if model.theta_posterior is not None:
        paths.append(plots.theta_draws(model, run_dir / names.THETA_DRAWS))
    metrics = read_metrics(run_dir)
    if any(m.get("test_elbo") is not None for m in metrics):
        paths.append(plots.curves([(run_label(info), metrics)], run_dir / names.CURVES))
    if algorithms.get(info["config"]["algorithm"]).trains_encoder:
        paths += [plots.reconstructions(model, test, run_dir / names.RECONSTRUCTIONS),
                  plots.latent_scatter(model, test, run_dir / names.LATENT,
                                       labels=data.test_labels),
                  plots.aggregate_posterior(model, test, run_dir / names.AGGREGATE)]
    if hasattr(model.p_z, "points"):
        paths.append(plots.pseudo_inputs(model, run_dir / names.PSEUDO_INPUTS))
    return paths


def _label_figures(model, info: dict, data: Dataset, test, run_dir: Path) -> list[Path]:
    """The figures of a model with a label (`outputs.label_plots`): samples per class, the
    analogies, reconstructions given the test labels, the learning curves."""
    from .label_plots import analogies, class_samples

    paths = [class_samples(model, run_dir / names.SAMPLES)]
    metrics = read_metrics(run_dir)
    if any(m.get("test_elbo") is not None for m in metrics):
        paths.append(plots.curves([(run_label(info), metrics)], run_dir / names.CURVES))
    if data.test_labels is not None:
        y = data.test_labels[:10]
        paths += [analogies(model, test, y, run_dir / names.ANALOGIES),
                  plots.reconstructions(model.given(y), test[:10],
                                        run_dir / names.RECONSTRUCTIONS)]
    return paths


def _img(path: Path) -> str:
    data = base64.b64encode(path.read_bytes()).decode()
    return f'<img src="data:image/png;base64,{data}" alt="{html.escape(path.name)}">'


def _evaluation_html(e: dict) -> str:
    """One record of evaluations.jsonl as paragraphs of the report."""
    esc = html.escape
    bound = "" if e["elbo"] is None else f"; lower bound {e['elbo']:.2f} nats"
    what = "Predictive log-likelihood log E_q(theta)[p(x|theta)]" \
        if e.get("posterior_std") else "Log-likelihood"
    out = (f"<p>{what} ({e['split']}, {e.get('method', 'importance')}, K = "
           f"{e['importance_samples']}): <b>{e['log_likelihood']:.2f}</b> nats{bound}, "
           f"over {e['n']} data points.</p>")
    if e.get("active_units") is not None and e.get("kl_per_dimension") is not None:
        kl = ", ".join(f"{v:.2f}" for v in e["kl_per_dimension"])
        out += (f"<p>Active latent units: <b>{e['active_units']}</b> of "
                f"{len(e['kl_per_dimension'])}; KL per dimension: {esc(kl)} nats.</p>")
    elif e.get("active_units") is not None:  # a prior without a KL per dimension
        layers = ""
        if e.get("active_units_per_layer"):
            layers = " (" + ", ".join(
                f"z{i + 1}: {a} of {n}" for i, (a, n) in
                enumerate(zip(e["active_units_per_layer"], e["layer_sizes"]))) + ")"
        out += f"<p>Active latent units: <b>{e['active_units']}</b>{layers}.</p>"
    for layer in e.get("posterior_std") or ():
        out += (f"<p>Posterior sigma of decoder.{esc(layer['name'])} ({layer['size']} "
                f"values): mean {layer['mean']:.3g}, median {layer['median']:.3g}, "
                f"min {layer['min']:.3g}, max {layer['max']:.3g}.</p>")
    return out


def write_report(run_dir) -> Path:
    """report.html with settings, the metrics table and every figure present, embedded."""
    run_dir = Path(run_dir)
    info = read_config(run_dir)
    metrics = read_metrics(run_dir)
    evaluations = read_evaluations(run_dir)
    esc = html.escape
    def cell(value):
        return "-" if value is None else f"{value:.2f}"

    rows = "".join(
        f"<tr><td>{m['samples']:,}</td><td>{m['epoch']:.2f}</td><td>{cell(m['train_elbo'])}</td>"
        f"<td>{cell(m['test_elbo'])}</td><td>{cell(m.get('train_log_likelihood'))}</td>"
        f"<td>{cell(m.get('test_log_likelihood'))}</td><td>{m['seconds']:.1f}</td></tr>"
        for m in metrics)
    settings = "".join(f"<tr><th>{esc(k)}</th><td>{esc(json.dumps(v))}</td></tr>"
                       for k, v in info["config"].items())
    figures = "".join(
        f"<figure>{_img(run_dir / name)}<figcaption>{esc(caption)}</figcaption></figure>"
        for name, caption in FIGURES.items() if (run_dir / name).exists())
    ll = "".join(_evaluation_html(e) for e in evaluations)
    explorer = (f'<p><a href="{names.EXPLORER}">Open the latent explorer</a> '
                f'({names.EXPLORER}, beside this report): decode any z, encode your own '
                'drawing, interpolate.</p>'
                if (run_dir / names.EXPLORER).exists() else "")
    page = f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>aevb run {esc(run_dir.name)}</title>
<style>
body {{ font-family: sans-serif; margin: 2em; color: #222; }}
table {{ border-collapse: collapse; margin: 1em 0; }}
td, th {{ border: 1px solid #ccc; padding: 2px 8px; text-align: right; font-size: 13px; }}
figure {{ display: inline-block; margin: 0 1em 1em 0; vertical-align: top; max-width: 100%; }}
figure img {{ max-width: 100%; height: auto; }}
td {{ overflow-wrap: anywhere; }}
figcaption {{ font-size: 13px; max-width: 420px; }}
img {{ image-rendering: pixelated; }}
</style></head><body>
<h1>{esc(run_label(info))}</h1>
<p>Run directory <code>{esc(str(run_dir))}</code>; aevb {esc(info['versions']['aevb'])},
torch {esc(info['versions']['torch'])}, device {esc(info.get('device', '?'))}.</p>
{ll}
{explorer}
<h2>Figures</h2>
{figures}
<h2>Lower bound and appendix D log-likelihood (nats per data point)</h2>
<table><tr><th>samples</th><th>epoch</th><th>train bound</th><th>test bound</th>
<th>train log p(x)</th><th>test log p(x)</th><th>seconds</th></tr>
{rows}</table>
<h2>Settings</h2>
<table>{settings}</table>
</body></html>
"""
    out = run_dir / names.REPORT
    integrity.write(run_dir, {out.name: page.encode()})
    return out
