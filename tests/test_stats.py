"""Paired statistics against scipy.stats on fixed inputs, and known answers."""

import numpy as np
import pytest
from scipy import stats as scipy_stats

from rlmba_jax.studies import stats


RNG = np.random.default_rng(7)
SAMPLES = [RNG.normal(0.004, 0.02, 50), RNG.normal(-0.01, 0.03, 12),
           np.array([0.02, -0.01, 0.03, 0.005, 0.012, -0.004, 0.021])]


@pytest.mark.parametrize("d", SAMPLES)
def test_paired_t_matches_scipy(d):
  a = d + 0.8
  b = np.full_like(d, 0.8)
  mean, low, high, p = stats.paired_t(a - b)
  ref = scipy_stats.ttest_rel(a, b)
  assert p == pytest.approx(ref.pvalue, rel=1e-9)
  ci = ref.confidence_interval(0.95)
  assert (low, high) == pytest.approx((ci.low, ci.high), rel=1e-9)
  assert mean == pytest.approx(np.mean(a - b))


@pytest.mark.parametrize("d", SAMPLES)
def test_wilcoxon_matches_scipy(d):
  statistic, p = stats.wilcoxon(d)
  ref = scipy_stats.wilcoxon(d)
  assert statistic == pytest.approx(ref.statistic)
  assert p == pytest.approx(ref.pvalue, rel=1e-9)


def test_wilcoxon_with_ties_and_zeros_matches_scipy():
  d = np.array([0.01, 0.01, -0.02, 0.0, 0.03, 0.01, -0.01, 0.02, 0.02, 0.04, 0.0, 0.05])
  statistic, p = stats.wilcoxon(d)
  ref = scipy_stats.wilcoxon(d)  # zeros dropped; exact over the tied ranks
  assert statistic == pytest.approx(ref.statistic)
  assert p == pytest.approx(ref.pvalue, rel=1e-9)
  big = np.round(np.random.default_rng(1).normal(0.01, 0.02, 80), 2)  # n > 50 with ties
  assert stats.wilcoxon(big)[1] == pytest.approx(scipy_stats.wilcoxon(big).pvalue, rel=1e-9)


@pytest.mark.parametrize("d", SAMPLES)
def test_tost_is_the_larger_of_two_one_sided_scipy_tests(d):
  margin = 0.01
  low = scipy_stats.ttest_1samp(d + margin, 0.0, alternative="greater").pvalue
  high = scipy_stats.ttest_1samp(d - margin, 0.0, alternative="less").pvalue
  assert stats.tost(d, margin) == pytest.approx(max(low, high), rel=1e-9)


def test_tost_says_tied_only_when_the_90_percent_interval_is_inside_the_margin():
  d = np.random.default_rng(0).normal(0.0, 0.01, 60)
  _, low, high, _ = stats.paired_t(d, confidence=0.90)
  inside = -0.01 < low and high < 0.01
  assert (stats.tost(d, 0.01) < 0.05) == inside
  assert stats.tost(d + 0.05, 0.01) > 0.5  # clearly different: not tied


def test_bootstrap_interval_is_close_to_scipys_percentile_bootstrap():
  d = SAMPLES[0]
  low, high = stats.bootstrap_ci(d, resamples=20000)
  ref = scipy_stats.bootstrap((d,), np.mean, method="percentile", n_resamples=20000,
                              random_state=1).confidence_interval
  width = ref.high - ref.low
  assert abs(low - ref.low) < 0.05 * width and abs(high - ref.high) < 0.05 * width


def test_holm_known_answer():
  # p sorted: 0.01 (x4) -> 0.04, 0.02 (x3) -> 0.06, 0.03 (x2) -> 0.06 (monotone), 0.5 -> 0.5
  np.testing.assert_allclose(stats.holm([0.03, 0.01, 0.5, 0.02]), [0.06, 0.04, 0.5, 0.06])
  np.testing.assert_allclose(stats.holm([0.9, 0.8]), [1.0, 1.0])
  out = stats.holm([0.01, float("nan")])
  assert out[0] == pytest.approx(0.01) and np.isnan(out[1])


def test_compare_and_verdict():
  seeds = range(40)
  rng = np.random.default_rng(3)
  base = {s: 0.8 + rng.normal(0, 0.03) for s in seeds}
  better = {s: v + 0.02 + rng.normal(0, 0.005) for s, v in base.items()}
  same = {s: v + rng.normal(0, 0.002) for s, v in base.items()}
  c = stats.compare(better, base)
  assert c.n == 40 and c.t_low > 0 and c.wins > 35
  assert stats.verdict(c, stats.holm([c.t_p])[0]) == "better"
  t = stats.compare(same, base)
  assert stats.verdict(t, stats.holm([t.t_p])[0]).startswith("tied")
  short = {s: base[s] + 0.003 + rng.normal(0, 0.01) for s in range(3)}
  assert stats.verdict(stats.compare(short, base), 0.5) == "inconclusive"


def test_penalty_matrix_counts_wins_per_label_count():
  rng = np.random.default_rng(0)
  seeds = range(20)
  flat = {s: [0.5, 0.6 + rng.normal(0, 0.01), 0.7 + rng.normal(0, 0.01)] for s in seeds}
  strong = {s: [0.5, flat[s][1] + 0.05, flat[s][2] + 0.05] for s in seeds}
  labels, p = stats.penalty_matrix({"flat": flat, "strong": strong})
  assert labels == ["flat", "strong"]
  # Round 0 (the same initial set) is left out; strong wins both other counts.
  np.testing.assert_allclose(p, [[0.0, 0.0], [1.0, 0.0]])


def test_paired_report_from_records(tmp_path):
  from rlmba_jax.studies import paired_report as pr
  rng = np.random.default_rng(0)
  records = []
  for seed in range(1000, 1030):
    base = rng.normal(0.85, 0.02)
    for label, shift in (("random", -0.04), ("margin", 0.0), ("rlmba_tuned", 0.0),
                         ("rlmba_prior", 0.0)):
      curve = [0.5, base + shift + rng.normal(0, 0.002), base + shift + 0.05]
      records.append({"strategy": label, "seed": seed, "num_labeled": [20, 30, 40],
                      "test_top1": curve, "val_top1": curve,
                      "auc": float(np.mean(curve[1:])), "final_test_top1": curve[-1]})
  pr.write_records(str(tmp_path / "seeds.jsonl"), records)
  records = pr.read_records(str(tmp_path / "seeds.jsonl"))
  text = pr.paired_report(records, [("H1", [("rlmba_tuned", "random"),
                                            ("rlmba_tuned", "margin")])],
                          title="t", notes="n", out_dir=str(tmp_path),
                          penalty_rows=["random", "margin", "rlmba_tuned"])
  assert "| rlmba_tuned − random | 30 |" in text and "**better**" in text
  assert "**tied" in text  # margin: the same mean, small spread
  assert (tmp_path / "penalty.png").exists() and (tmp_path / "curves.png").exists()
  assert "± " in text  # sample std shown


def test_records_of_a_continued_campaign_merge_only_when_they_reproduce():
  from rlmba_jax.studies import paired_report as pr
  kept = [{"strategy": "margin", "seed": 1000, "num_labeled": [20, 30], "val_top1": [.5, .6],
           "test_top1": [.4, .5], "commit": "aaa"}]
  same = [dict(kept[0], commit="bbb"),
          {"strategy": "margin", "seed": 1001, "num_labeled": [20, 30], "val_top1": [.5, .7],
           "test_top1": [.4, .6], "commit": "bbb"}]
  merged = pr.merge_records(kept, same)
  assert [(r["seed"], r["commit"]) for r in merged] == [(1000, "aaa"), (1001, "bbb")]
  assert pr.missing_entries(merged, ["margin"], [1000, 1001], ["gcnal"]) == []
  rows = ["gcnal", "margin", "rlmba_tuned=rlmba/al.rlmba.kappa=3"]
  assert pr.missing_entries(merged + [dict(kept[0], strategy="gcnal")], rows, [1000],
                            ["gcnal"]) == [rows[0], rows[2]]  # RL-MBA left: its reference too
  assert pr.missing_entries(merged, ["margin", "random"], [1000]) == ["random"]
  other = [dict(kept[0], test_top1=[.4, .51])]
  with pytest.raises(ValueError, match="margin seed 1000: the new run's test_top1 differ"):
    pr.merge_records(kept, other)


def test_campaigns_missing_rows_script_runs_without_the_package(tmp_path):
  """launch/missing_rows.py gives the rows missing_entries gives, read from a seeds.jsonl,
  under a Python without site-packages (campaign.sh runs it with an old worktree's Python);
  a corrupt line is named."""
  import json  # pylint: disable=g-import-not-at-top
  import os  # pylint: disable=g-import-not-at-top
  import subprocess  # pylint: disable=g-import-not-at-top
  import sys  # pylint: disable=g-import-not-at-top

  from conftest import REPO  # pylint: disable=g-import-not-at-top
  from rlmba_jax.studies import paired_report as pr  # pylint: disable=g-import-not-at-top
  records = [{"strategy": s, "seed": seed} for s in ("random", "gcnal", "margin")
             for seed in (1000, 1001)] + [{"strategy": "rlmba_tuned", "seed": 1000}]
  path = tmp_path / "seeds.jsonl"
  path.write_text("".join(json.dumps(r) + "\n" for r in records))
  script = os.path.join(REPO, "launch", "missing_rows.py")
  rows = ["random", "margin", "gcnal", "badge", "rlmba_tuned=rlmba{tuned}/al.rlmba.kappa=3"]
  for seeds, refs in [((1000, 1001), ["gcnal"]), ((1000,), ["gcnal"]), ((1000,), []),
                      ((1001,), ["gcnal", "badge"]), ((1002, 1003), ["gcnal"])]:
    want = pr.missing_entries(records, rows, seeds, refs)
    got = subprocess.run([sys.executable, "-S", script, str(path), ",".join(rows),
                          f"{seeds[0]}-{seeds[-1]}", ",".join(refs)],
                         capture_output=True, text=True, check=True).stdout.strip()
    assert got == ",".join(want), (seeds, refs)
  assert "rlmba_tuned" in got and "gcnal" in got  # a new block: RL-MBA and its reference
  path.write_text(path.read_text() + "{not json\n")
  bad = subprocess.run([sys.executable, "-S", script, str(path), "random", "1000-1001"],
                       capture_output=True, text=True)
  assert bad.returncode != 0 and "line 8 is not JSON" in bad.stderr


def test_campaign_merge_records_finished_runs_with_the_commit_of_their_folder(tmp_path):
  """MERGE=1 bash launch/campaign.sh: every sweep folder's finished runs go to its study's
  seeds.jsonl with the commit its commit.txt names; unfinished and linked-in runs do not;
  a second merge adds nothing; a run that no longer reproduces its record, or a folder
  without commit.txt, stops the merge and leaves the records as they were."""
  import json  # pylint: disable=g-import-not-at-top
  import os  # pylint: disable=g-import-not-at-top
  import subprocess  # pylint: disable=g-import-not-at-top
  import sys  # pylint: disable=g-import-not-at-top

  from conftest import REPO  # pylint: disable=g-import-not-at-top
  out, records = tmp_path / "out", tmp_path / "results"

  def run_folder(path, rounds, last=0.9):
    path.mkdir(parents=True)
    (path / "summary.json").write_text(json.dumps({"rounds": rounds}))
    (path / "rounds.jsonl").write_text("".join(
        json.dumps({"num_labeled": 20 + 10 * k, "val_top1": 0.5 + 0.05 * k,
                    "test_top1": 0.4 + 0.05 * k if k < 8 else last}) + "\n"
        for k in range(rounds + 1)))

  run_folder(out / "mfeat/runs/margin/seed1000", 8)
  run_folder(out / "mfeat/runs/margin/seed1001", 3)  # a run the session cut short
  run_folder(out / "mfeat_oracle/runs/oracle_pool/seed1000", 8)
  (out / "mfeat_pretrained/runs").mkdir(parents=True)
  os.symlink(out / "mfeat/runs/margin", out / "mfeat_pretrained/runs/margin")
  (out / "pretrain/mfeat").mkdir(parents=True)  # no sweep: left alone
  for name, commit in [("mfeat", "a"), ("mfeat_oracle", "b"), ("mfeat_pretrained", "c")]:
    (out / name / "commit.txt").write_text(commit * 40 + "\n")
  env = dict(os.environ, MERGE="1", OUT=str(out), RECORDS=str(records),
             PATH=os.path.dirname(sys.executable) + os.pathsep + os.environ["PATH"])
  merge = lambda: subprocess.run(["bash", os.path.join(REPO, "launch", "campaign.sh")],
                                 env=env, capture_output=True, text=True)
  done = merge()
  assert done.returncode == 0, done.stderr
  path = records / "mfeat_paired" / "seeds.jsonl"
  got = sorted((r["strategy"], r["seed"], r["commit"][0], round(r["final_test_top1"], 2))
               for r in map(json.loads, path.read_text().splitlines()))
  assert got == [("margin", 1000, "a", 0.9), ("oracle_pool", 1000, "b", 0.9)]
  before = path.read_text()
  assert merge().returncode == 0 and path.read_text() == before
  # the same run, a different curve: refused, records unchanged
  (out / "mfeat/runs/margin/seed1000/rounds.jsonl").unlink()
  (out / "mfeat/runs/margin/seed1000").rename(tmp_path / "old")
  run_folder(out / "mfeat/runs/margin/seed1000", 8, last=0.8)
  refused = merge()
  assert refused.returncode != 0 and "margin seed 1000" in refused.stderr
  assert path.read_text() == before
  (out / "mfeat/runs/margin/seed1000").rename(tmp_path / "new")
  (out / "mfeat_oracle/commit.txt").unlink()
  unnamed = merge()
  assert unnamed.returncode != 0 and "mfeat_oracle/commit.txt not found" in unnamed.stderr


def test_class_coverage_counts_each_rows_picks_by_class_and_wrong_answers(tmp_path):
  """studies.class_coverage (launch/class_coverage.py) on hand-made run folders of a long-tailed, noisy mfeat pool,
  against counts made here from mfeat's layout (class k = rows 200 k .. 200 k + 199)."""
  import json  # pylint: disable=g-import-not-at-top

  from rlmba_jax.config_defaults import default_config  # pylint: disable=g-import-not-at-top
  from rlmba_jax.data import load_dataset  # pylint: disable=g-import-not-at-top
  from rlmba_jax.studies import class_coverage as coverage  # pylint: disable=g-import-not-at-top
  config = default_config()
  config.data.source, config.data.pool_imbalance, config.data.label_noise = "files", 10.0, 0.2
  pool = load_dataset(config.data).pool
  true = pool.ids // 200
  given = dict(zip(pool.ids.tolist(), pool.labels.tolist()))
  assert 0 < np.mean(pool.labels != true) < 0.4  # the noise is there to be counted
  rng = np.random.default_rng(0)
  picked = {}
  for row, seeds in (("a", (1000, 1001)), ("b", (1000, 1001, 1002))):
    for seed in seeds:
      ids = rng.choice(pool.ids, 25, replace=False).tolist()
      picked[row, seed] = ids
      block = tmp_path / "runs" / row / "seeds_1000-1002"
      run = block / f"seed_{seed}"
      run.mkdir(parents=True)
      (block / "seeds.json").write_text("[]")
      (run / "config.json").write_text(json.dumps(config.to_dict()))
      (run / "ledger.jsonl").write_text("".join(
          json.dumps({"round": r, "ids": ids[5 * r:5 * r + 5]}) + "\n" for r in range(5)))
      if (row, seed) != ("b", 1002):  # an unfinished run is left out
        (run / "summary.json").write_text("{}")
  result = coverage.coverage(str(tmp_path))
  counts = np.bincount(true, minlength=10)
  rarest = np.argsort(counts, kind="stable")
  assert result["classes_rarest_first"] == rarest.tolist()
  assert sorted(result["rows"]) == ["a", "b"] and sorted(result["rows"]["b"]) == [1000, 1001]
  for (row, seed), ids in picked.items():
    if (row, seed) == ("b", 1002):
      continue
    got = result["rows"][row][seed]
    picks = ids[5:]  # round 0 is the initial set
    labels = np.asarray([given[i] for i in picks])
    assert got["picks_per_class"] == np.bincount(labels, minlength=10)[rarest].tolist()
    assert got["rare_half_share"] == pytest.approx(np.isin(labels, rarest[:5]).mean())
    assert got["fewest_labels"] == np.bincount([given[i] for i in ids], minlength=10).min()
    assert got["wrong_share"] == pytest.approx(np.mean([given[i] != i // 200 for i in picks]))
  text = coverage.coverage_report(result, "a")
  assert "| b | 2 |" in text and "a − each row" in text
  assert result["rows"] == coverage.coverage(str(tmp_path), {1000, 1001})["rows"]
  assert list(coverage.coverage(str(tmp_path), {1001})["rows"]["a"]) == [1001]
  config.data.label_noise = 0.0  # one run of another setting among them is refused
  (tmp_path / "runs" / "b" / "seeds_1000-1002" / "seed_1001" / "config.json").write_text(
      json.dumps(config.to_dict()))
  with pytest.raises(ValueError, match="seed_1001 reads another data set"):
    coverage.coverage(str(tmp_path))


def test_same_records_compares_two_sweeps_runs_record_by_record(tmp_path):
  """launch/same_records.py: identical but for timings and ignored fields -> exit 0; a
  changed pick or a missing run -> exit 1, named."""
  import json  # pylint: disable=g-import-not-at-top
  import os  # pylint: disable=g-import-not-at-top
  import subprocess  # pylint: disable=g-import-not-at-top
  import sys  # pylint: disable=g-import-not-at-top

  from conftest import REPO  # pylint: disable=g-import-not-at-top

  def write(sweep, seed, ids, seconds, extra):
    run = tmp_path / sweep / "runs" / "random" / "seeds_1000-1001" / f"seed_{seed}"
    run.mkdir(parents=True)
    (run.parent / "seeds.json").write_text("[]")
    (run / "ledger.jsonl").write_text(json.dumps({"round": 0, "ids": ids}) + "\n")
    (run / "rounds.jsonl").write_text(json.dumps(
        {"round": 0, "test_top1": 0.5, "train_seconds": seconds, **extra}) + "\n")

  for seed in (1000, 1001):
    write("a", seed, [1, 2], 3.0, {})
    write("b", seed, [1, 2] if seed == 1000 else [1, 3], 9.0, {"stopping": {"x": 1}})

  def check(seeds, *more):
    return subprocess.run(
        [sys.executable, os.path.join(REPO, "launch", "same_records.py"),
         f"--a={tmp_path / 'a'}", f"--b={tmp_path / 'b'}", "--rows=random",
         f"--seeds={seeds}", *more], capture_output=True, text=True, timeout=120)

  same = check("1000")
  assert same.returncode == 0 and "all identical" in same.stdout, same.stderr[-2000:]
  changed = check("1000-1002", "--ignore=")  # the stopping field counts now
  assert changed.returncode == 1
  assert "random 1000 ledger.jsonl identical" in changed.stdout
  assert "random 1000 rounds.jsonl DIFFERENT" in changed.stdout
  assert "random 1001 ledger.jsonl DIFFERENT" in changed.stdout
  assert "random 1002 ledger.jsonl MISSING" in changed.stdout


def test_compare_families_hold_the_plans_pairs_and_the_pretrained_policy_family():
  """launch/compare.py's families: H1 against the baselines the study has; the
  pretrained-policy family (plans, "Pretrained-policy rows") pairs each pretraining with the
  untrained invariant row, and that row with the tuned one."""
  import importlib.util  # pylint: disable=g-import-not-at-top
  import os  # pylint: disable=g-import-not-at-top

  from conftest import REPO  # pylint: disable=g-import-not-at-top
  spec = importlib.util.spec_from_file_location(
      "compare_script", os.path.join(REPO, "launch", "compare.py"))
  compare = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(compare)
  labels = ["random", "margin", "rlmba_tuned", "rlmba_prior", "rlmba_invariant",
            "rlmba_pretrained_mfeat", "rlmba_pretrained_av_digits"]
  families = dict(compare.families(labels))
  assert families["H1: RL-MBA (tuned) against each baseline"] == [
      ("rlmba_tuned", "random"), ("rlmba_tuned", "margin")]
  pretrained = [pairs for title, pairs in families.items() if title.startswith("Pretrained")]
  assert pretrained == [[("rlmba_pretrained_mfeat", "rlmba_invariant"),
                         ("rlmba_pretrained_av_digits", "rlmba_invariant"),
                         ("rlmba_invariant", "rlmba_tuned")]]
