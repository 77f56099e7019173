"""CLI: ``fairlatent oversample mnist-lt|fit|sample`` and ``fairlatent benchmark imbalance [--benchmark celeba-hair]``.

Thin wrappers over :mod:`fairlatent.oversample`: a long-tailed split as ``.npz`` (``images``, ``labels``,
optional ``test_images``/``test_labels``/``class_names``), a class-preserving regularized autoencoder fitted on
it (resumable), and decoded new images of chosen classes.
"""

from __future__ import annotations

from pathlib import Path
from typing import List, Optional

import typer

from fairlatent.cli.app import app, benchmark_app
from fairlatent.errors import FairlatentError

oversample_app = typer.Typer(help="Minority oversampling with class-preserving regularized autoencoders.",
                             no_args_is_help=True)
app.add_typer(oversample_app, name="oversample")


def _ints(text: str, option: str) -> list[int]:
    try:
        return [int(t) for t in text.split(",") if t.strip()]
    except ValueError:
        raise FairlatentError(f"{option} {text!r}: expected comma-separated integers, e.g. 0,1,2") from None


@oversample_app.command("mnist-lt")
def mnist_lt_command(
    mnist: Path = typer.Option(..., "--mnist", help="Folder of the MNIST IDX files (t10k-images-idx3-ubyte[.gz], labels)."),
    out: Path = typer.Option(..., "--out", help="Output .npz (train images/labels, balanced test set)."),
    seed: int = typer.Option(0, "--seed", min=0),
    counts: Optional[str] = typer.Option(None, "--counts", help="Training images per digit 0–9, comma-separated; "
                                         "default 800,400,200,150,100,70,40,20,12,8 (ratio 100)."),
    test_per_class: int = typer.Option(150, "--test-per-class", min=1),
    overwrite: bool = typer.Option(False, "--overwrite"),
) -> None:
    """Write a long-tailed MNIST split with a balanced test set."""
    from fairlatent.oversample.data import MNIST_LT_COUNTS, mnist_long_tailed, write_split_npz
    from fairlatent.utils.io import check_output_file

    check_output_file(out, suffixes=(".npz",), overwrite=overwrite)
    c = _ints(counts, "--counts") if counts else list(MNIST_LT_COUNTS)
    if len(c) != 10:
        raise FairlatentError(f"--counts: {len(c)} numbers given; MNIST has 10 digits")
    split = mnist_long_tailed(mnist, seed=seed, counts=c, test_per_class=test_per_class)
    write_split_npz(out, split)
    typer.echo(f"{out}: {len(split.train_labels)} training images {split.train_counts()}, "
               f"{len(split.test_labels)} test images")


@oversample_app.command("fit")
def fit_command(
    data: Path = typer.Option(..., "--data", help=".npz with images (uint8 N×H×W[×C]) and labels (class indices)."),
    out: Path = typer.Option(..., "--out", help="Output model folder (resumes from its checkpoint)."),
    config: Optional[Path] = typer.Option(None, "--config", help="TOML file of RAEConfig settings."),
    set_: List[str] = typer.Option([], "--set", help="Set any RAEConfig field, e.g. --set z_dim=256 (repeatable)."),
    steps: Optional[int] = typer.Option(None, "--steps", min=1, help="Default 100,001 (the reference's)."),
    seed: Optional[int] = typer.Option(None, "--seed", min=0),
    overwrite: bool = typer.Option(False, "--overwrite", help="Start afresh instead of resuming OUT's checkpoint."),
    quiet: bool = typer.Option(False, "--quiet", help="No progress bar."),
) -> None:
    """Fit a class-preserving regularized autoencoder (encoder, decoder, linear probe, mixer)."""
    from fairlatent.oversample.data import read_split_npz
    from fairlatent.oversample.rae import RAEConfig, fit_rae
    from fairlatent.utils.settings import settings_from

    given = dict(steps=steps, seed=seed)
    spec = settings_from(RAEConfig, config=config, given=given, overrides=set_, where="oversample fit",
                         given_sources={k: "--" + k for k in given})
    split = read_split_npz(data)
    fit_rae(split.train_images, split.train_labels, out, spec, class_names=split.class_names or None,
            resume=not overwrite, progress=not quiet)
    typer.echo(f"{out}: fitted ({len(split.train_labels)} images, counts {split.train_counts()})")
    if len(split.test_labels):
        from fairlatent.oversample.benchmark import class_metrics
        from fairlatent.oversample.rae import load_rae

        m = class_metrics(split.test_labels, load_rae(out).predict(split.test_images), split.n_classes)
        typer.echo(f"test: ACSA {m['acsa']:.4f}  GM {m['gm']:.4f}  macro-F1 {m['macro_f1']:.4f}")


@oversample_app.command("sample")
def sample_command(
    model: Path = typer.Option(..., "--model", help="A folder written by `fairlatent oversample fit`."),
    out: Path = typer.Option(..., "--out", help="Output .npz of decoded images and labels."),
    per_class: Optional[int] = typer.Option(None, "--per-class", min=1, help="Images of every class."),
    balance: bool = typer.Option(False, "--balance", help="As many images per class as bring it to the largest class."),
    seed: int = typer.Option(0, "--seed", min=0),
    grid: Optional[Path] = typer.Option(None, "--grid", help="Also save a PNG grid, one row per class."),
    overwrite: bool = typer.Option(False, "--overwrite"),
) -> None:
    """Decode new images: mixer-weighted combinations of two training latents of the same class."""
    import numpy as np

    from fairlatent.oversample.rae import load_rae
    from fairlatent.utils.io import check_output_file, write_bytes

    if (per_class is None) == (not balance):
        raise FairlatentError("give exactly one of --per-class N and --balance")
    check_output_file(out, suffixes=(".npz",), overwrite=overwrite)
    if grid is not None:
        check_output_file(grid, suffixes=(".png",), overwrite=overwrite, option="--grid")
    rae = load_rae(model)
    counts = [per_class] * rae.n_classes if per_class is not None else rae.balance_counts()
    x, y = rae.sample(counts, seed=seed)
    import io

    buf = io.BytesIO()
    np.savez_compressed(buf, images=x, labels=y, class_names=np.array(rae.class_names))
    write_bytes(out, buf.getvalue())
    if grid is not None:
        from fairlatent.utils.images import image_grid, save_png

        per = min(10, max(1, min(c for c in counts if c > 0))) if any(counts) else 1
        gx, _ = rae.sample([per] * rae.n_classes, seed=seed)
        save_png(grid, image_grid(gx if gx.shape[3] == 3 else np.repeat(gx, 3, axis=3), nrow=per), scale=2)
    typer.echo(f"{out}: {len(y)} images, per class {np.bincount(y, minlength=rae.n_classes).tolist()}")


@benchmark_app.command("imbalance")
def benchmark_imbalance_command(
    work: Path = typer.Option(..., "--work", help="Folder for the fitted autoencoders (reused when finished)."),
    benchmark: str = typer.Option("mnist-lt", "--benchmark", help="mnist-lt (long-tailed MNIST) or celeba-hair "
                                  "(CelebA hair colour, identity-disjoint balanced test)."),
    mnist: Optional[Path] = typer.Option(None, "--mnist", help="Folder of the MNIST IDX files (mnist-lt)."),
    celeba: Optional[Path] = typer.Option(None, "--celeba", help="CelebA data set made by `fairlatent data celeba "
                                          "--size 64` (celeba-hair)."),
    out_dir: Path = typer.Option(Path("docs/benchmarks"), "--out-dir", help="Where imbalance.md/.json go "
                                 "(imbalance_celeba_hair.md/.json for celeba-hair)."),
    seeds: str = typer.Option("0,1,2", "--seeds"),
    profile: str = typer.Option("cpu", "--profile", help="cpu (reduced, documented), cpu-augment (cpu with the same "
                                "geometric augmentation for every model) or reference (the paper's budget)."),
    methods: Optional[str] = typer.Option(None, "--methods", help="Comma-separated subset of the methods."),
) -> None:
    """The class-preserving autoencoder against CE, reweighting, ROS, SMOTE, latent SMOTE (MNIST-LT or CelebA hair)."""
    from fairlatent.cli.app import invocation
    from fairlatent.oversample.benchmark import METHODS, run_imbalance_benchmark, write_outputs

    record = run_imbalance_benchmark(benchmark=benchmark, mnist=mnist, celeba=celeba, work=work,
                                     seeds=_ints(seeds, "--seeds"), profile=profile,
                                     methods=methods.split(",") if methods else METHODS,
                                     log=lambda s: typer.echo(s))
    command = invocation() or "fairlatent"
    for p in write_outputs(record, out_dir, command=command).values():
        typer.echo(str(p))
