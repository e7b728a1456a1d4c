r"""Pretrains the RL-MBA selection policy on simulated episodes of a labelled source data set.

  python launch/pretrain_policy.py --config=configs/mfeat.py:tuned \
      --workdir=runs/pretrain/mfeat --updates=200 --batch=16
  python launch/pretrain_policy.py --config=configs/av_digits.py:tuned \
      --config.data.manual_dir=../shared/data/fsdd --workdir=runs/pretrain/av_digits

Episodes (``rlmba_jax/policy/episodes.py``) draw their pool, validation split, initial set,
budget and rounds from the source's pool rows (never its val or test split) and score the
policy against random and BADGE on the episode's validation split. The candidate scoring
and policy network take ``config.al.rlmba`` and ``config.modality`` (the source's tuned
values with ``:tuned``). A progress bar shows updates, episodes/s and the running reward;
``WORKDIR/pretrain.jsonl`` keeps every update's figures; Orbax checkpoints every
``--checkpoint_every`` updates, and the same command resumes. Use the result with
``--config.al.rlmba.init_from=WORKDIR --config.al.rlmba.policy_inputs=invariant``.
"""

import sys

from absl import app, flags
from ml_collections import config_flags

from rlmba_jax import compilation_cache, config_names
from rlmba_jax.errors import WorkdirError
from rlmba_jax.studies import policy_pretraining


config_names.resolve_config_names(sys.argv)  # --config=mfeat:tuned, as rlmba-jax takes it

_defaults = policy_pretraining.default_options()
_CONFIG = config_flags.DEFINE_config_file("config", None, "the source data set's config",
                                          lock_config=True)
_WORKDIR = flags.DEFINE_string("workdir", None, "output folder (resumes when it exists)")
_UPDATES = flags.DEFINE_integer("updates", _defaults.updates, "policy updates in all")
_BATCH = flags.DEFINE_integer("batch", _defaults.batch, "episodes per update (vmapped)")
_SEED = flags.DEFINE_integer("seed", _defaults.seed, "seed of the policy and the episodes")
_LR = flags.DEFINE_float("learning_rate", _defaults.learning_rate, "Adam step size")
_ENTROPY = flags.DEFINE_float("entropy_weight", _defaults.entropy_weight, "entropy bonus")
_EVERY = flags.DEFINE_integer("checkpoint_every", _defaults.checkpoint_every,
                              "updates between checkpoints")
_POOL = flags.DEFINE_integer("pool_size", _defaults.pool_size, "episode pool rows")
_VAL = flags.DEFINE_integer("val_size", _defaults.val_size, "episode validation rows")
_INITIAL = flags.DEFINE_list("initial", list(map(str, _defaults.initial)),
                             "low,high of the initial labelled set size")
_BUDGET = flags.DEFINE_list("budget", list(map(str, _defaults.budget)),
                            "low,high of the labels per round")
_ROUNDS = flags.DEFINE_list("rounds", list(map(str, _defaults.rounds)),
                            "low,high of the rounds")
_STEPS = flags.DEFINE_integer("train_steps", _defaults.train_steps,
                              "Adam steps of the inner learner per round")
_REFS = flags.DEFINE_list("references", list(_defaults.references),
                          "reference strategies of the relative reward")
_EVALUATE = flags.DEFINE_integer(
    "evaluate_episodes", 0, "after pretraining, compare the policy with the untrained one on "
    "this many held-out episodes (WORKDIR/evaluation.json; 0: skip)")
_PROGRESS = flags.DEFINE_enum("progress", "auto", ["auto", "on", "off"], "progress bar")


def _pair(name, values):
  if len(values) != 2:
    raise app.UsageError(f"--{name} takes two integers low,high; got {','.join(values)}")
  try:
    return tuple(int(v) for v in values)
  except ValueError:
    raise app.UsageError(f"--{name} takes two integers low,high; got {','.join(values)}")


def main(argv):
  del argv
  if not _WORKDIR.value:
    raise app.UsageError("--workdir is required")
  compilation_cache.enable()
  o = policy_pretraining.default_options()
  o.updates, o.batch, o.seed = _UPDATES.value, _BATCH.value, _SEED.value
  o.learning_rate, o.entropy_weight = _LR.value, _ENTROPY.value
  o.checkpoint_every, o.pool_size, o.val_size = _EVERY.value, _POOL.value, _VAL.value
  o.initial, o.budget, o.rounds = (_pair("initial", _INITIAL.value),
                                   _pair("budget", _BUDGET.value),
                                   _pair("rounds", _ROUNDS.value))
  o.train_steps, o.references, o.progress = _STEPS.value, tuple(_REFS.value), _PROGRESS.value
  try:
    last = policy_pretraining.pretrain_policy(_CONFIG.value, _WORKDIR.value, o)
    if _EVALUATE.value:
      print("held-out episodes:", policy_pretraining.evaluate_pretrained(
          _CONFIG.value, _WORKDIR.value, o, episodes=_EVALUATE.value))
  except (ValueError, WorkdirError) as e:  # a bad value or workdir: one line, nothing lost
    print(f"{type(e).__name__}: {e}", file=sys.stderr)
    sys.exit(2)
  print(f"pretrained to update {last.get('update', o.updates)}: {last}; use it with "
        f"--config.al.rlmba.init_from={_WORKDIR.value} "
        "--config.al.rlmba.policy_inputs=invariant")


if __name__ == "__main__":
  flags.mark_flag_as_required("config")
  app.run(main)
