"""Who labels a round's picks: the ``Oracle`` the loop asks, and the data set as one.

The loop (``experiment.loop``) runs every round the same way whoever labels: it asks the
oracle which items selection may not pick (``selection_state``), selects, and hands the
picks to ``label``, which commits the round's ledger lines and says which positions to
train on and what the round's record adds. The data set's oracle (``DatasetOracle``) writes
the picks' ids (one line per seed) and trains on all of them; a person's
(``person.oracle.PersonOracle``) writes the queries, waits for the answers and trains on
those given.
"""

from __future__ import annotations

import logging
from typing import Any, Callable, Mapping, NamedTuple, Protocol, Sequence

import jax
import numpy as np

from rlmba_jax.csv_files import as_id


logger = logging.getLogger(__name__)


class Labelled(NamedTuple):
  """What ``Oracle.label`` returns: the env (with the labels now known), the selection (as
  the ledger holds it), the pool positions to train on, and the fields the round's record
  adds (a person's counts of queried, skipped and unanswered items)."""
  env: Any
  picked: Any
  positions: Any
  fields: Mapping[str, Any]


class Oracle(Protocol):
  """Labels a round's picks for the loop (``env``, ``state``: the round's ``RoundEnv`` and
  ``RoundState``; ``outs``: each seed's files, ``loop.SeedOutputs``)."""

  def replay(self, env, entries: Sequence[Mapping[str, Any]], start: int):
    """The env after the ledger's lines before round ``start`` (checked), on a resume."""

  def selection_state(self, env, state, r: int):
    """``state`` as selection must see it (items that may not be picked count as taken)."""

  def label(self, env, chooser, r: int, histories, picked, given, outs,
            phase: Callable[[int, str], None], bars) -> Labelled:
    """Commits round ``r``'s ledger lines for the picks (or the ``given`` ones already in
    the ledger, one entry per seed) and says what to train on."""


class DatasetOracle:
  """The data set labels every pick (its labels are on the device already); ``pool_ids``:
  the pool's example ids, by position."""

  def __init__(self, pool_ids: np.ndarray):
    self.pool_ids = np.asarray(pool_ids)

  def replay(self, env, entries, start):
    del entries, start
    return env

  def selection_state(self, env, state, r):
    del env, r
    return state

  def label(self, env, chooser, r, histories, picked, given, outs, phase, bars) -> Labelled:
    """One ledger line per seed with the picks' ids (process 0; none for a seed whose line
    is already there)."""
    del chooser, histories, phase, bars
    batched = env.seeds.batched
    seed_positions = picked.positions if batched else [picked.positions]
    for out, g, p in zip(outs, given, seed_positions):
      if g is not None:
        if not batched:
          logger.info("round %d: using the %d ids already in the ledger", r, len(g))
      elif jax.process_index() == 0:
        out.ledger.append(r, [as_id(i) for i in self.pool_ids[p]])
    return Labelled(env, picked, picked.positions, {})
