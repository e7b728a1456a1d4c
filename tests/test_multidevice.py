"""The same run on 1 and on 8 (forced CPU) devices gives the same result."""

import json
import textwrap

import pytest

from conftest import run_python, xla_flags

pytestmark = pytest.mark.slow  # eight forced CPU devices in subprocesses

DRIVER = textwrap.dedent("""
    import json, os, sys
    sys.path.insert(0, "tests")
    import jax
    assert jax.device_count() == 8, jax.devices()
    from conftest import make_tiny_config
    from rlmba_jax.experiment import run
    from rlmba_jax import parallel
    from rlmba_jax.train import Trainer
    import optax
    from rlmba_jax.models import MultimodalClassifier
    from rlmba_jax.data.specs import ModalitySpec
    out = {}
    for n in (1, 8):
      workdir = os.path.join(sys.argv[1], str(n))
      # three of the six views (two vectors and the pix image): half the programs to
      # compile twice over, the same sharding paths
      run(make_tiny_config(**{"al.strategy": "entropy", "num_devices": n,
                              "data.modalities": "fou,kar,pix"}), workdir)
      out[n] = {"ledger": open(os.path.join(workdir, "ledger.jsonl")).read(),
                "rounds": [json.loads(l) for l in open(os.path.join(workdir, "rounds.jsonl"))]}
    # Four seeds on a (seeds=4, data=2) mesh: each device group holds one seed's state.
    batched = os.path.join(sys.argv[1], "seeds")
    summary = run(make_tiny_config(**{"al.strategy": "entropy", "num_devices": 8,
                                      "data.modalities": "fou,kar,pix"}), batched,
                  seeds="0-3")
    seed0 = os.path.join(batched, "seed_0000")
    out["seeds"] = {"mesh": summary["mesh"],
                    "ledger": open(os.path.join(seed0, "ledger.jsonl")).read(),
                    "rounds": [json.loads(l) for l in open(os.path.join(seed0,
                                                                        "rounds.jsonl"))]}
    try:
      Trainer(MultimodalClassifier((ModalitySpec("x", (3,)),), 2), optax.adam(1e-3),
              batch_size=36, num_epochs=1, eval_batch_size=64, mesh=parallel.make_mesh(8))
    except ValueError as e:
      out["error"] = str(e)
    print("RESULT" + json.dumps(out))
""")


@pytest.mark.slow
def test_one_and_eight_devices_select_and_score_the_same(tmp_path):
  """... and a seed-batched run with its seeds split over the devices."""
  proc = run_python(f"import sys; sys.argv = ['x', {str(tmp_path)!r}]\n" + DRIVER,
                    env={"XLA_FLAGS": xla_flags("--xla_force_host_platform_device_count=8")})
  assert proc.returncode == 0, proc.stderr[-3000:]
  out = json.loads(proc.stdout.split("RESULT", 1)[1])
  one, eight = out["1"], out["8"]
  assert one["ledger"] == eight["ledger"]
  for a, b in zip(one["rounds"], eight["rounds"]):
    for key in ("test_top1", "val_top1", "test_nll", "train_loss"):
      assert abs(a[key] - b[key]) < 1e-4, (key, a[key], b[key])
  assert "batch_size=36 is not a multiple of the 8 devices" in out["error"]
  seeds = out["seeds"]
  assert seeds["mesh"] == {"seeds": 4, "data": 2}
  assert seeds["ledger"] == one["ledger"]  # seed 0 of the batch, split over devices
  for a, b in zip(one["rounds"], seeds["rounds"]):
    for key in ("test_top1", "val_top1", "test_nll", "train_loss"):
      assert abs(a[key] - b[key]) < 1e-4, (key, a[key], b[key])


SELECTION_DRIVER = textwrap.dedent("""
    import json, re
    import jax
    assert jax.device_count() == 8, jax.devices()
    from rlmba_jax import parallel, policy, selection
    from rlmba_jax.experiment.config import default_config
    n, d, c, b = 1024, 48, 7, 40
    view = selection.synthetic_pool(n, d, c, 100)
    sharded = selection.shard_pool(view, parallel.make_mesh(8))
    assert sharded.features["a"].sharding.spec == jax.sharding.PartitionSpec("data", None)

    def rlmba_policy(v):
      agent = policy.RLMBAAgent(default_config().al.rlmba.to_dict(), ("a", "b"), b, n)
      record = {"val_top1": 0.5, "val_nll": 1.0, "val_ece": 0.1,
                "top1_gap": {"a": 0.0, "b": 0.0}, "train_loss_curve": [1.0, 0.5],
                "train_grad_norm": 1.0}
      return agent.select(agent.init(jax.random.key(0)), jax.random.key(1),
                          jax.random.key(2), v, record, 0.1)[0]

    out = {"same": {}, "gathers": {}}
    for name in selection.available_strategies():
      fn = jax.jit(selection.get_strategy(name), static_argnums=2)
      one, eight = fn(jax.random.key(3), view, b), fn(jax.random.key(3), sharded, b)
      one, eight = jax.device_get(one).tolist(), jax.device_get(eight).tolist()
      out["same"][name] = one == eight
      out.setdefault("shared", {})[name] = len(set(one) & set(eight)) / b
      if name in ("coreset", "kmeans", "badge", "bmmal", "rlmba", "gcnal"):
        text = fn.lower(jax.random.key(3), sharded, b).compile().as_text()
        # an all-gather of a whole [N, width] block would copy the pool to every device
        out["gathers"][name] = [l.strip()[:120] for l in text.splitlines()
                                if re.search(rf"= f32\\[{n},\\d+\\]\\S* all-gather", l)]
    out["same"]["rlmba_policy"] = (jax.device_get(rlmba_policy(view)).tolist()
                                   == jax.device_get(rlmba_policy(sharded)).tolist())
    # RL-MBA with the labelled-distance diversity, and the selection diagnostics
    import functools
    from rlmba_jax.selection.diagnostics import selection_diagnostics
    labelled_rlmba = jax.jit(functools.partial(selection.get_strategy("rlmba"),
                                               diversity="labelled"), static_argnums=2)
    picks = labelled_rlmba(jax.random.key(3), view, b)
    # The same examples; their order may differ where q ties to float precision (the split
    # pool's distances differ in the last bits), which changes nothing that is labelled.
    out["same"]["rlmba_labelled"] = (sorted(jax.device_get(picks).tolist()) == sorted(
        jax.device_get(labelled_rlmba(jax.random.key(3), sharded, b)).tolist()))
    labels = jax.numpy.argmax(view.probs, -1)
    diagnose = jax.jit(lambda v: selection_diagnostics(jax.random.key(3), v, picks, labels,
                                                       num_classes=c))
    d1, d8 = jax.device_get(diagnose(view)), jax.device_get(diagnose(sharded))
    out["same"]["diagnostics"] = all(
        d1[k].tolist() == d8[k].tolist()
        for k in ("class_counts", "overlap_margin", "overlap_badge", "far_from_labelled"))
    out["strategies"] = list(selection.available_strategies())
    print("RESULT" + json.dumps(out))
""")


@pytest.mark.slow
def test_every_strategy_selects_the_same_on_a_pool_split_over_eight_devices():
  proc = run_python(SELECTION_DRIVER,
                    env={"XLA_FLAGS": xla_flags("--xla_force_host_platform_device_count=8")})
  assert proc.returncode == 0, proc.stderr[-3000:]
  out = json.loads(proc.stdout.split("RESULT", 1)[1])
  # every registered strategy, then the policy, labelled diversity and diagnostics
  assert list(out["same"]) == out["strategies"] + ["rlmba_policy", "rlmba_labelled",
                                                   "diagnostics"], list(out["same"])
  assert len(out["strategies"]) >= 14, out["strategies"]
  # GCN-AL trains a GCN for 200 Adam steps on sums over the whole pool, which a split pool
  # adds in another order: its picks agree in the optimised build (RLMBA_TEST_XLA_OPTIMIZE=1),
  # but at the suite's -O0 only 35 of 40 do, and an XLA upgrade may move a few. Most must
  # agree; everything else exactly.
  assert all(v for k, v in out["same"].items() if k != "gcnal"), out["same"]
  assert out["shared"]["gcnal"] >= 0.75, out["shared"]
  # The pool stays split: no device gathers a whole [N, D] block of features.
  assert not any(out["gathers"].values()), out["gathers"]
