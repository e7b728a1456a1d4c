"""Simulated episodes, the modality-invariant policy inputs, pretraining and its use."""

import dataclasses
import functools
import json
import os
import warnings

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from conftest import Crash, make_tiny_config
from rlmba_jax import modality, policy
from rlmba_jax.data import load_dataset
from rlmba_jax.errors import ConfigError, WorkdirError
from rlmba_jax.experiment import checkpoint
from rlmba_jax.policy import episodes, inputs, pretraining
from rlmba_jax.policy.agent import RLMBAAgent
from rlmba_jax.policy.reinforce import Transition
from rlmba_jax.selection import PoolView
from rlmba_jax.selection.rlmba import score_candidates
from rlmba_jax.studies import policy_pretraining


NAMES = ("a", "b", "c")
SMALL = dict(pool_size=60, val_size=24, initial=(4, 6), budget=(2, 3), rounds=(1, 2),
             train_steps=6, kappa=4, annealing_steps=3)


def _policy_params(network, seed=1):
  """Random parameters everywhere (the zero-initialised last layer made non-zero)."""
  params = network.init(jax.random.key(0), jnp.zeros((2, inputs.INVARIANT_FEATURE_DIM)),
                        jnp.zeros((inputs.INVARIANT_STATE_DIM,)))["params"]
  leaves, tree = jax.tree.flatten(params)
  keys = jax.random.split(jax.random.key(seed), len(leaves))
  return jax.tree.unflatten(tree, [0.3 * jax.random.normal(k, l.shape)
                                   for k, l in zip(keys, leaves)])


def test_a_vmapped_episode_equals_the_same_episode_run_alone():
  # The spec, source and batch of the pretraining tests below (one compiled simulation).
  config = _pretrain_config()
  data = load_dataset(config.data)
  names = tuple(m.name for m in data.modalities)
  spec = policy_pretraining.episode_spec(config, names, data.num_classes, _options())
  source = episodes.episode_source(data.pool, names)
  spec.check(source.labels.shape[0])
  network = pretraining.make_policy((8,), config.al.rlmba.prior_temperature)
  params = _policy_params(network)
  keys = jax.random.split(jax.random.key(3), 2)
  batch = pretraining.jitted_simulation(spec, network)(params, source, keys)
  one = jax.jit(functools.partial(episodes.simulate_episode, spec, network))
  for i in range(2):
    alone = one(params, source, keys[i])
    for got, want in zip(jax.tree.leaves(jax.tree.map(lambda x: x[i], batch)),
                         jax.tree.leaves(alone)):
      np.testing.assert_allclose(np.asarray(got), np.asarray(want), rtol=1e-5, atol=1e-6)
  # The reference ran on the same episode: same round-0 model, so same round-0 top-1.
  np.testing.assert_allclose(batch.reference_top1[:, 0, 0], batch.policy_top1[:, 0])
  assert np.all(np.asarray(batch.rewards)[~np.asarray(batch.active)] == 0)
  assert set(np.asarray(batch.budget)) <= {2, 3} and set(np.asarray(batch.rounds)) <= {1, 2}
  assert batch.transitions.candidate_features.shape == (2, 2, spec.num_candidates,
                                                        inputs.INVARIANT_FEATURE_DIM)


def test_invariant_inputs_give_the_same_scores_under_a_permutation_of_modalities():
  rng = np.random.default_rng(0)
  m, k = 4, 9
  u, w = rng.uniform(size=(k, m)), rng.dirichlet(np.ones(m))
  q, d, difficulty = rng.uniform(size=(3, k))
  network = pretraining.make_policy((16, 16), 0.3)
  params = _policy_params(network)
  gaps = rng.normal(size=m) * 0.1
  summary = jnp.asarray(rng.uniform(size=4), jnp.float32)

  def scores(order):
    features = np.concatenate([q[:, None], u[:, order], d[:, None], difficulty[:, None],
                               np.broadcast_to(w[order], (k, m))], 1)
    f = inputs.invariant_candidate_features(jnp.asarray(features, jnp.float32), m)
    s = inputs.invariant_round_state(0.7, 1.1, 0.05, gaps[order], w[order], -0.2, 3.0, 0.1,
                                     summary, num_classes=10)
    assert f.shape == (k, inputs.INVARIANT_FEATURE_DIM)
    assert s.shape == (inputs.INVARIANT_STATE_DIM,)
    return np.asarray(network.apply({"params": params}, f, s))

  base = scores(np.arange(m))
  for perm in ([3, 2, 1, 0], [1, 3, 0, 2]):
    np.testing.assert_allclose(scores(np.asarray(perm)), base, rtol=1e-5, atol=1e-6)
  # ... and a different input does change them (the test can fail).
  u[0, 0] += 0.5
  assert not np.allclose(scores(np.arange(m)), base)


def test_candidate_scoring_is_the_same_whatever_order_the_modalities_are_listed_in():
  rng = np.random.default_rng(1)
  n, c, names = 40, 3, ("x", "y", "z")
  alphas = {m: jnp.asarray(1 + rng.gamma(1.0, size=(n, c)), jnp.float32) for m in names}
  features = {m: jnp.asarray(rng.normal(size=(n, 6)), jnp.float32) for m in names}
  labelled = jnp.asarray(rng.uniform(size=n) < 0.2)
  weights = {"x": 0.5, "y": 0.2, "z": 0.3}

  def invariant(order):
    view = PoolView.from_arrays(
        jnp.full((n, c), 1 / c), {m: alphas[m] / alphas[m].sum(-1, keepdims=True)
                                  for m in order}, {m: features[m] for m in order}, labelled,
        modality_alphas={m: alphas[m] for m in order},
        modality_weights=jnp.asarray([weights[m] for m in order]), modality_names=order)
    cands = score_candidates(jax.random.key(0), view, 3, kappa=4, diversity="labelled")
    return cands.positions, inputs.invariant_candidate_features(cands.features, 3)

  pos, feats = invariant(names)
  pos2, feats2 = invariant(("z", "x", "y"))
  np.testing.assert_array_equal(pos, pos2)
  np.testing.assert_allclose(feats, feats2, rtol=1e-5, atol=1e-6)


def test_per_modality_and_invariant_widths():
  assert inputs.input_dims("per_modality", 6) == (15, 16)
  assert inputs.input_dims("invariant", 6) == inputs.input_dims("invariant", 2) == (7, 16)
  with pytest.raises(ValueError, match="policy_inputs"):
    inputs.input_dims("columns", 2)


def test_the_truncated_plackett_luce_probability_counts_the_first_draws_only():
  logits = jnp.asarray([0.5, -0.3, 1.2, 0.0])
  order = jnp.asarray([2, 0, 3])
  full2 = policy.plackett_luce_log_prob(logits, order[:2])
  np.testing.assert_allclose(policy.plackett_luce_log_prob(logits, order, length=2), full2,
                             rtol=1e-6)


def test_episode_spec_names_what_to_change():
  spec = episodes.EpisodeSpec(names=NAMES, num_classes=4, **dict(SMALL, pool_size=20))
  with pytest.raises(ValueError, match="pool_size=20 is too small"):
    spec.check(100)
  spec = episodes.EpisodeSpec(names=NAMES, num_classes=4, **dict(SMALL, references=("gcn",)))
  with pytest.raises(ValueError, match="references"):
    spec.check(100)


def _options(**kw):
  o = policy_pretraining.default_options()
  o.update(dict(updates=4, batch=2, checkpoint_every=2, pool_size=80, val_size=30,
                initial=(4, 6), budget=(2, 3), rounds=(1, 2), train_steps=5,
                references=("random",), learning_rate=0.05, progress="off"), **kw)
  return o


def _pretrain_config():
  return make_tiny_config(**{"al.rlmba.kappa": 4, "al.rlmba.hidden": (8,),
                             "data.modalities": "fou,kar", "al.rlmba.diversity": "labelled"})


def _params(workdir, hidden=(8,), inputs_kind="invariant", prior_temperature=0.1):
  fresh = pretraining.pretrain_init(jax.random.key(0), pretraining.make_policy((8,), 0.1),
                                    optax.adam(1e-3)).params
  return fresh, checkpoint.load_pretrained_params(str(workdir), hidden, inputs_kind, fresh,
                                                  prior_temperature=prior_temperature)


@pytest.fixture(scope="module")
def pretrained(tmp_path_factory):
  """A short pretraining run straight through (4 updates, checkpoints at 2 and 4)."""
  workdir = tmp_path_factory.mktemp("pretrain") / "straight"
  last = policy_pretraining.pretrain_policy(_pretrain_config(), str(workdir), _options())
  assert last["update"] == 4
  return workdir


@pytest.mark.slow  # two more short pretrainings on mfeat
def test_a_pretraining_killed_and_resumed_ends_with_the_same_parameters(
    pretrained, tmp_path, monkeypatch):
  config = _pretrain_config()
  real_append = policy_pretraining.append_jsonl

  def crash_after_update_3(path, row):
    real_append(path, row)
    if row["update"] == 3:  # logged, not yet checkpointed: what a kill there leaves
      raise Crash("killed after update 3")

  monkeypatch.setattr(policy_pretraining, "append_jsonl", crash_after_update_3)
  with pytest.raises(Crash):
    policy_pretraining.pretrain_policy(config, str(tmp_path / "resumed"), _options())
  monkeypatch.setattr(policy_pretraining, "append_jsonl", real_append)
  policy_pretraining.pretrain_policy(config, str(tmp_path / "resumed"), _options())

  fresh, straight = _params(pretrained)
  _, resumed = _params(tmp_path / "resumed")
  for x, y in zip(jax.tree.leaves(straight), jax.tree.leaves(resumed)):
    np.testing.assert_array_equal(np.asarray(x), np.asarray(y))
  moved = [not np.array_equal(x, y) for x, y in zip(jax.tree.leaves(straight),
                                                    jax.tree.leaves(fresh))]
  assert all(moved)  # every layer learnt, the zero-initialised last one included
  log = policy_pretraining.read_log(str(tmp_path / "resumed"))
  assert [r["update"] for r in log] == [1, 2, 3, 4]
  assert [r["reward"] for r in log] == [r["reward"] for r in policy_pretraining.read_log(str(pretrained))]

  # Other values in the same workdir are refused, naming them; wrong use is refused too.
  with pytest.raises(WorkdirError, match="learning_rate"):
    policy_pretraining.pretrain_policy(config, str(pretrained), _options(learning_rate=0.1))
  with pytest.raises(WorkdirError, match="policy_inputs=invariant"):
    _params(pretrained, inputs_kind="per_modality")
  with pytest.raises(WorkdirError, match="hidden"):
    _params(pretrained, hidden=(16,))
  # the logits are q / T + the correction: parameters learned at one T are refused at another
  with pytest.raises(WorkdirError, match="prior_temperature=0.3 but the policy was "
                     "pretrained with 0.1"):
    _params(pretrained, prior_temperature=0.3)
  with open(pretrained / "pretrain.json") as f:
    assert json.load(f)["source"] == "uci_mfeat"


@pytest.mark.slow  # an RL-MBA run from the pretraining, and held-out episodes
def test_an_experiment_starts_its_policy_from_a_pretraining(pretrained, tmp_path):
  import orbax.checkpoint as ocp  # pylint: disable=g-import-not-at-top

  from rlmba_jax.experiment.loop import run  # pylint: disable=g-import-not-at-top
  held_out = policy_pretraining.evaluate_pretrained(_pretrain_config(), str(pretrained), _options(),
                                          episodes=2, batch=2)
  assert held_out["episodes"] == 2 and np.isfinite(held_out["reward_difference"])
  with open(pretrained / "evaluation.json") as f:
    assert json.load(f) == held_out
  # Asked again for the same episodes: read back, not simulated (the file is not rewritten);
  # other episodes are simulated.
  stamp = os.stat(pretrained / "evaluation.json").st_mtime_ns
  assert policy_pretraining.evaluate_pretrained(_pretrain_config(), str(pretrained), _options(),
                                                episodes=2, batch=2) == held_out
  assert os.stat(pretrained / "evaluation.json").st_mtime_ns == stamp
  other = policy_pretraining.evaluate_pretrained(_pretrain_config(), str(pretrained), _options(),
                                                 episodes=2, batch=2, seed=7)
  assert other["seed"] == 7 and other["update"] == held_out["update"]
  with pytest.raises(WorkdirError, match="no pretraining checkpoint"):
    policy_pretraining.evaluate_pretrained(_pretrain_config(), str(tmp_path), _options())

  # Pretrained on two modalities, used on all six: the invariant inputs do not depend on M.
  # (The classifier of test_rlmba_loop.py's runs: its compiled programs are shared.)
  rlmba = {"al.strategy": "rlmba", "al.rounds": 1, "al.rlmba.hidden": (8,),
           "al.rlmba.reward": "absolute", "al.rlmba.init_from": str(pretrained),
           "model.head": "evidential", "model.fusion": "evidence", "train.num_epochs": 10}
  run(make_tiny_config(**rlmba, **{"al.rlmba.policy_inputs": "invariant"}),
      str(tmp_path / "run"))
  # Round 0's checkpoint holds the policy before any online update: the pretrained one.
  with warnings.catch_warnings():  # read without a target: Orbax takes the saved sharding
    warnings.filterwarnings("ignore", "Sharding info not provided", UserWarning)
    stored = ocp.PyTreeCheckpointer().restore(str(tmp_path / "run" / "checkpoints" / "0" /
                                                  "state"))
  for got, want in zip(jax.tree.leaves(stored["policy"]["params"]),
                       jax.tree.leaves(_params(pretrained)[1])):
    np.testing.assert_array_equal(np.asarray(got), np.asarray(want))
  with open(tmp_path / "run" / "rounds.jsonl") as f:
    assert "policy" in [json.loads(l) for l in f][1]  # the online REINFORCE went on

  with pytest.raises(WorkdirError, match="policy_inputs=invariant"):
    run(make_tiny_config(**rlmba), str(tmp_path / "bad"))


def test_the_agent_and_the_episodes_draw_with_one_selection_step():
  """The loop's agent and the simulated episodes call one RL-MBA selection step
  (``policy.selection_step``): on one pool, one round's scalars, the same keys and settings
  (difficulty weight included, which the simulator used to ignore) they give the same
  candidates, picks and transition."""
  rng = np.random.default_rng(0)
  n, c, b, names = 50, 4, 3, ("a", "b")
  alphas = {m: jnp.asarray(1 + 5 * rng.uniform(size=(n, c)), jnp.float32) for m in names}
  pool = PoolView(jax.nn.softmax(jnp.asarray(rng.normal(size=(n, c)), jnp.float32)),
                  {m: a / a.sum(-1, keepdims=True) for m, a in alphas.items()},
                  {m: jnp.asarray(rng.normal(size=(n, 5)), jnp.float32) for m in names},
                  jnp.asarray(rng.uniform(size=n) < 0.2), modality_alphas=alphas,
                  modality_weights=jnp.asarray([0.6, 0.4], jnp.float32), modality_names=names)
  settings = dict(kappa=4, beta=0.25, efda=True, lloyd_iterations=3, diversity="labelled",
                  difficulty_weight=0.5)
  options = {**make_tiny_config().al.rlmba.to_dict(), **settings, "hidden": (8,),
             "policy_inputs": "invariant"}
  agent = RLMBAAgent(options, names, b, n)
  params = _policy_params(agent.network)
  curve = [1.0, 0.8, 0.7, 0.65]
  record = {"val_top1": 0.7, "val_nll": 0.9, "val_ece": 0.05, "top1_gap": {"a": 0.02, "b": -0.05},
            "train_loss_curve": curve, "train_grad_norm": 0.3}
  key = jax.random.key(2)
  picks, transition, _ = agent.select(agent.init(key)._replace(params=params),
                                      *jax.random.split(key), pool, record, 0.25)
  spec = episodes.EpisodeSpec(names=names, num_classes=c, budget=(b, b), **settings)
  view = episodes.RoundView(pool, jnp.float32(0.7), jnp.float32(0.9), jnp.float32(0.05),
                            jnp.asarray([0.02, -0.05], jnp.float32),
                            inputs.relative_loss_change(jnp.asarray(curve, jnp.float32)),
                            jnp.float32(0.3))
  got_picks, got = episodes.policy_choice(spec, agent.network, params, key, view, jnp.int32(b),
                                          jnp.float32(0.25))
  np.testing.assert_array_equal(np.asarray(got_picks), np.asarray(picks))
  for name in Transition._fields:
    np.testing.assert_allclose(np.asarray(getattr(got, name)),
                               np.asarray(getattr(transition, name)), rtol=1e-6, err_msg=name)
  assert len(set(np.asarray(picks).tolist())) == b
  assert not np.asarray(pool.labelled)[np.asarray(picks)].any()


def _weights_per_round(spec, source, key):
  """Each round's AMCB weights and gaps in one run of the episode drawn by ``key``."""
  draw = episodes.draw_episode(spec, key, source.labels.shape[0])
  choose = lambda k, view, _: (jax.random.choice(k, spec.pool_size, (spec.budget[1],), False),
                               (view.pool.modality_weights, view.gaps))
  _, (weights, gaps) = jax.jit(
      lambda k: episodes.simulate_strategy(spec, source, draw, k, choose))(jax.random.key(5))
  return np.asarray(weights), np.asarray(gaps)


def test_episode_modality_weights_follow_the_loops_amcb_update_with_momentum_and_favour():
  # The loop's AMCB state over an episode's rounds (experiment.rounds.update_modality_weights),
  # folded by hand from the gaps the episode measured: "weaker" negates them, momentum
  # smooths them (the fold fails when either is ignored: the gaps are far from 0).
  rng = np.random.default_rng(0)
  n, widths = 90, (5, 3, 4)
  labels = rng.integers(0, 3, n)
  features = tuple(jnp.asarray(rng.normal(size=(n, d)) + labels[:, None] * s, jnp.float32)
                   for d, s in zip(widths, (1.0, 0.3, 0.0)))
  source = episodes.EpisodeSource(features, jnp.asarray(labels, jnp.int32))
  spec = episodes.EpisodeSpec(names=NAMES, num_classes=3, modality_momentum=0.6,
                              modality_favour="weaker", modality_temperature=0.05,
                              modality_floor=0.05, **dict(SMALL, rounds=(3, 3)))
  spec.check(n)
  weights, gaps = _weights_per_round(spec, source, jax.random.key(1))
  assert np.abs(gaps).max() > 0.05 and np.abs(np.diff(gaps, axis=0)).max() > 0.01
  state = modality.amcb_init(3)
  for t in range(3):
    state = modality.amcb_update(state, jnp.asarray(-gaps[t]), temperature=0.05, floor=0.05,
                                 momentum=0.6)
    np.testing.assert_allclose(weights[t], np.asarray(state.weights), rtol=1e-6)


def test_pretraining_refuses_what_the_episodes_cannot_simulate():
  options = _options()
  for key, value, hint in (("modality.contribution", "shapley", "top1_gap"),
                           ("al.rlmba.balance_weight", 0.5, "balance_weight")):
    config = make_tiny_config(**{key: value})
    with pytest.raises(ConfigError, match=hint):
      policy_pretraining.episode_spec(config, NAMES, 4, options)
  # Without AMCB the contributions are never measured: Shapley is no obstacle there.
  config = make_tiny_config(**{"modality.contribution": "shapley", "modality.amcb": False,
                               "modality.favour": "weaker", "modality.momentum": 0.3})
  spec = policy_pretraining.episode_spec(config, NAMES, 4, options)
  assert (spec.modality_favour, spec.modality_momentum) == ("weaker", 0.3)
  with pytest.raises(ValueError, match="modality_favour='both'"):
    episodes.EpisodeSpec(names=NAMES, num_classes=4, modality_favour="both", **SMALL).check(100)


def test_a_pretraining_manifest_from_before_a_spec_field_existed_still_resumes(tmp_path):
  spec = episodes.EpisodeSpec(names=NAMES, num_classes=4, **SMALL)
  manifest = {"source": "x", "spec": dataclasses.asdict(spec), "seed": 0}
  old = json.loads(json.dumps(manifest))
  del old["spec"]["modality_favour"], old["spec"]["modality_momentum"]
  (tmp_path / policy_pretraining.MANIFEST).write_text(json.dumps(old))
  policy_pretraining._check_manifest(str(tmp_path), manifest)  # the defaults ran: accepted
  weaker = dict(manifest, spec=dataclasses.asdict(
      dataclasses.replace(spec, modality_favour="weaker")))
  with pytest.raises(WorkdirError, match="spec"):
    policy_pretraining._check_manifest(str(tmp_path), weaker)
