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

import numpy as np
from absl import app
from absl import flags

from rlmba_jax.experiment import pretrain

_WORKDIRS = flags.DEFINE_list("workdirs", None, "pretraining workdirs")
_OUT = flags.DEFINE_string("out", "results/pretrain", "output folder")
_WINDOW = 20


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
  lines = ["# Policy pretraining on simulated episodes", "",
           "Reward: the policy's validation top-1 after a round minus the mean of random's and "
           "BADGE's on the same episode (points); mean ± standard error over the updates of "
           "the window. Gain: the same at the episode's last round. Command: "
           "`python launch/pretrain_curves.py --workdirs=" + ",".join(_WORKDIRS.value) + "`.",
           "", "| source | updates | episodes | batch | reward, first 20 updates | "
           "reward, last 20 updates | gain, first 20 | gain, last 20 | episodes/s (median) |",
           "| --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
  for ax, workdir in zip(axes[0], _WORKDIRS.value):
    name = os.path.basename(os.path.normpath(workdir))
    with open(os.path.join(workdir, pretrain.MANIFEST)) as f:
      manifest = json.load(f)
    log = pretrain.read_log(workdir)
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
    shutil.copy(os.path.join(workdir, pretrain.MANIFEST), os.path.join(_OUT.value,
                                                                       f"{name}.json"))
    shutil.copy(os.path.join(workdir, pretrain.LOG), os.path.join(_OUT.value, f"{name}.jsonl"))
  fig.tight_layout()
  fig.savefig(os.path.join(_OUT.value, "curves.png"), dpi=120)
  lines += ["", "![pretraining curves](curves.png)", ""]
  with open(os.path.join(_OUT.value, "summary.md"), "w") as f:
    f.write("\n".join(lines))
  print("\n".join(lines))


if __name__ == "__main__":
  flags.mark_flag_as_required("workdirs")
  app.run(main)
