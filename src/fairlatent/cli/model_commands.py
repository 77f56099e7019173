"""CLI: ``fairlatent train-gan`` and ``fairlatent sample`` (thin wrappers over the Python API)."""

from __future__ import annotations

from pathlib import Path
from typing import List, Optional

import typer

from fairlatent.cli.app import relaunch_data_parallel, app, data_app, metrics_app, benchmark_app  # noqa: F401
from fairlatent.cli.options import one_of, positive
from fairlatent.errors import FairlatentError


def _flag(name: str) -> str:
    return "--" + name.replace("_", "-")


@app.command("train-gan")
def train_gan_command(
    data: Path = typer.Option(..., "--data", help="Data set directory (its train split is used)."),
    out: Path = typer.Option(..., "--out", help="Run directory (config.json, generator.safetensors, checkpoint/, samples/, log.csv)."),
    config: Optional[Path] = typer.Option(None, "--config", help="TOML file of GANConfig settings (any field)."),
    set_: List[str] = typer.Option([], "--set", help="Set any GANConfig field, e.g. --set r1_gamma=0.1 (TOML value; repeatable; wins over every other source)."),
    size: Optional[int] = typer.Option(None, "--size", callback=one_of(32, 64, 128), help="Image size (32, 64, 128); default: the data set's."),
    steps: Optional[int] = typer.Option(None, "--steps", min=1, help="Training steps (default: GANConfig's)."),
    arch: Optional[str] = typer.Option(None, "--arch", help="dcgan (default) | resnet (spectral-norm discriminator) | infogan_mnist (InfoGAN's reference MNIST networks, batch norm in D)."),
    loss: Optional[str] = typer.Option(None, "--loss", help="hinge (default) | ns | wgan-gp."),
    batch_size: Optional[int] = typer.Option(None, "--batch-size", min=1),
    latent_dim: Optional[int] = typer.Option(None, "--latent-dim", min=1, help="Default 128."),
    width: Optional[int] = typer.Option(None, "--width", min=1, help="Channels of the last hidden layer."),
    n_critic: Optional[int] = typer.Option(None, "--n-critic", min=1, help="Discriminator updates per generator update (default 1)."),
    ema: Optional[bool] = typer.Option(None, "--ema/--no-ema", help="Keep (and use downstream) an EMA of the generator (default on)."),
    seed: Optional[int] = typer.Option(None, "--seed", min=0, help="Default 0."),
    device: Optional[str] = typer.Option(None, "--device", help="cpu, cuda, …; default: CUDA when available."),
    resume: bool = typer.Option(True, "--resume/--no-resume", help="Continue from OUT/checkpoint (default)."),
    quiet: bool = typer.Option(False, "--quiet", help="No progress bar."),
    nproc: int = typer.Option(1, "--nproc", min=1, help="Train data-parallel on N processes of this machine "
                              "(re-launches itself under torchrun; several machines: run torchrun yourself)."),
) -> None:
    """Train a GAN; interrupted runs resume from their last checkpoint.

    Settings, later ones winning: GANConfig's defaults, --config FILE, the flags given, --set KEY=VALUE."""
    from fairlatent.train.gan import GANConfig, train_gan
    from fairlatent.utils.io import check_output_distinct
    from fairlatent.utils.lock import folder_lock
    from fairlatent.utils.settings import settings_from

    check_output_distinct(out, {"--data": data, "--config": config})

    given = dict(size=size, steps=steps, arch=arch, loss=loss, batch_size=batch_size, latent_dim=latent_dim,
                 width=width, n_critic=n_critic, ema=ema, seed=seed, device=device)
    spec = settings_from(GANConfig, config=config, given=given, overrides=set_, where="train-gan",
                         given_sources={k: _flag(k) for k in given})
    relaunch_data_parallel(nproc)
    with folder_lock(out, what="train-gan"):  # one training per folder
        path = train_gan(data, out, spec, resume=resume, progress=not quiet)
    typer.echo(f"generator: {path / 'generator.safetensors'}")


@app.command("sample")
def sample_command(
    gan: Path = typer.Option(..., "--gan", help="GAN run directory or TorchScript generator file."),
    n: int = typer.Option(..., "--n", min=1, help="Number of images."),
    out: Path = typer.Option(..., "--out", help="Output data set directory (standard format, with latents.npy)."),
    truncation: Optional[float] = typer.Option(None, "--truncation", callback=positive, help="Resample latent components with |z| > τ."),
    seed: int = typer.Option(0, "--seed", min=0),
    latent_dim: Optional[int] = typer.Option(None, "--latent-dim", min=1, help="TorchScript only: latent dimension."),
    output_range: Optional[str] = typer.Option(None, "--output-range", help="TorchScript only: '[-1,1]' or '[0,1]'."),
    batch_size: int = typer.Option(256, "--batch-size", min=1),
    device: Optional[str] = typer.Option(None, "--device"),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace an existing OUT."),
) -> None:
    """Generate N images into an unlabelled data set (split "train"); latents.npy regenerates each image."""
    import pandas as pd

    from fairlatent.data.dataset import write_dataset
    from fairlatent.models.generator import load_generator

    from fairlatent.utils.io import check_output_distinct, check_replaceable

    check_output_distinct(out, {"--gan": gan})
    check_replaceable(out, overwrite)  # only a folder fairlatent wrote may be replaced
    handle = load_generator(gan, latent_dim=latent_dim, output_range=output_range, device=device)
    images, latents = handle.sample(n, seed, truncation=truncation, batch_size=batch_size)
    table = pd.DataFrame({"id": [f"g{i:07d}" for i in range(n)], "split": "train"})
    meta = {"source": "generated", "unlabelled": True, "generator": str(gan), "seed": seed, "truncation": truncation,
            "latent_dim": handle.latent_dim}  # fmt: skip
    write_dataset(out, images, table, meta, latents=latents, overwrite=overwrite)
    typer.echo(f"{n} images → {out}")
