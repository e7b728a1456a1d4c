r"""Runs strategies x seeds on one config (resumable, in parallel processes), then a report.

  python launch/sweep.py --config=configs/mfeat.py:curves \
      --strategies=random,entropy,badge,bmmal --seeds=3 --workdir=runs/curves

A strategy entry is a registered name, or ``LABEL=NAME/key=value/key=value`` for a variant
(``--strategies=gcn_u=gcnal/al.gcnal.method=uncertaingcn``). Each run is
``python -m rlmba_jax.main`` on ``WORKDIR/runs/<label>/seed<k>`` (log in ``log.txt`` there);
finished runs are skipped, interrupted ones continue where they stopped. RL-MBA entries
(strategy ``rlmba``) run after the others: their relative reward reads the same-seed runs of
``--references`` in this sweep (the paper's GCNAL, BADGE and BMMAL by default) unless the
entry sets ``al.rlmba.reference_runs`` itself. Then
``WORKDIR/report.md`` is written with ``curves.png``, ``modality_weights.png`` and
``shapley.png``. ``--report_only`` rewrites the report from what is on disk.
"""

import concurrent.futures
import json
import os
import subprocess
import sys
import time

from absl import app
from absl import flags
from ml_collections import config_flags

from rlmba_jax.experiment import report
from rlmba_jax.experiment.config import ConfigError, validate_config

_CONFIG = config_flags.DEFINE_config_file("config", "configs/mfeat.py", "Config file.",
                                          lock_config=False)
_STRATEGIES = flags.DEFINE_list("strategies", ["random", "entropy"], "Entries to compare.")
_SEEDS = flags.DEFINE_integer("seeds", 3, "Seeds 0..N-1.")
_WORKDIR = flags.DEFINE_string("workdir", None, "Sweep folder.")
_WORKERS = flags.DEFINE_integer("workers", 0, "Parallel runs (0: one per two cores).")
_REPORT_ONLY = flags.DEFINE_bool("report_only", False, "Only rewrite the report.")
_FULL_DATA = flags.DEFINE_float("full_data", None, "Full-data test top-1 drawn as a line.")
_TITLE = flags.DEFINE_string("title", "Active-learning comparison", "Report title.")
_REFERENCES = flags.DEFINE_list("references", ["gcnal", "badge", "bmmal"],
                                "Labels whose runs give RL-MBA's relative reward.")


def parse_entry(entry: str) -> tuple[str, str, dict[str, str]]:
  """``"lbl=name/k=v/k=v"`` -> (label, strategy, overrides); ``"name"`` -> (name, name, {})."""
  if "=" not in entry.split("/")[0]:
    label, rest = entry, entry
  else:
    label, rest = entry.split("=", 1)
  strategy, *pairs = rest.split("/")
  overrides = {}
  for pair in pairs:
    if "=" not in pair:
      raise ValueError(f"--strategies entry {entry!r}: {pair!r} is not key=value")
    key, value = pair.split("=", 1)
    overrides[key] = value
  return label, strategy, overrides


def _is_finished(workdir: str, rounds: int) -> bool:
  path = os.path.join(workdir, "summary.json")
  if not os.path.exists(path):
    return False
  with open(path) as f:
    return json.load(f).get("rounds", -1) >= rounds


def _run_one(args):
  cmd, workdir = args
  os.makedirs(workdir, exist_ok=True)
  t0 = time.time()
  with open(os.path.join(workdir, "log.txt"), "a") as log:
    rc = subprocess.call(cmd, stdout=log, stderr=subprocess.STDOUT)
  return workdir, rc, time.time() - t0


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments: {argv[1:]}")
  if not _WORKDIR.value:
    raise app.UsageError("--workdir is required")
  config = _CONFIG.value
  config_arg = flags.FLAGS["config"].config_filename
  entries = [parse_entry(e) for e in _STRATEGIES.value]
  labels = [e[0] for e in entries]
  if len(set(labels)) != len(labels):
    raise app.UsageError(f"--strategies has repeated labels: {labels}")
  jobs, late_jobs = [], []
  runs_dir = os.path.abspath(os.path.join(_WORKDIR.value, "runs"))
  for label, strategy, overrides in entries:
    if strategy == "rlmba" and "al.rlmba.reference_runs" not in overrides:
      missing = [r for r in _REFERENCES.value if r not in labels]
      if missing and overrides.get("al.rlmba.policy", "true").lower() != "false":
        raise app.UsageError(f"RL-MBA's reference strategies {missing} are not in "
                             "--strategies; add them or set --references")
      overrides = dict(overrides)
      overrides["al.rlmba.reference_runs"] = ",".join(
          os.path.join(runs_dir, r, "seed{seed}") for r in _REFERENCES.value)
    trial = config.copy_and_resolve_references()
    with trial.unlocked():
      trial.al.strategy = strategy
      trial.al.rlmba.reference_runs = "(set by the sweep)"
    try:
      validate_config(trial)
    except ConfigError as e:
      raise app.UsageError(f"--strategies entry {label!r}: {e}") from None
    for seed in range(_SEEDS.value):
      workdir = os.path.join(_WORKDIR.value, "runs", label, f"seed{seed}")
      if _is_finished(workdir, config.al.rounds):
        continue
      cmd = [sys.executable, "-m", "rlmba_jax.main", f"--config={config_arg}",
             f"--workdir={workdir}", f"--config.al.strategy={strategy}",
             f"--config.seed={seed}"]
      cmd += [f"--config.{k}={v}" for k, v in overrides.items()]
      # Flags given to this script as --config.x=y apply to every run.
      cmd += [a for a in sys.argv[1:] if a.startswith("--config.")]
      (late_jobs if strategy == "rlmba" else jobs).append((cmd, workdir))
  if not _REPORT_ONLY.value and (jobs or late_jobs):
    # Build (or check) the data set once here, so parallel runs never build it together.
    from rlmba_jax.data import load_dataset  # pylint: disable=g-import-not-at-top
    load_dataset(config.data)
    workers = _WORKERS.value or max(1, (os.cpu_count() or 2) // 2)
    print(f"{len(jobs) + len(late_jobs)} runs to do, {workers} at a time", flush=True)
    failed = []
    for phase in (jobs, late_jobs):  # references before the runs that read them
      with concurrent.futures.ThreadPoolExecutor(workers) as pool:
        for workdir, rc, seconds in pool.map(_run_one, phase):
          print(json.dumps({"run": workdir, "exit": rc, "seconds": round(seconds, 1)}),
                flush=True)
          if rc:
            failed.append(workdir)
    if failed:
      print(f"{len(failed)} runs failed; see log.txt in: {', '.join(failed)}", flush=True)
  runs = report.collect(_WORKDIR.value)
  runs = {label: runs[label] for label in labels if label in runs}
  plots = []
  if runs:
    plots.append(os.path.basename(report.plot_learning_curves(
        runs, os.path.join(_WORKDIR.value, "curves.png"), full_data=_FULL_DATA.value)))
    plots.append(os.path.basename(report.plot_modality_series(
        runs, os.path.join(_WORKDIR.value, "modality_weights.png"), "modality_weights",
        "AMCB weight")))
    plots.append(os.path.basename(report.plot_modality_series(
        runs, os.path.join(_WORKDIR.value, "shapley.png"), "shapley", "Shapley value")))
  notes = (f"Config `{config_arg}`" + "".join(
      f" `{a}`" for a in sys.argv[1:] if a.startswith("--config.")) + f", seeds 0..{_SEEDS.value - 1}.")
  text = report.markdown_report(runs, title=_TITLE.value, notes=notes, plots=tuple(plots))
  with open(os.path.join(_WORKDIR.value, "report.md"), "w") as f:
    f.write(text)
  print(text)


if __name__ == "__main__":
  flags.mark_flag_as_required("workdir")
  app.run(main)
