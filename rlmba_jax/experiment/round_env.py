"""What a round's steps (``experiment.rounds``) work on: the state a round carries
(``RoundState``, checkpointed after each round), the env built once per run from arrays
already on the device (``RoundEnv``: the model's trainer, the pool and evaluation splits,
the strategy, RL-MBA's agent, the compiled round programs), what a selection and an
evaluation return, and the keys each round derives from the seed."""

from __future__ import annotations

import functools
from typing import Any, Callable, Mapping, NamedTuple

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from rlmba_jax import modality, parallel
from rlmba_jax import policy as policy_lib
from rlmba_jax import selection
from rlmba_jax.errors import WorkdirError
from rlmba_jax.experiment import headroom
from rlmba_jax.experiment.config import strategy_options
from rlmba_jax.experiment.seeds import SeedBatch
from rlmba_jax.models import fuse_with_weights, make_fused_head
from rlmba_jax.models.classifier import fused_head_kind
from rlmba_jax.policy.reinforce import PolicyState, Transition
from rlmba_jax.selection.diagnostics import selection_diagnostics
from rlmba_jax.train import Trainer, TrainState, classification_metrics, top1


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
                       all_finite=seeds.map(all_finite, (0,)))


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
  reweight = (jax.jit(functools.partial(reweight_outputs, names=names))
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


def reweight_outputs(outputs, weights, names):
  """The fused outputs recomputed for ``weights`` (evidence fusion: the AMCB weights reshape
  the fused opinion)."""
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


def strategy_over_seeds(strategy: Callable, seeds: SeedBatch) -> Callable:
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
      select_initial=strategy_over_seeds(initial, seeds),
      select_strategy=strategy and strategy_over_seeds(strategy, seeds),
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


@jax.jit
def all_finite(tree) -> jax.Array:
  leaves = [jnp.all(jnp.isfinite(x)) for x in jax.tree.leaves(tree)
            if jnp.issubdtype(x.dtype, jnp.inexact)]
  return jnp.all(jnp.stack(leaves)) if leaves else jnp.bool_(True)


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


def to_python(tree: Any) -> Any:
  """Device arrays -> floats (scalars) and nested lists, for JSON."""
  return jax.tree.map(lambda x: float(x) if np.ndim(x) == 0 else np.asarray(x).tolist(),
                      jax.device_get(tree))
