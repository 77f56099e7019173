"""The typer applications. Each area registers its commands on these from its own module."""

import typer

app = typer.Typer(
    name="fairlatent",
    help="Find and remove spurious target/protected correlations through a generative model's latent space.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
data_app = typer.Typer(help="Build, inspect and convert data sets.", no_args_is_help=True)
metrics_app = typer.Typer(
    help="Generative-model metrics (FID, KID, IS, precision/recall, density/coverage).",
    no_args_is_help=True,
    invoke_without_command=True,
)
benchmark_app = typer.Typer(help="Benchmarks: CelebA (real faces) and ToyFaces (many controlled cases).", no_args_is_help=True)
app.add_typer(data_app, name="data")
app.add_typer(metrics_app, name="metrics")
app.add_typer(benchmark_app, name="benchmark")


# The arguments of this invocation (set by fairlatent.cli.main), for commands that re-launch themselves.
LAUNCH_ARGV: list[str] = []


def invocation() -> str | None:
    """This command line as a user would type it again (``fairlatent …``), for the records a benchmark writes;
    None outside the CLI. Under torchrun the re-launched command has lost its ``--nproc N`` (the launcher
    strips it): it is put back, so the record says how the results were computed."""
    import shlex

    from fairlatent.train.distributed import env_world_size

    if not LAUNCH_ARGV:
        return None
    argv = list(LAUNCH_ARGV)
    world = env_world_size()
    if world > 1 and not any(a == "--nproc" or a.startswith("--nproc=") for a in argv):
        argv += ["--nproc", str(world)]
    return "fairlatent " + " ".join(shlex.quote(a) for a in argv)


def relaunch_data_parallel(nproc: int) -> None:
    """After a command has validated its settings: with ``--nproc N`` > 1 outside torchrun, run the same
    command on N processes under torchrun and exit with its status; otherwise return and train here."""
    from fairlatent.train.distributed import env_world_size, launch, strip_nproc

    if nproc <= 1 or env_world_size() > 1:
        return
    if not LAUNCH_ARGV:
        from fairlatent.errors import FairlatentError

        raise FairlatentError("--nproc needs the fairlatent command line (python -m fairlatent.cli or `fairlatent`)")
    raise typer.Exit(launch(strip_nproc(LAUNCH_ARGV), nproc))
