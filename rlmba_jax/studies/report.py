"""Comparison reports over finished runs: learning-curve tables and plots.

A sweep folder holds ``runs/<label>/seed<k>/`` workdirs, or seed blocks
``runs/<label>/seeds_A-B/seed_NNNN/`` (``rounds.jsonl`` each).
``collect(sweep_dir)`` reads them; ``markdown_report`` and ``plot_*`` turn them into the
table and figures of ``report.md``.
"""

from __future__ import annotations

import json
import os
from typing import Any, Mapping

import numpy as np

from rlmba_jax.experiment.summary import area_under_curve


Runs = Mapping[str, Mapping[int, list[dict[str, Any]]]]  # label -> seed -> round records


def read_rounds(workdir: str) -> list[dict[str, Any]]:
  path = os.path.join(workdir, "rounds.jsonl")
  if not os.path.exists(path):
    return []
  with open(path) as f:
    return [json.loads(line) for line in f if line.strip()]


def collect(sweep_dir: str) -> dict[str, dict[int, list[dict[str, Any]]]]:
  """``{label: {seed: [round records]}}`` for every seed's run under ``sweep_dir/runs``
  (single runs or seed blocks: ``sweeps.seed_run_folders``)."""
  from rlmba_jax.studies.sweeps import seed_run_folders  # pylint: disable=g-import-not-at-top
  runs: dict[str, dict[int, list[dict[str, Any]]]] = {}
  root = os.path.join(sweep_dir, "runs")
  if not os.path.isdir(root):
    return runs
  for label in sorted(os.listdir(root)):
    for seed, folder in sorted(seed_run_folders(os.path.join(root, label)).items()):
      records = read_rounds(folder)
      if records:
        runs.setdefault(label, {})[seed] = records
  return runs


def curve_matrix(per_seed: Mapping[int, list[dict[str, Any]]], key: str = "test_top1"
                 ) -> tuple[np.ndarray, np.ndarray]:
  """(label counts ``[R]``, values ``[S, R]``) over the rounds every seed has finished."""
  rounds = min(len(r) for r in per_seed.values())
  counts = np.asarray([rec["num_labeled"] for rec in next(iter(per_seed.values()))[:rounds]])
  values = np.asarray([[rec[key] for rec in recs[:rounds]] for recs in per_seed.values()],
                      float)
  return counts, values


def _mean_std(x: np.ndarray, scale: float = 100.0, digits: int = 1) -> str:
  if x.size == 0:
    return "-"
  if x.size == 1:  # one seed: no spread to show
    return f"{scale * float(np.ravel(x)[0]):.{digits}f}"
  return f"{scale * np.mean(x):.{digits}f} ± {scale * np.std(x):.{digits}f}"


def summary_rows(runs: Runs, metric: str = "test_top1") -> list[dict[str, Any]]:
  """Per label: counts, mean/std of ``metric`` per count, its AUC and the final balance
  over seeds."""
  rows = []
  for label, per_seed in runs.items():
    counts, top1 = curve_matrix(per_seed, metric)
    auc = np.asarray([area_under_curve(list(counts), list(v)) for v in top1])
    balance = np.asarray([recs[len(counts) - 1]["balance"] for recs in per_seed.values()])
    select = np.asarray([np.median([r["select_seconds"] for r in recs[1:len(counts)]])
                         for recs in per_seed.values()]) if len(counts) > 1 else np.zeros(0)
    rows.append({"label": label, "seeds": sorted(per_seed), "counts": counts.tolist(),
                 "top1": top1, "auc": auc, "balance": balance, "select_seconds": select})
  return rows


def markdown_report(runs: Runs, *, title: str = "Active-learning comparison",
                    notes: str = "", plots: tuple[str, ...] = (),
                    metric: str = "test_top1") -> str:
  """The report's markdown: ``metric`` (%) at each label count, AUC, balance, select time."""
  rows = summary_rows(runs, metric)
  split = metric.split("_")[0]
  if not rows:
    return f"# {title}\n\nNo finished rounds yet.\n"
  counts = max((r["counts"] for r in rows), key=len)
  head = ("| strategy | seeds | " + " | ".join(f"{c} labels" for c in counts)
          + " | AUC | balance | select s/round |")
  lines = [f"# {title}", "", notes, "",
           f"{split.capitalize()} top-1 (%) as mean ± std over seeds; AUC: area under "
           f"{split} top-1 vs labels "
           "divided by the label range (%); balance: modality balance of the last round's "
           "model (0 one modality, 1 all equal); select: median seconds per selection "
           "round (pool inference + strategy).",
           "", head, "|" + " --- |" * (len(counts) + 5)]
  best = {}
  for i in range(len(counts)):
    vals = [np.mean(r["top1"][:, i]) for r in rows if len(r["counts"]) > i]
    best[i] = max(vals) if vals else None
  for r in rows:
    cells = []
    for i in range(len(counts)):
      if i >= len(r["counts"]):
        cells.append("-")
        continue
      cell = _mean_std(r["top1"][:, i])
      if np.isclose(np.mean(r["top1"][:, i]), best[i]):
        cell = f"**{cell}**"
      cells.append(cell)
    lines.append(f"| {r['label']} | {len(r['seeds'])} | " + " | ".join(cells)
                 + f" | {_mean_std(r['auc'])} | {_mean_std(r['balance'], 1.0, 2)} | "
                 + (f"{np.mean(r['select_seconds']):.3f}" if r["select_seconds"].size else "-")
                 + " |")
  lines.append("")
  lines += per_modality_table(runs, split)
  lines += diagnostics_table(runs)
  for p in plots:
    lines.append(f"![{os.path.splitext(os.path.basename(p))[0]}]({p})")
  return "\n".join(lines) + "\n"


def per_modality_table(runs: Runs, split: str = "test") -> list[str]:
  """Markdown lines: each modality head's top-1 (%) and the AMCB weights at the last
  round every seed finished, mean ± std over seeds."""
  key = f"per_modality_{split}_top1"
  if not runs or any(key not in recs[0] for per_seed in runs.values()
                     for recs in per_seed.values()):
    return []
  names = list(next(iter(next(iter(runs.values())).values()))[0][key])
  lines = [f"Per-modality {split} top-1 (%) of each modality's own head, and the AMCB "
           "weights, at the last round (mean ± std over seeds).", "",
           "| strategy | " + " | ".join(names) + " | " + " | ".join(f"w {m}" for m in names)
           + " |", "|" + " --- |" * (2 * len(names) + 1)]
  for label, per_seed in runs.items():
    last = min(len(r) for r in per_seed.values()) - 1
    acc = [_mean_std(np.asarray([recs[last][key][m] for recs in per_seed.values()]))
           for m in names]
    w = [_mean_std(np.asarray([recs[last]["modality_weights"][m]
                               for recs in per_seed.values()]), 1.0, 2) for m in names]
    lines.append(f"| {label} | " + " | ".join(acc) + " | " + " | ".join(w) + " |")
  return lines + [""]


_RANKS = (("rank_difficulty", "U"), ("rank_diversity", "d (q's)"),
          ("rank_labelled_distance", "d labelled"), ("rank_q", "q"))


def diagnostics_table(runs: Runs) -> list[str]:
  """Markdown lines: what each strategy picked (``selection`` of the round records,
  ``selection.diagnostics``), averaged over selection rounds and seeds. Empty when no run
  recorded diagnostics."""
  rows = {label: [rec["selection"] for recs in per_seed.values() for rec in recs
                  if rec.get("selection")]
          for label, per_seed in runs.items()}
  rows = {label: diags for label, diags in rows.items() if diags}
  if not rows:
    return []
  names = list(next(iter(rows.values()))[0]["rank_uncertainty"])
  lines = ["Selection diagnostics (`selection` in rounds.jsonl), mean over selection rounds "
           "and seeds. Ranks: the median pick's percentile rank in the unlabelled pool "
           "(0.5 = typical, 1 = the highest) of each modality's uncertainty ũ_m, EFDA's "
           "fused difficulty U, RL-MBA's diversity distance d (to the nearest of b k-means "
           "centroids unless the run set al.rlmba.diversity='labelled') and the distance to "
           "the nearest labelled example, and RL-MBA's q; far: picks farther from every "
           "labelled example than 90 % of the pool (count per round); overlap: share of "
           "the picks margin / BADGE pick from the same model; top-K by ũ / by d: share of "
           "RL-MBA's candidate set the uncertainty / diversity term alone would give; "
           "classes: the largest class's share of the picks.", "",
           "| strategy | " + " | ".join(f"ũ {m}" for m in names) + " | "
           + " | ".join(n for _, n in _RANKS)
           + " | far | overlap margin | overlap BADGE | top-K by ũ | top-K by d | classes |",
           "|" + " --- |" * (len(names) + len(_RANKS) + 7)]
  for label, diags in rows.items():
    mean = lambda f: float(np.mean([f(d) for d in diags]))
    cells = [f"{mean(lambda d, m=m: d['rank_uncertainty'][m][1]):.2f}" for m in names]
    # "-" for a field the runs did not record (diagnostics of an older version)
    cells += [f"{mean(lambda d, k=k: d[k][1]):.2f}" if all(k in d for d in diags) else "-"
              for k, _ in _RANKS]
    cells += [f"{mean(lambda d: d['far_from_labelled']):.1f}",
              f"{mean(lambda d: d['overlap_margin']):.2f}",
              f"{mean(lambda d: d['overlap_badge']):.2f}",
              f"{mean(lambda d: d['topk_overlap_uncertainty']):.2f}",
              f"{mean(lambda d: d['topk_overlap_diversity']):.2f}",
              f"{mean(lambda d: max(d['class_counts']) / max(1, sum(d['class_counts']))):.2f}"]
    lines.append(f"| {label} | " + " | ".join(cells) + " |")
  return lines + [""]


def _pyplot():
  import matplotlib  # pylint: disable=g-import-not-at-top
  matplotlib.use("Agg")
  import matplotlib.pyplot as plt  # pylint: disable=g-import-not-at-top
  return plt


def plot_learning_curves(runs: Runs, path: str, *, full_data: float | None = None,
                         metric: str = "test_top1") -> str:
  """``metric`` vs labels per strategy, mean with a ±1 std band. Writes a PNG."""
  plt = _pyplot()
  fig, ax = plt.subplots(figsize=(8, 5))
  colours = plt.get_cmap("tab20").colors
  styles = ("-", "--", ":", "-.")
  for i, (label, per_seed) in enumerate(runs.items()):
    counts, top1 = curve_matrix(per_seed, metric)
    mean, std = 100 * top1.mean(0), 100 * top1.std(0)
    colour = colours[(2 * i) % 20 if i < 10 else (2 * i + 1) % 20]
    ax.plot(counts, mean, marker="os^v"[i // 4 % 4], ms=3, color=colour,
            ls=styles[i % 4], label=f"{label} ({top1.shape[0]})")
    ax.fill_between(counts, mean - std, mean + std, alpha=0.07, color=colour)
  if full_data is not None:
    ax.axhline(100 * full_data, color="k", ls="--", lw=1, label="full data")
  ax.set_xlabel("labelled examples")
  ax.set_ylabel(f"{metric.split('_')[0]} top-1 (%)")
  ax.grid(alpha=0.3)
  ax.legend(fontsize=7, ncol=2)
  fig.tight_layout()
  fig.savefig(path, dpi=120)
  plt.close(fig)
  return path


def plot_modality_series(runs: Runs, path: str, key: str, ylabel: str) -> str:
  """One panel per strategy: a per-modality quantity (``modality_weights``, ``shapley``)
  over rounds, averaged over seeds. Writes a PNG."""
  plt = _pyplot()
  labels = list(runs)
  cols = min(4, len(labels))
  rows = -(-len(labels) // cols)
  fig, axes = plt.subplots(rows, cols, figsize=(3.2 * cols, 2.6 * rows), squeeze=False,
                           sharey=True)
  for ax, label in zip(axes.flat, labels):
    per_seed = runs[label]
    n = min(len(r) for r in per_seed.values())
    first = next(iter(per_seed.values()))
    names = list(first[0][key])
    counts = [rec["num_labeled"] for rec in first[:n]]
    for m in names:
      series = np.mean([[rec[key][m] for rec in recs[:n]] for recs in per_seed.values()], 0)
      ax.plot(counts, series, label=m)
    ax.set_title(label, fontsize=9)
    ax.grid(alpha=0.3)
  for ax in list(axes.flat)[len(labels):]:
    ax.axis("off")
  for k, ax in enumerate(list(axes.flat)[:len(labels)]):
    if k + cols >= len(labels):  # the lowest panel drawn in its column
      ax.set_xlabel("labelled examples", fontsize=8)
  for row in axes:
    row[0].set_ylabel(ylabel)
  axes.flat[0].legend(fontsize=6)
  fig.tight_layout()
  fig.savefig(path, dpi=110)
  plt.close(fig)
  return path
