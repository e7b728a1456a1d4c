"""Which classes, and with a noisy person which wrong answers, each row of a sweep labelled:
a diagnostic read from the run folders (``launch/class_coverage.py`` writes it into a
study's results folder).

For every finished run of ``SWEEP/runs/<row>/`` (seed-batched ``seeds_A-B/seed_NNNN`` or
single ``seed<k>``), the ledger's picks after the initial set (the same for every row of a
seed) are mapped to their pool labels, read from the data set the run's ``config.json``
names. Per row and seed: the picks of each class, classes ordered from the rarest in the
pool; the share of picks in the rarest half of the classes; the fewest labels any class
has at the end (initial set included); with ``data.label_noise > 0``, the share of picks
whose label is wrong. ``coverage_report`` adds means, sample stds and paired differences
against one row with their 95 % paired-t intervals (exploratory: no Holm, no verdict).
"""

import json
import os

import ml_collections
import numpy as np

from rlmba_jax.data import load_dataset
from rlmba_jax.studies import stats
from rlmba_jax.studies.sweeps import seed_run_folders


def _finished_runs(sweep: str):
  """``(row, seed, run folder)`` of every finished run (it has its summary.json)."""
  runs_dir = os.path.join(sweep, "runs")
  if not os.path.isdir(runs_dir):
    raise FileNotFoundError(f"{sweep!r} holds no runs/ folder: give the folder a sweep "
                            "wrote (its --workdir)")
  for row in sorted(os.listdir(runs_dir)):
    for seed, run in sorted(seed_run_folders(os.path.join(runs_dir, row)).items()):
      if os.path.exists(os.path.join(run, "summary.json")):
        yield row, seed, run


def _pool_labels(config_path: str):
  """``(id -> label the person gives, id -> true label, class count, label noise)`` of the
  pool of the data set ``config_path`` (a run's config.json) names."""
  data = ml_collections.ConfigDict(_data_section(config_path))
  splits = load_dataset(data)
  given = clean = splits.pool
  if data.label_noise > 0:  # the true labels: the same pool read without the noise
    clean_cfg = ml_collections.ConfigDict(data.to_dict())
    clean_cfg.label_noise = 0.0
    clean = load_dataset(clean_cfg).pool
    if not np.array_equal(given.ids, clean.ids):
      raise ValueError("the pool's rows depend on data.label_noise; cannot tell wrong "
                       "labels")
  return (dict(zip(given.ids.tolist(), given.labels.tolist())),
          dict(zip(clean.ids.tolist(), clean.labels.tolist())), splits.num_classes,
          float(data.label_noise))


def _data_section(config_path: str) -> dict:
  with open(config_path) as f:
    return json.load(f)["data"]


def _read_ledger(run: str) -> list[list[int]]:
  with open(os.path.join(run, "ledger.jsonl")) as f:
    return [json.loads(line)["ids"] for line in f if line.strip()]


def coverage(sweep: str, seeds: set[int] | None = None) -> dict:
  """The per-seed figures of every row (see the module docstring)."""
  runs = [r for r in _finished_runs(sweep) if seeds is None or r[1] in seeds]
  if not runs:
    raise FileNotFoundError(f"no finished run under {sweep}/runs on those seeds")
  first = os.path.join(runs[0][2], "config.json")
  data = _data_section(first)
  for _, _, run in runs[1:]:
    if _data_section(os.path.join(run, "config.json")) != data:
      raise ValueError(f"{run} reads another data set than {runs[0][2]} (config.data "
                       "differs); give one setting's sweep at a time")
  given, true, num_classes, noise = _pool_labels(first)
  pool_counts = np.bincount(list(true.values()), minlength=num_classes)
  rarest_first = np.argsort(pool_counts, kind="stable")
  rare_half = set(rarest_first[: num_classes // 2].tolist())
  rows: dict[str, dict] = {}
  for row, seed, run in runs:
    rounds = _read_ledger(run)
    initial, picks = rounds[0], [i for r in rounds[1:] for i in r]
    labels = np.asarray([given[i] for i in picks])
    per_class = np.bincount(labels, minlength=num_classes)[rarest_first]
    final = np.bincount([given[i] for i in initial + picks], minlength=num_classes)
    figures = {"picks_per_class": per_class.tolist(),
               "rare_half_share": float(np.isin(labels, list(rare_half)).mean()),
               "fewest_labels": int(final.min())}
    if noise > 0:
      figures["wrong_share"] = float(np.mean([given[i] != true[i] for i in picks]))
    rows.setdefault(row, {})[seed] = figures
  return {"sweep": os.path.abspath(sweep), "num_classes": num_classes,
          "pool_counts_rarest_first": pool_counts[rarest_first].tolist(),
          "classes_rarest_first": rarest_first.tolist(),
          "rare_half_pool_share": float(pool_counts[list(rare_half)].sum()
                                        / pool_counts.sum()),
          "label_noise": noise, "rows": rows}


def _mean_sd(values) -> str:
  values = np.asarray(values, np.float64)
  sd = values.std(ddof=1) if len(values) > 1 else float("nan")
  return f"{values.mean():.2f} ± {sd:.2f}"


def coverage_report(result: dict, reference: str) -> str:
  """Markdown: per-row means, picks per class, and ``reference`` − each row, paired."""
  rows = result["rows"]
  metrics = [("rare_half_share", "share of picks in the rarest half of the classes", 100),
             ("fewest_labels", "fewest labels of any class at the end", 1)]
  if result["label_noise"] > 0:
    metrics.append(("wrong_share", "share of picks with a wrong label", 100))
  lines = [f"# Which classes each strategy labelled ({os.path.basename(result['sweep'])})", "",
           "Regenerate with `python launch/class_coverage.py --sweep=<sweep> --out=<this "
           "folder> --report_seeds=<seeds>`; per-seed figures in `class_coverage.json`. The "
           "picks after the initial set (the same for every row of a seed). Exploratory: "
           "no plan names these figures, so no Holm correction and no verdict.", "",
           f"Pool examples per class, rarest first: {result['pool_counts_rarest_first']} "
           f"(classes {result['classes_rarest_first']}); the rarest half holds "
           f"{100 * result['rare_half_pool_share']:.1f} % of the pool.", "",
           "| row | n | " + " | ".join(f"{name} ({'%' if scale == 100 else 'count'})"
                                      for _, name, scale in metrics) + " |",
           "| --- | --- |" + " --- |" * len(metrics)]
  order = sorted(rows, key=lambda r: -np.mean([s["rare_half_share"] for s in rows[r].values()]))
  for row in order:
    seeds = rows[row]
    cells = [_mean_sd([scale * s[key] for s in seeds.values()]) for key, _, scale in metrics]
    lines.append(f"| {row} | {len(seeds)} | " + " | ".join(cells) + " |")
  lines += ["", "Mean picks per class (rarest first):", "",
            "| row | " + " | ".join(str(c) for c in result["classes_rarest_first"]) + " |",
            "| --- |" + " --- |" * result["num_classes"]]
  for row in order:
    mean = np.mean([s["picks_per_class"] for s in rows[row].values()], axis=0)
    lines.append(f"| {row} | " + " | ".join(f"{m:.1f}" for m in mean) + " |")
  if reference in rows:
    lines += ["", f"Paired over common seeds, {reference} − each row (95 % paired-t CI):", "",
              "| − row | n | " + " | ".join(name for _, name, _ in metrics) + " |",
              "| --- | --- |" + " --- |" * len(metrics)]
    for row in order:
      if row == reference:
        continue
      cells, n = [], 0
      for key, _, scale in metrics:
        a = {s: scale * f[key] for s, f in rows[reference].items()}
        b = {s: scale * f[key] for s, f in rows[row].items()}
        _, d = stats.paired_differences(a, b)
        mean, low, high, _ = stats.paired_t(d)
        n = len(d)
        cells.append(f"{mean:+.2f} [{low:+.2f}, {high:+.2f}]")
      lines.append(f"| {row} | {n} | " + " | ".join(cells) + " |")
  return "\n".join(lines) + "\n"
