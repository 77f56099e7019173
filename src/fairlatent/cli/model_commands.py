"""CLI: ``fairlatent train-gan`` and ``fairlatent sample`` (thin wrappers over the Python API)."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from fairlatent.cli.app import app, data_app, metrics_app, benchmark_app  # noqa: F401
from fairlatent.errors import FairlatentError


@app.command("train-gan")
def train_gan_command(
    data: Path = typer.Option(..., "--data", help="Data set directory (its train split is used)."),
    out: Path = typer.Option(..., "--out", help="Run directory (config.json, generator.safetensors, checkpoint/, samples/, log.csv)."),
    size: Optional[int] = typer.Option(None, "--size", help="Image size (32, 64, 128); default: the data set's."),
    steps: Optional[int] = typer.Option(None, "--steps", min=1, help="Training steps (default: GANConfig's)."),
    arch: str = typer.Option("dcgan", "--arch", help="dcgan | resnet (spectral-norm discriminator)."),
    loss: str = typer.Option("hinge", "--loss", help="hinge | ns | wgan-gp."),
    batch_size: Optional[int] = typer.Option(None, "--batch-size", min=1),
    latent_dim: int = typer.Option(128, "--latent-dim", min=1),
    width: Optional[int] = typer.Option(None, "--width", min=1, help="Channels of the last hidden layer."),
    n_critic: int = typer.Option(1, "--n-critic", min=1, help="Discriminator updates per generator update."),
    ema: bool = typer.Option(True, "--ema/--no-ema", help="Keep (and use downstream) an EMA of the generator."),
    seed: int = typer.Option(0, "--seed"),
    device: Optional[str] = typer.Option(None, "--device", help="cpu, cuda, …; default: CUDA when available."),
    resume: bool = typer.Option(True, "--resume/--no-resume", help="Continue from OUT/checkpoint (default)."),
    quiet: bool = typer.Option(False, "--quiet", help="No progress bar."),
) -> None:
    """Train a GAN; interrupted runs resume from their last checkpoint."""
    from pydantic import ValidationError

    from fairlatent.train.gan import GANConfig, train_gan

    given = dict(size=size, steps=steps, batch_size=batch_size, width=width)
    try:
        config = GANConfig(arch=arch, loss=loss, latent_dim=latent_dim, n_critic=n_critic, ema=ema, seed=seed,
                           device=device, **{k: v for k, v in given.items() if v is not None})  # fmt: skip
    except ValidationError as exc:
        err = exc.errors()[0]
        raise FairlatentError(f"--{'-'.join(map(str, err['loc'])).replace('_', '-')}: {err['msg']}") from None
    path = train_gan(data, out, config, resume=resume, progress=not quiet)
    typer.echo(f"generator: {path / 'generator.safetensors'}")


@app.command("sample")
def sample_command(
    gan: Path = typer.Option(..., "--gan", help="GAN run directory or TorchScript generator file."),
    n: int = typer.Option(..., "--n", min=1, help="Number of images."),
    out: Path = typer.Option(..., "--out", help="Output data set directory (standard format, with latents.npy)."),
    truncation: Optional[float] = typer.Option(None, "--truncation", help="Resample latent components with |z| > τ."),
    seed: int = typer.Option(0, "--seed"),
    latent_dim: Optional[int] = typer.Option(None, "--latent-dim", help="TorchScript only: latent dimension."),
    output_range: Optional[str] = typer.Option(None, "--output-range", help="TorchScript only: '[-1,1]' or '[0,1]'."),
    batch_size: int = typer.Option(256, "--batch-size", min=1),
    device: Optional[str] = typer.Option(None, "--device"),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace an existing OUT."),
) -> None:
    """Generate N images into an unlabelled data set (split "train"); latents.npy regenerates each image."""
    import pandas as pd

    from fairlatent.data.dataset import write_dataset
    from fairlatent.models.generator import load_generator

    if out.exists() and not overwrite:
        raise FairlatentError(f"{out} already exists; pass --overwrite to replace it")
    handle = load_generator(gan, latent_dim=latent_dim, output_range=output_range, device=device)
    images, latents = handle.sample(n, seed, truncation=truncation, batch_size=batch_size)
    table = pd.DataFrame({"id": [f"g{i:07d}" for i in range(n)], "split": "train"})
    meta = {"source": "generated", "unlabelled": True, "generator": str(gan), "seed": seed, "truncation": truncation,
            "latent_dim": handle.latent_dim}  # fmt: skip
    write_dataset(out, images, table, meta, latents=latents, overwrite=overwrite)
    typer.echo(f"{n} images → {out}")
