"""The paper's comparison protocol: one classifier for every strategy (a softmax multimodal
head over evidential modality heads), RL-MBA's difficulty from the weighted fusion of the
modality opinions, selection diagnostics, and test kept out of the search."""

import importlib.util
import json
import os
import runpy
import shutil

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from conftest import REPO, make_tiny_config, read_rounds
from rlmba_jax import fusion, selection
from rlmba_jax.experiment import run
from rlmba_jax.experiment.config import ConfigError, paper_protocol, validate_config
from rlmba_jax.models.classifier import fused_head_kind
from rlmba_jax.selection.diagnostics import percentile_rank, selection_diagnostics
from rlmba_jax.studies import tuning
from rlmba_jax.train.losses import make_head_losses, make_loss

PAPER = {"model.head": "evidential", "model.fusion": "concat", "model.fused_head": "softmax",
         "al.diagnostics": True, "train.num_epochs": 10}
CURVES = {"model.head": "evidential", "model.fusion": "evidence", "train.num_epochs": 10}


def _load_config(path, arg):
  spec = importlib.util.spec_from_file_location("cfg", os.path.join(REPO, path))
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module.get_config(arg)


@pytest.mark.parametrize("path", ["configs/mfeat.py", "configs/av_digits.py"])
def test_paper_configs_set_the_protocol(path):
  c = _load_config(path, "paper")
  validate_config(c)
  assert (c.model.head, c.model.fusion, c.model.fused_head) == ("evidential", "concat",
                                                                 "softmax")
  assert c.al.rlmba.kappa == 5 and c.al.diagnostics
  assert fused_head_kind(c.model.head, c.model.fusion, c.model.fused_head) == "softmax"


def test_a_softmax_fused_head_needs_the_concat_fusion():
  c = paper_protocol(make_tiny_config())
  c.model.fusion = "evidence"
  with pytest.raises(ConfigError, match="fused_head='softmax'.*concat"):
    validate_config(c)


def test_the_paper_loss_is_cross_entropy_on_the_fused_head_and_evidential_on_the_others():
  rng = np.random.default_rng(0)
  logits = {m: jnp.asarray(rng.normal(size=(4, 3)), jnp.float32) for m in ("a", "b")}
  alpha = {m: fusion.alpha_from_evidence(fusion.evidence_from_logits(l)) for m, l in
           logits.items()}
  fused = jnp.asarray(rng.normal(size=(4, 3)), jnp.float32)
  labels, weights, epoch = jnp.asarray([0, 1, 2, 1]), jnp.ones(4), jnp.asarray(3.0)
  outputs = {"fused_logits": fused, "logits": logits, "alpha": alpha}
  got = make_head_losses("softmax", "evidential", 10.0)(outputs, labels, weights, epoch)
  annealing = fusion.annealing_coefficient(epoch, 10.0)
  want = np.mean(np.asarray(
      optax.softmax_cross_entropy_with_integer_labels(fused, labels)
      + sum(fusion.evidential_loss(alpha[m], labels, annealing) for m in ("a", "b"))) / 3)
  np.testing.assert_allclose(got, want, rtol=1e-6)
  c = paper_protocol(make_tiny_config())
  assert make_loss(c.model, c.train)(outputs, labels, weights, epoch) == got


def _ledger_lines(workdir):
  with open(os.path.join(workdir, "ledger.jsonl")) as f:
    return f.readlines()


@pytest.fixture(scope="module")
def margin_runs(tmp_path_factory):
  """One round of margin under each protocol: ``{"paper": workdir, "curves": workdir}``."""
  out = {}
  for name, protocol in (("paper", PAPER), ("curves", CURVES)):
    out[name] = str(tmp_path_factory.mktemp(f"margin_{name}"))
    run(make_tiny_config(**{**protocol, "al.strategy": "margin", "al.rounds": 1}), out[name])
  return out


@pytest.mark.slow
@pytest.mark.parametrize("name,protocol,same", [("paper", PAPER, True),
                                                ("curves", CURVES, False)])
def test_two_strategies_train_the_same_classifier_on_the_same_labels(margin_runs, tmp_path,
                                                                     name, protocol, same):
  """Margin (AMCB weights updated every round) and RL-MBA without AMCB (uniform weights)
  retrain on one and the same labelled set. Under the paper protocol the weights serve the
  selector only, so both classifiers are identical; under the evidence-fusion classifier
  they are not (which is why that protocol was not a fair comparison)."""
  first = margin_runs[name]
  other = make_tiny_config(**{**protocol, "al.strategy": "rlmba", "al.rounds": 1,
                              "modality.amcb": False, "al.rlmba.policy": False})
  second = str(tmp_path / "rlmba")
  # The ledger may run one round ahead of the checkpoints: feed margin's rounds one by one.
  os.makedirs(second)
  with open(os.path.join(second, "config.json"), "w") as f:
    f.write(other.to_json(indent=2))
  for r, line in enumerate(_ledger_lines(first)):
    with open(os.path.join(second, "ledger.jsonl"), "a") as f:
      f.write(line)
    other.al.rounds = r
    run(other, second)
  assert _ledger_lines(second) == _ledger_lines(first)
  a, b = read_rounds(first), read_rounds(second)
  assert a[1]["modality_weights"] != b[1]["modality_weights"]  # the weights did differ
  keys = ("val_top1", "val_nll", "test_top1", "per_modality_val_top1", "train_loss_curve")
  assert all((a[1][k] == b[1][k]) == same for k in keys if k != "per_modality_val_top1")
  if same:
    assert all(a[1][k] == b[1][k] for k in keys)


@pytest.mark.slow
def test_rounds_record_the_diagnostics(margin_runs):
  rounds = read_rounds(margin_runs["paper"])
  assert "selection" not in rounds[0]
  diag = rounds[1]["selection"]
  assert sum(diag["class_counts"]) == 10 and diag["overlap_margin"] == 1.0
  assert set(diag["rank_uncertainty"]) == {"fou", "fac", "kar", "zer", "mor"}
  assert "selection" not in read_rounds(margin_runs["curves"])[1]  # off unless asked


def test_rlmba_difficulty_comes_from_the_modality_heads_not_the_fused_prediction():
  pool = selection.synthetic_pool(200, 16, 5, 20, seed=0)
  weights = jnp.asarray([0.8, 0.2])
  pool = pool.replace(modality_weights=weights)
  alphas = jnp.stack([pool.modality_alphas[m] for m in pool.names])
  want = fusion.mean_dirichlet_variance(fusion.weighted_evidence_fusion(alphas, weights))
  np.testing.assert_allclose(selection.efda_difficulty(pool.modality_alphas, pool.names,
                                                       weights), want, rtol=1e-6)
  key = jax.random.key(1)
  base = selection.score_candidates(key, pool, 10, kappa=3)
  garbage = selection.score_candidates(
      key, pool.replace(fused_alpha=jnp.ones_like(pool.fused_alpha) * 1e6,
                        probs=jnp.full_like(pool.probs, 0.2)), 10, kappa=3)
  np.testing.assert_array_equal(base.positions, garbage.positions)
  np.testing.assert_array_equal(base.features, garbage.features)


def test_percentile_rank_known_answers():
  values = jnp.asarray([5.0, 1.0, 3.0, 3.0, 9.0, 100.0])
  reference = jnp.asarray([True, True, True, True, True, False])
  ranks = percentile_rank(values, reference, jnp.asarray([1, 2, 4, 5]))
  # 1.0: lowest of 5 -> 0.5/5; 3.0: one below, two ties -> (1 + 3) / 10; 9.0: 4 below + itself
  np.testing.assert_allclose(ranks, [0.1, 0.4, 0.9, 1.0], rtol=1e-6)


def test_selection_diagnostics_of_margins_own_picks():
  pool = selection.synthetic_pool(300, 16, 6, 30, seed=2)
  labels = jnp.argmax(pool.probs, -1).astype(jnp.int32)
  picks = selection.get_strategy("margin")(jax.random.key(3), pool, 12)
  d = jax.jit(lambda p: selection_diagnostics(jax.random.key(4), pool, p, labels,
                                              num_classes=6, kappa=3))(picks)
  assert float(d["overlap_margin"]) == 1.0  # margin is deterministic on a view
  assert int(jnp.sum(d["class_counts"])) == 12
  assert 0 <= int(d["far_from_labelled"]) <= 12
  for key in ("rank_difficulty", "rank_diversity", "rank_labelled_distance", "rank_q"):
    assert d[key].shape == (3,) and bool(jnp.all((d[key] >= 0) & (d[key] <= 1)))
    assert bool(jnp.all(jnp.diff(d[key]) >= 0))  # p10 <= p50 <= p90
  assert d["rank_uncertainty"].shape == (2, 3)
  for key in ("topk_overlap_uncertainty", "topk_overlap_diversity", "uncertainty_share"):
    assert 0.0 <= float(d[key]) <= 1.0 + 1e-6
  # RL-MBA's own heuristic picks sit at the very top of q
  rl = selection.get_strategy("rlmba")(jax.random.key(4), pool.replace(
      modality_weights=jnp.asarray([0.5, 0.5])), 12, kappa=3)
  d_rl = selection_diagnostics(jax.random.key(4), pool, rl, labels, num_classes=6, kappa=3)
  assert float(d_rl["rank_q"][0]) > 0.9


@pytest.mark.slow
def test_with_eval_test_off_no_test_figure_exists_and_the_search_refuses_others(
    margin_runs, tmp_path):
  hidden = str(tmp_path / "hidden")
  summary = run(make_tiny_config(**{"al.rounds": 1, "eval.test": False}), hidden)
  assert not [k for k in summary if "test" in k] and "val_area_under_curve" in summary
  for record in read_rounds(hidden):
    assert not [k for k in record if "test" in k]
  counts, curve = tuning.validation_curve(hidden)
  assert counts == [20, 30] and len(curve) == 2
  shown = str(tmp_path / "shown")
  shutil.copytree(margin_runs["paper"], shown)
  with pytest.raises(tuning.TestWasReadError, match="eval.test=True"):
    tuning.validation_curve(shown)
  # a run whose records hold a test figure is refused even if its config says otherwise
  with open(os.path.join(shown, "config.json")) as f:
    config = json.load(f)
  config["eval"]["test"] = False
  with open(os.path.join(shown, "config.json"), "w") as f:
    json.dump(config, f)
  with pytest.raises(tuning.TestWasReadError, match="test_top1"):
    tuning.validation_curve(shown)


def test_search_trials_start_from_the_given_config_and_never_repeat():
  space = tuning.parse_space("a=1|2|3;b=x|y")
  trials = tuning.draw_trials(space, 5, seed=0, grid=False)
  assert trials[0] == {} and len(trials) == 5
  assert len({tuple(sorted(t.items())) for t in trials[1:]}) == 4
  assert trials == tuning.draw_trials(space, 5, seed=0, grid=False)
  assert len(tuning.draw_trials(space, 0, seed=0, grid=True)) == 7
  with pytest.raises(ValueError, match="no values"):
    tuning.parse_space("a=")


@pytest.mark.parametrize("name", ["mfeat", "av_digits"])
def test_the_tuned_config_holds_the_values_the_search_chose(name):
  """configs/<data set>.py:tuned must be what results/<data set>_paper/tuning.json (the
  search on validation) chose, value for value (``TUNED_RLMBA`` in the config file)."""
  values = runpy.run_path(os.path.join(REPO, "configs", f"{name}.py"))["TUNED_RLMBA"]
  with open(os.path.join(REPO, "results", f"{name}_paper", "tuning.json")) as f:
    chosen = json.load(f)["chosen"]["overrides"]
  assert {k: tuning.parse_value(v) for k, v in chosen.items()} == values
  c = _load_config(f"configs/{name}.py", "tuned")
  validate_config(c)
  assert all(_get(c, k) == v for k, v in values.items())


def test_a_search_can_include_another_searchs_choice(tmp_path):
  path = tmp_path / "tuning.json"
  path.write_text(json.dumps({"chosen": {"overrides": {"al.rlmba.beta": "0.25",
                                                       "modality.amcb": "false"}}}))
  assert tuning.included_trial(str(path)) == {"al.rlmba.beta": "0.25", "modality.amcb": "false"}
  path.write_text(json.dumps({"chosen": {"overrides": ["not", "a", "mapping"]}}))
  with pytest.raises(ValueError, match="not a key -> value mapping"):
    tuning.included_trial(str(path))


def _get(config, dotted):
  node = config
  for part in dotted.split("."):
    node = node[part]
  return node
