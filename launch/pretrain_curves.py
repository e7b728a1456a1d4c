r"""The pretraining curves (reward vs updates) of launch/pretrain_policy.py runs, into results/.

  python launch/pretrain_curves.py --workdirs=runs/pretrain/mfeat,runs/pretrain/av_digits \
      --out=results/pretrain

Writes ``OUT/curves.png`` (the relative reward of each update and its moving mean over 20
updates, per source), ``OUT/summary.md`` (first and last 20 updates' mean reward with its
standard error, the policy's final validation top-1 against the references', episodes/s)
and a copy of each run's ``pretrain.json`` and ``pretrain.jsonl`` (``OUT/<source dir>.*``).
"""

import json
import os
import shutil

from absl import app, flags
import numpy as np

from rlmba_jax.studies import policy_pretraining


_WORKDIRS = flags.DEFINE_list("workdirs", None, "pretraining workdirs")
_OUT = flags.DEFINE_string("out", "results/pretrain", "output folder")
_COMPARE = flags.DEFINE_list(
    "compare", [], "comparison workdirs (runs/<data set>_paper/compare): for each "
    "rlmba_pretrained_* row, the share of its round-1 picks the untrained policy "
    "(rlmba_invariant) also made on the same seed: the same round-0 model, candidates and "
    "Gumbel noise, so only the policy's parameters differ")
_WINDOW = 20


def _round1_overlap(compare: str) -> list[str]:
  runs = os.path.join(compare, "runs")
  rows = []
  for label in sorted(os.listdir(runs)):
    if not label.startswith("rlmba_pretrained_"):
      continue
    shares = []
    for seed in sorted(os.listdir(os.path.join(runs, label))):
      paths = [os.path.join(runs, name, seed, "ledger.jsonl")
               for name in ("rlmba_invariant", label)]
      if not all(os.path.exists(p) for p in paths):
        continue
      picks = []
      for path in paths:
        with open(path) as f:
          picks.append(next(set(r["ids"]) for r in map(json.loads, f) if r["round"] == 1))
      shares.append(len(picks[0] & picks[1]) / len(picks[0]))
    if shares:
      rows.append(f"| {os.path.basename(os.path.dirname(os.path.normpath(compare)))} | "
                  f"{label} | {len(shares)} | {100 * np.mean(shares):.0f} % "
                  f"({', '.join(f'{100 * s:.0f}' for s in shares)}) |")
  return rows


def _window_stats(x: np.ndarray) -> str:
  return f"{100 * x.mean():+.2f} ± {100 * x.std(ddof=1) / np.sqrt(len(x)):.2f}"


def main(argv):
  del argv
  import matplotlib  # pylint: disable=g-import-not-at-top
  matplotlib.use("Agg")
  import matplotlib.pyplot as plt  # pylint: disable=g-import-not-at-top
  os.makedirs(_OUT.value, exist_ok=True)
  fig, axes = plt.subplots(1, len(_WORKDIRS.value), figsize=(5 * len(_WORKDIRS.value), 3.6),
                           squeeze=False)
  lines = _header()
  for ax, workdir in zip(axes[0], _WORKDIRS.value):
    name = os.path.basename(os.path.normpath(workdir))
    with open(os.path.join(workdir, policy_pretraining.MANIFEST)) as f:
      manifest = json.load(f)
    log = policy_pretraining.read_log(workdir)
    reward = np.asarray([r["reward"] for r in log])
    gain = np.asarray([r["policy_gain"] for r in log])
    updates = np.asarray([r["update"] for r in log])
    smooth = np.convolve(reward, np.ones(_WINDOW) / _WINDOW, mode="valid")
    ax.plot(updates, 100 * reward, lw=0.5, alpha=0.4, label="per update")
    ax.plot(updates[_WINDOW - 1:], 100 * smooth, lw=2, label=f"mean of {_WINDOW}")
    ax.axhline(0, color="k", lw=0.5)
    ax.set_title(f"source {manifest['source']} (batch {manifest['batch']})")
    ax.set_xlabel("policy update")
    ax.set_ylabel("relative reward (val top-1 points)")
    ax.legend(fontsize=8)
    eps = np.median([r["episodes_per_second"] for r in log[1:]] or [0.0])
    lines.append(f"| {manifest['source']} | {len(log)} | {len(log) * manifest['batch']} | "
                 f"{manifest['batch']} | {_window_stats(reward[:_WINDOW])} | "
                 f"{_window_stats(reward[-_WINDOW:])} | {_window_stats(gain[:_WINDOW])} | "
                 f"{_window_stats(gain[-_WINDOW:])} | {eps:.2f} |")
    for kind, ext in ((policy_pretraining.MANIFEST, "json"), (policy_pretraining.LOG, "jsonl")):
      shutil.copy(os.path.join(workdir, kind), os.path.join(_OUT.value, f"{name}.{ext}"))
  fig.tight_layout()
  fig.savefig(os.path.join(_OUT.value, "curves.png"), dpi=120)
  held_out = _held_out_rows()
  if held_out:
    lines += ["", "Held-out simulated episodes (`launch/pretrain_policy.py "
              "--evaluate_episodes=N`, keys never used in pretraining): mean relative reward "
              "and last-round gain over the references of the untrained and the pretrained "
              "policy on the same episodes (points), and their paired difference ± standard "
              "error.", "", "| source | episodes | reward untrained | reward pretrained | "
              "difference | gain untrained | gain pretrained | difference |",
              "| --- | --- | --- | --- | --- | --- | --- | --- |", *held_out]
  overlap = [row for compare in _COMPARE.value for row in _round1_overlap(compare)]
  if overlap:
    lines += ["", "How much the pretrained policy changes a real run's picks: the share of "
              "round-1 picks it shares with the untrained policy on the same seed (same "
              "round-0 model, candidates and Gumbel noise; later rounds diverge with the "
              "labelled sets).", "", "| report | row | seeds | round-1 picks shared (per seed) |",
              "| --- | --- | --- | --- |", *overlap]
  lines += ["", "![pretraining curves](curves.png)", ""]
  with open(os.path.join(_OUT.value, "summary.md"), "w") as f:
    f.write("\n".join(lines))
  print("\n".join(lines))


def _header() -> list[str]:
  return ["# Policy pretraining on simulated episodes", "",
          "Reward: the policy's validation top-1 after a round minus the mean of random's and "
          "BADGE's on the same episode (points); mean ± standard error over the updates of "
          "the window. Gain: the same at the episode's last round. Command: "
          "`python launch/pretrain_curves.py --workdirs=" + ",".join(_WORKDIRS.value) + "`.",
          "", "| source | updates | episodes | batch | reward, first 20 updates | "
          "reward, last 20 updates | gain, first 20 | gain, last 20 | episodes/s (median) |",
          "| --- | --- | --- | --- | --- | --- | --- | --- | --- |"]


def _held_out_rows() -> list[str]:
  """A table row per workdir with a held-out evaluation (copied to the output folder)."""
  held_out = []
  for workdir in _WORKDIRS.value:
    name = os.path.basename(os.path.normpath(workdir))
    path = os.path.join(workdir, "evaluation.json")
    if not os.path.exists(path):
      continue
    with open(path) as f:
      e = json.load(f)
    pct = lambda x: f"{100 * x:+.2f}"
    held_out.append(
        f"| {name} | {e['episodes']} | {pct(e['reward_untrained'])} | "
        f"{pct(e['reward_pretrained'])} | {pct(e['reward_difference'])} ± "
        f"{100 * e['reward_difference_se']:.2f} | {pct(e['gain_untrained'])} | "
        f"{pct(e['gain_pretrained'])} | {pct(e['gain_difference'])} ± "
        f"{100 * e['gain_difference_se']:.2f} |")
    shutil.copy(path, os.path.join(_OUT.value, f"{name}_evaluation.json"))
  return held_out


if __name__ == "__main__":
  flags.mark_flag_as_required("workdirs")
  app.run(main)
