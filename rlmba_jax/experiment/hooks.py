"""What a run reports as it goes, as hooks in the manner of CLU's periodic actions: the
loop holds a list and calls each, in order, when the run (re)starts with every seed's
history so far, after each round's checkpoint with the round's records (one per seed), and
at the end (also when a round fails).

``round_hooks`` gives the loop's list, in the order the files become durable: rounds.jsonl
(the checkpoint's history is the truth: rewritten on start, a line per round), then the
``"reported"`` phase callback, then TensorBoard (rewritten from the history on start) and
the progress bars with their one line per round. A hook of your own is any object with
``start(histories)``, ``round_done(r, records)`` and ``close()``.
"""

from __future__ import annotations

from typing import Any, Callable, Mapping, Protocol, Sequence

import ml_collections

from rlmba_jax import durable
from rlmba_jax.experiment.progress import RunProgress
from rlmba_jax.experiment.summary import log_round


Records = Sequence[Mapping[str, Any]]  # one per seed


class RoundHook(Protocol):

  def start(self, histories: Sequence[Records]) -> None:
    """The run (re)starts; ``histories``: each seed's records of the rounds done."""

  def round_done(self, r: int, records: Records) -> None:
    """Round ``r`` is checkpointed; ``records``: its record of each seed."""

  def close(self) -> None:
    """The run ends (or stops on an error)."""


class RoundsFiles:
  """Each seed's ``rounds.jsonl`` (process 0 writes; ``outs``: ``loop.SeedOutputs``)."""

  def __init__(self, outs, writer: bool):
    self.paths, self.writer = [out.rounds_path for out in outs], writer

  def start(self, histories):
    if self.writer:
      for path, history in zip(self.paths, histories):
        durable.write_jsonl(path, history)  # the checkpoint's history is the truth

  def round_done(self, r, records):
    if self.writer:
      for path, record in zip(self.paths, records):
        durable.append_jsonl(path, record)

  def close(self):
    pass


class PhaseReported:
  """The run's phase callback, ``(r, "reported")`` once rounds.jsonl holds round r."""

  def __init__(self, phase: Callable[[int, str], None]):
    self.phase = phase

  def start(self, histories):
    pass

  def round_done(self, r, records):
    self.phase(r, "reported")

  def close(self):
    pass


class EventFiles:
  """Each seed's TensorBoard scalars (``experiment.event_files``)."""

  def __init__(self, outs):
    self.boards = [out.board for out in outs]

  def start(self, histories):
    for board, history in zip(self.boards, histories):
      board.start(history)

  def round_done(self, r, records):
    for board, record in zip(self.boards, records):
      board.write(record)

  def close(self):
    for board in self.boards:
      board.close()


class ProgressLines:
  """The progress bars (rounds, phases, epochs) and one line per round, in the log or above
  the bars."""

  def __init__(self, config: ml_collections.ConfigDict, bars: RunProgress):
    self.config, self.bars = config, bars

  def start(self, histories):
    self.bars.begin(self.config.al.rounds, len(histories[0]))

  def round_done(self, r, records):
    self.bars.round_done(records)
    log_round(self.config, records, self.bars)

  def close(self):
    self.bars.close()


def round_hooks(config: ml_collections.ConfigDict, outs, writer: bool,
                phase: Callable[[int, str], None], bars: RunProgress) -> list[RoundHook]:
  """The loop's hooks, in the order they run."""
  return [RoundsFiles(outs, writer), PhaseReported(phase), EventFiles(outs),
          ProgressLines(config, bars)]
