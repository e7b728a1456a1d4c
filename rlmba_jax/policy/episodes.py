r"""Simulated active-learning episodes in JAX: where the selection policy gets its practice.

An episode is a whole active-learning run on a labelled *source* data set, small enough to be
one jitted function, so a batch of episodes runs under ``jax.vmap`` (and shards over
devices):

* **Draws per episode** (from the episode's key): which ``pool_size`` source rows form the
  pool and which ``val_size`` the validation split, the initial set size n_0, the budget b
  and the number of rounds R (each from an inclusive range in ``EpisodeSpec``). Shapes are
  static: b and R are padded to their maxima and masked.
* **Inner learner**: on fixed per-modality features (mfeat's views; for other data sets the
  ``episode_features`` summaries), one evidential linear head per modality and a softmax
  linear head over the concatenated features (the experiment's classifier, linear), trained
  from zero for ``train_steps`` Adam steps on the labelled rows, every round.
* **Selection**: the round's ``PoolView`` (fused and modality probabilities, Dirichlet
  parameters, AMCB weights from the validation top-1 gaps, smoothed over the episode's
  rounds with ``modality_momentum`` and signed by ``modality_favour``, as the experiment
  loop's ``modality.momentum`` and ``modality.favour``) goes through RL-MBA's selection
  step (``policy.selection_step``, the one the loop's agent runs: candidate scoring,
  K = kappa b, then b candidates drawn by the policy from its ``invariant`` inputs).
* **Reward**: the paper's relative reward, on the episode's validation split only:
  ``r_t = top1_policy(t+1) - mean_ref top1_ref(t+1)``, the references (random and BADGE by
  default) run on the same episode (same pool, validation split, initial set, b and R)
  inside the same simulation. Whatever ``al.rlmba.reward`` the run that uses the policy
  names, the relative form serves it: the references' top-1 does not depend on
  the round's draw, so subtracting it leaves the expected gradient of every round's
  log-probability unchanged (it only lowers the variance), and the same holds for the
  incremental form's previous top-1. ``reward_ema``, ``baseline_momentum`` and
  ``advantage_clip`` shape the online update, which pretraining replaces with its own
  (``policy.pretraining``: the batch's mean reward of the round as the baseline).

Nothing here reads a test split: ``episode_source`` takes the source's pool rows only.
"""

from __future__ import annotations

import dataclasses
from typing import Any, NamedTuple, Sequence

import chex
import jax
import jax.numpy as jnp
import numpy as np
import optax

from rlmba_jax import fusion as fusion_lib
from rlmba_jax.config_choices import FAVOUR
from rlmba_jax.modality.weights import ModalityWeightState, amcb_init, amcb_update
from rlmba_jax.policy import inputs as inputs_lib
from rlmba_jax.policy.reinforce import Transition
from rlmba_jax.policy.selection_step import SelectionSettings, make_selection_step
from rlmba_jax.selection.base import PoolView, available_strategies, get_strategy
from rlmba_jax.selection.rlmba import DIVERSITIES
from rlmba_jax.train import metrics as metrics_lib


# A modality with more values per example than this is summarised (``episode_features``).
MAX_FLAT_WIDTH = 1024


class EpisodeSource(NamedTuple):
  """A labelled source data set as the episodes read it.

  Attributes:
    features: per modality (``EpisodeSpec.names`` order) ``[N, D_m]`` float32 standardised.
    labels: ``[N]`` int32.
  """
  features: tuple[jnp.ndarray, ...]
  labels: jnp.ndarray


def episode_features(inputs: np.ndarray) -> np.ndarray:
  """One modality's fixed episode features ``[N, D]`` from its inputs ``[N, ...]``.

  Vectors stay; an input of at most ``MAX_FLAT_WIDTH`` values is flattened (mfeat's 16x15
  pixels, av_digits' 8x8 digits); a larger one (a spectrogram ``[F, T, 1]``) becomes the mean
  and std over every axis after the first (per-coefficient mean and spread over time).
  """
  x = np.asarray(inputs, np.float32)
  if x.ndim == 2 or int(np.prod(x.shape[1:])) <= MAX_FLAT_WIDTH:
    return x.reshape(len(x), -1)
  axes = tuple(range(2, x.ndim))
  return np.concatenate([x.mean(axes), x.std(axes)], -1)


def episode_source(arrays, names: Sequence[str]) -> EpisodeSource:
  """The ``EpisodeSource`` of a ``MultimodalArrays`` split (the source's pool rows; labels
  from it, which is why pretraining is a benchmarking aid on a labelled source)."""
  features = []
  for m in names:
    if m not in arrays.inputs:
      raise ValueError(f"modality {m!r} is not in the source ({sorted(arrays.inputs)})")
    f = episode_features(arrays.inputs[m])
    if not np.all(np.isfinite(f)):
      raise ValueError(f"modality {m!r} of the source holds NaN or inf")
    std = f.std(0)
    features.append(jnp.asarray((f - f.mean(0)) / np.where(std > 0, std, 1.0), jnp.float32))
  return EpisodeSource(tuple(features), jnp.asarray(arrays.labels, jnp.int32))


@dataclasses.dataclass(frozen=True)
class EpisodeSpec:
  """What an episode is (static; ranges are inclusive and drawn per episode).

  The RL-MBA and AMCB values are the run's ``config.al.rlmba`` and ``config.modality``.
  """
  names: tuple[str, ...]
  num_classes: int
  pool_size: int = 600
  val_size: int = 150
  initial: tuple[int, int] = (10, 30)
  budget: tuple[int, int] = (5, 20)
  rounds: tuple[int, int] = (2, 6)
  train_steps: int = 40
  learning_rate: float = 0.05
  weight_decay: float = 1e-4
  annealing_steps: int = 20
  kappa: int = 10
  beta: float = 0.25
  efda: bool = True
  lloyd_iterations: int = 5
  diversity: str = "labelled"
  difficulty_weight: float = 0.0
  amcb: bool = True
  modality_temperature: float = 0.1
  modality_floor: float = 0.02
  modality_momentum: float = 0.0
  modality_favour: str = "stronger"
  references: tuple[str, ...] = ("random", "badge")

  @property
  def label_capacity(self) -> int:
    """Length of the labelled-positions buffer: every label an episode may buy, plus one
    round of padding."""
    return self.initial[1] + (self.rounds[1] + 1) * self.budget[1]

  @property
  def num_candidates(self) -> int:
    return self.kappa * self.budget[1]

  def check(self, source_size: int) -> None:
    """A ValueError naming the value to change when the episode cannot run on the source."""
    problems = []
    for name in ("initial", "budget", "rounds"):
      lo, hi = getattr(self, name)
      if not 1 <= lo <= hi:
        problems.append(f"{name}={lo, hi} must satisfy 1 <= low <= high")
    if self.pool_size + self.val_size > source_size:
      problems.append(f"pool_size + val_size = {self.pool_size + self.val_size} exceeds the "
                      f"source's {source_size} rows")
    if self.label_capacity + self.num_candidates > self.pool_size:
      problems.append(f"pool_size={self.pool_size} is too small for the labels "
                      f"({self.label_capacity}) and candidates ({self.num_candidates}) "
                      "an episode may need")
    if self.kappa * self.budget[0] < self.budget[1]:
      problems.append(f"kappa * budget low ({self.kappa} * {self.budget[0]}) must be at "
                      f"least the budget high {self.budget[1]}")
    if self.modality_favour not in FAVOUR:
      problems.append(f"modality_favour={self.modality_favour!r}; choose from {FAVOUR}")
    if not 0.0 <= self.modality_momentum < 1.0:
      problems.append(f"modality_momentum={self.modality_momentum} must be in [0, 1)")
    if self.diversity not in DIVERSITIES:
      problems.append(f"diversity={self.diversity!r}; choose from {DIVERSITIES}")
    unknown = [r for r in self.references if r not in available_strategies() or r == "rlmba"]
    if unknown or not self.references:
      problems.append(f"references={self.references}: name one or more of random, entropy, "
                      "margin, least_confidence, coreset, kmeans, badge")
    if problems:
      raise ValueError("episode spec: " + "; ".join(problems))


class InnerParams(NamedTuple):
  """The inner learner: ``(W [D_m, C], b [C])`` per modality, and the fused head's pair."""
  modality: tuple[tuple[jnp.ndarray, jnp.ndarray], ...]
  fused: tuple[jnp.ndarray, jnp.ndarray]


def inner_init(widths: Sequence[int], num_classes: int) -> InnerParams:
  zeros = lambda d: (jnp.zeros((d, num_classes)), jnp.zeros((num_classes,)))
  return InnerParams(tuple(zeros(d) for d in widths), zeros(int(sum(widths))))


def inner_apply(params: InnerParams, xs: Sequence[jnp.ndarray]
                ) -> tuple[tuple[jnp.ndarray, ...], jnp.ndarray]:
  """``(per-modality Dirichlet alphas [n, C], fused logits [n, C])``."""
  alphas = tuple(fusion_lib.alpha_from_evidence(fusion_lib.evidence_from_logits(x @ w + b))
                 for x, (w, b) in zip(xs, params.modality))
  fused = jnp.concatenate(xs, -1) @ params.fused[0] + params.fused[1]
  return alphas, fused


def train_inner(spec: EpisodeSpec, xs: Sequence[jnp.ndarray], labels: jnp.ndarray,
                weight: jnp.ndarray) -> tuple[InnerParams, jnp.ndarray, jnp.ndarray]:
  """Trains the inner learner from zero on the rows with ``weight`` 1 (``[L]`` of 0/1).

  Loss: softmax cross-entropy of the fused head plus each modality's evidential loss (KL
  annealed over ``annealing_steps``), weighted mean over the rows, plus L2.
  -> ``(params, loss curve [train_steps], last gradient norm)``.
  """
  params = inner_init([x.shape[-1] for x in xs], spec.num_classes)
  optimizer = optax.adam(spec.learning_rate)
  count = jnp.maximum(jnp.sum(weight), 1.0)

  def loss_fn(p, step):
    alphas, fused = inner_apply(p, xs)
    annealing = fusion_lib.annealing_coefficient(step, spec.annealing_steps)
    per_row = optax.softmax_cross_entropy_with_integer_labels(fused, labels)
    for alpha in alphas:
      per_row = per_row + fusion_lib.evidential_loss(alpha, labels, annealing)
    l2 = sum(jnp.sum(w ** 2) for w, _ in (*p.modality, p.fused))
    return jnp.sum(weight * per_row) / count + spec.weight_decay * l2

  def step(carry, t):
    p, opt_state = carry
    loss, grads = jax.value_and_grad(loss_fn)(p, t)
    updates, opt_state = optimizer.update(grads, opt_state, p)
    return (optax.apply_updates(p, updates), opt_state), (loss, optax.tree.norm(grads))

  (params, _), (curve, norms) = jax.lax.scan(step, (params, optimizer.init(params)),
                                             jnp.arange(spec.train_steps))
  return params, curve, norms[-1]


class RoundView(NamedTuple):
  """A trained inner learner seen as the experiment loop sees its model."""
  pool: PoolView
  val_top1: jnp.ndarray
  val_nll: jnp.ndarray
  val_ece: jnp.ndarray
  gaps: jnp.ndarray  # [M] Delta_m = top1(head_m) - top1(fused) on validation
  loss_change: jnp.ndarray
  grad_norm: jnp.ndarray


def modality_weight_update(spec: EpisodeSpec, state: ModalityWeightState, gaps: jnp.ndarray
                           ) -> ModalityWeightState:
  """AMCB's update of the round as the loop makes it (``experiment.rounds``): the gaps
  ``[M]`` folded into ``state`` with the spec's favour, temperature, floor and momentum;
  the state unchanged (uniform weights) without AMCB."""
  if not spec.amcb:
    return state
  return amcb_update(state, gaps, temperature=spec.modality_temperature,
                     floor=spec.modality_floor, momentum=spec.modality_momentum,
                     favour=spec.modality_favour)


def round_view(spec: EpisodeSpec, pool_x, pool_y, val_x, val_y, positions: jnp.ndarray,
               count: jnp.ndarray, modality_state: ModalityWeightState
               ) -> tuple[RoundView, ModalityWeightState]:
  """Trains on the first ``count`` pool rows listed in ``positions`` (``[L]``) and looks at
  the pool (``PoolView``) and the validation split (the policy's round state).

  ``modality_state``: the AMCB state after the previous round (``amcb_init`` before the
  first); returned after this round's update, whose weights the view carries.
  """
  capacity = positions.shape[0]
  in_set = jnp.arange(capacity) < count
  params, curve, grad_norm = train_inner(spec, tuple(x[positions] for x in pool_x),
                                         pool_y[positions], in_set.astype(jnp.float32))
  labelled = jnp.zeros(pool_y.shape, bool).at[positions].max(in_set)

  alphas, fused = inner_apply(params, val_x)
  probs = jax.nn.softmax(fused)
  modality_top1 = jnp.stack([metrics_lib.top1(fusion_lib.expected_probabilities(a), val_y)
                             for a in alphas])
  fused_top1 = metrics_lib.top1(probs, val_y)
  gaps = modality_top1 - fused_top1
  modality_state = modality_weight_update(spec, modality_state, gaps)

  pool_alphas, pool_fused = inner_apply(params, pool_x)
  view = PoolView(
      probs=jax.nn.softmax(pool_fused),
      modality_probs={n: fusion_lib.expected_probabilities(a)
                      for n, a in zip(spec.names, pool_alphas)},
      features=dict(zip(spec.names, pool_x)), labelled=labelled,
      modality_alphas=dict(zip(spec.names, pool_alphas)),
      modality_weights=modality_state.weights, modality_names=spec.names)
  return RoundView(view, fused_top1, metrics_lib.nll(probs, val_y),
                   metrics_lib.expected_calibration_error(probs, val_y), gaps,
                   inputs_lib.relative_loss_change(curve), grad_norm), modality_state


class EpisodeDraw(NamedTuple):
  """What one episode drew: rows, sizes."""
  pool_rows: jnp.ndarray  # [P] source rows of the pool (its first n_0 are the initial set)
  val_rows: jnp.ndarray  # [V]
  initial: jnp.ndarray  # n_0
  budget: jnp.ndarray  # b
  rounds: jnp.ndarray  # R


def draw_episode(spec: EpisodeSpec, key: jax.Array, source_size: int) -> EpisodeDraw:
  k_rows, k_initial, k_budget, k_rounds = jax.random.split(key, 4)
  rows = jax.random.permutation(k_rows, source_size)
  between = lambda k, r: jax.random.randint(k, (), r[0], r[1] + 1)
  return EpisodeDraw(rows[:spec.pool_size], rows[spec.pool_size:spec.pool_size + spec.val_size],
                     between(k_initial, spec.initial), between(k_budget, spec.budget),
                     between(k_rounds, spec.rounds))


def selection_settings(spec: EpisodeSpec) -> SelectionSettings:
  """The episode's RL-MBA selection step (the loop's agent runs the same one), on the
  policy's ``invariant`` inputs, at the largest budget (an episode masks to its own)."""
  return SelectionSettings(budget=spec.budget[1], kappa=spec.kappa, beta=spec.beta,
                           efda=spec.efda, lloyd_iterations=spec.lloyd_iterations,
                           diversity=spec.diversity, difficulty_weight=spec.difficulty_weight,
                           policy_inputs="invariant")


def policy_choice(spec: EpisodeSpec, network, params: Any, key: jax.Array, view: RoundView,
                  budget: jnp.ndarray, labelled_fraction: jnp.ndarray):
  """The policy's draw in an episode's round (``policy.selection_step`` with the round's
  scalars from ``view``): -> (``[b_max]`` pool positions, ``Transition``)."""
  k_score, k_draw = jax.random.split(key)
  state_part = (view.val_top1, view.val_nll, view.val_ece, view.gaps, view.loss_change,
                view.grad_norm, labelled_fraction)
  picks, transition, _ = make_selection_step(network, selection_settings(spec))(
      params, k_score, k_draw, view.pool, state_part, budget)
  return picks, transition


class EpisodeOutcome(NamedTuple):
  """One episode (a leading batch axis when vmapped).

  Attributes:
    transitions: the policy's draws, each field with a leading ``[R_max]`` round axis.
    budget: b; rounds: R (rounds ``t >= R`` are padding: ``active`` false).
    active: ``[R_max]`` bool.
    policy_top1: ``[R_max + 1]`` validation top-1 after each round's training, policy run.
    reference_top1: ``[num_references, R_max + 1]`` the same for the references.
    rewards: ``[R_max]`` relative reward of round t's draw (0 where inactive).
  """
  transitions: Transition
  budget: jnp.ndarray
  rounds: jnp.ndarray
  active: jnp.ndarray
  policy_top1: jnp.ndarray
  reference_top1: jnp.ndarray
  rewards: jnp.ndarray


def simulate_strategy(spec: EpisodeSpec, source: EpisodeSource, draw: EpisodeDraw,
                      key: jax.Array, choose) -> tuple[jnp.ndarray, Any]:
  """One active-learning run of the drawn episode, picking with ``choose(key, view,
  labelled fraction) -> (positions [b_max], extra)``: the policy's and each reference's run
  in ``simulate_episode``, or any strategy of yours on the same draw.

  Returns ``(val top-1 [R_max + 1], extras stacked over a leading [R_max] round axis)``.
  """
  pool_x = tuple(x[draw.pool_rows] for x in source.features)
  pool_y = source.labels[draw.pool_rows]
  val_x = tuple(x[draw.val_rows] for x in source.features)
  val_y = source.labels[draw.val_rows]
  positions = jnp.arange(spec.label_capacity, dtype=jnp.int32)  # pool rows are shuffled

  def round_step(carry, t):
    positions, count, modality_state = carry
    view, modality_state = round_view(spec, pool_x, pool_y, val_x, val_y, positions, count,
                                      modality_state)
    picks, extra = choose(jax.random.fold_in(key, t), view, count / spec.pool_size)
    active = t < draw.rounds
    positions = jax.lax.dynamic_update_slice(positions, picks.astype(jnp.int32), (count,))
    count = count + jnp.where(active, draw.budget, 0)
    return (positions, count, modality_state), (view.val_top1, extra)

  (positions, count, modality_state), (top1, extras) = jax.lax.scan(
      round_step, (positions, draw.initial, amcb_init(len(spec.names))),
      jnp.arange(spec.rounds[1]))
  final, _ = round_view(spec, pool_x, pool_y, val_x, val_y, positions, count, modality_state)
  return jnp.concatenate([top1, final.val_top1[None]]), extras


def simulate_episode(spec: EpisodeSpec, network, params: Any, source: EpisodeSource,
                     key: jax.Array) -> EpisodeOutcome:
  """One episode: the policy's run and the references' runs on the same draw."""
  k_draw, k_policy, *k_refs = jax.random.split(key, 2 + len(spec.references))
  draw = draw_episode(spec, k_draw, source.labels.shape[0])

  def policy_choose(k, view, fraction):
    return policy_choice(spec, network, params, k, view, draw.budget, fraction)

  policy_top1, transitions = simulate_strategy(spec, source, draw, k_policy, policy_choose)
  reference_top1 = []
  for name, k in zip(spec.references, k_refs):
    select = get_strategy(name)
    choose = lambda k_, view, _, select=select: (select(k_, view.pool, spec.budget[1]), ())
    reference_top1.append(simulate_strategy(spec, source, draw, k, choose)[0])
  reference_top1 = jnp.stack(reference_top1)
  active = jnp.arange(spec.rounds[1]) < draw.rounds
  rewards = jnp.where(active, policy_top1[1:] - jnp.mean(reference_top1[:, 1:], 0), 0.0)
  return EpisodeOutcome(transitions, draw.budget, draw.rounds, active, policy_top1,
                        reference_top1, rewards)


def simulate_episodes(spec: EpisodeSpec, network, params: Any, source: EpisodeSource,
                      keys: jax.Array) -> EpisodeOutcome:
  """``simulate_episode`` vmapped over ``keys [B]`` (shard ``keys`` to spread over devices)."""
  chex.assert_rank(keys, 1)
  return jax.vmap(lambda k: simulate_episode(spec, network, params, source, k))(keys)
