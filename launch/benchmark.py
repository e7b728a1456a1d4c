r"""Times the pieces of one active-learning round on the current device.

  python launch/benchmark.py --which=mfeat_round
  python launch/benchmark.py --which=mfeat_round --labels=1400 --repeats=5

Prints one JSON line per measurement: compile time (first call) separately from the
steady-state time (median of --repeats calls), so figures are comparable across machines.
"""

import json
import statistics
import time

import jax
import numpy as np
from absl import app
from absl import flags

from rlmba_jax import parallel, selection
from rlmba_jax.data import load_dataset
from rlmba_jax.experiment.config import default_config
from rlmba_jax.experiment.logs import configure_logging
from rlmba_jax.models import build_model
from rlmba_jax.train import Trainer, make_optimizer

_WHICH = flags.DEFINE_enum("which", "mfeat_round", ["mfeat_round"], "Workload.")
_LABELS = flags.DEFINE_integer("labels", 300, "Labelled examples the model trains on.")
_REPEATS = flags.DEFINE_integer("repeats", 3, "Timed calls after the first (compiling) one.")
_STRATEGY = flags.DEFINE_string("strategy", "entropy", "Selection strategy to time.")


def _timed(fn, repeats):
  t0 = time.perf_counter()
  jax.block_until_ready(fn())
  first = time.perf_counter() - t0
  times = []
  for _ in range(repeats):
    t0 = time.perf_counter()
    jax.block_until_ready(fn())
    times.append(time.perf_counter() - t0)
  return first, statistics.median(times)


def mfeat_round(labels: int, repeats: int, strategy: str):
  config = default_config()
  config.data.source = "files"
  data = load_dataset(config.data)
  mesh = parallel.make_mesh()
  trainer = Trainer(build_model(config.model, data.modalities, data.num_classes),
                    make_optimizer(config.train), batch_size=config.train.batch_size,
                    num_epochs=config.train.num_epochs,
                    eval_batch_size=config.train.eval_batch_size, mesh=mesh)
  inputs = parallel.put_replicated(dict(data.pool.inputs), mesh)
  targets = parallel.put_replicated(data.pool.labels, mesh)
  mask = np.zeros(len(data.pool), bool)
  mask[np.random.default_rng(0).permutation(len(mask))[:labels]] = True
  example = jax.tree.map(lambda x: x[:1], inputs)

  def train():
    state = trainer.init(jax.random.key(0), example)
    return trainer.train(state, jax.random.key(1), inputs, targets, mask)[0]

  first, steady = _timed(train, repeats)
  steps = config.train.num_epochs * -(-labels // config.train.batch_size)
  common = {"which": "mfeat_round", "device": str(jax.devices()[0].device_kind),
            "num_devices": jax.device_count(), "labels": labels}
  yield dict(common, part="train", compile_and_first_s=round(first, 4),
             steady_s=round(steady, 4), steps=steps,
             samples_per_s=round(steps * config.train.batch_size / steady, 1))
  params = train().params
  first, steady = _timed(lambda: trainer.predict(params, inputs), repeats)
  yield dict(common, part="pool_inference", compile_and_first_s=round(first, 4),
             steady_s=round(steady, 4), pool=len(mask),
             samples_per_s=round(len(mask) / steady, 1))
  outputs = trainer.predict(params, inputs)
  view = selection.PoolView(jax.nn.softmax(outputs["fused_logits"]),
                            {m: jax.nn.softmax(l) for m, l in outputs["logits"].items()},
                            outputs["features"], jax.device_put(mask))
  select = jax.jit(selection.get_strategy(strategy), static_argnums=2)
  first, steady = _timed(lambda: select(jax.random.key(2), view, 50), repeats)
  yield dict(common, part=f"select_{strategy}", compile_and_first_s=round(first, 4),
             steady_s=round(steady, 4), budget=50)


def main(argv):
  del argv
  configure_logging()
  if _WHICH.value == "mfeat_round":
    for row in mfeat_round(_LABELS.value, _REPEATS.value, _STRATEGY.value):
      print(json.dumps(row), flush=True)


if __name__ == "__main__":
  app.run(main)
