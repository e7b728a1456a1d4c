import pytest

from rlmba_jax.experiment.config import (ConfigError, check_budget, config_differences,
                                         default_config, flat_dict, validate_config)


def test_default_and_file_configs_validate():
  import importlib.util, os
  validate_config(default_config())
  path = os.path.join(os.path.dirname(__file__), "..", "configs", "mfeat.py")
  spec = importlib.util.spec_from_file_location("mfeat_cfg", path)
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  validate_config(module.get_config())
  validate_config(module.get_config("runlocal"))
  with pytest.raises(ValueError, match="runlocal"):
    module.get_config("bogus")
  path = os.path.join(os.path.dirname(__file__), "..", "configs", "mfeat_full.py")
  spec = importlib.util.spec_from_file_location("mfeat_full_cfg", path)
  full = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(full)
  for fusion in ("concat", "tmc", "evidence"):
    config = full.get_config(fusion)
    validate_config(config)
    check_budget(config, 1400)
    assert config.al.initial_size == 1400 and config.al.rounds == 0
  with pytest.raises(ValueError, match="concat, tmc or evidence"):
    full.get_config("sum")


@pytest.mark.parametrize("key,value,message", [
    ("al.strategy", "nope", "is not a strategy"),
    ("al.initial_size", 0, "must be positive"),
    ("al.rounds", -1, "must not be negative"),
    ("train.num_epochs", 0, "must be positive"),
    ("model.dropout", 1.0, r"must be in \[0, 1\)"),
    ("data.source", "s3", "use 'auto', 'tfds' or 'files'"),
    ("model.fusion", "tmc", "needs model.head='evidential'"),
    ("model.fusion", "sum", "choose from"),
    ("model.evidence_activation", "tanh", "use 'softplus', 'relu' or 'exp'"),
    ("data.name", "imagenet", "is not a data set; choose from uci_mfeat"),
    ("train.learning_rate", float("nan"), "learning_rate=nan is not a finite number"),
    ("al.rlmba.beta", float("inf"), "is not a finite number"),
    ("train.annealing_epochs", -1.0, "must not be negative"),
    ("al.rlmba.reward", "best", "use 'relative', 'incremental' or 'absolute'"),
    ("modality.floor", 0.2, "must be in"),
    ("modality.contribution", "loo", "'top1_gap' or 'shapley'"),
    ("al.bald.passes", 1, "at least 2 dropout passes"),
    ("modality.favour", "both", "'stronger' or 'weaker'"),
    ("al.gcnal.method", "gcn", "'coregcn' or 'uncertaingcn'"),
    ("al.gcnal.dropout", 1.5, r"must be in \[0, 1\)"),
    ("al.deepfool.max_iterations", 0, "must be positive"),
    ("al.kmeans.iterations", -1, "must not be negative"),
])
def test_bad_values_are_named(key, value, message):
  config = default_config()
  *path, name = key.split(".")
  node = config
  for p in path:
    node = node[p]
  with config.unlocked():
    node[name] = value
  with pytest.raises(ConfigError, match=message):
    validate_config(config)


def test_the_default_config_is_locked_and_type_safe():
  config = default_config()
  with pytest.raises(AttributeError, match='Did you mean "strategy"'):
    config.al.strateg = "entropy"
  with pytest.raises(TypeError, match="cannot be casted"):
    config.al.rounds = "five"


def _config_file(name):
  import importlib.util, os
  path = os.path.join(os.path.dirname(__file__), "..", "configs", f"{name}.py")
  spec = importlib.util.spec_from_file_location(f"{name}_cfg", path)
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module


def test_config_arguments_combine():
  mfeat = _config_file("mfeat")
  smoke = mfeat.get_config("paper,runlocal")
  validate_config(smoke)
  assert smoke.model.fused_head == "softmax" and smoke.al.diagnostics  # the protocol ...
  assert smoke.al.rounds == 2 and smoke.train.num_epochs == 5  # ... shrunk
  assert flat_dict(mfeat.get_config("runlocal,paper")) == flat_dict(smoke)
  assert flat_dict(mfeat.get_config("runlocal")) != flat_dict(smoke)
  with pytest.raises(ValueError, match="'curves' and 'paper' cannot be combined"):
    mfeat.get_config("curves,paper")
  food = _config_file("food101").get_config("rlmba,runlocal")
  assert food.al.strategy == "rlmba" and food.data.fixture and food.al.rounds == 1
  av = _config_file("av_digits").get_config("tuned,runlocal")
  assert av.model.fused_head == "softmax" and av.al.rounds == 2


def test_unknown_key_gets_a_suggestion():
  config = default_config()
  with config.unlocked():
    config.al.strateg = "entropy"
  with pytest.raises(ConfigError, match="did you mean config.al.strategy"):
    validate_config(config)


def test_budget_must_fit_the_pool():
  config = default_config()
  check_budget(config, 1400)
  config.al.rounds = 100
  with pytest.raises(ConfigError, match="needs 5050 labels .* pool holds 1400"):
    check_budget(config, 1400)


def _nested(flat):
  nested = {}
  for k, v in flat.items():
    *path, last = k.split(".")
    node = nested
    for p in path:
      node = node.setdefault(p, {})
    node[last] = v
  return nested


def test_differences_ignore_rounds_only():
  nested = _nested(flat_dict(default_config()))
  config = default_config()
  config.al.rounds = 9
  assert config_differences(nested, config) == []
  config.seed = 4
  assert config_differences(nested, config) == ["config.seed: workdir has 0, now 4"]


def test_options_added_later_at_their_defaults_do_not_block_a_resume():
  flat = flat_dict(default_config())
  older = _nested({k: v for k, v in flat.items() if not k.startswith("al.gcnal.")})
  config = default_config()
  assert config_differences(older, config) == []
  config.al.gcnal.epochs = 10
  assert config_differences(older, config) == [
      "config.al.gcnal.epochs: workdir has '<absent>', now 10"]


def test_bald_without_dropout_is_refused_and_options_reach_the_strategy():
  from rlmba_jax.experiment.config import strategy_options
  config = default_config()
  config.al.strategy = "bald"
  config.model.dropout = 0.0
  with pytest.raises(ConfigError, match="set a dropout rate"):
    validate_config(config)
  config.al.strategy = "gcnal"
  assert strategy_options(config)["method"] == "coregcn"
  config.al.strategy = "entropy"
  assert strategy_options(config) == {}


@pytest.mark.slow
@pytest.mark.parametrize("config_flag", [[], ["--config=configs/mfeat.py:curves"]])
def test_cli_reports_a_misspelt_override_in_one_line(tmp_path, config_flag):
  # Without --config the override is read when the flag is defined; with it, when flags
  # are parsed: both paths must give the one-line message.
  import subprocess, sys
  from conftest import REPO
  result = subprocess.run(
      [sys.executable, "-m", "rlmba_jax.main", f"--workdir={tmp_path}", *config_flag,
       "--config.al.stratgy=entropy"], cwd=REPO, capture_output=True, text=True, timeout=120)
  assert result.returncode == 2  # errors.EXIT_CODES: a bad config
  assert 'Did you mean "strategy"' in result.stderr and "Traceback" not in result.stderr
  assert not any(tmp_path.iterdir())  # nothing written
