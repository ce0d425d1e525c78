"""The package version: the one place it is written in Python (``pyproject.toml`` holds the same)."""

__version__ = "0.1.0"
