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
benchmark_app = typer.Typer(help="Real-data benchmarks.", no_args_is_help=True)
app.add_typer(data_app, name="data")
app.add_typer(metrics_app, name="metrics")
app.add_typer(benchmark_app, name="benchmark")
