"""The lazy import of Optuna, with the install hint where it is missing."""

from __future__ import annotations

__all__ = ["import_optuna"]

INSTALL_HINT = "pip install 'sklearn-cxr[tuning]'"


def import_optuna():
    """Import and return :mod:`optuna`, or say how to install it."""
    try:
        import optuna
    except ImportError as exc:
        raise ImportError(
            "sklearn_cxr.tuning needs Optuna, which is not installed; install "
            f"the tuning extra: {INSTALL_HINT}"
        ) from exc
    return optuna
