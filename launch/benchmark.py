r"""Times the pieces of one active-learning round on the current device.

  python launch/benchmark.py --which=mfeat_round
  python launch/benchmark.py --which=mfeat_round --labels=1400 --repeats=5
  python launch/benchmark.py --which=badge --badge_n=50000 --badge_c=31 --badge_b=1000
  python launch/benchmark.py --which=strategies --pool_sizes=15000,50000,200000 \
      --classes=31,309 --strategies=entropy,badge,bmmal
  python launch/benchmark.py --which=pipeline --workers_list=0,2 --records=1024
  python launch/benchmark.py --which=av_train --batch=32 --amp   # also av_infer, it_train
  python launch/benchmark.py --which=bmmal --badge_n=50000          # also rlmba_select
  python launch/benchmark.py --which=round --pool_sizes=100000 --strategy=rlmba
  python launch/benchmark.py --which=scaling --strategies=entropy,badge,rlmba \
      --pool_sizes=10000,30000,100000,300000,1000000
  python launch/benchmark.py --which=episodes --episode_batches=1,16,64
  python launch/benchmark.py --which=seeds --seeds_config=mfeat:paper --strategy=margin \
      --seed_counts=1,4,16,64

``badge`` takes the same flags as ``../shared/bench/torch_reference.py --which badge`` and
prints the same fields (``select_s``), so the two can be run side by side on one card.
``bmmal`` and ``rlmba_select`` (the whole RL-MBA selection: candidate scoring, policy,
Plackett-Luce draw) take the same flags and print the same fields, plus the memory per pool
item (the view's arrays, XLA's working memory); ``select`` does the same for ``--strategy``.
``scaling`` runs ``select`` for each of ``--strategies`` and ``--pool_sizes`` in a fresh
process and fits time against N. ``round`` is one whole active-learning round through the
loop's own pieces (pool inference and selection, retraining, evaluation) on a synthetic pool
of ``--pool_sizes`` rows: two modalities of D/2 features, or the audio-visual networks at
the real input shapes (``--round_model=av``). ``strategies`` times every named strategy
on a synthetic pool of N examples with two
modalities of D/2 features each, C classes and ``--labelled`` labelled examples, picking
``--picks``. ``av_train`` / ``av_infer`` / ``it_train`` are torch_reference.py's workloads
with its flags (``--batch``, ``--infer_batch``, ``--amp``, ``--warmup``, ``--steps``; the first
of ``--classes``) and fields, on our classifier: one jitted step with buffer donation,
synthetic inputs of the real shapes on the device, compile time reported separately.
``episodes`` times one policy-pretraining update (``policy.pretraining``: a vmapped batch of
simulated episodes, the policy's run and the random and BADGE references, then the
REINFORCE step) on a synthetic source of mfeat's shape (1,400 rows, six views of 76, 216,
64, 240, 47 and 6 features, 10 classes) with ``launch/pretrain_policy.py``'s default
episodes, for each of ``--episode_batches``: episodes per second and XLA's working memory
per episode. ``pipeline`` measures the input pipelines of the paper's data sets at the
paper's sizes (Food-101 photos of 384-512 px to 224 crops + 100 tokens; 10 frames of 256 x 340
to 5 x 112 x 112 + 10 s of audio to a 257 x 504 log-STFT) on a fixture written in the real
layout: decoded and augmented records per second for each grain worker count. ``seeds``
runs S seeds of ``--seeds_config`` as one seed-batched run and as single runs one after
another in this process, for each S of ``--seed_counts`` (``launch/bench_seeds.py``).

Prints one JSON line per measurement: compile time (first call) separately from the
steady-state time (median of --repeats calls), so figures are comparable across machines.
"""

import functools
import json
import statistics
import time

from absl import app, flags
import jax
import numpy as np

from rlmba_jax import parallel, policy, selection
from rlmba_jax.data import load_dataset
from rlmba_jax.experiment.config import default_config
from rlmba_jax.experiment.logs import configure_logging
from rlmba_jax.models import build_model
from rlmba_jax.train import Trainer, make_optimizer


_WHICH = flags.DEFINE_enum(
    "which", "mfeat_round",
    ["mfeat_round", "badge", "bmmal", "rlmba_select", "select", "scaling", "round",
     "strategies", "pipeline", "av_train", "av_infer", "it_train", "episodes", "seeds"],
    "Workload.")
_BATCH = flags.DEFINE_integer("batch", 32, "av_train / it_train: batch size.")
_INFER_BATCH = flags.DEFINE_integer("infer_batch", 256, "av_infer: batch size.")
_AMP = flags.DEFINE_bool("amp", False, "av_* / it_train: bfloat16 computation (f32 params).")
_WARMUP = flags.DEFINE_integer("warmup", 5, "av_* / it_train: untimed steps after compiling.")
_STEPS = flags.DEFINE_integer("steps", 15, "av_* / it_train: timed steps.")
_FILTERS = flags.DEFINE_integer("encoder_filters", 64,
                                "av_* / it_train: first-stage width (64 = the real networks; "
                                "smaller for CPU smoke runs).")
_WORKERS = flags.DEFINE_list("workers_list", ["0", "2"], "pipeline: grain worker counts.")
_RECORDS = flags.DEFINE_integer("records", 1024, "pipeline: records read per measurement.")
_DATASETS = flags.DEFINE_list("datasets", ["upmc_food101", "kinetics_sounds"],
                              "pipeline: data sets.")
_LABELS = flags.DEFINE_integer("labels", 300, "Labelled examples the model trains on.")
_REPEATS = flags.DEFINE_integer("repeats", 3, "Timed calls after the first (compiling) one.")
_STRATEGY = flags.DEFINE_string("strategy", "entropy", "Selection strategy to time.")
_BADGE_N = flags.DEFINE_integer("badge_n", 15000,
                                "badge / bmmal / rlmba_select / select: pool size N.")
_BADGE_D = flags.DEFINE_integer("badge_d", 1024, "... fused feature width D.")
_BADGE_C = flags.DEFINE_integer("badge_c", 31, "... classes C.")
_BADGE_B = flags.DEFINE_integer("badge_b", 1000, "... picks b.")
_ROUND_MODEL = flags.DEFINE_enum(
    "round_model", "features", ["features", "av"],
    "round: 'features' = two modalities of D/2 precomputed features (MLP encoders); 'av' = "
    "the Kinetics-Sounds networks on 5x112x112 frames + a 257x501 spectrogram.")
_EPOCHS = flags.DEFINE_integer("epochs", 10, "round: training epochs.")
_EVAL_ROWS = flags.DEFINE_integer("eval_rows", 1000, "round: validation and test rows each.")
_POOL_SIZES = flags.DEFINE_list("pool_sizes", ["15000", "50000", "200000"],
                                "strategies: pool sizes N.")
_CLASSES = flags.DEFINE_list("classes", ["31", "309"], "strategies: class counts C.")
_FEATURES = flags.DEFINE_integer("features", 1024, "strategies: fused feature width D.")
_PICKS = flags.DEFINE_integer("picks", 1000, "strategies: picks b.")
_LABELLED = flags.DEFINE_integer("labelled", 1000, "strategies: labelled examples.")
_EPISODE_BATCHES = flags.DEFINE_list("episode_batches", ["1", "16"],
                                     "episodes: episodes per update (vmapped) to time.")
_SEED_COUNTS = flags.DEFINE_list("seed_counts", ["1", "4", "16", "64"],
                                  "seeds: seeds per batched run S.")
_SEEDS_CONFIG = flags.DEFINE_string("seeds_config", "mfeat:paper",
                                    "seeds: the config (a packaged name or a file).")
_VMAP_WIDTH = flags.DEFINE_integer("vmap_width", None, "seeds: seeds vectorised together "
                                   "(default: 1 on a CPU, all on a GPU or TPU).")
_SINGLE_RUNS = flags.DEFINE_integer("single_runs", 8, "seeds: single runs timed (their mean "
                                    "times S is the singles' time; 0: all S).")
_SEEDS_OVERRIDES = flags.DEFINE_list("seeds_overrides", [],
                                     "seeds: config overrides key=value (e.g. "
                                     "data.manual_dir=../shared/data/fsdd).")
_STRATEGIES = flags.DEFINE_list(
    "strategies", ["random", "entropy", "margin", "least_confidence", "bald", "coreset",
                   "kmeans", "badge", "bmmal", "deepfool", "gcnal", "rlmba"],
    "strategies: which to time.")


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


def _device():
  return str(jax.devices()[0].device_kind)


def badge(n: int, d: int, c: int, picks: int, repeats: int):
  """BADGE selection on synthetic fused features and probabilities (factorised)."""
  key_h, key_p = jax.random.split(jax.random.key(0))
  h = jax.random.normal(key_h, (n, d))
  probs = jax.nn.softmax(jax.random.normal(key_p, (n, c)), axis=-1)
  available = jax.numpy.ones(n, bool)

  @jax.jit
  def select(key, h, probs):
    return selection.gradient_embedding_kmeanspp(
        key, selection.pseudo_label_residual(probs), [h], available, picks)

  jax.block_until_ready((h, probs))
  first, steady = _timed(lambda: select(jax.random.key(1), h, probs), repeats)
  yield dict(workload="badge", n=n, d=d, c=c, picks=picks, select_s=round(steady, 4),
             compile_and_first_s=round(first, 4), factorised=True,
             materialised_emb_gb=round(n * c * d * 4 / 1e9, 3), device=_device(),
             jax=jax.__version__)


def _last_round_record(names):
  """A stand-in for the previous round's metrics (the RL-MBA policy's round state)."""
  return {"val_top1": 0.5, "val_nll": 1.0, "val_ece": 0.1,
          "top1_gap": {m: 0.0 for m in names}, "train_loss_curve": [1.0, 0.5],
          "train_grad_norm": 1.0}


def _rlmba_select(view, picks):
  """RL-MBA's full selection (candidate scoring, policy, Plackett-Luce draw) as a thunk."""
  options = default_config().al.rlmba.to_dict()
  agent = policy.RLMBAAgent(options, view.names, picks, view.labelled.shape[0])
  state = agent.init(jax.random.key(0))
  record = _last_round_record(view.names)
  return lambda: agent.select(state, jax.random.key(1), jax.random.key(2), view, record,
                              0.1)[0]


def _strategy_thunk(name, view, picks):
  if name == "rlmba":
    return _rlmba_select(view, picks)
  select = jax.jit(selection.get_strategy(name), static_argnums=2)
  return functools.partial(select, jax.random.key(1), view, picks)


_CLASS_FREE = ("random", "coreset", "kmeans", "gcnal")


def _per_item(nbytes: int, n: int) -> float:
  return round(nbytes / n, 1)


def select_once(name: str, n: int, d: int, c: int, picks: int, labelled: int, repeats: int,
                workload: str = "select"):
  """One strategy on a synthetic pool holding only the fields it needs: steady seconds,
  compile, and memory per pool item (the pool view's arrays; XLA's working memory)."""
  view = jax.block_until_ready(selection.synthetic_pool(
      n, d, c, labelled, needs=selection.strategy_needs(name)))
  first, steady = _timed(_strategy_thunk(name, view, picks), repeats)
  if name == "rlmba":  # the candidate scoring holds the pool-sized work; the policy sees K
    fn = jax.jit(lambda k, v: selection.score_candidates(k, v, picks).positions)
    lowered = fn.lower(jax.random.key(1), view)
  else:
    fn = jax.jit(selection.get_strategy(name), static_argnums=2)
    lowered = fn.lower(jax.random.key(1), view, picks)
  compiled = lowered.compile()
  memory = compiled.memory_analysis()
  extra = {}
  if name == "rlmba" and workload == "rlmba_select":
    extra["candidates_s"] = round(_timed(lambda: compiled(jax.random.key(1), view),
                                         repeats)[1], 4)
  row = dict(workload=workload, strategy=name, n=n, d=d, c=c, picks=picks,
             labelled=labelled, select_s=round(steady, 4),
             compile_and_first_s=round(first, 4), device=_device(),
             num_devices=jax.device_count(), jax=jax.__version__,
             view_bytes_per_item=_per_item(sum(x.nbytes for x in jax.tree.leaves(view)), n),
             **extra)
  if memory is not None:
    row["xla_temp_bytes_per_item"] = _per_item(memory.temp_size_in_bytes, n)
  peak = _peak_memory_gb()
  if peak is not None:
    row["peak_mem_gb"] = round(peak, 3)
  return row


def scaling(names, pool_sizes, d, c, picks, labelled, repeats):
  """Selection time and memory against pool size; each (strategy, N) in a fresh process so
  device memory and the compile cache start empty. Ends with a fit per strategy:
  ``seconds = a + b N`` and the growth exponent between the smallest and largest N."""
  import subprocess  # pylint: disable=g-import-not-at-top
  import sys  # pylint: disable=g-import-not-at-top
  for name in names:
    rows = []
    for n in pool_sizes:
      cmd = [sys.executable, __file__, "--which=select", f"--strategy={name}",
             f"--badge_n={n}", f"--badge_d={d}", f"--badge_c={c}", f"--badge_b={picks}",
             f"--labelled={labelled}", f"--repeats={repeats}"]
      proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
      lines = [l for l in proc.stdout.splitlines() if l.startswith("{")]
      if proc.returncode or not lines:
        row = dict(workload="scaling", strategy=name, n=n, failed=proc.stderr[-500:])
      else:
        row = dict(json.loads(lines[-1]), workload="scaling")
        rows.append(row)
      print(json.dumps(row), flush=True)
    if len(rows) >= 2:
      ns = np.array([r["n"] for r in rows], float)
      ts = np.array([r["select_s"] for r in rows])
      slope, intercept = np.polyfit(ns, ts, 1)
      exponent = np.log(ts[-1] / ts[0]) / np.log(ns[-1] / ns[0])
      yield dict(workload="scaling_fit", strategy=name, n=[int(x) for x in ns],
                 seconds_per_million=round(slope * 1e6, 3), intercept_s=round(intercept, 4),
                 growth_exponent=round(float(exponent), 3), device=rows[-1]["device"])


def strategies(names, pool_sizes, classes, d, picks, labelled, repeats):
  for n in pool_sizes:
    for c in classes:
      view = jax.block_until_ready(selection.synthetic_pool(n, d, c, labelled))
      for name in names:
        if c != classes[0] and name in _CLASS_FREE:
          continue  # these never look at the classes
        first, steady = _timed(_strategy_thunk(name, view, picks), repeats)
        yield dict(workload="select", strategy=name, n=n, d=d, c=c, picks=picks,
                   labelled=labelled, select_s=round(steady, 4),
                   compile_and_first_s=round(first, 4), device=_device())


def pipeline(datasets, workers_list, records):
  """Decoded + augmented records per second through grain, paper-sized inputs."""
  import tempfile  # pylint: disable=g-import-not-at-top

  from rlmba_jax.data import fixtures  # pylint: disable=g-import-not-at-top
  from rlmba_jax.data.streaming import index_batches  # pylint: disable=g-import-not-at-top
  from rlmba_jax.paper_configs import paper_config  # pylint: disable=g-import-not-at-top
  root = tempfile.mkdtemp(prefix="rlmba_pipeline_")
  for name in datasets:
    manual = f"{root}/{name}"
    if name == "upmc_food101":
      fixtures.write_food101(manual, per_class_train=32, per_class_test=2,
                             image_sides=(384, 512))
    else:
      fixtures.write_av_clips(manual, name, per_class_train=16, per_class_test=1,
                              frame_size=(256, 340))
    config = paper_config(name)
    config.data.manual_dir, config.data.data_dir = manual, f"{root}/tfds"
    config.data.val_size = 2
    t0 = time.perf_counter()
    data = load_dataset(config.data)
    build = time.perf_counter() - t0
    rows = data.pool
    positions = np.resize(np.arange(len(data.pool)), records)
    for workers in workers_list:
      batches = index_batches(rows, positions, batch_size=32, seed=0,
                              record_transform=data.train_transform, augment=True,
                              worker_count=workers)
      t0 = time.perf_counter()
      first = next(batches)
      startup = time.perf_counter() - t0
      count = int(first["_mask"].sum())
      t0 = time.perf_counter()
      for batch in batches:
        count += int(batch["_mask"].sum())
      steady = time.perf_counter() - t0
      shapes = {k: list(v.shape[1:]) for k, v in first.items() if not k.startswith("_")}
      # grain's in-process iterator also prefetches with threads, so the first batch can
      # hold most of the work: the rate is over the whole pass.
      print(json.dumps({"which": "pipeline", "data": name, "workers": workers,
                        "records": count, "first_batch_s": round(startup, 3),
                        "records_per_s": round(count / (startup + steady), 1),
                        "build_s": round(build, 2), "shapes": shapes}), flush=True)


def _paper_model(workload: str, classes: int, amp: bool, filters: int):
  """The reference's networks (torch_reference.py) as our classifier, with example inputs."""
  from rlmba_jax.data.specs import ModalitySpec  # pylint: disable=g-import-not-at-top
  config = default_config()
  config.model.dropout = 0.0
  config.model.encoder_filters = filters
  config.model.dtype = "bfloat16" if amp else "float32"
  if workload.startswith("av"):
    specs = (ModalitySpec("video", (5, 112, 112, 3), "clip"),
             ModalitySpec("audio", (257, 501, 1), "image"))
    config.model.encoders = "video=r2plus1d_18,audio=resnet18"
  else:
    specs = (ModalitySpec("image", (224, 224, 3), "image"),
             ModalitySpec("text", (100,), "tokens"))
    config.model.encoders = "image=resnet101,text=bert"
  return config, build_model(config.model, specs, classes), specs


def _synthetic_inputs(specs, batch: int, seed: int = 0):
  rng = np.random.default_rng(seed)
  out = {}
  for spec in specs:
    if spec.kind == "tokens":
      out[spec.name] = rng.integers(1, 30522, (batch,) + spec.shape).astype(np.int32)
    else:
      out[spec.name] = rng.standard_normal((batch,) + spec.shape).astype(np.float32)
  return out


def _peak_memory_gb():
  stats = jax.devices()[0].memory_stats() or {}
  peak = stats.get("peak_bytes_in_use")
  return None if peak is None else peak / 1e9


def paper_model_workload(workload: str, classes: int, batch: int, infer_batch: int,
                         amp: bool, warmup: int, steps: int, filters: int):
  """``av_train`` / ``av_infer`` / ``it_train`` with torch_reference.py's fields."""
  import optax  # pylint: disable=g-import-not-at-top

  from rlmba_jax.train.losses import multimodal_cross_entropy  # pylint: disable=g-import-not-at-top
  config, model, specs = _paper_model(workload, classes, amp, filters)
  mesh = parallel.make_mesh(0)
  b = infer_batch if workload == "av_infer" else batch
  optimizer = (optax.adam(1e-3) if workload == "av_train"
               else optax.adamw(1e-4, weight_decay=0.01))
  trainer = Trainer(model, optimizer, batch_size=b, num_epochs=1, eval_batch_size=b,
                    mesh=mesh, loss_fn=multimodal_cross_entropy)
  sharding = parallel.data_sharding(mesh)
  inputs = jax.device_put(_synthetic_inputs(specs, b), sharding)
  labels = jax.device_put(np.random.default_rng(1).integers(0, classes, b).astype(np.int32),
                          sharding)
  weights = jax.device_put(np.ones(b, np.float32), sharding)
  state = trainer.init(jax.random.key(0), jax.tree.map(lambda x: x[:1], inputs))
  if workload == "av_infer":
    apply = jax.jit(trainer.apply_eval)
    run = lambda: apply(state.params, state.model_state, inputs, None)["fused_probs"]
  else:
    step = jax.jit(trainer._step, donate_argnums=(0,))  # pylint: disable=protected-access
    holder = {"state": state}

    def run():
      holder["state"], loss, _ = step(holder["state"], inputs, labels, weights,
                                      jax.random.key(2), jax.numpy.int32(0), None, None)
      return loss
  t0 = time.perf_counter()
  jax.block_until_ready(run())
  compile_s = time.perf_counter() - t0
  for _ in range(warmup):
    jax.block_until_ready(run())
  t0 = time.perf_counter()
  out = None
  for _ in range(steps):
    out = run()
  jax.block_until_ready(out)
  dt = (time.perf_counter() - t0) / max(steps, 1)
  row = dict(workload=workload, batch=b, amp_bf16=amp, compiled=True, step_s=dt,
             samples_per_s=b / dt, compile_s=round(compile_s, 2),
             peak_mem_gb=_peak_memory_gb(), device=_device(),
             encoder_filters=filters)
  return [row]


def _round_config(strategy: str, epochs: int, model_kind: str, amp: bool, filters: int):
  from rlmba_jax.data.registry import modality_specs  # pylint: disable=g-import-not-at-top
  from rlmba_jax.data.specs import ModalitySpec  # pylint: disable=g-import-not-at-top
  from rlmba_jax.paper_configs import paper_config  # pylint: disable=g-import-not-at-top
  config = default_config()
  config.al.strategy = strategy
  config.train.num_epochs = epochs
  config.model.dtype = "bfloat16" if amp else "float32"
  if strategy == "rlmba":
    config.model.head, config.model.fusion = "evidential", "evidence"
    config.al.rlmba.reward = "absolute"  # no reference runs in a benchmark
  if model_kind == "av":
    config.model.encoder_filters = filters
    config.model.encoders = "video=r2plus1d_18,audio=resnet18"
    # The shapes the Kinetics-Sounds pipeline makes (5 x 112 x 112 frames, 257 x 504 STFT).
    specs = modality_specs(paper_config("kinetics_sounds").data)
  else:
    half = _FEATURES.value // 2
    specs = (ModalitySpec("a", (half,)), ModalitySpec("b", (half,)))
    config.model.width = half  # fused features D wide, as in the selection workloads
  return config, specs


def round_workload(n: int, labels: int, picks: int, epochs: int, strategy: str,
                   model_kind: str, classes: int, eval_rows: int, amp: bool, filters: int):
  """One whole active-learning round at pool size ``n``, through the loop's own steps
  (``experiment.rounds``): pool inference + selection, retraining from scratch on
  ``labels + picks`` labels, and the evaluation (validation, test, modality analysis, pool
  difficulty for evidential models). The round runs twice; the second is the steady state,
  the first minus it is compiling."""
  import types  # pylint: disable=g-import-not-at-top

  from rlmba_jax.experiment import round_env, rounds, start  # pylint: disable=g-import-not-at-top
  config, specs = _round_config(strategy, epochs, model_kind, amp, filters)
  config.al.initial_size, config.al.budget_per_round = labels, picks
  names = tuple(m.name for m in specs)
  mesh = parallel.make_mesh(0)
  model = build_model(config.model, specs, classes)
  trainer = start.make_trainer(config, model, types.SimpleNamespace(streamed=False), mesh)
  rng = np.random.default_rng(0)

  def split(rows):
    inputs = parallel.put_rows(_synthetic_inputs(specs, rows), mesh)
    return inputs, parallel.put_rows(rng.integers(0, classes, rows).astype(np.int32), mesh)

  pool_inputs, pool_labels = split(n)
  evals = {k: split(eval_rows) for k in ("val", "test")}
  env = round_env.make_env(config, model, trainer, names, classes, n, pool_inputs, pool_labels,
                        evals)
  mask = np.zeros(n, bool)
  mask[rng.permutation(n)[:labels]] = True
  start = round_env.initial_state(env, mesh)
  start = start._replace(labelled=parallel.put_replicated(mask, mesh))
  history = [_last_round_record(names)]

  def one_round(state):
    times = {}
    picked = rounds.select_round(env, state, 1, [history], None)
    times["select_s"] = picked.seconds
    trained, log, times["train_s"] = rounds.train_round(env, state, 1, picked.positions)
    evaluation = rounds.evaluate_round(env, trained, 1)
    times["eval_s"] = time.time() - evaluation.started
    times["round_s"] = sum(times.values())
    return trained._replace(labelled=state.labelled), times, int(log.num_steps)

  state, first, steps = one_round(start)
  _, steady, _ = one_round(state)
  row = dict(workload="round", strategy=strategy, model=model_kind, n=n, labels=labels,
             picks=picks, epochs=epochs, train_steps=steps, amp_bf16=amp, classes=classes,
             eval_rows=eval_rows, feature_width=sum(
                 int(np.prod(f.shape[1:])) for f in jax.tree.leaves(
                     jax.eval_shape(lambda: model.apply(
                         {"params": state.train.params, **state.train.model_state},
                         env.example)["features"]))),
             device=_device(), num_devices=jax.device_count(),
             compile_s=round(first["round_s"] - steady["round_s"], 3),
             **{k: round(v, 4) for k, v in steady.items()})
  if model_kind == "av":
    row["encoder_filters"] = filters
  peak = _peak_memory_gb()
  if peak is not None:
    row["peak_mem_gb"] = round(peak, 3)
  return [row]


def episodes(batches, repeats):
  """Episodes per second of policy pretraining at each batch size (module docstring)."""
  import optax  # pylint: disable=g-import-not-at-top

  from rlmba_jax.policy import episodes as episodes_lib  # pylint: disable=g-import-not-at-top
  from rlmba_jax.policy import pretraining
  from rlmba_jax.studies import policy_pretraining  # pylint: disable=g-import-not-at-top
  rng = np.random.default_rng(0)
  widths, n, classes = (76, 216, 64, 240, 47, 6), 1400, 10
  labels = rng.integers(0, classes, n)
  source = episodes_lib.EpisodeSource(
      tuple(jax.numpy.asarray(rng.normal(size=(classes, d))[labels]
                              + rng.normal(size=(n, d)), jax.numpy.float32) for d in widths),
      jax.numpy.asarray(labels, jax.numpy.int32))
  names = tuple(f"view{i}" for i in range(len(widths)))
  config = default_config()
  # mfeat's tuned RL-MBA values (configs/mfeat.py:tuned)
  config.al.rlmba.kappa, config.al.rlmba.beta = 10, 0.25
  config.al.rlmba.diversity, config.al.rlmba.prior_temperature = "labelled", 1.0
  spec = policy_pretraining.episode_spec(config, names, classes, policy_pretraining.default_options())
  network = pretraining.make_policy(config.al.rlmba.hidden, config.al.rlmba.prior_temperature)
  optimizer = optax.adam(1e-3)
  state = pretraining.pretrain_init(jax.random.key(0), network, optimizer)
  step = pretraining.jitted_step(spec, network, optimizer, 0.01)
  rows = []
  for batch in batches:
    keys = pretraining.episode_keys(0, 0, batch)
    t0 = time.perf_counter()
    compiled = step.lower(state, source, keys).compile()
    compile_s = time.perf_counter() - t0
    memory = compiled.memory_analysis()
    _, seconds = _timed(lambda: compiled(state, source, keys), repeats)
    row = dict(workload="episodes", batch=batch, device=_device(),
               num_devices=jax.device_count(), compile_s=round(compile_s, 3),
               update_s=round(seconds, 4), episodes_per_s=round(batch / seconds, 2),
               rounds_max=spec.rounds[1], pool_size=spec.pool_size,
               train_steps=spec.train_steps)
    if memory is not None:
      row["temp_mb_per_episode"] = round(memory.temp_size_in_bytes / batch / 2**20, 3)
    rows.append(row)
  return rows


def main(argv):
  del argv
  configure_logging()
  if _WHICH.value == "mfeat_round":
    rows = mfeat_round(_LABELS.value, _REPEATS.value, _STRATEGY.value)
  elif _WHICH.value in ("av_train", "av_infer", "it_train"):
    rows = paper_model_workload(_WHICH.value, int(_CLASSES.value[0]), _BATCH.value,
                                _INFER_BATCH.value, _AMP.value, _WARMUP.value, _STEPS.value,
                                _FILTERS.value)
  elif _WHICH.value == "pipeline":
    pipeline(_DATASETS.value, [int(w) for w in _WORKERS.value], _RECORDS.value)
    rows = []
  elif _WHICH.value == "badge":
    rows = badge(_BADGE_N.value, _BADGE_D.value, _BADGE_C.value, _BADGE_B.value,
                 _REPEATS.value)
  elif _WHICH.value in ("bmmal", "rlmba_select", "select"):
    name = {"bmmal": "bmmal", "rlmba_select": "rlmba"}.get(_WHICH.value, _STRATEGY.value)
    rows = [select_once(name, _BADGE_N.value, _BADGE_D.value, _BADGE_C.value,
                        _BADGE_B.value, _LABELLED.value, _REPEATS.value, _WHICH.value)]
  elif _WHICH.value == "scaling":
    rows = scaling(_STRATEGIES.value, [int(n) for n in _POOL_SIZES.value], _BADGE_D.value,
                   _BADGE_C.value, _BADGE_B.value, _LABELLED.value, _REPEATS.value)
  elif _WHICH.value == "round":
    rows = [round_workload(int(n), _LABELS.value, _PICKS.value, _EPOCHS.value,
                           _STRATEGY.value, _ROUND_MODEL.value, int(_CLASSES.value[0]),
                           _EVAL_ROWS.value, _AMP.value, _FILTERS.value)[0]
            for n in _POOL_SIZES.value]
  elif _WHICH.value == "episodes":
    rows = episodes([int(b) for b in _EPISODE_BATCHES.value], _REPEATS.value)
  elif _WHICH.value == "seeds":
    import bench_seeds  # pylint: disable=g-import-not-at-top  (launch/, beside this file)
    rows = bench_seeds.seeds_workload(
        _SEEDS_CONFIG.value, _STRATEGY.value, [int(s) for s in _SEED_COUNTS.value],
        _VMAP_WIDTH.value, _SINGLE_RUNS.value,
        dict(kv.split("=", 1) for kv in _SEEDS_OVERRIDES.value))
  else:
    rows = strategies(_STRATEGIES.value, [int(n) for n in _POOL_SIZES.value],
                      [int(c) for c in _CLASSES.value], _FEATURES.value, _PICKS.value,
                      _LABELLED.value, _REPEATS.value)
  for row in rows:
    print(json.dumps(row), flush=True)


if __name__ == "__main__":
  app.run(main)
