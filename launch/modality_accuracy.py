r"""Per-modality test top-1 of seed-batched (or swept) runs, side by side: what each modality
head reaches at every label count, mean +- sample std over the seeds.

  python launch/modality_accuracy.py --runs=v1=runs/leak/v1 --runs=v2=runs/leak/v2 \
      --out=results/av_digits_paired/leak.md

Made to show what av_digits 1.0.0's shared images inflated (the image head learning test
images from the pool); works for any runs whose rounds.jsonl holds
``per_modality_test_top1``.
"""

import json
import os

from absl import app, flags
import numpy as np

from rlmba_jax.studies.sweeps import seed_run_folders


_RUNS = flags.DEFINE_multi_string("runs", [], "label=folder (a seed-batched workdir or a "
                                  "sweep entry's folder).")
_OUT = flags.DEFINE_string("out", "", "Markdown file to write ('' = print only).")
_TITLE = flags.DEFINE_string("title", "Per-modality test top-1", "Heading.")


def _curves(folder: str) -> tuple[list[int], dict[str, np.ndarray], np.ndarray]:
  """-> (label counts, modality -> [seeds, rounds] test top-1, fused [seeds, rounds])."""
  per_modality: dict[str, list[list[float]]] = {}
  fused, counts = [], []
  for _, seed_folder in sorted(seed_run_folders(folder).items()):
    with open(os.path.join(seed_folder, "rounds.jsonl")) as f:
      records = [json.loads(line) for line in f if line.strip()]
    counts = [r["num_labeled"] for r in records]
    fused.append([r["test_top1"] for r in records])
    for m in records[0]["per_modality_test_top1"]:
      per_modality.setdefault(m, []).append([r["per_modality_test_top1"][m] for r in records])
  return counts, {m: np.asarray(v) for m, v in per_modality.items()}, np.asarray(fused)


def _cell(x: np.ndarray) -> str:
  return f"{100 * x.mean():.1f} ± {100 * x.std(ddof=1):.1f}" if len(x) > 1 else \
      f"{100 * x.mean():.1f}"


def main(argv):
  del argv
  lines = [f"# {_TITLE.value}", "",
           "Test top-1 (%) of each modality's own head and of the fused head, mean ± sample "
           "std over the seeds, at each label count. Command: `python "
           "launch/modality_accuracy.py " + " ".join(f"--runs={r}" for r in _RUNS.value) + "`.",
           ""]
  for spec in _RUNS.value:
    label, folder = spec.split("=", 1)
    counts, per_modality, fused = _curves(folder)
    lines += [f"## {label} ({fused.shape[0]} seeds)", "",
              "| head | " + " | ".join(str(c) for c in counts) + " |",
              "|---|" + "---:|" * len(counts)]
    for m, values in sorted(per_modality.items()):
      lines.append(f"| {m} | " + " | ".join(_cell(values[:, i]) for i in range(len(counts)))
                   + " |")
    lines.append("| fused | " + " | ".join(_cell(fused[:, i]) for i in range(len(counts)))
                 + " |")
    lines.append("")
  text = "\n".join(lines) + "\n"
  if _OUT.value:
    os.makedirs(os.path.dirname(_OUT.value) or ".", exist_ok=True)
    with open(_OUT.value, "w") as f:
      f.write(text)
  print(text)


if __name__ == "__main__":
  app.run(main)
