"""Per-seed records of a study and the paired report made from them.

``seed_records(sweep_dir)`` turns a sweep's finished runs into one record per (strategy,
seed): label counts, test and validation curves, their areas and final values. They are
kept as ``results/<study>/seeds.jsonl``, and ``paired_report(records, families)`` makes the
study's report from that file alone (so anyone can recompute it): mean +- sample std per
row, then each family of paired comparisons (``studies.stats``) with Holm-adjusted p and
a verdict ("tied" only when TOST says so), and the pairwise penalty matrix.
"""

from __future__ import annotations

import json
import os
import re
from typing import Any, Iterable, Mapping, Sequence

import numpy as np

from rlmba_jax.durable import write_atomic
from rlmba_jax.experiment.summary import area_under_curve
from rlmba_jax.studies import report, stats
from rlmba_jax.studies.rows_left import missing_entries, read_records  # pylint: disable=unused-import
from rlmba_jax.studies.sweeps import is_finished, seed_run_folders


Family = tuple[str, Sequence[tuple[str, str]]]  # (title, [(a, b), ...]): a - b


def seed_records(sweep_dir: str, study: str, rounds: int, commit: str = "",
                 labels: Iterable[str] | None = None) -> list[dict[str, Any]]:
  """One record per finished (strategy, seed) run under ``sweep_dir/runs``; a row linked in
  from another sweep (its reference runs, read in place) is recorded from its own sweep."""
  root = os.path.join(sweep_dir, "runs")
  out = []
  for label in sorted(labels or os.listdir(root)):
    if os.path.islink(os.path.join(root, label)):
      continue
    for seed, folder in sorted(seed_run_folders(os.path.join(root, label)).items()):
      if not is_finished(folder, rounds):
        continue
      recs = report.read_rounds(folder)[:rounds + 1]
      counts = [r["num_labeled"] for r in recs]
      record = {"study": study, "strategy": label, "seed": seed, "num_labeled": counts,
                "val_top1": [r["val_top1"] for r in recs],
                "val_auc": area_under_curve(counts, [r["val_top1"] for r in recs])}
      if "test_top1" in recs[0]:
        record["test_top1"] = [r["test_top1"] for r in recs]
        record["auc"] = area_under_curve(counts, record["test_top1"])
        record["final_test_top1"] = record["test_top1"][-1]
      record["final_val_top1"] = record["val_top1"][-1]
      if commit:
        record["commit"] = commit
      out.append(record)
  return out


def sweep_commit(sweep_dir: str) -> str:
  """The commit whose code made a sweep's runs, from ``sweep_dir/commit.txt`` (campaign.sh
  writes it); a record without its commit cannot be checked against the plan's, so its
  absence is an error naming the fix."""
  path = os.path.join(sweep_dir, "commit.txt")
  try:
    with open(path) as f:
      commit = f.read().strip()
  except FileNotFoundError:
    raise FileNotFoundError(
        f"{path} not found: name the commit the runs in {sweep_dir} were made at "
        "(--commit=$(git -C <worktree> rev-parse HEAD))") from None
  if not re.fullmatch(r"[0-9a-f]{40}", commit):
    raise ValueError(f"{path} holds {commit[:60]!r}, not a full commit hash")
  return commit


def write_records(path: str, records: Sequence[Mapping[str, Any]]) -> None:
  """Replaces ``path`` atomically: a merge killed half-way leaves the records it had."""
  os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
  write_atomic(path, "".join(json.dumps(r, sort_keys=True) + "\n" for r in records))


def merge_records(kept: Sequence[Mapping[str, Any]], new: Sequence[Mapping[str, Any]]
                  ) -> list[dict[str, Any]]:
  """``kept`` (a study's committed records) with ``new`` added, one record per (strategy,
  seed). A run in both must agree on every curve (a campaign continued in another session
  or at another commit reproduces what it already has, or it is not the same study);
  otherwise ``ValueError`` names the run."""
  out = {(r["strategy"], r["seed"]): dict(r) for r in kept}
  for r in new:
    key = (r["strategy"], r["seed"])
    if key in out:
      old = out[key]
      differ = [k for k in ("num_labeled", "val_top1", "test_top1")
                if old.get(k) != r.get(k)]
      if differ:
        raise ValueError(f"{key[0]} seed {key[1]}: the new run's {', '.join(differ)} differ "
                         f"from the kept record (commit {old.get('commit', '?')}); a study "
                         "mixes no runs that do not reproduce each other")
      continue  # the kept record stays, with the commit that first made it
    out[key] = dict(r)
  return [out[k] for k in sorted(out)]


def by_strategy(records: Sequence[Mapping[str, Any]], key: str = "auc"
                ) -> dict[str, dict[int, float]]:
  out: dict[str, dict[int, float]] = {}
  for r in records:
    if key in r:
      out.setdefault(r["strategy"], {})[int(r["seed"])] = float(r[key])
  return out


def _pts(x: float) -> str:
  return f"{100 * x:+.2f}"


def summary_table(records, key: str = "auc") -> list[str]:
  """Rows sorted by mean: n, mean +- sample std of the area and of the final top-1."""
  values = by_strategy(records, key)
  finals = by_strategy(records, "final_test_top1" if key == "auc" else "final_val_top1")
  lines = ["| strategy | n | AUC (mean ± sample std) | final top-1 |", "| --- | --- | --- | --- |"]
  for label in sorted(values, key=lambda l: -np.mean(list(values[l].values()))):
    a = np.asarray(list(values[label].values()))
    f = np.asarray(list(finals.get(label, {}).values()))
    sd = lambda x: f" ± {100 * x.std(ddof=1):.2f}" if len(x) > 1 else ""
    lines.append(f"| {label} | {len(a)} | {100 * a.mean():.2f}{sd(a)} | "
                 f"{100 * f.mean():.2f}{sd(f)} |" if len(f) else
                 f"| {label} | {len(a)} | {100 * a.mean():.2f}{sd(a)} | - |")
  return lines


def family_table(records, pairs: Sequence[tuple[str, str]], key: str = "auc",
                 margin: float = 0.01) -> tuple[list[str], list[dict[str, Any]]]:
  """The paired comparisons ``a - b`` of one family (Holm over the family)."""
  values = by_strategy(records, key)
  pairs = [(a, b) for a, b in pairs if a in values and b in values]
  found = [stats.compare(values[a], values[b], margin=margin) for a, b in pairs]
  adjusted = stats.holm([c.t_p for c in found])
  lines = ["| a − b | n | mean (pts) | 95 % t CI | 95 % bootstrap CI | p | Holm p | "
           "Wilcoxon p | TOST p (±1) | wins/losses | verdict |",
           "| --- |" + " --- |" * 10]
  rows = []
  for (a, b), c, p in zip(pairs, found, adjusted):
    word = stats.verdict(c, p)
    lines.append(f"| {a} − {b} | {c.n} | {_pts(c.mean)} | [{_pts(c.t_low)}, {_pts(c.t_high)}] "
                 f"| [{_pts(c.boot_low)}, {_pts(c.boot_high)}] | {c.t_p:.3g} | {p:.3g} | "
                 f"{c.wilcoxon_p:.3g} | {c.tost_p:.3g} | {c.wins}/{c.losses} | **{word}** |")
    rows.append(dict(c._asdict(), a=a, b=b, holm_p=float(p), verdict=word))
  return lines, rows


def penalty(records, labels: Sequence[str], key: str = "test_top1"):
  """Ash et al.'s matrix over the label counts, on the seeds every row has."""
  curves: dict[str, dict[int, list[float]]] = {}
  for r in records:
    if r["strategy"] in labels and key in r:
      curves.setdefault(r["strategy"], {})[int(r["seed"])] = r[key]
  common = set.intersection(*(set(c) for c in curves.values())) if curves else set()
  curves = {l: {s: v for s, v in curves[l].items() if s in common}
            for l in labels if l in curves}
  names, matrix = stats.penalty_matrix(curves)
  return names, matrix, len(common)


def penalty_table(names, matrix) -> list[str]:
  lines = ["| beats → | " + " | ".join(names) + " |", "| --- |" + " --- |" * len(names)]
  for i, name in enumerate(names):
    lines.append(f"| {name} | " + " | ".join("–" if i == j else f"{matrix[i, j]:.2f}"
                                             for j in range(len(names))) + " |")
  lines.append("| *beaten (column mean)* | " + " | ".join(
      f"{matrix[:, j].sum() / max(len(names) - 1, 1):.2f}" for j in range(len(names))) + " |")
  return lines


def as_runs(records) -> dict[str, dict[int, list[dict[str, Any]]]]:
  """Records back into ``report``'s ``{label: {seed: [round records]}}`` (curves only)."""
  runs: dict[str, dict[int, list[dict[str, Any]]]] = {}
  for r in records:
    rounds = [{"num_labeled": n, "val_top1": v, **({"test_top1": t} if "test_top1" in r
                                                    else {})}
              for n, v, t in zip(r["num_labeled"], r["val_top1"],
                                 r.get("test_top1", r["val_top1"]))]
    runs.setdefault(r["strategy"], {})[int(r["seed"])] = rounds
  return runs


def paired_report(records, families: Sequence[Family], *, title: str, notes: str,
                  out_dir: str, penalty_rows: Sequence[str] = ()) -> str:
  """The markdown report of a study (plots written next to it)."""
  lines = [f"# {title}", "", notes, "", "## Test AUC per strategy", "",
           *summary_table(records), ""]
  runs = as_runs(records)
  if runs:
    report.plot_learning_curves(runs, os.path.join(out_dir, "curves.png"))
    lines += ["![curves](curves.png)", ""]
  summary: dict[str, list[dict[str, Any]]] = {}
  for title_f, pairs in families:
    table, rows = family_table(records, pairs)
    if rows:
      lines += [f"## {title_f}", "", "Paired over common seeds; differences in AUC points; "
                "Holm over this table.", "", *table, ""]
      summary[title_f] = rows
  if penalty_rows:
    names, matrix, n = penalty(records, penalty_rows)
    if len(names) > 1 and n > 1:
      stats.plot_penalty_matrix(names, matrix, os.path.join(out_dir, "penalty.png"),
                                title=f"pairwise penalty, {n} common seeds")
      lines += ["## Pairwise penalty matrix (Ash et al. 2020)", "",
                f"Share of the label counts (20 -> 100; the shared initial set left out) at "
                f"which the row beats the column in a two-sided paired t test at 0.05, on "
                f"the {n} seeds every row has. Column means: how often a strategy is "
                "beaten (lower is better).", "", *penalty_table(names, matrix), "",
                "![penalty](penalty.png)", ""]
  with open(os.path.join(out_dir, "comparisons.json"), "w") as f:
    json.dump(summary, f, indent=1)
  return "\n".join(lines) + "\n"
