"""The package version, importable by the core without the package face."""

__all__ = ["__version__"]

__version__ = "0.1.0"
