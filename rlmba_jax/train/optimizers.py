"""How a round trains: the optimiser (``train.optimizer``: AdamW, or PyTorch's Adam with L2 in
the gradient), gradient clipping, and the learning-rate schedule (step decay at given
epochs, after an optional warm-up)."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import optax

from rlmba_jax.config_choices import OPTIMIZERS
from rlmba_jax.data.specs import parse_assignments


def _base_optimizer(train_cfg, learning_rate: float) -> optax.GradientTransformation:
  betas = tuple(train_cfg.betas)
  if train_cfg.optimizer == "adam":
    # PyTorch's Adam(weight_decay=...): L2 added to the gradient before the moments.
    return optax.chain(optax.add_decayed_weights(train_cfg.weight_decay),
                       optax.adam(learning_rate, b1=betas[0], b2=betas[1]))
  return optax.adamw(learning_rate, b1=betas[0], b2=betas[1],
                     weight_decay=train_cfg.weight_decay)


def make_optimizer(train_cfg) -> optax.GradientTransformation:
  """AdamW (or Adam with L2, ``train.optimizer``), with per-modality encoder learning rates.

  ``train.encoder_learning_rates="video=2e-3,audio=1e-3"`` gives the parameters under
  ``encoder_{modality}`` their own rate (the reference code's per-module groups); everything
  else uses ``train.learning_rate``. The warm-up / step schedule is applied by the trainer as
  a factor on the update (``lr_factor``), which for Adam-type updates scales the rate.
  """
  parts = []
  if train_cfg.grad_clip_norm > 0:
    parts.append(optax.clip_by_global_norm(train_cfg.grad_clip_norm))
  rates = {m: float(v) for m, v in parse_assignments(
      train_cfg.encoder_learning_rates, "train.encoder_learning_rates").items()}
  if not rates:
    parts.append(_base_optimizer(train_cfg, train_cfg.learning_rate))
    return optax.chain(*parts)
  groups = {"default": _base_optimizer(train_cfg, train_cfg.learning_rate)}
  groups.update({m: _base_optimizer(train_cfg, lr) for m, lr in rates.items()})

  def labels(params):
    return {k: jax.tree.map(lambda _, k=k: k[len("encoder_"):] if k.startswith("encoder_")
                            and k[len("encoder_"):] in rates else "default", v)
            for k, v in params.items()}

  parts.append(optax.multi_transform(groups, labels))
  return optax.chain(*parts)


def lr_factor(epoch: jnp.ndarray, step: jnp.ndarray, steps_per_epoch: jnp.ndarray,
              warmup_epochs: float = 0.0, milestones: tuple[float, ...] = (),
              decay: float = 0.1) -> jnp.ndarray:
  """The learning-rate multiplier of step ``step`` (0-based) of epoch ``epoch`` of a round.

  Linear warm-up ``(global step + 1) / warm-up steps`` over the first ``warmup_epochs``
  epochs (the reference code's per-step warm-up), then ``decay`` for each milestone epoch
  passed (PyTorch's ``MultiStepLR``, stepped per epoch). 1 when neither is set.

  Not an optax schedule on purpose: the steps per epoch grow with the labelled set every
  round and are a traced value inside one compiled round, while ``optax.linear_schedule``
  and ``optax.piecewise_constant_schedule`` take their step boundaries as Python numbers;
  building them per round would recompile the round for every labelled-set size.
  """
  factor = jnp.asarray(1.0, jnp.float32)
  if warmup_epochs > 0:
    done = (epoch * steps_per_epoch + step + 1).astype(jnp.float32)
    factor = jnp.minimum(1.0, done / (warmup_epochs * steps_per_epoch))
  for m in milestones:
    factor = factor * jnp.where(epoch >= m, decay, 1.0)
  return factor


def schedule_from_config(train_cfg):
  """``(epoch, step, steps_per_epoch) -> factor`` for ``train.warmup_epochs``,
  ``train.lr_milestones`` and ``train.lr_decay``; None when the rate is constant."""
  warmup = float(train_cfg.warmup_epochs)
  milestones = tuple(float(m) for m in train_cfg.lr_milestones)
  decay = float(train_cfg.lr_decay)
  if warmup <= 0 and not milestones:
    return None
  return lambda e, i, n: lr_factor(e, i, n, warmup, milestones, decay)
