r"""The paired report of a study (results/<study>/plan.md): per-seed records, then tables.

  # records from the campaign's sweep (the commit it ran at is recorded in each record)
  python launch/compare.py --sweep=runs/campaign/mfeat --out=results/mfeat_paired \
      --rounds=8 --commit=$(git -C /path/to/worktree rev-parse HEAD)
  # every sweep folder of a campaign, records only (what must outlive the machine)
  MERGE=1 OUT=runs/campaign bash launch/campaign.sh
  # the report again from the committed records alone
  python launch/compare.py --out=results/mfeat_paired

Writes ``OUT/seeds.jsonl`` (with ``--sweep``: the sweep's finished runs added to the records
already there, each run checked to reproduce a record it shares), ``OUT/report.md`` (mean +- sample std per row,
then the plan's families of paired comparisons with Holm-adjusted p and verdicts, the
penalty matrix), ``OUT/comparisons.json``, ``curves.png`` and ``penalty.png``;
``OUT/reading.md``, the written analysis, is appended to report.md when it exists.
"""

import os

from absl import app, flags

from rlmba_jax.studies import paired_report as pr


_SWEEP = flags.DEFINE_string("sweep", "", "A sweep folder to read the runs from ('' = use "
                             "OUT/seeds.jsonl as it is).")
_OUT = flags.DEFINE_string("out", None, "The study's results folder.")
_ROUNDS = flags.DEFINE_integer("rounds", 8, "Rounds of a finished run (the config's).")
_COMMIT = flags.DEFINE_string("commit", "", "The commit the runs were made at ('' = the one "
                              "SWEEP/commit.txt names; campaign.sh writes it).")
_RECORDS_ONLY = flags.DEFINE_bool("records_only", False, "Only add the sweep's finished runs "
                                  "to seeds.jsonl (the end of a session); no report.")
_TITLE = flags.DEFINE_string("title", "", "Report title (default: the study's name).")
_NOTES = flags.DEFINE_string("notes", "", "A paragraph under the title.")
_REPORT_SEEDS = flags.DEFINE_string(
    "report_seeds", "", "Report only these seeds (1000-1019, or a list; '' = every seed "
    "recorded): the complete seed blocks, while seeds.jsonl keeps every finished run.")

BASELINES = ("random", "margin", "badge", "bmmal", "gcnal", "deepfool", "entropy",
             "least_confidence", "bald", "coreset", "kmeans", "power_margin", "power_entropy")
PENALTY = ("random", "margin", "badge", "bmmal", "gcnal", "deepfool", "power_margin",
           "power_entropy", "rlmba", "rlmba_tuned", "rlmba_prior", "rlmba_topq")


def families(labels):
  """The plan's families, with the rows this study has."""
  has = set(labels)
  h1 = [("rlmba_tuned", b) for b in BASELINES if b in has]
  hypotheses = [("rlmba_tuned", "rlmba_prior")]
  hypotheses.append(("rlmba_tuned", "rlmba_amcb_off") if "rlmba_amcb_off" in has
                    else ("rlmba_amcb_on", "rlmba_tuned"))
  hypotheses.append(("rlmba_tuned", "rlmba_efda_off") if "rlmba_efda_off" in has
                    else ("rlmba_efda_on", "rlmba_tuned"))
  hypotheses.append(("rlmba_u_in_q", "rlmba_tuned"))
  mechanisms = [("rlmba_uniform", "rlmba_prior"), ("rlmba_topq", "rlmba_prior"),
                ("power_margin", "margin"), ("power_entropy", "entropy"),
                ("rlmba_prior", "power_margin"), ("rlmba_weaker", "rlmba_tuned"),
                ("rlmba", "rlmba_tuned"), ("rlmba_absolute", "rlmba_tuned"),
                ("rlmba_incremental", "rlmba_tuned")]
  # upper bounds (they read labels no learner has): could any pick of the candidates beat
  # the prior draw; does the candidate set limit it; the best of 16 random draws
  headroom = [("oracle_candidates", "rlmba_prior"), ("oracle_pool", "oracle_candidates"),
              ("oracle_pool", "random")]
  # the pretrained policies against the untrained one with the same (invariant) inputs, and
  # what those inputs cost against the tuned RL-MBA's own
  pretrained = [("rlmba_pretrained_mfeat", "rlmba_invariant"),
                ("rlmba_pretrained_av_digits", "rlmba_invariant"),
                ("rlmba_invariant", "rlmba_tuned")]
  return [("H1: RL-MBA (tuned) against each baseline", h1),
          ("H2-H4: the policy, AMCB, EFDA (component on − off; U in q − the paper's q)",
           hypotheses),
          ("Mechanisms", mechanisms),
          ("Headroom (greedy oracle: an upper bound, never a method)", headroom),
          ("Pretrained policy (in-domain: a benchmarking aid; transfer: the method)",
           pretrained)]


def main(argv):
  del argv
  out = _OUT.value
  path = os.path.join(out, "seeds.jsonl")
  if _SWEEP.value:
    commit = _COMMIT.value or pr.sweep_commit(_SWEEP.value)
    records = pr.seed_records(_SWEEP.value, os.path.basename(os.path.normpath(out)),
                              _ROUNDS.value, commit)
    kept = pr.read_records(path) if os.path.exists(path) else []
    # a campaign continued: keep what earlier sessions recorded
    merged = pr.merge_records(kept, records)
    pr.write_records(path, merged)
    print(f"{path}: {len(merged) - len(kept)} new of {len(records)} finished runs in "
          f"{_SWEEP.value} (commit {commit[:12]}), {len(merged)} records")
    if _RECORDS_ONLY.value:
      return
  records = pr.read_records(path)
  if _REPORT_SEEDS.value:
    from rlmba_jax.experiment.seeds import parse_seeds  # pylint: disable=g-import-not-at-top
    wanted = set(parse_seeds(_REPORT_SEEDS.value))
    records = [r for r in records if r["seed"] in wanted]
  labels = sorted({r["strategy"] for r in records})
  commits = sorted({r.get("commit", "") for r in records} - {""})
  notes = (_NOTES.value + (" " if _NOTES.value else "")
           + f"Runs made at commit {', '.join(commits) or '(not recorded)'}; per-seed "
           "records in `seeds.jsonl`; regenerate with "
           f"`python launch/compare.py --out={out}"
           + (f" --report_seeds={_REPORT_SEEDS.value}" if _REPORT_SEEDS.value else "")
           + (f" --title='{_TITLE.value}'" if _TITLE.value else "")
           + "`. Plan: `plan.md`.")
  text = pr.paired_report(records, families(labels), title=_TITLE.value or
                          os.path.basename(os.path.normpath(out)), notes=notes, out_dir=out,
                          penalty_rows=[l for l in PENALTY if l in labels])
  reading = os.path.join(out, "reading.md")
  if os.path.exists(reading):
    with open(reading) as f:
      text += "\n" + f.read()
  with open(os.path.join(out, "report.md"), "w") as f:
    f.write(text)
  print(text)


if __name__ == "__main__":
  flags.mark_flag_as_required("out")
  app.run(main)
