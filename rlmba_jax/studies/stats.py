r"""Paired statistics for comparing strategies over the same seeds.

Every comparison in a report is paired: two strategies run with the same seeds, classifier,
schedule and splits, so the per-seed difference ``d_s = a_s - b_s`` carries the
comparison and the between-seed spread common to both cancels. For the differences:

* ``paired_t``: mean, sample standard deviation (ddof = 1), the 95 % confidence interval
  ``mean +- t_{0.975, n-1} sd / sqrt(n)`` and the two-sided p of ``H0: E[d] = 0``;
* ``bootstrap_ci``: the percentile bootstrap interval of the mean (resampling seeds);
* ``wilcoxon``: the Wilcoxon signed-rank test (zeros dropped; the exact null distribution
  for n <= 50, ties included, else the normal approximation with the tie correction;
  scipy's defaults);
* ``tost``: two one-sided t tests of equivalence within +- ``margin``; "tied" only when
  its p is below alpha (the 90 % interval lies inside the margin);
* ``holm``: Holm's step-down adjustment of a table's p-values;
* ``penalty_matrix``: the pairwise penalty matrix of Ash et al. (BADGE, ICLR 2020): at
  each label count of an experiment a two-sided paired t test at alpha; when row i beats
  column j, ``P[i, j] += 1 / L`` (L label counts with a test), so each experiment adds at
  most 1 to an entry.

Tested against ``scipy.stats`` on fixed inputs (``tests/test_stats.py``). Only scipy's
distribution functions (``scipy.special``) are used here.
"""

from __future__ import annotations

import itertools
import math
from typing import Mapping, NamedTuple, Sequence

import numpy as np
from scipy import special


class PairedComparison(NamedTuple):
  """A paired comparison of two strategies over ``n`` seeds (differences a - b)."""
  n: int
  mean: float
  sd: float  # sample standard deviation of the differences (ddof = 1)
  t_low: float  # 95 % paired-t interval of the mean difference
  t_high: float
  t_p: float  # two-sided paired t test of a zero mean
  boot_low: float  # 95 % percentile-bootstrap interval of the mean difference
  boot_high: float
  wilcoxon_p: float  # two-sided Wilcoxon signed-rank p
  tost_p: float  # equivalence within +- margin (small: tied)
  margin: float
  wins: int  # seeds where a > b
  losses: int  # seeds where a < b


def paired_differences(a: Mapping[int, float], b: Mapping[int, float]
                       ) -> tuple[list[int], np.ndarray]:
  """(the seeds both have, ``a[s] - b[s]`` on them)."""
  seeds = sorted(set(a) & set(b))
  return seeds, np.asarray([a[s] - b[s] for s in seeds], np.float64)


def t_quantile(q: float, dof: int) -> float:
  return float(special.stdtrit(dof, q))


def paired_t(d: np.ndarray, confidence: float = 0.95) -> tuple[float, float, float, float]:
  """(mean, low, high, two-sided p) of the paired t test on differences ``d``."""
  d = np.asarray(d, np.float64)
  n = len(d)
  mean = float(d.mean())
  if n < 2:
    return mean, float("nan"), float("nan"), float("nan")
  se = float(d.std(ddof=1)) / math.sqrt(n)
  half = t_quantile(0.5 + confidence / 2, n - 1) * se
  if se == 0.0:
    p = 1.0 if mean == 0.0 else 0.0
  else:
    p = float(2.0 * special.stdtr(n - 1, -abs(mean / se)))
  return mean, mean - half, mean + half, p


def bootstrap_ci(d: np.ndarray, confidence: float = 0.95, resamples: int = 10000,
                 seed: int = 0) -> tuple[float, float]:
  """The percentile bootstrap interval of the mean of ``d`` (seeds resampled)."""
  d = np.asarray(d, np.float64)
  if len(d) < 2:
    return float("nan"), float("nan")
  rng = np.random.default_rng(seed)
  means = d[rng.integers(0, len(d), (resamples, len(d)))].mean(axis=1)
  alpha = (1 - confidence) / 2
  low, high = np.quantile(means, [alpha, 1 - alpha])
  return float(low), float(high)


def _ranks(x: np.ndarray) -> np.ndarray:
  """Ranks 1..n with ties given their mean rank."""
  order = np.argsort(x, kind="stable")
  ranks = np.empty(len(x), np.float64)
  sorted_x = x[order]
  i = 0
  while i < len(x):
    j = i
    while j + 1 < len(x) and sorted_x[j + 1] == sorted_x[i]:
      j += 1
    ranks[order[i:j + 1]] = (i + j) / 2 + 1
    i = j + 1
  return ranks


def _exact_signed_rank_counts(doubled_ranks: np.ndarray) -> np.ndarray:
  """``counts[t]``: how many of the 2^n sign patterns give 2 W+ = t, for the given ranks
  doubled (mid-ranks of ties are halves, so doubled they are whole)."""
  weights = [int(round(r)) for r in doubled_ranks]
  counts = np.zeros(sum(weights) + 1, np.float64)
  counts[0] = 1
  for k in weights:
    counts[k:] = counts[k:] + counts[:-k].copy()
  return counts


def wilcoxon(d: np.ndarray) -> tuple[float, float]:
  """(statistic min(W+, W-), two-sided p) of the Wilcoxon signed-rank test on ``d``.

  Zero differences are dropped (Wilcoxon's rule). For n <= 50 the exact null distribution
  of the ranks (mid-ranks for ties: every sign pattern counted), else the normal
  approximation with the tie correction and no continuity correction
  (scipy.stats.wilcoxon's defaults in scipy 1.17).
  """
  d = np.asarray(d, np.float64)
  d = d[d != 0]
  n = len(d)
  if n == 0:
    return 0.0, 1.0
  ranks = _ranks(np.abs(d))
  w_plus = float(ranks[d > 0].sum())
  w_minus = float(ranks[d < 0].sum())
  statistic = min(w_plus, w_minus)
  if n <= 50:  # the exact null distribution of the (mid-)ranks, ties included
    counts = _exact_signed_rank_counts(2 * ranks)
    p = 2.0 * counts[:int(round(2 * statistic)) + 1].sum() / counts.sum()
    return statistic, float(min(1.0, p))
  mean = n * (n + 1) / 4.0
  _, tie_counts = np.unique(np.abs(d), return_counts=True)
  var = n * (n + 1) * (2 * n + 1) / 24.0 - float((tie_counts ** 3 - tie_counts).sum()) / 48.0
  z = (statistic - mean) / math.sqrt(var)
  return statistic, float(min(1.0, 2.0 * special.ndtr(-abs(z))))


def tost(d: np.ndarray, margin: float) -> float:
  """p of the two one-sided paired t tests of ``-margin < E[d] < margin`` (equivalence:
  p < alpha means the two strategies are tied within the margin)."""
  d = np.asarray(d, np.float64)
  n = len(d)
  if n < 2:
    return float("nan")
  se = float(d.std(ddof=1)) / math.sqrt(n)
  mean = float(d.mean())
  if se == 0.0:
    return 0.0 if abs(mean) < margin else 1.0
  p_low = float(special.stdtr(n - 1, -(mean + margin) / se))  # H0: mean <= -margin
  p_high = float(special.stdtr(n - 1, (mean - margin) / se))  # H0: mean >= margin
  return max(p_low, p_high)


def compare(a: Mapping[int, float], b: Mapping[int, float], margin: float = 0.01,
            confidence: float = 0.95, resamples: int = 10000) -> PairedComparison:
  """Every paired statistic of ``a - b`` over their common seeds."""
  _, d = paired_differences(a, b)
  mean, low, high, p = paired_t(d, confidence)
  boot = bootstrap_ci(d, confidence, resamples)
  return PairedComparison(
      n=len(d), mean=mean, sd=float(d.std(ddof=1)) if len(d) > 1 else float("nan"),
      t_low=low, t_high=high, t_p=p, boot_low=boot[0], boot_high=boot[1],
      wilcoxon_p=wilcoxon(d)[1], tost_p=tost(d, margin), margin=margin,
      wins=int((d > 0).sum()), losses=int((d < 0).sum()))


def holm(pvalues: Sequence[float]) -> np.ndarray:
  """Holm's step-down adjusted p-values (the same order as given; NaN stays NaN)."""
  p = np.asarray(pvalues, np.float64)
  out = np.full(len(p), np.nan)
  valid = np.flatnonzero(~np.isnan(p))
  m = len(valid)
  running = 0.0
  for rank, i in enumerate(valid[np.argsort(p[valid], kind="stable")]):
    running = max(running, min(1.0, (m - rank) * p[i]))
    out[i] = running
  return out


def verdict(c: PairedComparison, adjusted_p: float, alpha: float = 0.05) -> str:
  """The words for a comparison of a against b: ``tied`` when TOST shows equivalence within
  the margin (``tied, a smaller difference`` when the Holm-adjusted t test also finds one),
  else ``better`` / ``worse`` when the Holm-adjusted paired t test does, else
  ``inconclusive``."""
  significant = adjusted_p < alpha
  if c.tost_p < alpha:
    if significant:
      return f"tied (a {'higher' if c.mean > 0 else 'lower'} mean by under the margin)"
    return "tied"
  if significant:
    return "better" if c.mean > 0 else "worse"
  return "inconclusive"


def penalty_matrix(curves: Mapping[str, Mapping[int, Sequence[float]]],
                   alpha: float = 0.05) -> tuple[list[str], np.ndarray]:
  """Ash et al.'s pairwise penalty matrix of one experiment.

  ``curves``: label -> seed -> accuracy at each label count (the same counts for all).
  ``P[i, j]`` is the share of the label counts at which i beats j in a two-sided paired t
  test at ``alpha`` (counts where every difference is zero, such as the shared random
  initial set, are left out). Sum matrices over experiments to combine them.
  """
  labels = list(curves)
  p = np.zeros((len(labels), len(labels)))
  tested: dict[tuple[int, int], int] = {}
  for (i, a), (j, b) in itertools.permutations(enumerate(labels), 2):
    seeds = sorted(set(curves[a]) & set(curves[b]))
    if len(seeds) < 2:
      continue
    x = np.asarray([curves[a][s] for s in seeds], np.float64)
    y = np.asarray([curves[b][s] for s in seeds], np.float64)
    rounds = min(x.shape[1], y.shape[1])
    counts = 0
    wins = 0
    for r in range(rounds):
      d = x[:, r] - y[:, r]
      if not d.any():
        continue
      counts += 1
      mean, _, _, pval = paired_t(d)
      if pval < alpha and mean > 0:
        wins += 1
    tested[(i, j)] = counts
    if counts:
      p[i, j] = wins / counts
  return labels, p


def plot_penalty_matrix(labels: Sequence[str], matrix: np.ndarray, path: str,
                        title: str = "") -> str:
  """The matrix as a heat map with its values, and the column means below (how often each
  strategy is beaten: lower is better)."""
  import matplotlib  # pylint: disable=g-import-not-at-top
  matplotlib.use("Agg")
  import matplotlib.pyplot as plt  # pylint: disable=g-import-not-at-top
  n = len(labels)
  fig, ax = plt.subplots(figsize=(1.0 + 0.62 * n, 1.4 + 0.55 * n))
  ax.imshow(matrix, cmap="Reds", vmin=0, vmax=max(1.0, float(matrix.max())))
  for i in range(n):
    for j in range(n):
      if i != j:
        ax.text(j, i, f"{matrix[i, j]:.2f}", ha="center", va="center", fontsize=7)
  ax.set_xticks(range(n), [f"{l}\n{matrix[:, k].sum() / max(n - 1, 1):.2f}"
                           for k, l in enumerate(labels)], rotation=60, ha="right",
                fontsize=7)
  ax.set_yticks(range(n), labels, fontsize=7)
  ax.set_xlabel("beaten (column; mean below)")
  ax.set_ylabel("beats (row)")
  if title:
    ax.set_title(title, fontsize=9)
  fig.tight_layout()
  fig.savefig(path, dpi=130)
  plt.close(fig)
  return path
