"""Where an InfoGAN latent's hyperplanes put their weight, and what holding the codes does to the edit.

Reads finished pipeline runs whose generator is an InfoGAN (``[gan] info_categorical`` / ``info_continuous``)
and prints, per run: the share of h_t's and h_g's unit normals on the codes (‖w[codes]‖), how often the
paper's edit changes the argmax of the categorical code, and the f_g flip rate, f_t keep rate and their
conjunction (the verified rate), with each edit's mean length, on the images of three edits of the run's own
pair latents:

- ``free``: the paper's complementary edit of the whole vector (what the pairs stage stored, reproduced);
- ``noise only``: the same constraints, only the N(0, I) entries moved (``latent.edit_codes = false``);
- ``free, codes snapped``: the free edit, then each one-hot block set to its argmax and the continuous codes
  clipped to [−1, 1] (a repair after the fact; not a pipeline option, shown for comparison).

    OMP_NUM_THREADS=1 PYTHONPATH=src python benchmarks/infogan_edit_posthoc.py runs/toyfaces_infogan/pairs/*/seed*

Nothing in the runs is written.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np


def snap_codes(z: np.ndarray, spec) -> np.ndarray:
    """``z`` with each categorical block one-hot at its argmax and each continuous code clipped to [−1, 1]."""
    from fairlatent.models.latent_spec import CategoricalCode

    out = z.copy()
    for code in spec.codes:
        part = spec.slices()[code.name]
        if isinstance(code, CategoricalCode):
            out[:, part] = np.eye(code.k)[out[:, part].argmax(axis=1)]
        else:
            out[:, part] = np.clip(out[:, part], -1.0, 1.0)
    return out


def main(argv: list[str] | None = None) -> None:
    from fairlatent.latent import Hyperplane, edit_latents
    from fairlatent.models.generator import load_generator
    from fairlatent.models.latent_spec import CategoricalCode
    from fairlatent.pipeline.run import labeler_labels, labeler_scores, load_labelers

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("runs", nargs="+", help="finished pipeline run folders with an InfoGAN generator")
    p.add_argument("--batch-size", type=int, default=500)
    args = p.parse_args(argv)
    print("| run | ‖w_t[codes]‖ | ‖w_g[codes]‖ | category changed (free) | edit | mean ‖z' − z‖ | flip | keep "
          "| verified |")
    print("|---|---:|---:|---:|---|---:|---:|---:|---:|")
    for run in map(Path, args.runs):
        cfg = json.loads((run / "config.json").read_text())
        stage = lambda name: json.loads((run / name / "stage.json").read_text())["outputs"]  # noqa: E731
        t, g, lc = cfg["data"]["target"], cfg["data"]["protected"], cfg["latent"]
        threshold = lc.get("threshold", "f1")
        labelers = load_labelers(stage("labeler"))
        gen = load_generator(stage("gan")["path"])
        spec = gen.latent_spec
        planes = stage("hyperplanes")
        h_t, h_g = (Hyperplane(w=np.array(planes[h]["w"]), b=planes[h]["b"]) for h in ("h_t", "h_g"))
        z_all = np.load(run / "latents" / "z.npy").astype(np.float64)
        t_all, g_all = labeler_labels(np.load(run / "latents" / "scores.npy"), labelers, t, g, threshold)
        start = lc["n_fit"] + lc["n_holdout"]
        z, t_z, g_z = z_all[start:], t_all[start:], g_all[start:]
        noise, min_sin = spec.normal_mask(), lc.get("min_sin", 0.1)
        free = edit_latents(z, h_t, h_g, min_sin=min_sin)
        edits = {"free": free, "noise only": edit_latents(z, h_t, h_g, min_sin=min_sin, editable=noise),
                 "free, codes snapped": snap_codes(free, spec)}
        codes = ~noise
        cats = [spec.slices()[c.name] for c in spec.codes if isinstance(c, CategoricalCode)]
        changed = np.mean([(free[:, s].argmax(1) != z[:, s].argmax(1)).mean() for s in cats]) if cats else np.nan
        name = f"{run.parent.name}/{run.name}"
        for k, (edit, zp) in enumerate(edits.items()):
            images = np.concatenate([gen.decode(zp[i:i + args.batch_size].astype(np.float32))
                                     for i in range(0, len(zp), args.batch_size)])
            t_p, g_p = labeler_labels(labeler_scores(images, labelers, t, g), labelers, t, g, threshold)
            flip, keep = g_p != g_z, t_p == t_z
            head = (f"| {name} | {np.linalg.norm(h_t.w[codes]):.3f} | {np.linalg.norm(h_g.w[codes]):.3f} | "
                    f"{changed:.3f} |" if k == 0 else "| | | | |")
            length = np.linalg.norm(zp - z, axis=1).mean()
            print(f"{head} {edit} | {length:.2f} | {flip.mean():.3f} | {keep.mean():.3f} | "
                  f"{(flip & keep).mean():.3f} |")


if __name__ == "__main__":
    main()
