"""The interface every acquisition strategy shares, and the registry that names them.

A strategy is a pure function ``select(key, pool, budget, **options) -> [budget] int32``
positions in the pool. ``pool`` is a ``PoolView``: the current model's outputs on every pool
example plus the labelled mask. Shapes are fixed (the whole pool, masked), so a jitted strategy
compiles once per run; ``budget`` and ``options`` are static.

Strategies that need more than one deterministic forward pass say so when they register
(``needs``), and the loop fills the matching optional fields of the view:

* ``"mc_probs"``: ``[T, N, C]`` fused probabilities from T dropout passes (BALD);
* ``"coalition_probs"``: ``[2^M, N, C]`` fused probabilities with each coalition of
  modalities present (BMMAL's per-sample Shapley contributions);
* ``"fused_head"``: the fused head as a function of the fused features (DeepFool);
* ``"evidential"``: the Dirichlet parameters of every head (RL-MBA);
* ``"modality_weights"``: the current AMCB weights (RL-MBA).
"""

from __future__ import annotations

from typing import Any, Callable, Mapping, NamedTuple

import chex
import flax.struct
import jax
import jax.numpy as jnp

NEEDS = ("mc_probs", "coalition_probs", "fused_head", "evidential", "modality_weights")
# The PoolView fields each of ``NEEDS`` fills in.
NEED_FIELDS = {"mc_probs": ("mc_probs",), "coalition_probs": ("coalition_probs",),
               "fused_head": ("fused_head", "head_params"),
               "evidential": ("modality_alphas",), "modality_weights": ("modality_weights",)}
# The fields every view has, which a strategy may still leave unread (``register(reads=)``).
BASE_FIELDS = ("probs", "modality_probs", "features")


@flax.struct.dataclass
class PoolView:
  """What a strategy may look at. N pool size, C classes, D_m feature width of modality m.

  Attributes:
    probs: ``[N, C]`` fused predictive probabilities.
    modality_probs: modality -> ``[N, C]`` unimodal probabilities.
    features: modality -> ``[N, D_m]`` encoder features (the fused head's input).
    labelled: ``[N]`` bool, true where the label is already bought.
    mc_probs: ``[T, N, C]`` fused probabilities under dropout, or None.
    coalition_probs: ``[2^M, N, C]`` fused probabilities per coalition (rows ordered as
      ``modality.coalition_masks(M)`` over ``modality_names``), or None.
    head_params: parameters ``fused_head`` reads, or None.
    fused_head: static ``(head_params, fused_features [N, D]) -> fused logits [N, C]``.
    modality_alphas: modality -> ``[N, C]`` Dirichlet parameters, or None.
    fused_alpha: ``[N, C]`` fused Dirichlet parameters, or None.
    modality_weights: ``[M]`` AMCB weights in ``names`` order, or None.
    modality_names: static order of the modalities (sorted names if empty).
  """
  probs: jnp.ndarray
  modality_probs: Mapping[str, jnp.ndarray]
  features: Mapping[str, jnp.ndarray]
  labelled: jnp.ndarray
  mc_probs: jnp.ndarray | None = None
  coalition_probs: jnp.ndarray | None = None
  head_params: Any = None
  modality_alphas: Mapping[str, jnp.ndarray] | None = None
  fused_alpha: jnp.ndarray | None = None
  modality_weights: jnp.ndarray | None = None
  fused_head: Callable[[Any, jnp.ndarray], jnp.ndarray] | None = flax.struct.field(
      pytree_node=False, default=None)
  modality_names: tuple[str, ...] = flax.struct.field(pytree_node=False, default=())

  @classmethod
  def from_arrays(cls, probs=None, modality_probs=None, features=None, labelled=None, *,
                  strategy: str | None = None, **optional) -> "PoolView":
    """A view over your own model's outputs (NumPy or JAX arrays), for calling any
    strategy outside the experiment loop.

    Args:
      probs: ``[N, C]`` fused probabilities (or None if the strategy does not read them).
      modality_probs: modality -> ``[N, C]``; features: modality -> ``[N, D_m]``.
      labelled: ``[N]`` bool (default: nothing labelled yet).
      strategy: when given, the fields it reads are checked to be there, and a ValueError
        lists what is missing.
      **optional: ``mc_probs``, ``coalition_probs``, ``modality_alphas``, ``fused_alpha``,
        ``modality_weights``, ``head_params``, ``fused_head``, ``modality_names``.
    """
    as_array = lambda x: None if x is None else jnp.asarray(x)
    as_dict = lambda d: {k: jnp.asarray(v) for k, v in (d or {}).items()}
    sizes = {name: len(x) for name, x in [("probs", probs), *(
        (f"modality_probs[{k!r}]", v) for k, v in (modality_probs or {}).items()), *(
        (f"features[{k!r}]", v) for k, v in (features or {}).items())] if x is not None}
    if labelled is None:
      if not sizes:
        raise ValueError("PoolView.from_arrays needs probs, features or labelled to know "
                         "the pool size")
      labelled = jnp.zeros(next(iter(sizes.values())), bool)
    sizes["labelled"] = len(labelled)
    if len(set(sizes.values())) > 1:
      raise ValueError(f"PoolView.from_arrays: the arrays disagree on the pool size: {sizes}")
    if optional.get("modality_alphas") is not None:
      optional["modality_alphas"] = as_dict(optional["modality_alphas"])
    for key in ("mc_probs", "coalition_probs", "fused_alpha", "modality_weights"):
      if key in optional:
        optional[key] = as_array(optional[key])
    view = cls(as_array(probs), as_dict(modality_probs), as_dict(features),
               jnp.asarray(labelled, bool), **optional)
    if strategy is not None:
      missing = [f for f in strategy_fields(strategy)
                 if getattr(view, f) is None or (isinstance(getattr(view, f), dict)
                                                 and not getattr(view, f))]
      if missing:
        raise ValueError(f"strategy {strategy!r} reads PoolView fields "
                         f"{list(strategy_fields(strategy))}; missing: {missing}")
    return view

  @property
  def names(self) -> tuple[str, ...]:
    return self.modality_names or tuple(sorted(self.features))

  def fused_features(self) -> jnp.ndarray:
    """``[N, sum_m D_m]``: the modality features concatenated in ``names`` order."""
    return jnp.concatenate([self.features[m] for m in self.names], axis=-1)


Strategy = Callable[..., jnp.ndarray]
"""A strategy: ``select(key, pool: PoolView, budget: int, **options) -> [budget] int32``
pool positions, distinct and unlabelled, in the order chosen; pure and jittable with
``budget`` and ``options`` static."""


class StrategySpec(NamedTuple):
  select: Strategy
  needs: frozenset[str]
  reads: tuple[str, ...] = ()


_REGISTRY: dict[str, StrategySpec] = {}


def register(name: str, needs: tuple[str, ...] = (), reads: tuple[str, ...] = ()
             ) -> Callable[[Strategy], Strategy]:
  """Decorator adding a strategy to the registry under ``name``; ``needs``: the optional
  fields the loop must fill in (``NEEDS``); ``reads``: which of ``BASE_FIELDS`` it reads."""
  unknown = set(needs) - set(NEEDS) | set(reads) - set(BASE_FIELDS)
  if unknown:
    raise ValueError(f"strategy {name!r} needs unknown pool fields {sorted(unknown)}")

  def wrap(fn: Strategy) -> Strategy:
    if name in _REGISTRY:
      raise ValueError(f"strategy {name!r} is registered twice")
    _REGISTRY[name] = StrategySpec(fn, frozenset(needs), tuple(reads))
    return fn
  return wrap


def available_strategies() -> tuple[str, ...]:
  return tuple(sorted(_REGISTRY))


def _spec(name: str) -> StrategySpec:
  if name not in _REGISTRY:
    raise ValueError(f"unknown strategy {name!r}; available: {', '.join(available_strategies())}")
  return _REGISTRY[name]


def get_strategy(name: str) -> Strategy:
  """The registered strategy ``name`` (``available_strategies()`` lists them), e.g.
  ``get_strategy("badge")(jax.random.key(0), PoolView.from_arrays(...), 100)``; a
  ValueError listing the names for an unknown one."""
  return _spec(name).select


def strategy_needs(name: str) -> frozenset[str]:
  """Which optional ``PoolView`` fields the strategy reads (see the module docstring)."""
  return _spec(name).needs


def strategy_fields(name: str) -> tuple[str, ...]:
  """Every ``PoolView`` field the strategy reads besides ``labelled``."""
  spec = _spec(name)
  return spec.reads + tuple(f for n in NEEDS if n in spec.needs for f in NEED_FIELDS[n])


def check_view(pool: PoolView, needs: tuple[str, ...], strategy: str) -> None:
  """Raises if a field the strategy needs was not filled in."""
  for field in needs:
    if getattr(pool, field) is None:
      raise ValueError(f"strategy {strategy!r} needs PoolView.{field}; build the view with "
                       f"it (the experiment loop does this from the strategy's `needs`)")


def top_scores(scores: jnp.ndarray, available: jnp.ndarray, budget: int) -> jnp.ndarray:
  """Positions of the ``budget`` highest ``scores`` among ``available`` (``[N]`` each).

  Ties go to the lower position. The caller guarantees ``budget <= available.sum()``.
  """
  chex.assert_equal_shape((scores, available))
  masked = jnp.where(available, scores, -jnp.inf)
  return jax.lax.top_k(masked, budget)[1].astype(jnp.int32)
