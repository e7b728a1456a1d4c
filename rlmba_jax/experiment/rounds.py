"""One active-learning round as named steps over a ``RoundState``.

A round r is, in commit order (``experiment.loop.run`` writes the ledger and checkpoints
between the steps)::

  picked = select_round(env, state, r, history, pool_outputs, given)   # -> ledger line r
  trained, log, seconds = train_round(env, state, r, picked.positions)
  evaluation = evaluate_round(env, trained, r)
  weights = update_modality_weights(env.config, trained.modality_weights, evaluation)
  record = round_record(env, r, trained, weights, evaluation, log, timings, picked)
  policy, record["policy"] = update_policy(env, state.policy, picked.transition, record,
                                           history)                   # RL-MBA only
  state = trained._replace(modality_weights=weights, policy=policy)   # -> checkpoint r

Everything a step needs besides the state lives in a ``RoundEnv``, built once per run from
arrays already on the device (``make_env``), so a benchmark or a notebook can run a round
on its own arrays with the same steps the loop runs. Every key is folded in from the seed
(``round_keys``): a step called twice with the same inputs gives the same outputs.

The same steps run S seeds at once (``env.seeds``, an ``experiment.seeds.SeedBatch``): the
state's arrays then carry a leading seed axis, each compiled program is the single run's
mapped over the seeds (``seeds.map``), the eager pieces run per seed (``seeds.each``), and
what goes to the host (records, picks, diagnostics) is a list with one entry per seed (one
entry in a single run).
"""

from __future__ import annotations

import functools
import logging
import time
from typing import Any, Callable, Mapping, NamedTuple, Sequence

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from rlmba_jax import modality
from rlmba_jax import parallel
from rlmba_jax import policy as policy_lib
from rlmba_jax import selection
from rlmba_jax.data.records import RecordSplit
from rlmba_jax.experiment import headroom
from rlmba_jax.experiment import stopping
from rlmba_jax.experiment.config import strategy_options
from rlmba_jax.experiment.errors import NonFiniteError, WorkdirError
from rlmba_jax.experiment.seeds import SeedBatch
from rlmba_jax.models import fuse_with_weights, make_fused_head
from rlmba_jax.models.classifier import fused_head_kind
from rlmba_jax.policy.reinforce import PolicyState, Transition
from rlmba_jax.selection.diagnostics import selection_diagnostics
from rlmba_jax.train import Trainer, TrainLog, TrainState, classification_metrics, top1

logger = logging.getLogger(__name__)

# Purposes a round's key is split into (fold_in constants: never change their values).
_INIT, _TRAIN, _SELECT, _MC_DROPOUT, _POLICY = 0, 1, 2, 3, 4


def round_keys(seed: int, round_index: int) -> dict[str, jax.Array]:
  """The keys of one round, derived from the seed alone (nothing advanced is stored)."""
  round_key = jax.random.fold_in(jax.random.key(seed), round_index)
  return {"init": jax.random.fold_in(round_key, _INIT),
          "train": jax.random.fold_in(round_key, _TRAIN),
          "select": jax.random.fold_in(round_key, _SELECT),
          "mc_dropout": jax.random.fold_in(round_key, _MC_DROPOUT),
          "policy": jax.random.fold_in(round_key, _POLICY)}


def seed_round_keys(seeds: SeedBatch, round_index: int) -> dict[str, jax.Array]:
  """``round_keys`` of every seed of ``seeds``, stacked on the seed axis (each made as a
  single run makes it)."""
  return seeds.stack([round_keys(s, round_index) for s in seeds.seeds])


def mark_labelled(labelled: jax.Array, positions) -> jax.Array:
  """``labelled [N]`` with ``positions [K]`` set."""
  return labelled.at[positions].set(True)


class RoundState(NamedTuple):
  """What one round hands the next; checkpointed as it is (``checkpoint()``).

  Attributes:
    train: the classifier's ``TrainState``; None before round 0 has trained.
    labelled: ``[N]`` bool, the pool positions labelled so far (replicated).
    modality_weights: AMCB's ``ModalityWeightState`` (weights ``[M]``, replicated).
    policy: RL-MBA's ``PolicyState``; None for the other strategies.
  """
  train: TrainState | None
  labelled: jax.Array
  modality_weights: modality.ModalityWeightState
  policy: PolicyState | None = None

  def checkpoint(self) -> dict[str, Any]:
    """The checkpointed tree: the fields that are set, by name."""
    return {k: v for k, v in self._asdict().items() if v is not None}

  @classmethod
  def from_checkpoint(cls, tree: Mapping[str, Any]) -> "RoundState":
    return cls(tree["train"], tree["labelled"], tree["modality_weights"], tree.get("policy"))


class RoundEnv(NamedTuple):
  """Everything a round's steps read besides the ``RoundState``; fixed for a run.

  ``pool_inputs`` holds ``pool_size`` rows (arrays, or a ``RecordSplit`` streamed by a
  ``StreamingTrainer``), ``pool_labels`` their ``[N]`` labels (None when they come with the
  records); ``evals`` maps split -> (inputs, ``[n]`` labels), with "val" always present and
  "test" unless ``config.eval.test`` is off.
  """
  config: ml_collections.ConfigDict
  names: tuple[str, ...]
  num_classes: int
  trainer: Trainer
  pool_size: int
  pool_inputs: Any
  pool_labels: jax.Array | None
  evals: Mapping[str, tuple[Any, jax.Array]]
  example: Any
  select_initial: Callable
  select_strategy: Callable
  build_view: Callable
  analyse: Callable
  agent: policy_lib.RLMBAAgent | None
  references: list[dict[int, float]] | None  # per seed
  diagnose: Callable | None
  seeds: SeedBatch | None = None
  steps: "RoundPrograms | None" = None


class RoundPrograms(NamedTuple):
  """The small programs of a round's steps, over the seed axis in a seed-batched run."""
  label: Callable  # (labelled, positions) -> labelled
  evaluate: Callable  # (outputs, labels) -> metrics
  pool_uncertainty: Callable  # (outputs, labelled, weights) -> []
  all_finite: Callable  # (tree) -> [] bool


def make_round_programs(names: tuple[str, ...], seeds: SeedBatch) -> RoundPrograms:
  def uncertainty(outputs, labelled, weights):
    return pool_uncertainty(outputs, labelled, weights, names)
  return RoundPrograms(label=seeds.map(mark_labelled, (0, 0)),
                       evaluate=seeds.map(evaluate_outputs, (0, None)),
                       pool_uncertainty=seeds.map(uncertainty, (0, 0, 0)),
                       all_finite=seeds.map(_all_finite, (0,)))


class Selection(NamedTuple):
  """A round's picks: ``positions [K]`` int32 pool positions in the order chosen (``[S, K]``
  over the seeds of a seed-batched run); the policy's ``transition`` (RL-MBA rounds > 0),
  the selection ``diagnostics`` (one dict of plain numbers per seed, when
  ``al.diagnostics``), and the wall time of selecting."""
  positions: np.ndarray
  transition: Transition | None
  diagnostics: list[dict[str, Any]] | None
  seconds: float


class Evaluation(NamedTuple):
  """A trained round's measurements: ``metrics``, one ``{split: plain numbers}`` per seed;
  ``top1_gap`` and ``shapley`` ``[M]`` (``[S, M]``); the pool outputs and each seed's mean
  pool difficulty (evidential heads only, else None), reused by the next round's
  selection."""
  metrics: list[dict[str, dict[str, Any]]]
  top1_gap: jax.Array
  shapley: jax.Array
  pool_outputs: Mapping[str, Any] | None
  pool_uncertainty: list[float | None]
  started: float
  stop_predictions: list[np.ndarray | None]  # each seed's stop-set predictions ``[n]``


def coalition_probabilities_fn(model_cfg, names: tuple[str, ...]):
  """``(outputs, weights) -> [2^M, B, C]`` fused probabilities of every modality coalition."""
  masks = jnp.asarray(modality.coalition_masks(len(names)))
  fused_kind = fused_head_kind(model_cfg.head, model_cfg.fusion, model_cfg.fused_head)

  def coalitions(outputs, weights):
    return modality.coalition_probabilities(
        outputs, masks, modalities=names, head=fused_kind, fusion=model_cfg.fusion,
        evidence_activation=model_cfg.evidence_activation, modality_weights=weights)

  return coalitions


def make_agent(config: ml_collections.ConfigDict, names: tuple[str, ...], pool_size: int,
               seeds: SeedBatch | None = None):
  """The RL-MBA agent and each seed's reference curve, or (None, None) for the other
  strategies."""
  if config.al.strategy != "rlmba" or not config.al.rlmba.policy:
    return None, None
  options = config.al.rlmba.to_dict()
  agent = policy_lib.RLMBAAgent(options, names, config.al.budget_per_round, pool_size,
                                seeds=seeds)
  if options["reward"] != "relative":
    return agent, None
  return agent, [reference_curve(config, seed)
                 for seed in (seeds.seeds if seeds is not None else (config.seed,))]


def reference_curve(config: ml_collections.ConfigDict, seed: int) -> dict[int, float]:
  """Seed ``seed``'s relative-reward reference: the mean val_top1 of
  ``al.rlmba.reference_runs`` at each label count of the schedule."""
  paths = [p.strip() for p in config.al.rlmba.reference_runs.split(",") if p.strip()]
  try:
    references = policy_lib.load_reference_curves(paths, seed=seed)
  except policy_lib.ReferenceRunError as e:
    raise WorkdirError(str(e)) from e
  schedule = [config.al.initial_size + r * config.al.budget_per_round
              for r in range(1, config.al.rounds + 1)]
  missing = [n for n in schedule if n not in references]
  if missing:
    shown = [p.replace("{seed}", str(seed)) for p in paths]
    raise WorkdirError(
        f"the reference runs {shown} have no val_top1 at {missing} labels for seed {seed}, "
        "which this schedule reaches; run them with the same al.initial_size, "
        "al.budget_per_round and at least as many rounds")
  return references


def make_pool_view_builder(config: ml_collections.ConfigDict, model, trainer: Trainer,
                           names: tuple[str, ...], seeds: SeedBatch | None = None):
  """``(train_state, weights, labelled, pool_inputs, key, outputs=None) -> PoolView`` for
  the configured strategy, with the optional fields it ``needs`` filled in (dropout passes,
  coalition probabilities, the fused head).

  ``outputs``: the pool outputs of the same parameters under any modality weights (the
  last evaluation's), which saves a pass over the pool. With the ``evidence`` fusion the
  fused outputs are always recomputed for ``weights`` by one function
  (``models.fuse_with_weights``), so a given and a fresh prediction give the same view.
  """
  needs = (headroom.view_needs() if config.al.strategy == headroom.ORACLE
           else selection.strategy_needs(config.al.strategy))
  fused_head = make_fused_head(model) if "fused_head" in needs else None
  coalitions = jax.jit(coalition_probabilities_fn(config.model, names))
  reweight = (jax.jit(functools.partial(_reweight, names=names))
              if config.model.fusion == "evidence" else None)
  if seeds is not None:
    coalitions = seeds.map(coalitions, (0, 0))
    reweight = reweight and seeds.map(reweight, (0, 0))

  def build(train_state, weights, labelled, pool_inputs, key, outputs=None):
    params, model_state = train_state.params, train_state.model_state
    if outputs is None:
      outputs = trainer.predict(params, pool_inputs, weights, model_state)
    if reweight is not None:
      outputs = reweight(outputs, weights)
    extra = {}
    if "mc_probs" in needs:
      extra["mc_probs"] = trainer.predict_mc(params, pool_inputs, key,
                                             config.al.bald.passes, weights, model_state)
    if "coalition_probs" in needs:
      extra["coalition_probs"] = coalitions(outputs, weights)
    if "fused_head" in needs:
      extra["head_params"] = {"params": params, "modality_weights": weights}
      extra["fused_head"] = fused_head
    if "evidential" in needs and "alpha" in outputs:
      extra["modality_alphas"] = outputs["alpha"]
      extra["fused_alpha"] = outputs.get("fused_alpha")
    if "modality_weights" in needs:
      extra["modality_weights"] = weights
    return selection.PoolView(outputs["fused_probs"], outputs["probs"], outputs["features"],
                              labelled, modality_names=names, **extra)

  return build


def _reweight(outputs, weights, names):
  return fuse_with_weights(outputs, names=names, modality_weights=weights)


def make_diagnose(config: ml_collections.ConfigDict, names: tuple[str, ...],
                  num_classes: int, seeds: SeedBatch | None = None):
  """``(key, outputs, weights, labelled, positions, labels) -> [dict]`` of plain numbers,
  one per seed: ``selection.diagnostics.selection_diagnostics`` of the picks on the model
  that chose them (the view RL-MBA's scorer would see, whatever the strategy)."""
  o = config.al.rlmba
  efda = o.efda and config.model.head == "evidential"
  reweight = config.model.fusion == "evidence"

  @jax.jit
  def diagnose(key, outputs, weights, labelled, positions, labels):
    if reweight:
      outputs = fuse_with_weights(outputs, names, weights)
    view = selection.PoolView(outputs["fused_probs"], outputs["probs"], outputs["features"],
                              labelled, modality_alphas=outputs.get("alpha"),
                              modality_weights=weights, modality_names=names)
    return selection_diagnostics(key, view, positions, labels, num_classes=num_classes,
                                 kappa=o.kappa, beta=o.beta, efda=efda,
                                 lloyd_iterations=o.lloyd_iterations,
                                 diversity=o.diversity,
                                 difficulty_weight=o.difficulty_weight)

  program = diagnose if seeds is None else seeds.map(diagnose, (0, 0, 0, 0, 0, None))
  split = (lambda tree: [jax.device_get(tree)]) if seeds is None else seeds.split

  def run_diagnose(key, outputs, weights, labelled, positions, labels):
    found = []
    for out in split(program(key, outputs, weights, labelled, jnp.asarray(positions),
                             labels)):
      out = to_python(out)
      out["rank_uncertainty"] = dict(zip(names, out["rank_uncertainty"]))
      found.append(out)
    return found

  return run_diagnose


def make_modality_analysis(model_cfg, names: tuple[str, ...]):
  """``(val_outputs, val_labels, weights) -> (top1_gap [M], shapley [M])``, jitted.

  Shapley values: each modality's exact contribution to the fused head's probability of the
  true class (all 2^M coalitions, absent modalities masked), averaged over the examples.
  """
  coalitions = coalition_probabilities_fn(model_cfg, names)

  @jax.jit
  def analyse(outputs, labels, weights):
    fused_top1 = top1(outputs["fused_probs"], labels)
    modality_top1 = jnp.stack([top1(outputs["probs"][m], labels) for m in names])
    coalition_probs = coalitions(outputs, weights)
    shapley = modality.shapley_values(modality.true_class_values(coalition_probs, labels))
    return modality.top1_gap(modality_top1, fused_top1), jnp.mean(shapley, axis=-1)

  return analyse


def _strategy_over_seeds(strategy: Callable, seeds: SeedBatch) -> Callable:
  """``(key, view, budget) -> positions`` of a jitted strategy (static ``budget``) over the
  seed axis: one program per budget."""
  if not seeds.batched:
    return strategy
  programs: dict[int, Callable] = {}

  def select(key, view, budget):
    if budget not in programs:
      programs[budget] = seeds.map(lambda k, v: strategy(k, v, budget), (0, 0))
    return programs[budget](key, view)

  return select


def make_env(config: ml_collections.ConfigDict, model, trainer: Trainer,
             names: tuple[str, ...], num_classes: int, pool_size: int, pool_inputs,
             pool_labels: jax.Array | None, evals: Mapping[str, tuple[Any, jax.Array]],
             seeds: SeedBatch | None = None) -> RoundEnv:
  """The ``RoundEnv`` of ``config`` over data already placed by ``trainer`` (``put``).

  ``seeds``: the seeds computed together (a batched ``SeedBatch``: ``trainer`` is mapped
  over them here); None: the single run of ``config.seed``.
  """
  if seeds is None:
    seeds = SeedBatch((config.seed,), mesh=trainer.mesh, batched=False)
  batched = seeds if seeds.batched else None
  if batched is not None:
    trainer = trainer.over_seeds(seeds)
  agent, references = make_agent(config, names, pool_size, batched)
  strategy = None if config.al.strategy == headroom.ORACLE else jax.jit(
      functools.partial(selection.get_strategy(config.al.strategy),
                        **strategy_options(config)), static_argnums=2)
  initial = jax.jit(selection.get_strategy("random"), static_argnums=2)
  analyse = make_modality_analysis(config.model, names)
  return RoundEnv(
      config=config, names=names, num_classes=num_classes, trainer=trainer,
      pool_size=pool_size, pool_inputs=pool_inputs, pool_labels=pool_labels, evals=evals,
      example=trainer.example(pool_inputs),
      select_initial=_strategy_over_seeds(initial, seeds),
      select_strategy=strategy and _strategy_over_seeds(strategy, seeds),
      build_view=make_pool_view_builder(config, model, trainer, names, batched),
      analyse=seeds.map(analyse, (0, None, 0)),
      agent=agent, references=references,
      diagnose=(make_diagnose(config, names, num_classes, batched) if config.al.diagnostics
                else None),
      seeds=seeds, steps=make_round_programs(names, seeds))


def initial_state(env: RoundEnv, mesh) -> RoundState:
  """The state before round 0, with the round-0 initialisation of the classifier (the
  structure every checkpoint of the run is restored into)."""
  seeds = env.seeds
  keys = seed_round_keys(seeds, 0)
  policy = None
  if env.agent is not None:
    # Replicated like everything the policy meets, so its steps compile once per run.
    policy = env.agent.init(keys["policy"])
    policy = seeds.put(policy) if seeds.batched else parallel.put_replicated(policy, mesh)
  if seeds.batched:
    labelled = seeds.put(np.zeros((seeds.size, env.pool_size), bool))
    weights = seeds.tile(modality.amcb_init(len(env.names)))
  else:
    labelled = parallel.put_replicated(np.zeros(env.pool_size, bool), mesh)
    weights = parallel.put_replicated(modality.amcb_init(len(env.names)), mesh)
  return RoundState(train=env.trainer.init(keys["init"], env.example), labelled=labelled,
                    modality_weights=weights, policy=policy)


def select_round(env: RoundEnv, state: RoundState, r: int,
                 histories: Sequence[list[Mapping[str, Any]]],
                 pool_outputs: Mapping[str, Any] | None,
                 given: Sequence[np.ndarray | None] | None = None) -> Selection:
  """Round ``r``'s picks of every seed: ``given[i]`` (``[K]`` positions already in seed
  i's ledger) or a fresh selection (round 0: ``al.initial_size`` at random; then the
  strategy's or the policy's ``al.budget_per_round``).

  ``histories``: each seed's records so far. The policy's draw is recomputed even when the
  ledger already holds the round, so the REINFORCE update after a resume is the one an
  uninterrupted run makes. ``pool_outputs``: the previous evaluation's pool outputs of
  ``state.train`` (or None).
  """
  seeds = env.seeds
  given = list(given) if given is not None else [None] * seeds.size
  keys = seed_round_keys(seeds, r)
  weights = state.modality_weights.weights
  t0 = time.time()
  if env.diagnose is not None and r > 0 and pool_outputs is None:
    pool_outputs = env.trainer.predict(state.train.params, env.pool_inputs, weights,
                                       state.train.model_state)
  transition, fresh = None, None
  if env.agent is not None and r > 0:
    transition, fresh = _policy_draw(env, state, r, keys, histories, pool_outputs, given)
  elif any(g is None for g in given):
    fresh = _select_fresh(env, state, r, keys, pool_outputs)
  positions = np.stack([g if g is not None else fresh[i] for i, g in enumerate(given)])
  positions = positions if seeds.batched else positions[0]
  seconds = time.time() - t0
  diagnostics = None
  if env.diagnose is not None and r > 0:
    diagnostics = env.diagnose(keys["select"], pool_outputs, weights, state.labelled,
                               positions, env.pool_labels)
  return Selection(positions, transition, diagnostics, seconds)


def _policy_draw(env: RoundEnv, state: RoundState, r: int, keys, histories, pool_outputs,
                 given) -> tuple[Transition, list[np.ndarray]]:
  """The policy's draw of every seed, and its transition (with the order of the ledger's
  picks where a seed's ledger already holds the round and they differ)."""
  seeds = env.seeds
  view = env.build_view(state.train, state.modality_weights.weights, state.labelled,
                        env.pool_inputs, keys["mc_dropout"], pool_outputs)
  # Each seed's fraction as a single run computes it (on the device, in float32).
  fractions = [float(jnp.mean(seeds.take(state.labelled, i))) for i in range(seeds.size)]
  previous = [h[-1] for h in histories]
  if not seeds.batched:
    previous, fractions = previous[0], fractions[0]
  drawn, transition, candidates = env.agent.select(state.policy, keys["select"],
                                                   keys["policy"], view, previous, fractions)
  drawn = [np.asarray(d, np.int32) for d in seeds.split(drawn)]
  if all(g is None or np.array_equal(g, d) for g, d in zip(given, drawn)):
    return transition, drawn
  orders = seeds.split(transition.order)
  for i, (g, cands) in enumerate(zip(given, seeds.split(candidates))):
    if g is None or np.array_equal(g, drawn[i]):
      continue
    order = policy_lib.RLMBAAgent.order_for(np.asarray(cands), g)
    if order is None:
      where = f" of seed {seeds.seeds[i]}" if seeds.batched else ""
      raise WorkdirError(
          f"ledger round {r}{where} holds examples the RL-MBA policy could not have drawn "
          "from this round's candidates; the workdir was not produced by this config")
    orders[i] = order
  return transition._replace(order=seeds.stack([jnp.asarray(o) for o in orders])), drawn


def _select_fresh(env: RoundEnv, state: RoundState, r: int, keys, pool_outputs
                  ) -> list[np.ndarray]:
  """Each seed's strategy (or round 0's random) picks, checked: distinct and not yet
  labelled."""
  seeds = env.seeds
  if r == 0:
    view = selection.PoolView(None, {}, {}, state.labelled)
    positions = env.select_initial(keys["select"], view, env.config.al.initial_size)
  else:
    view = env.build_view(state.train, state.modality_weights.weights, state.labelled,
                          env.pool_inputs, keys["mc_dropout"], pool_outputs)
    if env.select_strategy is None:  # the greedy oracle: headroom, not a method
      best = headroom.oracle_positions(env, state, r, keys, view, keys["init"],
                                       keys["train"])
      positions = np.stack(best) if seeds.batched else best[0]
    else:
      positions = env.select_strategy(keys["select"], view, env.config.al.budget_per_round)
  picked = seeds.split((positions, state.labelled))
  for i, (p, labelled) in enumerate(picked):
    if len(set(p.tolist())) != len(p) or np.asarray(labelled)[p].any():
      where = f" (seed {seeds.seeds[i]})" if seeds.batched else ""
      raise RuntimeError(f"round {r}{where}: the strategy returned repeated or already "
                         "labelled examples; this is a bug in the strategy")
  return [np.asarray(p, np.int32) for p, _ in picked]


def train_round(env: RoundEnv, state: RoundState, r: int, positions: np.ndarray
                ) -> tuple[RoundState, TrainLog, float]:
  """Labels ``positions`` (``[K]``, or ``[S, K]`` over the seeds) and trains the
  classifier on every labelled example (from a fresh initialisation, or the previous
  parameters under ``train.warm_start``).

  Returns the state with the new ``train`` and ``labelled``, the ``TrainLog`` and seconds.
  """
  keys = seed_round_keys(env.seeds, r)
  labelled = env.steps.label(state.labelled, positions)
  t0 = time.time()
  if env.config.train.warm_start and r > 0:
    train_state = env.trainer.fresh_optimizer(state.train)
  else:
    train_state = env.trainer.init(keys["init"], env.example)
  train_state, log = env.trainer.train(train_state, keys["train"], env.pool_inputs,
                                       env.pool_labels, labelled,
                                       state.modality_weights.weights)
  jax.block_until_ready(train_state)
  if not env.seeds.batched:
    check_finite_training(r, log)
  for i, seed_log in enumerate(env.seeds.split((log.epoch_loss, log.epoch_grad_norm))
                               if env.seeds.batched else ()):
    check_finite_training(r, TrainLog(*seed_log, None), _seed_words(env.seeds, i))
  return state._replace(train=train_state, labelled=labelled), log, time.time() - t0


def _seed_words(seeds: SeedBatch, i: int) -> str:
  return f" of seed {seeds.seeds[i]}" if seeds.batched else ""


_NOT_CHECKPOINTED = ("Round {r} was not checkpointed: the ledger keeps its line and the last "
                     "good round is intact. If the cause is outside the config (data, "
                     "hardware), fix it and run the same command; a changed config (a lower "
                     "train.learning_rate, train.grad_clip_norm) needs a new workdir.")


def check_finite_training(r: int, log: TrainLog, seed: str = "") -> None:
  """Raises ``NonFiniteError`` naming the first epoch whose mean loss or gradient norm is
  NaN or infinite (``seed``: words naming the seed in a seed-batched run)."""
  loss, norm = (np.asarray(jax.device_get(x)) for x in (log.epoch_loss, log.epoch_grad_norm))
  bad = ~(np.isfinite(loss) & np.isfinite(norm))
  if bad.any():
    e = int(np.argmax(bad))
    raise NonFiniteError(
        f"round {r}{seed}: training diverged at epoch {e} (mean loss {loss[e]}, gradient "
        f"norm {norm[e]}). " + _NOT_CHECKPOINTED.format(r=r))


@jax.jit
def _all_finite(tree) -> jax.Array:
  leaves = [jnp.all(jnp.isfinite(x)) for x in jax.tree.leaves(tree)
            if jnp.issubdtype(x.dtype, jnp.inexact)]
  return jnp.all(jnp.stack(leaves)) if leaves else jnp.bool_(True)


def check_finite_outputs(r: int, what: str, outputs, env: RoundEnv | None = None) -> None:
  """Raises ``NonFiniteError`` when any floating output of the classifier is NaN or inf."""
  finite = _all_finite if env is None else env.steps.all_finite
  flags = np.reshape(np.asarray(jax.device_get(finite(outputs))), -1)
  if not flags.all():
    seed = "" if env is None else _seed_words(env.seeds, int(np.argmin(flags)))
    raise NonFiniteError(f"round {r}{seed}: the classifier's outputs on the {what} hold NaN "
                         "or infinite values. " + _NOT_CHECKPOINTED.format(r=r))


@jax.jit
def evaluate_outputs(outputs: Mapping[str, Any], labels: jnp.ndarray) -> dict[str, Any]:
  """Classification metrics of the fused head and top-1 of each modality head."""
  metrics = classification_metrics(outputs["fused_probs"], labels)
  metrics["per_modality_top1"] = {m: top1(p, labels) for m, p in outputs["probs"].items()}
  return metrics


@functools.partial(jax.jit, static_argnums=3)
def pool_uncertainty(outputs: Mapping[str, Any], labelled: jnp.ndarray, weights: jnp.ndarray,
                     names: tuple[str, ...]) -> jnp.ndarray:
  """Mean EFDA difficulty U(x) over the unlabelled pool: the Dirichlet variance of the
  weighted evidence fusion of the modality heads (``selection.efda_difficulty``)."""
  u = selection.efda_difficulty(outputs["alpha"], names, weights)
  unlabelled = (~labelled).astype(u.dtype)
  return jnp.sum(u * unlabelled) / jnp.maximum(jnp.sum(unlabelled), 1.0)


def evaluate_round(env: RoundEnv, state: RoundState, r: int) -> Evaluation:
  """Metrics of every eval split, the modality analysis on validation, and (evidential
  heads) the pool outputs and mean pool difficulty, under the weights ``state`` trained
  with. Non-finite outputs stop round ``r`` (``NonFiniteError``)."""
  started = time.time()
  seeds = env.seeds
  train, weights = state.train, state.modality_weights.weights
  outputs = {split: env.trainer.predict(train.params, x, weights, train.model_state)
             for split, (x, _) in env.evals.items()}
  for split, out in outputs.items():
    check_finite_outputs(r, f"{split} split", out, env)
  per_split = {split: seeds.split(env.steps.evaluate(outputs[split], env.evals[split][1]))
               for split in env.evals}
  metrics = [{split: to_python(per_split[split][i]) for split in env.evals}
             for i in range(seeds.size)]
  gap, shapley = env.analyse(outputs["val"], env.evals["val"][1], weights)
  pool_outputs, uncertainty = None, [None] * seeds.size
  predicted = None
  if env.config.model.head == "evidential":
    pool_outputs = predicted = env.trainer.predict(train.params, env.pool_inputs, weights,
                                                   train.model_state)
    check_finite_outputs(r, "pool", pool_outputs, env)
    uncertainty = [float(u) for u in seeds.split(
        env.steps.pool_uncertainty(pool_outputs, state.labelled, weights))]
  elif not isinstance(env.pool_inputs, RecordSplit):  # in memory: one cheap pass
    predicted = env.trainer.predict(train.params, env.pool_inputs, weights,
                                    train.model_state)
  # The stopping signals' predictions on the stop set; a streamed pool with softmax heads
  # is not predicted a second time for them (its records carry no stopping kappa).
  stop_predictions = [None] * seeds.size
  if predicted is not None:
    stop_set = stopping.stop_set_positions(env.pool_size, env.config.al.stopping.set_size,
                                           env.config.data.split_seed)
    labels = np.asarray(jax.device_get(jnp.argmax(predicted["fused_probs"], -1)))
    stop_predictions = [np.asarray(l)[stop_set] for l in
                        (labels if seeds.batched else [labels])]
  return Evaluation(metrics, gap, shapley, pool_outputs, uncertainty, started,
                    stop_predictions)


def add_stopping(env: RoundEnv, records: list[dict[str, Any]], histories,
                 evaluation: Evaluation) -> None:
  """Each seed's stopping signals (``experiment.stopping``) into its round record."""
  for record, history, predictions in zip(records, histories, evaluation.stop_predictions):
    record["stopping"] = stopping.stopping_fields(
        history, predictions, record["val_top1"], env.num_classes,
        env.config.al.stopping.to_dict())
    record["stop_set_predictions"] = None if predictions is None else predictions.tolist()


def update_modality_weights(env: RoundEnv, weights: modality.ModalityWeightState,
                            evaluation: Evaluation) -> modality.ModalityWeightState:
  """AMCB's update (w = eps + (1 - M eps) softmax(Delta / tau)) from this round's
  contributions, per seed; unchanged without AMCB."""
  config = env.config
  if not config.modality.amcb:
    return weights
  contributions = (evaluation.top1_gap if config.modality.contribution == "top1_gap"
                   else evaluation.shapley)

  def update(state, delta):  # eager, as a single run computes it
    if config.modality.favour == "weaker":
      delta = -delta
    return modality.amcb_update(state, delta, temperature=config.modality.temperature,
                                floor=config.modality.floor,
                                momentum=config.modality.momentum)

  return env.seeds.each(update, weights, contributions)


def round_records(env: RoundEnv, r: int, state: RoundState,
                  weights: modality.ModalityWeightState, evaluation: Evaluation,
                  log: TrainLog, picked: Selection, train_seconds: float
                  ) -> list[dict[str, Any]]:
  """The line of ``rounds.jsonl`` for round ``r`` of each seed (``state``: trained;
  ``weights``: after this round's AMCB update). Test fields only when the test split was
  evaluated. Timings are the step's wall time shared out over the seeds."""
  seeds = env.seeds
  host = seeds.split((log, state.labelled, evaluation.top1_gap, evaluation.shapley,
                      weights.weights))
  eval_seconds = time.time() - evaluation.started
  records = []
  for i, (seed_log, labelled, gap, shapley, w) in enumerate(host):
    # The balance score eagerly on this seed's slice, as a single run computes it.
    balance = float(modality.modality_balance(seeds.take(evaluation.shapley, i)))
    records.append(_round_record(
        env, r, seeds.seeds[i], int(np.sum(labelled)), seed_log, evaluation.metrics[i],
        gap, shapley, w, balance, evaluation.pool_uncertainty[i],
        picked.diagnostics[i] if picked.diagnostics is not None else None,
        (picked.seconds / seeds.size, train_seconds / seeds.size,
         eval_seconds / seeds.size)))
  return records


def _round_record(env: RoundEnv, r: int, seed: int, num_labeled: int, log, metrics,
                  top1_gap, shapley, weights, balance: float, uncertainty, diagnostics,
                  seconds: tuple[float, float, float]) -> dict[str, Any]:
  config, names = env.config, env.names
  log = to_python(log)
  as_dict = lambda v: dict(zip(names, to_python(v)))
  test = metrics.get("test")
  record = {"round": r, "num_labeled": num_labeled, "strategy": config.al.strategy,
            "seed": int(seed)}
  if test:
    record.update(test_top1=test["top1"], test_nll=test["nll"], test_ece=test["ece"])
  record.update(val_top1=metrics["val"]["top1"], val_nll=metrics["val"]["nll"],
                val_ece=metrics["val"]["ece"])
  if test:
    record.update(test_macro_f1=test["macro_f1"],
                  per_class_test_top1=[None if np.isnan(v) else v
                                       for v in test["per_class_top1"]],
                  per_modality_test_top1=test["per_modality_top1"])
  record.update({
      "per_modality_val_top1": metrics["val"]["per_modality_top1"],
      "top1_gap": as_dict(top1_gap), "shapley": as_dict(shapley), "balance": balance,
      "modality_weights": as_dict(weights), "pool_uncertainty": uncertainty,
      "train_loss": log.epoch_loss[-1], "train_loss_curve": log.epoch_loss,
      "train_grad_norm": log.epoch_grad_norm[-1], "train_steps": int(log.num_steps),
      "select_seconds": round(seconds[0], 4), "train_seconds": round(seconds[1], 4),
      "eval_seconds": round(seconds[2], 4),
  })
  if diagnostics is not None:
    record["selection"] = diagnostics
  return record


def update_policy(env: RoundEnv, policy: PolicyState, transition: Transition,
                  records: Sequence[Mapping[str, Any]],
                  histories: Sequence[list[Mapping[str, Any]]]
                  ) -> tuple[PolicyState, list[dict[str, float]]]:
  """RL-MBA's REINFORCE step on each seed's reward: -> (policy, one log per seed)."""
  try:
    rewards = [env.agent.reward(rec, hist, None if env.references is None
                                else env.references[i])
               for i, (rec, hist) in enumerate(zip(records, histories))]
  except policy_lib.ReferenceRunError as e:
    raise WorkdirError(str(e)) from e
  if not env.seeds.batched:
    policy, log = env.agent.update(policy, transition, rewards[0])
    return policy, [log]
  return env.agent.update(policy, transition, rewards)


def to_python(tree: Any) -> Any:
  """Device arrays -> floats (scalars) and nested lists, for JSON."""
  return jax.tree.map(lambda x: float(x) if np.ndim(x) == 0 else np.asarray(x).tolist(),
                      jax.device_get(tree))
