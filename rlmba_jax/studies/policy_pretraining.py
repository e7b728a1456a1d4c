"""Pretraining the RL-MBA policy on a source data set's simulated episodes, resumable.

``pretrain_policy(config, workdir, options)`` loads the source named by ``config.data``
(its pool rows only), builds the ``EpisodeSpec`` from ``config.al.rlmba`` and
``config.modality`` and the episode options, and runs ``options.updates`` policy updates
(``policy.pretraining``), writing into ``workdir``:

* ``pretrain.json``: what was pretrained (source, spec, network, optimiser, seed, batch);
  a second call with other values is refused, the same values resume;
* ``pretrain.jsonl``: one line per update (reward, policy gain, entropy, episodes/s);
* ``checkpoints/<update>``: Orbax checkpoints of the parameters and optimiser state.

``al.rlmba.init_from=<workdir>`` then starts an experiment's policy from the latest
checkpoint (``load_pretrained_params``).
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import json
import logging
import os
import time
from typing import Any

import jax
import ml_collections
import numpy as np
import optax

from rlmba_jax import parallel
from rlmba_jax.data.loading import load_dataset
from rlmba_jax.durable import append_jsonl, write_atomic, write_json
from rlmba_jax.errors import ConfigError, WorkdirError
from rlmba_jax.experiment.checkpoint import PRETRAINING_MANIFEST as MANIFEST
from rlmba_jax.experiment.checkpoint import RoundCheckpointer, load_pretrained_params
from rlmba_jax.experiment.progress import progress_wanted
from rlmba_jax.experiment.workdir import read_stored_json
from rlmba_jax.policy import episodes as episodes_lib
from rlmba_jax.policy import pretraining as pretraining_lib


logger = logging.getLogger(__name__)

LOG = "pretrain.jsonl"


def default_options() -> ml_collections.ConfigDict:
  """What ``launch/pretrain_policy.py`` exposes as flags (see there for their meaning)."""
  o = ml_collections.ConfigDict()
  o.updates = 200
  o.batch = 16
  o.seed = 0
  o.learning_rate = 1e-3
  o.entropy_weight = 0.01
  o.checkpoint_every = 10
  o.pool_size = 600
  o.val_size = 150
  o.initial = (10, 30)
  o.budget = (5, 20)
  o.rounds = (2, 6)
  o.train_steps = 40
  o.references = ("random", "badge")
  o.progress = "auto"
  return o


def check_simulable(config: ml_collections.ConfigDict) -> None:
  """A ConfigError for what an episode cannot reproduce of ``config``'s run: the inner
  learner has no head per coalition of modalities, so neither Shapley contributions nor
  the balance term of the reward (which is computed from them) exist in an episode."""
  unsupported = []
  if config.modality.amcb and config.modality.contribution != "top1_gap":
    unsupported.append(f"modality.contribution={config.modality.contribution!r} (the "
                       "episodes measure AMCB's top-1 gaps: set it to 'top1_gap')")
  if config.al.rlmba.balance_weight != 0:
    unsupported.append(f"al.rlmba.balance_weight={config.al.rlmba.balance_weight} (the "
                       "episodes have no Shapley values for the balance term: set it to 0)")
  if unsupported:
    raise ConfigError("policy pretraining cannot simulate " + "; ".join(unsupported) +
                      ". Nothing was written.")


def episode_spec(config: ml_collections.ConfigDict, names, num_classes: int,
                 options: ml_collections.ConfigDict) -> episodes_lib.EpisodeSpec:
  """The episodes of ``config``'s RL-MBA run (its candidate scoring and AMCB), sized by the
  episode ``options`` (``check_simulable`` first)."""
  check_simulable(config)
  r = config.al.rlmba
  return episodes_lib.EpisodeSpec(
      names=tuple(names), num_classes=num_classes, pool_size=options.pool_size,
      val_size=options.val_size, initial=tuple(options.initial), budget=tuple(options.budget),
      rounds=tuple(options.rounds), train_steps=options.train_steps, kappa=r.kappa,
      beta=r.beta, efda=r.efda, lloyd_iterations=r.lloyd_iterations, diversity=r.diversity,
      difficulty_weight=r.difficulty_weight,
      amcb=config.modality.amcb, modality_temperature=config.modality.temperature,
      modality_floor=config.modality.floor, modality_momentum=config.modality.momentum,
      modality_favour=config.modality.favour, references=tuple(options.references))


def _manifest(config, spec, options) -> dict[str, Any]:
  return {"source": config.data.name, "spec": dataclasses.asdict(spec),
          "policy_inputs": "invariant", "hidden": list(config.al.rlmba.hidden),
          "prior_temperature": config.al.rlmba.prior_temperature,
          "seed": options.seed, "batch": options.batch,
          "learning_rate": options.learning_rate, "entropy_weight": options.entropy_weight}


def _check_manifest(workdir: str, manifest: dict[str, Any]) -> None:
  path = os.path.join(workdir, MANIFEST)
  if not os.path.exists(path):
    os.makedirs(workdir, exist_ok=True)
    write_json(path, manifest)
    return
  stored = read_stored_json(path)
  if isinstance(stored.get("spec"), dict):
    # A spec field added since the manifest was written ran with the field's default.
    defaults = {f.name: f.default for f in dataclasses.fields(episodes_lib.EpisodeSpec)
                if f.default is not dataclasses.MISSING}
    stored = {**stored, "spec": {**defaults, **stored["spec"]}}
  stored_norm = json.loads(json.dumps(stored))
  given = json.loads(json.dumps(manifest))
  diffs = sorted(k for k in set(stored_norm) | set(given) if stored_norm.get(k) != given.get(k))
  if diffs:
    raise WorkdirError(f"{workdir} holds a pretraining with other values ({', '.join(diffs)});"
                       " nothing was changed. Use another --workdir or the same values "
                       "(only --updates may grow).")


def _truncate_log(path: str, updates_done: int) -> None:
  """Keeps the log lines of the updates a checkpoint holds (a kill may leave later ones)."""
  if not os.path.exists(path):
    return
  with open(path) as f:
    lines = [l for l in f if l.strip() and json.loads(l)["update"] <= updates_done]
  write_atomic(path, "".join(lines))


def _source_and_spec(config: ml_collections.ConfigDict, options: ml_collections.ConfigDict
                     ) -> tuple[episodes_lib.EpisodeSource, episodes_lib.EpisodeSpec]:
  """The source's pool rows as episode features, and the checked episode spec."""
  check_simulable(config)  # before the data set is loaded
  data = load_dataset(config.data)
  names = tuple(s.name for s in data.modalities)
  source = episodes_lib.episode_source(data.pool, names)
  spec = episode_spec(config, names, data.num_classes, options)
  spec.check(int(source.labels.shape[0]))
  return source, spec


@functools.lru_cache(maxsize=4)
def _policy_step(spec: episodes_lib.EpisodeSpec, hidden: tuple[int, ...],
                 prior_temperature: float, learning_rate: float, entropy_weight: float):
  """(network, optimiser, jitted update), one per set of values in a process, so a resumed
  or repeated pretraining in the same process does not trace the update again."""
  network = pretraining_lib.make_policy(hidden, prior_temperature)
  optimizer = optax.adam(learning_rate)
  return network, optimizer, pretraining_lib.jitted_step(spec, network, optimizer,
                                                         entropy_weight)


def pretrain_policy(config: ml_collections.ConfigDict, workdir: str,
                    options: ml_collections.ConfigDict | None = None) -> dict[str, Any]:
  """Runs (or resumes) a pretraining; -> the last update's figures."""
  options = options or default_options()
  source, spec = _source_and_spec(config, options)
  network, optimizer, step = _policy_step(spec, tuple(config.al.rlmba.hidden),
                                          config.al.rlmba.prior_temperature,
                                          options.learning_rate, options.entropy_weight)
  _check_manifest(workdir, _manifest(config, spec, options))

  checkpointer = RoundCheckpointer(os.path.join(workdir, "checkpoints"), 2)
  state = pretraining_lib.pretrain_init(jax.random.key(options.seed), network, optimizer)
  latest = checkpointer.latest_round()
  if latest is not None:
    state, _ = checkpointer.restore(latest, state)
    logger.info("resuming pretraining at update %d", int(state.step))
  log_path = os.path.join(workdir, LOG)
  _truncate_log(log_path, int(state.step))

  mesh = parallel.make_mesh()
  # The update returns its state replicated over the mesh; a fresh or restored state placed
  # the same way up front makes every update one compiled program (else the first update,
  # and the first after a resume, each compile their own).
  state = parallel.put_replicated(state, mesh)
  bar = _progress(options, int(state.step))
  last: dict[str, Any] = {}
  recent: list[float] = []  # rewards of this invocation's updates (the bar's running mean)
  try:
    while int(state.step) < options.updates:
      keys = pretraining_lib.episode_keys(options.seed, state.step, options.batch)
      keys = jax.device_put(keys, parallel.rows_sharding(mesh, options.batch))
      start = time.perf_counter()
      state, info = step(state, source, keys)
      info = {k: float(v) for k, v in info._asdict().items()}
      seconds = time.perf_counter() - start
      last = {"update": int(state.step), **info, "seconds": seconds,
              "episodes_per_second": options.batch / seconds}
      append_jsonl(log_path, last)
      if int(state.step) % options.checkpoint_every == 0 or int(state.step) == options.updates:
        checkpointer.save(int(state.step), state, {"update": int(state.step)})
      if bar is not None:
        recent.append(info["reward"])
        bar.update(1)
        bar.set_postfix(running_reward=f"{sum(recent[-20:]) / len(recent[-20:]):+.4f}",
                        episodes=f"{options.batch / seconds:.1f}/s")
  finally:
    checkpointer.close()
    if bar is not None:
      bar.close()
  return last


def evaluate_pretrained(config: ml_collections.ConfigDict, workdir: str,
                        options: ml_collections.ConfigDict, episodes: int = 64,
                        seed: int = 1_000_000, batch: int = 16) -> dict[str, Any]:
  """The pretrained policy against the untrained one (the prior softmax(q / T)) on the same
  ``episodes`` held-out episodes (keys from ``seed``, never a pretraining key): mean relative
  reward and final-round gain over the references, and their paired difference with its
  standard error. Written to ``workdir/evaluation.json``, and read back instead of simulated
  again when it holds the same pretraining (manifest), checkpoint, episodes, seed and batch.
  Validation inside the simulation: no real run and no test split is involved."""
  path = os.path.join(workdir, "evaluation.json")
  checkpointer = RoundCheckpointer(os.path.join(workdir, "checkpoints"), 2)
  try:
    update = checkpointer.latest_round()
  finally:
    checkpointer.close()
  if update is None:
    raise WorkdirError(f"{workdir} holds no pretraining checkpoint: run the pretraining "
                       "(launch/pretrain_policy.py) into it first")
  manifest = os.path.join(workdir, MANIFEST)
  with open(manifest, "rb") as f:
    pretraining = hashlib.sha256(f.read()).hexdigest()
  same = {"episodes": episodes, "seed": seed, "batch": batch, "update": int(update),
          "pretraining": pretraining}
  if os.path.exists(path):
    kept = read_stored_json(path)
    if all(kept.get(k) == v for k, v in same.items()):
      logger.info("%s evaluates this policy on these episodes already; kept", path)
      return kept
  source, spec = _source_and_spec(config, options)
  network, optimizer, _ = _policy_step(spec, tuple(config.al.rlmba.hidden),
                                       config.al.rlmba.prior_temperature,
                                       options.learning_rate, options.entropy_weight)
  fresh = pretraining_lib.pretrain_init(jax.random.key(options.seed), network,
                                        optimizer).params
  trained = load_pretrained_params(workdir, config.al.rlmba.hidden, "invariant", fresh,
                                   prior_temperature=config.al.rlmba.prior_temperature)
  simulate = pretraining_lib.jitted_simulation(spec, network)
  # Both sets of parameters as host arrays (a restored checkpoint is placed otherwise than
  # a fresh init), so the two share one compiled simulation.
  fresh, trained = jax.device_get((fresh, trained))
  figures = {}
  for name, params in (("untrained", fresh), ("pretrained", trained)):
    rewards, gains = [], []
    for start in range(0, episodes, batch):
      keys = jax.random.split(jax.random.fold_in(jax.random.key(seed), start), batch)
      out = simulate(params, source, keys)
      active = np.asarray(out.active, np.float64)
      rewards.append(np.asarray(out.rewards).sum(1) / active.sum(1))
      gains.append(np.asarray(out.policy_top1[:, -1] - out.reference_top1[:, :, -1].mean(1)))
    figures[name] = (np.concatenate(rewards)[:episodes], np.concatenate(gains)[:episodes])
  se = lambda x: float(x.std(ddof=1) / np.sqrt(len(x)))
  result = dict(same)
  for i, what in enumerate(("reward", "gain")):
    for name in ("untrained", "pretrained"):
      result[f"{what}_{name}"] = float(figures[name][i].mean())
    diff = figures["pretrained"][i] - figures["untrained"][i]
    result[f"{what}_difference"], result[f"{what}_difference_se"] = float(diff.mean()), se(diff)
  write_json(path, result)
  return result


def _progress(options, done: int):
  if not progress_wanted(options.progress):
    return None
  from tqdm.auto import tqdm  # pylint: disable=g-import-not-at-top
  return tqdm(total=options.updates, initial=done, unit="update", desc="pretrain",
              dynamic_ncols=True)


def read_log(path: str) -> list[dict[str, Any]]:
  with open(os.path.join(path, LOG)) as f:
    return [json.loads(l) for l in f if l.strip()]


__all__ = ["default_options", "episode_spec", "pretrain_policy", "evaluate_pretrained",
           "read_log"]
