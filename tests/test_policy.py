"""Plackett–Luce draws and log-probabilities, REINFORCE, and RL-MBA candidate scoring."""

import itertools
import math

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from rlmba_jax import policy, selection


def _brute_force_log_prob(logits, order, valid):
  remaining = [i for i in range(len(logits)) if valid[i]]
  total = 0.0
  for i in order:
    total += logits[i] - math.log(sum(math.exp(logits[j]) for j in remaining))
    remaining.remove(i)
  return total


def test_plackett_luce_log_prob_equals_enumeration_and_sums_to_one():
  logits = np.array([0.3, -1.2, 2.0, 0.0, 0.7])
  valid = np.array([True, True, True, False, True])
  total = 0.0
  for order in itertools.permutations([0, 1, 2, 4], 3):
    got = float(policy.plackett_luce_log_prob(jnp.asarray(logits), jnp.asarray(order),
                                              jnp.asarray(valid)))
    np.testing.assert_allclose(got, _brute_force_log_prob(logits, order, valid), rtol=1e-5)
    total += math.exp(got)
  np.testing.assert_allclose(total, 1.0, rtol=1e-5)  # all 24 ordered draws of 3 from 4


def test_gumbel_top_k_matches_the_sequential_sampler():
  logits = jnp.array([1.0, 0.0, -0.5, 0.5])
  keys = jax.random.split(jax.random.key(0), 20000)
  fast = np.asarray(jax.vmap(lambda k: policy.gumbel_top_k(k, logits, 2))(keys))
  slow = np.asarray(jax.vmap(lambda k: policy.sequential_plackett_luce(k, logits, 2))(keys))
  def freq(draws):
    counts = {}
    for a, b in draws:
      counts[(a, b)] = counts.get((a, b), 0) + 1
    return counts
  f, s = freq(fast), freq(slow)
  exact = {o: math.exp(_brute_force_log_prob(np.asarray(logits), o, [True] * 4))
           for o in itertools.permutations(range(4), 2)}
  for o, p in exact.items():
    # 20,000 draws: binomial sd <= 0.0035; allow 5 sd.
    assert abs(f.get(o, 0) / 20000 - p) < 0.018, (o, f.get(o, 0) / 20000, p)
    assert abs(s.get(o, 0) / 20000 - p) < 0.018, (o, s.get(o, 0) / 20000, p)


def test_gumbel_top_k_never_draws_invalid_candidates():
  valid = jnp.array([True, False, True, True, False])
  draws = jax.vmap(lambda k: policy.gumbel_top_k(k, jnp.zeros(5), 3, valid))(
      jax.random.split(jax.random.key(1), 500))
  assert not np.isin(np.asarray(draws), [1, 4]).any()


def test_reinforce_moves_probability_toward_rewarded_candidates():
  """A bandit: drawing candidate 0 or 1 first pays 1, anything else pays 0."""
  net = policy.CandidatePolicy(hidden=(16,), prior_temperature=1.0)
  feats = jnp.asarray(np.random.default_rng(0).normal(size=(6, 3)), jnp.float32)
  feats = feats.at[:, 0].set(0.0)  # no prior preference
  state_vec = jnp.zeros(2)
  opt = optax.adam(0.05)
  st = policy.reinforce_init(jax.random.key(0), net, opt, 6, 3, 2)

  def first_probs(params):
    return jax.nn.softmax(net.apply({"params": params}, feats, state_vec))

  before = np.asarray(first_probs(st.params))
  update = jax.jit(lambda s, t, r: policy.reinforce_update(
      s, t, r, network=net, optimizer=opt, baseline_momentum=0.9))
  for i in range(150):
    logits = net.apply({"params": st.params}, feats, state_vec)
    order = policy.gumbel_top_k(jax.random.key(100 + i), logits, 2)
    reward = float(int(order[0]) in (0, 1))
    st, info = update(st, policy.Transition(feats, state_vec, jnp.ones(6, bool), order),
                      reward)
  after = np.asarray(first_probs(st.params))
  np.testing.assert_allclose(before, 1 / 6, atol=1e-5)  # zero-initialised correction
  assert after[:2].sum() > 0.8 > before[:2].sum()
  assert int(st.num_updates) == 150


def test_reinforce_first_update_uses_the_reward_as_baseline_and_clips():
  net = policy.CandidatePolicy(hidden=(4,))
  opt = optax.sgd(0.1)
  st = policy.reinforce_init(jax.random.key(0), net, opt, 3, 2, 1)
  t = policy.Transition(jnp.ones((3, 2)), jnp.zeros(1), jnp.ones(3, bool), jnp.array([0]))
  st, info = policy.reinforce_update(st, t, 0.5, network=net, optimizer=opt,
                                     baseline_momentum=0.5, advantage_clip=0.1)
  assert float(info.advantage) == 0.0 and float(st.baseline) == pytest.approx(0.5)
  st, info = policy.reinforce_update(st, t, 2.0, network=net, optimizer=opt,
                                     baseline_momentum=0.5, advantage_clip=0.1)
  assert float(info.advantage) == pytest.approx(0.1)  # 2.0 - 0.5 clipped
  assert float(st.baseline) == pytest.approx(1.25)


def test_minmax_normalise_over_the_mask():
  x = jnp.array([2.0, 4.0, 3.0, 100.0])
  m = jnp.array([True, True, True, False])
  np.testing.assert_allclose(selection.minmax_normalise(x, m), [0.0, 1.0, 0.5, 0.0])
  np.testing.assert_allclose(selection.minmax_normalise(jnp.ones(3), jnp.ones(3, bool)), 0.0)


def _evidential_view(n=60, c=4, seed=0):
  rng = np.random.default_rng(seed)
  alpha = {m: jnp.asarray(1.0 + rng.gamma(1.0, 2.0, size=(n, c)), jnp.float32)
           for m in ("a", "b")}
  feats = {m: jnp.asarray(rng.normal(size=(n, 5)), jnp.float32) for m in ("a", "b")}
  probs = {m: alpha[m] / alpha[m].sum(-1, keepdims=True) for m in ("a", "b")}
  fused = 1.0 + (alpha["a"] - 1) * 0.7 + (alpha["b"] - 1) * 0.3
  labelled = jnp.zeros(n, bool).at[:10].set(True)
  return selection.PoolView(fused / fused.sum(-1, keepdims=True), probs, feats, labelled,
                            modality_alphas=alpha, fused_alpha=fused,
                            modality_weights=jnp.array([0.7, 0.3]), modality_names=("a", "b"))


def test_candidate_score_is_the_weighted_normalised_sum():
  view = _evidential_view()
  cands = selection.score_candidates(jax.random.key(0), view, 5, kappa=3, beta=0.0)
  assert cands.positions.shape == (15,) and cands.features.shape == (15, 7)
  assert np.all(np.asarray(cands.positions) >= 10)  # never labelled
  q = np.asarray(cands.features[:, 0])
  assert np.all(np.diff(q) <= 1e-6)  # best first
  # With beta = 0, q = sum_m w_m u~_m exactly.
  np.testing.assert_allclose(q, np.asarray(cands.features[:, 1:3]) @ np.array([0.7, 0.3]),
                             rtol=1e-5, atol=1e-6)
  # u~_m is the min-max normalised mean Dirichlet variance over the unlabelled rows.
  from rlmba_jax import fusion
  u = np.asarray(fusion.mean_dirichlet_variance(view.modality_alphas["a"]))[10:]
  want = (u - u.min()) / (u.max() - u.min())
  np.testing.assert_allclose(cands.features[:, 1], want[np.asarray(cands.positions) - 10],
                             rtol=1e-4, atol=1e-6)


def test_rlmba_heuristic_needs_evidence_unless_efda_is_off():
  view = _evidential_view()
  bare = selection.PoolView(view.probs, view.modality_probs, view.features, view.labelled,
                            modality_names=("a", "b"))
  with pytest.raises(ValueError, match="needs evidential heads"):
    selection.get_strategy("rlmba")(jax.random.key(0), bare, 5)
  picks = selection.get_strategy("rlmba")(jax.random.key(0), bare, 5, efda=False)
  assert len(set(np.asarray(picks).tolist())) == 5


def test_reference_curves_average_runs_over_shared_label_counts(tmp_path):
  import json
  for name, rows in (("a", [(20, 0.5), (30, 0.6), (40, 0.7)]), ("b", [(20, 0.7), (30, 0.8)])):
    (tmp_path / name).mkdir()
    with open(tmp_path / name / "rounds.jsonl", "w") as f:
      for n, v in rows:
        f.write(json.dumps({"num_labeled": n, "val_top1": v}) + "\n")
  curve = policy.load_reference_curves([str(tmp_path / "a"), str(tmp_path / "b")])
  assert curve == pytest.approx({20: 0.6, 30: 0.7})
  (tmp_path / "c").mkdir()
  (tmp_path / "c" / "rounds.jsonl").write_text("{broken\n")
  with pytest.raises(policy.ReferenceRunError, match="not valid JSON"):
    policy.load_reference_curves([str(tmp_path / "c")])


def test_sweep_entries_parse_labels_and_overrides():
  from rlmba_jax.studies import sweeps as sweep  # pylint: disable=g-import-not-at-top
  assert sweep.parse_entry("badge") == ("badge", "badge", {})
  assert sweep.parse_entry("no_amcb=rlmba/modality.amcb=false/al.rlmba.kappa=2") == (
      "no_amcb", "rlmba", {"modality.amcb": "false", "al.rlmba.kappa": "2"})
  with pytest.raises(ValueError, match="is not key=value"):
    sweep.parse_entry("x=rlmba/oops")
  assert sweep.parse_entry("p=rlmba/al.rlmba.init_from=/w/runs/pre/mfeat/al.rlmba.kappa=10") == (
      "p", "rlmba", {"al.rlmba.init_from": "/w/runs/pre/mfeat", "al.rlmba.kappa": "10"})


def _agent(**options):
  from rlmba_jax.experiment.config import default_config  # pylint: disable=g-import-not-at-top
  return policy.RLMBAAgent({**default_config().al.rlmba.to_dict(), **options}, ("a", "b"),
                           budget=2, pool_size=30)


def test_the_reward_adds_lambda_times_the_balance():
  """``al.rlmba.balance_weight``: reward = the chosen kind's value + lambda * balance."""
  record = {"val_top1": 0.8, "num_labeled": 40, "balance": 0.5}
  history = [{"val_top1": 0.7}]
  assert _agent(reward="relative").reward(record, history, {40: 0.75}) == pytest.approx(0.05)
  assert _agent(reward="relative", balance_weight=0.2).reward(
      record, history, {40: 0.75}) == pytest.approx(0.05 + 0.2 * 0.5)
  assert _agent(reward="incremental", balance_weight=1.0).reward(
      record, history, None) == pytest.approx(0.1 + 0.5)
  with pytest.raises(policy.ReferenceRunError, match="no reference val_top1 at 40"):
    _agent(reward="relative").reward(record, history, {30: 0.7})


def test_greedy_takes_the_policys_best_whatever_the_draw_key():
  """``al.rlmba.greedy``: the b highest logits among the valid candidates, in order, the
  same for every draw key; a Plackett–Luce draw varies with the key."""
  from rlmba_jax.policy.selection_step import SelectionSettings, make_selection_step  # pylint: disable=g-import-not-at-top
  rng = np.random.default_rng(1)
  n, c, names = 40, 3, ("a", "b")
  alphas = {m: jnp.asarray(1 + 4 * rng.uniform(size=(n, c)), jnp.float32) for m in names}
  pool = selection.PoolView(
      jax.nn.softmax(jnp.asarray(rng.normal(size=(n, c)), jnp.float32)),
      {m: a / a.sum(-1, keepdims=True) for m, a in alphas.items()},
      {m: jnp.asarray(rng.normal(size=(n, 4)), jnp.float32) for m in names},
      jnp.zeros(n, bool), modality_alphas=alphas, modality_names=names)
  agent = _agent(kappa=4)
  params = agent.init(jax.random.key(0)).params
  state = jnp.zeros((6 + len(names),), jnp.float32)
  settings = SelectionSettings(budget=3, kappa=4, beta=0.5, efda=True, lloyd_iterations=2,
                               diversity="centroid")
  greedy = make_selection_step(agent.network, settings._replace(greedy=True))
  drawn = make_selection_step(agent.network, settings)
  picks = [np.asarray(greedy(params, jax.random.key(0), jax.random.key(k), pool, state)[0])
           for k in range(4)]
  assert all((p == picks[0]).all() for p in picks)
  _, transition, candidates = greedy(params, jax.random.key(0), jax.random.key(0), pool, state)
  logits = agent.network.apply({"params": params}, transition.candidate_features,
                               transition.round_state)
  np.testing.assert_array_equal(picks[0], np.asarray(candidates)[np.argsort(-logits)[:3]])
  draws = {tuple(np.asarray(drawn(params, jax.random.key(0), jax.random.key(k), pool,
                                  state)[0])) for k in range(8)}
  assert len(draws) > 1
