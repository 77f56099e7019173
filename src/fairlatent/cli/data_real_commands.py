"""CLI commands (registered on import)."""

from fairlatent.cli.app import app, data_app  # noqa: F401
