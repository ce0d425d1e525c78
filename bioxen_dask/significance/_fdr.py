"""False discovery rate control over many tests (rois x periods)."""

from __future__ import annotations

from typing import Any

import numpy as np


def fdr_bh(pvalues: Any, alpha: float = 0.05) -> np.ndarray:
    """Benjamini-Hochberg step-up procedure: which null hypotheses to reject at FDR ``alpha``.

    Sort the ``m`` finite p-values, find the largest ``k`` with ``p_(k) <= alpha * k / m`` and
    reject the ``k`` smallest. Controls the expected share of false discoveries among the
    rejections at ``alpha`` for independent or positively dependent tests (Benjamini &
    Hochberg 1995), e.g. one p-value per (roi, period) of a whole-brain run.

    Parameters
    ----------
    pvalues : array-like
        P-values, any shape; NaN entries (no test: a constant roi, a period without samples
        outside the COI) are not counted in ``m`` and never rejected.
    alpha : float
        Target false discovery rate, in (0, 1).

    Returns
    -------
    ndarray of bool
        Same shape as ``pvalues``: True where the hypothesis is rejected.

    Raises
    ------
    ValueError
        ``alpha`` outside (0, 1), or a finite p-value outside [0, 1].

    Examples
    --------
    >>> fdr_bh([0.01, 0.04, 0.03, 0.005, 0.2], alpha=0.05).tolist()
    [True, True, True, True, False]
    >>> fdr_bh([0.001, 0.03, 0.032, 0.2], alpha=0.05).tolist()  # step-up: 0.03 > 0.025, yet rejected
    [True, True, True, False]
    """
    alpha = float(alpha)
    if not 0 < alpha < 1:
        raise ValueError(f"alpha must be in (0, 1), e.g. 0.05; got {alpha!r}.")
    p = np.asarray(pvalues, dtype=float)
    tested = np.isfinite(p)
    values = p[tested]
    if ((values < 0) | (values > 1)).any():
        raise ValueError(f"p-values must lie in [0, 1]; got {values[(values < 0) | (values > 1)][0]!r}.")
    reject = np.zeros(p.shape, dtype=bool)
    m = values.size
    if m == 0:
        return reject
    order = np.argsort(values, kind="stable")
    below = np.flatnonzero(values[order] <= alpha * np.arange(1, m + 1) / m)
    chosen = np.zeros(m, dtype=bool)
    if below.size:
        chosen[order[: below[-1] + 1]] = True
    reject[tested] = chosen
    return reject
