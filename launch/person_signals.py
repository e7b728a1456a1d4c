r"""A person's run as a labeller meets it, measured: own arrays with text ids, a strategy
change between rounds, the export of every answer, and the stopping signals of every round
with when each would have stopped and the test accuracy there against the end.

  python launch/person_signals.py --out=results/person_run

The person is ``SimulatedPerson`` writing the answers files a human would (ground truth from
the demo folder's truth.csv); the run is ``configs/arrays.py:person`` on
``write_demo_folder`` (mfeat's fou and kar views), ids renamed ``scan-<n>.png``. Writes
``OUT/report.md``, ``OUT/rounds.jsonl`` (each round's record without the stop-set
predictions) and ``OUT/answers.csv`` (the export).
"""

import csv
import json
import os
import tempfile

from absl import app, flags


_OUT = flags.DEFINE_string("out", "results/person_run", "Output folder.")
_ROUNDS = flags.DEFINE_integer("rounds", 10, "Rounds after the initial set.")
_SWITCH = flags.DEFINE_integer("switch_at", 5, "First round queried with BADGE instead of "
                               "margin.")


def _text_ids(folder: str) -> dict[str, str]:
  """Renames the demo folder's ids ``n`` to ``scan-n.png`` (examples.csv, images/,
  truth.csv); returns the truth by new id."""
  name = lambda i: f"scan-{i}.png"
  path = os.path.join(folder, "examples.csv")
  rows = list(csv.reader(open(path)))
  with open(path, "w", newline="") as f:
    csv.writer(f).writerows([rows[0]] + [[name(r[0])] + r[1:] for r in rows[1:]])
  for f in os.listdir(os.path.join(folder, "images")):
    os.rename(os.path.join(folder, "images", f),
              os.path.join(folder, "images", name(f[:-4]) + ".png"))
  return {name(r["id"]): r["label"] for r in csv.DictReader(open(os.path.join(folder,
                                                                              "truth.csv")))}


def main(argv):
  del argv
  from configs import arrays as arrays_config  # pylint: disable=g-import-not-at-top
  from rlmba_jax.data.arrays import write_demo_folder  # pylint: disable=g-import-not-at-top
  from rlmba_jax.experiment import LabelsNeeded, run  # pylint: disable=g-import-not-at-top
  from rlmba_jax.experiment.stopping import should_stop  # pylint: disable=g-import-not-at-top
  from rlmba_jax.person import SimulatedPerson, files, page  # pylint: disable=g-import-not-at-top

  out = _OUT.value
  os.makedirs(out, exist_ok=True)
  work = tempfile.mkdtemp(prefix="person_signals_")
  folder = write_demo_folder(os.path.join(work, "my_data"))
  truth = _text_ids(folder)
  workdir = os.path.join(work, "run")
  person = SimulatedPerson(truth)
  commands = 0
  for r in range(_ROUNDS.value + 2):
    config = arrays_config.get_config("person")
    config.data.manual_dir = folder
    config.al.rounds = _ROUNDS.value
    config.al.strategy = "margin" if r < _SWITCH.value else "badge"
    commands += 1
    try:
      summary = run(config, workdir)
      break
    except LabelsNeeded:
      asked = max(int(f[6:9]) for f in os.listdir(os.path.join(workdir, "queries"))
                  if f.startswith("round_") and f.endswith(".csv"))
      person(files.queries_path(workdir, asked), files.labels_path(workdir, asked), asked)
  rounds = [json.loads(l) for l in open(os.path.join(workdir, "rounds.jsonl"))]
  ledger = [json.loads(l) for l in open(os.path.join(workdir, "ledger.jsonl"))]
  exported = page.export_answers(workdir, os.path.join(out, "answers.csv"))
  with open(os.path.join(out, "rounds.jsonl"), "w") as f:
    for rec in rounds:
      f.write(json.dumps({k: v for k, v in rec.items() if k != "stop_set_predictions"},
                         sort_keys=True) + "\n")
  lines = ["# A person's run: text ids, a strategy change, the export and when to stop", "",
           f"`python launch/person_signals.py --out={out} --rounds={_ROUNDS.value} "
           f"--switch_at={_SWITCH.value}`: {commands} invocations of `run` "
           "(each stops for the next round's answers); ids as written (`"
           f"{ledger[1]['ids'][0]}` ...); {exported} answers exported to `answers.csv`.",
           "", "| round | labels | strategy (ledger) | test top-1 | val top-1 | kappa | "
           "mean kappa (3) | val gain (3) | stabilized | plateau |",
           "|---:|---:|---|---:|---:|---:|---:|---:|---|---|"]
  lines += _round_rows(rounds, ledger)
  lines.append("")
  final = rounds[-1]
  for when in ("stabilized", "plateau", "either"):
    hit = next((rec for rec in rounds if should_stop(rec, when)), None)
    lines.append(f"- `al.stop_when={when}`: " + (
        f"would have stopped after round {hit['round']} with {hit['num_labeled']} labels, "
        f"test top-1 {hit['test_top1']:.4f} (at the end, {final['num_labeled']} labels: "
        f"{final['test_top1']:.4f}; {final['num_labeled'] - hit['num_labeled']} labels "
        "saved)" if hit else "never fired in this run"))
  lines.append("")
  lines.append(f"Final summary: {summary['final']['num_labeled']} labels, test top-1 "
               f"{summary['final']['test_top1']:.4f}.")
  with open(os.path.join(out, "report.md"), "w") as f:
    f.write("\n".join(lines) + "\n")
  print("\n".join(lines))


def _round_rows(rounds: list[dict], ledger: list[dict]) -> list[str]:
  """A table row per round: labels, strategy, accuracies and the stopping signals."""
  fmt = lambda v: "" if v is None else f"{v:.3f}"
  rows = []
  for rec, entry in zip(rounds, ledger):
    s = rec["stopping"]
    rows.append(f"| {rec['round']} | {rec['num_labeled']} | {entry.get('strategy', '')} | "
                f"{rec['test_top1']:.4f} | {rec['val_top1']:.4f} | {fmt(s['kappa'])} | "
                f"{fmt(s['mean_kappa'])} | {fmt(s['val_gain'])} | {s['stabilized']} | "
                f"{s['plateau']} |")
  return rows


if __name__ == "__main__":
  app.run(main)
