"""Progress shown while a person waits: bars for batches, plain epoch tables.

Bars are tqdm's (through skorch's :class:`~skorch.callbacks.ProgressBar`
while fine-tuning); they go to stderr. skorch's per-epoch table colours its
columns with ANSI codes; :class:`PlainPrintLog` drops them where standard
output is not a terminal, so that logs and CI output stay readable.
"""

from __future__ import annotations

import math
import re
import sys

import numpy as np
from skorch.callbacks import PrintLog
from skorch.utils import to_numpy

__all__ = ["PlainPrintLog", "bar", "predict_proba_with_progress"]

_ANSI = re.compile(r"\x1b\[[0-9;]*m")


def _interactive(stream):
    isatty = getattr(stream, "isatty", None)
    try:
        return bool(isatty and isatty())
    except ValueError:  # a closed stream
        return False


class PlainPrintLog(PrintLog):
    """skorch's epoch table, without colour codes when stdout is not a TTY."""

    def table(self, row):
        text = super().table(row)
        return text if _interactive(sys.stdout) else _ANSI.sub("", text)


def bar(iterable, *, total=None, desc=None, unit="batch"):
    """A tqdm bar on stderr; sparse updates where stderr is not a terminal."""
    from tqdm.auto import tqdm

    interactive = _interactive(sys.stderr)
    return tqdm(
        iterable,
        total=total,
        desc=desc,
        unit=unit,
        # in a log file every refresh is a line: refresh rarely there
        mininterval=0.1 if interactive else 10.0,
        dynamic_ncols=interactive,
    )


def predict_proba_with_progress(net, dataset, desc="Predicting"):
    """``net.predict_proba(dataset)`` with a progress bar over the batches."""
    nonlinearity = net._get_predict_nonlinearity()
    batch_size = net.get_params().get("iterator_valid__batch_size") or net.batch_size
    total = math.ceil(len(dataset) / batch_size) if batch_size > 0 else None
    out = []
    for batch in bar(net.forward_iter(dataset, training=False), total=total, desc=desc):
        batch = batch[0] if isinstance(batch, tuple) else batch
        out.append(to_numpy(nonlinearity(batch)))
    return np.concatenate(out, 0)
