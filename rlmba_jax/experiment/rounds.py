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

import logging
import time
from typing import Any, Mapping, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from rlmba_jax import modality
from rlmba_jax import policy as policy_lib
from rlmba_jax import selection
from rlmba_jax.data.records import RecordSplit
from rlmba_jax.errors import NonFiniteError, WorkdirError
from rlmba_jax.experiment import headroom, stopping
from rlmba_jax.experiment.round_env import (Evaluation, RoundEnv, RoundState, Selection, all_finite,
                                            seed_round_keys, to_python)
from rlmba_jax.experiment.seeds import SeedBatch
from rlmba_jax.policy.reinforce import PolicyState, Transition
from rlmba_jax.train import TrainLog


logger = logging.getLogger(__name__)


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


def check_finite_outputs(r: int, what: str, outputs, env: RoundEnv | None = None) -> None:
  """Raises ``NonFiniteError`` when any floating output of the classifier is NaN or inf."""
  finite = all_finite if env is None else env.steps.all_finite
  flags = np.reshape(np.asarray(jax.device_get(finite(outputs))), -1)
  if not flags.all():
    seed = "" if env is None else _seed_words(env.seeds, int(np.argmin(flags)))
    raise NonFiniteError(f"round {r}{seed}: the classifier's outputs on the {what} hold NaN "
                         "or infinite values. " + _NOT_CHECKPOINTED.format(r=r))


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
  # The pool's outputs: evidential heads' difficulty, the stopping signals' stop set, and
  # the next round's selection (which reuses them: the same parameters, and the outputs
  # of a softmax head with concat fusion do not depend on the modality weights). A
  # streamed pool with softmax heads is left to the selection (its records carry no
  # stopping kappa).
  pool_outputs, uncertainty = None, [None] * seeds.size
  if env.config.model.head == "evidential" or not isinstance(env.pool_inputs, RecordSplit):
    pool_outputs = env.trainer.predict(train.params, env.pool_inputs, weights,
                                       train.model_state)
    check_finite_outputs(r, "pool", pool_outputs, env)
  if env.config.model.head == "evidential":
    uncertainty = [float(u) for u in seeds.split(
        env.steps.pool_uncertainty(pool_outputs, state.labelled, weights))]
  stop_predictions = [None] * seeds.size
  if pool_outputs is not None:
    stop_set = stopping.stop_set_positions(env.pool_size, env.config.al.stopping.set_size,
                                           env.config.data.split_seed)
    labels = np.asarray(jax.device_get(jnp.argmax(pool_outputs["fused_probs"], -1)))
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
    return modality.amcb_update(state, delta, temperature=config.modality.temperature,
                                floor=config.modality.floor,
                                momentum=config.modality.momentum,
                                favour=config.modality.favour)

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


