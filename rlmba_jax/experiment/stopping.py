"""When more labels stop paying: two stopping signals computed every round.

* **Stabilizing predictions** (Bloodgood and Vijay-Shanker, CoNLL 2009): a fixed *stop set*
  of pool examples (``al.stopping.set_size``, drawn once from ``data.split_seed``, the same
  for every strategy and seed) is predicted by each round's model; Cohen's kappa between
  successive rounds' predictions measures how much the model still changes. The signal
  holds when the mean kappa of the last ``window`` rounds reaches ``al.stopping.kappa``
  (they use 0.99 over 3 rounds).
* **Validation plateau**: the validation top-1 gained over the last ``window`` rounds is
  below ``al.stopping.min_gain``.

Each round's record carries ``stopping = {kappa, mean_kappa, stabilized, val_gain,
plateau}`` and ``stop_set_predictions`` (the predictions the next round compares with,
so a resumed run computes the same figures from its history). ``al.stop_when`` ("" |
"stabilized" | "plateau" | "either") ends a run at the first round whose signal holds.
"""

from __future__ import annotations

from typing import Any, Mapping, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from rlmba_jax.config_choices import STOP_WHEN as WHEN


def stop_set_positions(pool_size: int, size: int, split_seed: int) -> np.ndarray:
  """``[min(size, pool_size)]`` sorted pool positions: the stop set (fixed per data split)."""
  if size >= pool_size:
    return np.arange(pool_size, dtype=np.int32)
  rng = np.random.default_rng([int(split_seed), 2009])
  return np.sort(rng.choice(pool_size, size, replace=False)).astype(np.int32)


def cohens_kappa(a: jax.Array, b: jax.Array, num_classes: int) -> jax.Array:
  """Cohen's kappa of two label vectors ``[N]``: (p_o - p_e) / (1 - p_e), with p_o the
  share of agreeing entries and p_e = sum_c p_a(c) p_b(c) the agreement by chance. 1 when
  both are one and the same constant labelling (p_e = 1)."""
  a, b = jnp.asarray(a), jnp.asarray(b)
  assert a.ndim == 1 and a.shape == b.shape, (a.shape, b.shape)
  observed = jnp.mean(a == b)
  pa = jnp.bincount(a, length=num_classes) / a.shape[0]
  pb = jnp.bincount(b, length=num_classes) / b.shape[0]
  chance = jnp.sum(pa * pb)
  return jnp.where(chance >= 1.0, 1.0, (observed - chance) / jnp.maximum(1.0 - chance, 1e-12))


def stopping_fields(history: Sequence[Mapping[str, Any]], predictions: np.ndarray | None,
                    val_top1: float, num_classes: int, options: Mapping[str, Any]
                    ) -> dict[str, Any]:
  """The ``stopping`` entry of a round's record from the run's earlier records
  (``history``), this round's stop-set ``predictions`` ``[n]`` (None: not predicted, no
  kappa) and validation top-1."""
  window = int(options["window"])
  kappa = None
  if (predictions is not None and history
      and history[-1].get("stop_set_predictions") is not None):
    previous = np.asarray(history[-1]["stop_set_predictions"])
    kappa = float(cohens_kappa(previous, np.asarray(predictions), num_classes))
  kappas = [h.get("stopping", {}).get("kappa") for h in history[-(window - 1):]
            ] if window > 1 else []
  kappas = kappas + [kappa]
  recent = [k for k in kappas if k is not None]
  mean_kappa = float(np.mean(recent)) if len(recent) == window else None
  val_gain = (float(val_top1 - history[-window]["val_top1"])
              if len(history) >= window else None)
  return {"kappa": kappa, "mean_kappa": mean_kappa,
          "stabilized": mean_kappa is not None and mean_kappa >= float(options["kappa"]),
          "val_gain": val_gain,
          "plateau": val_gain is not None and val_gain < float(options["min_gain"])}


def should_stop(record: Mapping[str, Any], when: str) -> bool:
  """Whether ``al.stop_when = when`` ends the run at ``record``'s round."""
  signals = record.get("stopping") or {}
  if when == "either":
    return bool(signals.get("stabilized") or signals.get("plateau"))
  return bool(when and signals.get(when))


def stop_reason(record: Mapping[str, Any]) -> str:
  """Words for the log and the labelling page."""
  s = record.get("stopping") or {}
  parts = []
  if s.get("mean_kappa") is not None:
    parts.append(f"predictions agree with the previous rounds' at kappa "
                 f"{s['mean_kappa']:.3f}{' (stabilized)' if s.get('stabilized') else ''}")
  if s.get("val_gain") is not None:
    parts.append(f"validation top-1 {100 * s['val_gain']:+.1f} points over the last rounds"
                 f"{' (plateau)' if s.get('plateau') else ''}")
  return "; ".join(parts) or "too few rounds for a stopping signal yet"
