"""The experiment configuration: defaults, validation and the resume-compatibility check.

``default_config()`` is the schema: every config file starts from it and overrides values.
It is locked and type-safe (ml_collections), so a misspelt key or a value of the wrong type
is refused where it is set; ``validate_config`` checks ranges and choices from one table
(``_schema``, which reuses the library's own lists of choices) and the rules between keys,
before any work is done. ``parse_arg`` reads combinable config arguments
(``configs/mfeat.py:paper,runlocal``).
"""

from __future__ import annotations

import difflib
import json
import math
import os
from typing import Any, Callable, NamedTuple, Sequence

import ml_collections

from rlmba_jax.data.builders import ON_ERROR
from rlmba_jax.data.loading import SOURCES
from rlmba_jax.data.registry import DATASETS
from rlmba_jax.data.specs import parse_assignments, parse_modalities
from rlmba_jax.fusion import EVIDENCE_ACTIVATIONS
from rlmba_jax.models.bert import POOLINGS
from rlmba_jax.models.classifier import DTYPES, check_head_and_fusion, encoder_names
from rlmba_jax.modality.weights import CONTRIBUTIONS, FAVOUR
from rlmba_jax.experiment.errors import ConfigError
from rlmba_jax.experiment.headroom import ORACLE, SOURCES as ORACLE_SOURCES
from rlmba_jax.experiment.oracle import ORACLES
from rlmba_jax.experiment.progress import PROGRESS
from rlmba_jax.experiment.stopping import WHEN as STOP_WHEN
from rlmba_jax.policy.agent import REWARDS
from rlmba_jax.policy.inputs import POLICY_INPUTS
from rlmba_jax.selection import available_strategies
from rlmba_jax.selection.gcn import GCN_METHODS
from rlmba_jax.selection.rlmba import DIVERSITIES
from rlmba_jax.train.trainer import OPTIMIZERS

# Keys that may differ when an existing workdir is continued (they change how far the run
# goes or where caches live, not what it computes).
RESUMABLE_KEYS = ("al.rounds", "data.data_dir", "eval.tensorboard", "eval.progress",
                  "al.stop_when", "al.stopping.kappa", "al.stopping.window",
                  "al.stopping.min_gain")
# Folders: stored resolved (``resolve_paths``); on resume the same folder written another
# way (relative, a symlink) is the same value.
PATH_KEYS = ("data.manual_dir",)


def _same_path(a, b) -> bool:
  return bool(a) and bool(b) and os.path.realpath(str(a)) == os.path.realpath(str(b))


def resolve_paths(config: ml_collections.ConfigDict) -> ml_collections.ConfigDict:
  """``config`` with its folders (``PATH_KEYS``) made absolute, so a workdir records where
  its data is whatever folder a later command (or the labelling page) starts from."""
  config = config.copy_and_resolve_references()
  if config.data.manual_dir and not os.path.isabs(config.data.manual_dir):
    config.data.manual_dir = os.path.abspath(config.data.manual_dir)
  return config


# Keys added with a default that computes something else than runs made before them did:
# a stored config without the key had this value (so such a run is continued, or loaded,
# as it was made, and a new default is never applied to it silently).
LEGACY_DEFAULTS = {"data.drop_pool_copies": False}


def default_config() -> ml_collections.ConfigDict:
  """Defaults for the embedded mfeat data set (2,000 digits, six views)."""
  c = ml_collections.ConfigDict()
  c.seed = 0
  c.num_devices = 0  # 0: every visible device

  c.data = ml_collections.ConfigDict()
  c.data.name = "uci_mfeat"
  # "tfds": the ArrayRecord copy via tfds.data_source + grain (the [data] extra); "files":
  # read the source files; "auto": "tfds" when the [data] extra is installed, else "files"
  # (the same arrays either way)
  c.data.source = "auto"
  c.data.data_dir = ""  # TFDS data_dir; "" = $TFDS_DATA_DIR or ~/tensorflow_datasets
  c.data.manual_dir = ""  # folder with the source files ("" = the packaged copy)
  c.data.modalities = "fou,fac,kar,pix,zer,mor"  # "": every modality the data set has
  c.data.pix_as_image = True  # read mfeat's pix view as a 16x15 image (CNN encoder)
  c.data.test_size = 400  # Trusted Multi-View Classification's 1600/400 protocol
  c.data.val_size = 200  # fixed, stratified; taken from the 1,600 (pool = 1,400)
  c.data.split_seed = 0  # independent of `seed`: every run sees the same test set
  c.data.standardize = True
  # Leave out of the pool any example whose inputs (every modality) equal a validation or
  # test example's: a held-out example must not be labelled and learnt through its copy
  # (UCI mfeat has two such copies). Runs started before this key existed had it off.
  c.data.drop_pool_copies = True
  # Harder settings (in-memory data sets; validation and test stay as they are):
  # a long-tailed pool, the largest class this many times the smallest (1: as it is) ...
  c.data.pool_imbalance = 1.0
  # ... and this share of the pool's labels wrong (a fixed set, another class at random):
  # the simulated annotator then answers wrongly for them (0: every answer right).
  c.data.label_noise = 0.0
  # Record data sets (upmc_food101, kinetics_sounds, vggsound): read from disk by grain.

  c.data.on_error = "stop"  # a bad source file at build time: "stop" (name it) | "skip"
  c.data.fixture = False  # True: write a small fixture in the real layout and use it
  c.data.vocab = ""  # WordPiece vocab.txt ("" = manual_dir/vocab.txt or all-MiniLM-L6-v2's)
  c.data.text_length = 100  # tokens per recipe text ([CLS] + 98 + [SEP])
  c.data.image_resize = 256  # photos: short side resized to this, then ...
  c.data.image_size = 224  # ... a crop of this size
  c.data.frame_resize = (128, 171)  # clip frames resized to this (H, W), then ...
  c.data.frame_size = 112  # ... a square crop of this size
  c.data.num_frames = 5  # frames drawn of the 10 extracted per clip
  c.data.audio_seconds = 5.0  # audio window of the 10 s clip

  c.model = ml_collections.ConfigDict()
  c.model.width = 128  # encoder output width per modality
  c.model.hidden = (256,)
  c.model.conv_channels = (32, 64)
  c.model.dropout = 0.1
  c.model.head = "softmax"  # "softmax" | "evidential" (Dirichlet heads)
  c.model.fusion = "concat"  # "concat" | "tmc" (Dempster-Shafer) | "evidence" (RL-MBA)
  # The concat multimodal head's output: "softmax" (cross-entropy, BMMAL's and the paper's
  # classifier), "evidential" (a Dirichlet), or "auto" (the same kind as model.head).
  c.model.fused_head = "auto"
  c.model.evidence_activation = "softplus"  # "softplus" | "relu" | "exp"
  # Per-modality encoders, "modality=name,...": mlp | cnn | resnet18 | resnet101 |
  # r2plus1d_18 | bert (unnamed modalities: mlp for vectors, cnn for images, r2plus1d_18
  # for clips, bert for token ids).
  c.model.encoders = ""
  c.model.encoder_filters = 64  # first-stage width of the ResNet / R(2+1)D encoders
  # Pretrained encoder weights, "modality=path/model.safetensors,..." (torchvision /
  # Hugging Face names; a BERT's config.json must sit next to its weights).
  c.model.pretrained = ""
  c.model.bert = ml_collections.ConfigDict()  # text encoder sizes when not pretrained
  c.model.bert.vocab_size = 30522
  c.model.bert.hidden_size = 768
  c.model.bert.num_hidden_layers = 12
  c.model.bert.num_attention_heads = 12
  c.model.bert.intermediate_size = 3072
  c.model.bert.max_position_embeddings = 512
  c.model.bert_pooling = "cls"  # "cls" (the reference) | "mean"
  c.model.dtype = "float32"  # "bfloat16": large encoders compute in bf16 (params stay f32)

  c.train = ml_collections.ConfigDict()
  c.train.batch_size = 64
  c.train.eval_batch_size = 512
  c.train.num_epochs = 40
  c.train.learning_rate = 1e-3
  c.train.weight_decay = 1e-4
  c.train.grad_clip_norm = 0.0  # 0: off
  c.train.warm_start = False  # paper protocol: re-initialise every round
  c.train.annealing_epochs = 10.0  # evidential KL weight min(1, epoch / T)
  c.train.optimizer = "adamw"  # "adamw" | "adam" (PyTorch Adam: L2 added to the gradient)
  c.train.betas = (0.9, 0.999)
  c.train.encoder_learning_rates = ""  # "video=2e-3,audio=1e-3": per-encoder rates
  c.train.warmup_epochs = 0.0  # linear warm-up per step over this many epochs
  c.train.lr_milestones = ()  # epochs at which the rate is multiplied by lr_decay
  c.train.lr_decay = 0.1
  c.train.data_workers = 0  # grain worker processes for record data sets (0: in-process)

  # AMCB modality weights w = eps + (1 - M eps) softmax(Delta / tau), Delta measured on the
  # validation set after every round (our defaults; the paper does not give tau or eps).
  c.modality = ml_collections.ConfigDict()
  c.modality.contribution = "top1_gap"  # "top1_gap" (AMCB) | "shapley" (mean Shapley value)
  c.modality.temperature = 0.1
  c.modality.floor = 0.02
  c.modality.momentum = 0.0  # EMA of the contributions over rounds (0: this round's)
  c.modality.amcb = True  # False: uniform weights throughout (the AMCB-off ablation)
  # "stronger": w = softmax(+Delta / tau), as the paper states it (a modality that beats the
  # fused head gains weight); "weaker": softmax(-Delta / tau), weight to the lagging ones.
  c.modality.favour = "stronger"

  c.al = ml_collections.ConfigDict()
  c.al.strategy = "random"
  c.al.initial_size = 50
  c.al.budget_per_round = 50
  c.al.rounds = 5  # selection rounds after the initial set
  # Who answers a query: "dataset" (the labels the data set holds: a simulated annotator,
  # as in every benchmark) | "person" (the run writes WORKDIR/queries/round_NNN.csv and
  # waits, exit code 3, for WORKDIR/labels/round_NNN.csv; experiment.oracle).
  c.al.oracle = "dataset"
  # Record what each round's picks are (class histogram, where they sit in the pool's
  # uncertainty / difficulty / distance rankings, overlap with margin's and BADGE's picks,
  # which term of RL-MBA's q decides; selection.diagnostics) under "selection" in
  # rounds.jsonl. Costs one pool pass and a margin and a BADGE selection per round.
  c.al.diagnostics = False
  # Options of individual strategies (passed to the strategy whose name they carry).
  c.al.bald = ml_collections.ConfigDict()
  c.al.bald.passes = 10  # MC-dropout forward passes (the BMMAL code's 10)
  c.al.kmeans = ml_collections.ConfigDict()
  c.al.kmeans.iterations = 10  # Lloyd steps after k-means++ seeding
  c.al.deepfool = ml_collections.ConfigDict()
  c.al.deepfool.candidate_classes = 10  # most likely other classes tried per step
  c.al.deepfool.max_iterations = 50
  c.al.deepfool.overshoot = 0.02
  # Power sampling (Kirsch et al., TMLR 2023): b picks drawn without replacement with
  # probability proportional to score^beta (entropy, or 1 - margin); beta = 1 as they use.
  c.al.power_entropy = ml_collections.ConfigDict()
  c.al.power_entropy.beta = 1.0
  c.al.power_margin = ml_collections.ConfigDict()
  c.al.power_margin.beta = 1.0
  # The greedy oracle (al.strategy="greedy_oracle", experiment.headroom): an upper bound,
  # never a method. Each round the best by validation top-1 of `subsets` random b-subsets
  # of RL-MBA's top kappa b candidates ("candidates") or of the whole pool ("pool").
  c.al.greedy_oracle = ml_collections.ConfigDict()
  c.al.greedy_oracle.source = "candidates"
  c.al.greedy_oracle.subsets = 16
  # When more labels stop paying (experiment.stopping), computed every round: stabilizing
  # predictions (Cohen's kappa of successive rounds' predictions on a fixed stop set of
  # `set_size` pool examples, mean over `window` rounds >= `kappa`; Bloodgood and
  # Vijay-Shanker 2009) and the validation plateau (top-1 gained over `window` rounds
  # < `min_gain`). `stop_when` ("" | "stabilized" | "plateau" | "either") ends the run there.
  c.al.stop_when = ""
  c.al.stopping = ml_collections.ConfigDict()
  c.al.stopping.set_size = 1000
  c.al.stopping.kappa = 0.99
  c.al.stopping.window = 3
  c.al.stopping.min_gain = 0.005
  c.al.gcnal = ml_collections.ConfigDict()  # Caramalau et al.'s settings
  c.al.gcnal.method = "coregcn"  # "coregcn" | "uncertaingcn"
  c.al.gcnal.epochs = 200
  c.al.gcnal.hidden = 128
  c.al.gcnal.dropout = 0.3
  c.al.gcnal.learning_rate = 1e-3
  c.al.gcnal.weight_decay = 5e-4
  c.al.gcnal.unlabelled_weight = 1.2  # lambda on the unlabelled-node loss
  c.al.gcnal.margin = 0.1  # uncertaingcn: pick scores closest to this
  # RL-MBA (README, "RL-MBA": candidates, policy, reward). The paper gives none of these values; ours are defaults.
  c.al.rlmba = ml_collections.ConfigDict()
  c.al.rlmba.kappa = 4  # candidates K = kappa * budget
  c.al.rlmba.beta = 0.5  # weight of the diversity term in q
  c.al.rlmba.lloyd_iterations = 5
  # d in q: "centroid" (distance to the nearest of b k-means++ centroids, our reading of the
  # paper) | "labelled" (distance to the nearest labelled example, CoreSet's criterion).
  c.al.rlmba.diversity = "centroid"
  # EFDA (Evidential Fusion for Difficulty-Aware policy adjustment, selection.efda_difficulty):
  # the uncertainty terms are Dirichlet variances of the evidential modality heads and their
  # weighted fusion. False: softmax entropies instead (the EFDA-off ablation).
  c.al.rlmba.efda = True
  # gamma of a gamma * U~ term added to q, so EFDA's difficulty shapes the candidate set
  # itself (0: off, the paper's q; U then reaches the policy's input only).
  c.al.rlmba.difficulty_weight = 0.0
  c.al.rlmba.policy = True  # False: top-b by q (the policy-off ablation)
  c.al.rlmba.greedy = False  # True: the policy's top-b instead of a Plackett-Luce draw
  c.al.rlmba.hidden = (64, 64)
  # What the policy reads (policy/inputs.py): "per_modality" (the paper's columns
  # u~_1..u~_M, w_1..w_M, Delta_1..Delta_M: tied to one M) | "invariant" (summaries over
  # modalities: the same network reads any M and C; needed to use a pretrained policy).
  c.al.rlmba.policy_inputs = "per_modality"
  c.al.rlmba.prior_temperature = 0.1  # untrained policy = softmax(q / this)
  c.al.rlmba.learning_rate = 3e-3
  c.al.rlmba.baseline_momentum = 0.8
  c.al.rlmba.advantage_clip = 0.0  # 0: off
  c.al.rlmba.entropy_weight = 0.01
  c.al.rlmba.reward = "relative"  # "relative" | "incremental" | "absolute" (val top-1)
  c.al.rlmba.balance_weight = 0.0  # lambda of the +lambda * balance term
  c.al.rlmba.reward_ema = 0.0  # EMA smoothing of the reward (0: off)
  # Workdirs (or rounds.jsonl files) of the reference strategies for the relative reward,
  # comma-separated; "{seed}" is replaced by this run's seed.
  c.al.rlmba.reference_runs = ""
  # Warm start of the policy: the workdir of an earlier rlmba run (its latest policy state),
  # or of launch/pretrain_policy.py (pretrained on simulated episodes; needs
  # policy_inputs="invariant" and the same hidden sizes). The online REINFORCE goes on.
  c.al.rlmba.init_from = ""

  c.eval = ml_collections.ConfigDict()
  # False: the test split is never evaluated; records and the summary hold validation
  # figures only (hyper-parameter search: launch/tune.py sets it, and refuses runs without).
  c.eval.test = True
  # Each round's scalars as TensorBoard event files in WORKDIR/tensorboard
  # (experiment.metrics; rounds.jsonl stays the record).
  c.eval.tensorboard = True
  # A progress bar per round (selection, training epochs, evaluation): "auto" (when stderr is
  # a terminal or in a notebook, not under CI) | "on" | "off".
  c.eval.progress = "auto"

  c.checkpoint = ml_collections.ConfigDict()
  c.checkpoint.max_to_keep = 2
  c.lock()  # a misspelt key is refused where it is set, not silently added
  return c


def paper_protocol(config: ml_collections.ConfigDict) -> ml_collections.ConfigDict:
  """Sets the paper's comparison protocol on ``config`` (in place; returns it).

  One classifier for every strategy, as in the paper and BMMAL: a softmax multimodal head
  over the concatenated modality features (whose accuracy is reported, and is Top-1_mm in
  AMCB's Delta_m) plus one evidential head per modality (the alpha_m EFDA reads). AMCB's
  weights and the weighted evidence fusion alpha_f = 1 + sum_m w_m (alpha_m - 1) act in
  RL-MBA's selection only, so the classifier never depends on the strategy. kappa = 5 as
  the paper states; selection diagnostics recorded.
  """
  config.model.head = "evidential"
  config.model.fusion = "concat"
  config.model.fused_head = "softmax"
  config.al.rlmba.kappa = 5
  config.al.diagnostics = True
  return config


# RL-MBA's values the paper leaves open, chosen on mfeat's validation (mean validation AUC
# over the tuning seeds 100-102, never test) by
#   python launch/tune.py --config=configs/mfeat.py:paper --workdir=runs/mfeat_paper/tune \
#       --trials=12 --seeds=100,101,102 --refine_top=3 --workers=2
# (results/mfeat_paper/tuning.md: validation AUC 91.3 +- 0.8, against 88.3 +- 1.4 for the
# paper's kappa = 5 with our earlier defaults). configs/mfeat.py:tuned sets them.
MFEAT_TUNED_RLMBA = {"al.rlmba.beta": 0.25, "al.rlmba.kappa": 10,
                     "al.rlmba.learning_rate": 0.01, "al.rlmba.prior_temperature": 1.0,
                     "al.rlmba.reward_ema": 0.5, "modality.floor": 0.02,
                     "modality.temperature": 0.1, "al.rlmba.diversity": "labelled"}

# The same, chosen on av_digits' validation (tuning seeds 100-102, never test) by
#   FSDD=../shared/data/fsdd python launch/tune.py --config=configs/av_digits.py:paper \
#       --workdir=runs/av_digits_paper/tune --trials=8 --seeds=100,101,102 \
#       --include=results/mfeat_paper/tuning.json --refine_top=1 \
#       --refine_space='al.rlmba.diversity=labelled;modality.amcb=true|false;al.rlmba.efda=true|false' \
#       --workers=2 --config.data.manual_dir=../shared/data/fsdd
# (results/av_digits_paper/tuning.md: validation AUC 80.5 +- 1.1, against 78.2 +- 3.5 for
# the paper's values and 76.6 +- 3.5 for mfeat's). The search turned AMCB and EFDA off: on
# av_digits' validation the policy does best over softmax uncertainty and the distance to
# the labelled set alone (80.0 +- 1.9 with both on and the centroid distance: within noise).
# configs/av_digits.py:tuned sets them.
AV_DIGITS_TUNED_RLMBA = {"al.rlmba.beta": 0.25, "al.rlmba.kappa": 10,
                         "al.rlmba.learning_rate": 0.003, "al.rlmba.prior_temperature": 0.3,
                         "al.rlmba.reward_ema": 0.0, "modality.floor": 0.0,
                         "modality.temperature": 2.0, "al.rlmba.diversity": "labelled",
                         "al.rlmba.efda": False, "modality.amcb": False}


def parse_arg(arg: str | None, *, allowed: Sequence[str], exclusive: Sequence[str] = (),
              where: str = "this config file") -> frozenset[str]:
  """A config file's argument as a set of words: ``"paper,runlocal"`` -> both (the idea of
  big_vision's ``parse_arg``: arguments combine). At most one of ``exclusive`` may appear.
  """
  words = [w.strip() for w in (arg or "").split(",") if w.strip()]
  unknown = [w for w in words if w not in allowed]
  if unknown:
    raise ValueError(f"{where} takes {', '.join(repr(a) for a in allowed)} or nothing "
                     f"(comma-separated to combine), got {arg!r}")
  clash = [w for w in words if w in exclusive]
  if len(clash) > 1:
    raise ValueError(f"{where}: {' and '.join(repr(w) for w in clash)} cannot be combined")
  return frozenset(words)


def describe_config() -> str:
  """Every config key with its default and the comments ``default_config`` gives it (the
  comment lines just above the key, and the one after it): ``rlmba-jax --config_help``."""
  import inspect  # pylint: disable=g-import-not-at-top
  import re  # pylint: disable=g-import-not-at-top
  defaults = flat_dict(default_config())
  notes: dict[str, list[str]] = {}
  pending: list[str] = []
  for line in inspect.getsource(default_config).splitlines():
    text = line.strip()
    if text.startswith("#"):
      pending.append(text.lstrip("# "))
      continue
    m = re.match(r"c\.([\w.]+)\s*=\s*(.*)$", text)
    if m and m.group(1) in defaults:
      after = m.group(2).split("  # ", 1)
      notes[m.group(1)] = pending + ([after[1]] if len(after) > 1 else [])
    pending = []  # a key line or a blank line ends the comment block above it
  out = []
  for key, value in defaults.items():
    out.append(f"config.{key} = {value!r}")
    out.extend(f"    {n}" for n in notes.get(key, []))
  return "\n".join(out)


def _flatten(d: dict, prefix: str = "") -> dict[str, Any]:
  out = {}
  for k, v in d.items():
    key = f"{prefix}{k}"
    if isinstance(v, dict):
      out.update(_flatten(v, key + "."))
    else:
      out[key] = v
  return out


def config_from_stored(stored: dict[str, Any]) -> ml_collections.ConfigDict:
  """The config a workdir's ``config.json`` holds, over the defaults (keys added since the
  run started keep their defaults)."""
  config = default_config()
  flat = _flatten(stored)
  config.update_from_flattened_dict(
      {**{k: v for k, v in LEGACY_DEFAULTS.items() if k not in flat}, **flat})
  return config


def flat_dict(config: ml_collections.ConfigDict) -> dict[str, Any]:
  """``{"al.rounds": 5, ...}`` with tuples as lists (JSON round-trip)."""
  return _flatten(json.loads(config.to_json()))


class Rule(NamedTuple):
  """A condition on one config value and the words its error message uses."""
  holds: Callable[[Any], bool]
  says: str


def positive() -> Rule:
  return Rule(lambda v: v > 0, "must be positive")


def non_negative() -> Rule:
  return Rule(lambda v: v >= 0, "must not be negative")


def in_range(low: float, high: float, *, closed: bool = False) -> Rule:
  """``[low, high)`` (``[low, high]`` when ``closed``)."""
  if closed:
    return Rule(lambda v: low <= v <= high, f"must be in [{low}, {high}]")
  return Rule(lambda v: low <= v < high, f"must be in [{low}, {high})")


def at_least(low: int, why: str) -> Rule:
  return Rule(lambda v: v >= low, f"must be at least {low} ({why})")


def one_of(choices: Sequence[str], what: str = "") -> Rule:
  """One of ``choices`` (the library's own constant, so a new choice needs no edit here)."""
  listed = (", ".join(repr(c) for c in choices[:-1]) + f" or {choices[-1]!r}"
            if len(choices) > 1 else repr(choices[0]))
  says = (f"is not {what}; choose from {', '.join(choices)}" if what else f"; use {listed}")
  return Rule(lambda v: v in choices, says)


def _schema() -> dict[str, Rule]:
  """The value rules, by key: ranges and choices. Rules between keys are in
  ``_check_combinations``."""
  return {
      "seed": in_range(0, 2 ** 31),  # numpy's and JAX's seeds alike
      "num_devices": non_negative(),
      "data.name": one_of(tuple(DATASETS), "a data set"),
      "data.source": one_of(SOURCES),
      "data.on_error": one_of(ON_ERROR),
      "data.test_size": non_negative(), "data.val_size": non_negative(),
      "data.text_length": positive(), "data.image_resize": positive(),
      "data.image_size": positive(), "data.frame_size": positive(),
      "data.num_frames": positive(), "data.audio_seconds": positive(),
      "model.width": positive(), "model.dropout": in_range(0, 1),
      "model.evidence_activation": one_of(EVIDENCE_ACTIVATIONS),
      "model.encoder_filters": positive(), "model.bert_pooling": one_of(POOLINGS),
      "model.dtype": one_of(DTYPES),
      "train.batch_size": positive(), "train.eval_batch_size": positive(),
      "train.num_epochs": positive(), "train.learning_rate": positive(),
      "train.weight_decay": non_negative(), "train.grad_clip_norm": non_negative(),
      "train.annealing_epochs": non_negative(), "train.optimizer": one_of(OPTIMIZERS),
      "train.warmup_epochs": non_negative(), "train.lr_decay": positive(),
      "train.data_workers": non_negative(),
      "modality.contribution": one_of(CONTRIBUTIONS), "modality.temperature": positive(),
      "modality.floor": non_negative(), "modality.momentum": in_range(0, 1),
      "modality.favour": one_of(FAVOUR),
      "al.strategy": one_of(available_strategies() + (ORACLE,), "a strategy"),
      "al.greedy_oracle.source": one_of(ORACLE_SOURCES),
      "al.greedy_oracle.subsets": positive(),
      "al.stop_when": one_of(STOP_WHEN), "al.stopping.set_size": positive(),
      "al.stopping.kappa": in_range(-1, 1, closed=True), "al.stopping.window": positive(),
      "al.initial_size": positive(), "al.budget_per_round": positive(),
      "al.rounds": non_negative(), "al.oracle": one_of(ORACLES),
      "al.bald.passes": at_least(2, "BALD needs at least 2 dropout passes"),
      "al.kmeans.iterations": non_negative(),
      "al.deepfool.candidate_classes": positive(), "al.deepfool.max_iterations": positive(),
      "al.deepfool.overshoot": non_negative(),
      "al.gcnal.method": one_of(GCN_METHODS), "al.gcnal.epochs": positive(),
      "al.gcnal.hidden": positive(), "al.gcnal.dropout": in_range(0, 1),
      "al.gcnal.learning_rate": positive(), "al.gcnal.weight_decay": non_negative(),
      "al.gcnal.unlabelled_weight": non_negative(),
      "al.gcnal.margin": in_range(0, 1, closed=True),
      "al.rlmba.kappa": positive(), "al.rlmba.beta": non_negative(),
      "al.rlmba.lloyd_iterations": non_negative(), "al.rlmba.diversity": one_of(DIVERSITIES),
      "al.rlmba.prior_temperature": positive(), "al.rlmba.learning_rate": non_negative(),
      "al.rlmba.difficulty_weight": non_negative(),
      "al.power_entropy.beta": non_negative(), "al.power_margin.beta": non_negative(),
      "data.pool_imbalance": Rule(lambda v: v >= 1.0, "must be at least 1 (1: as it is)"),
      "data.label_noise": in_range(0, 1),
      "al.rlmba.baseline_momentum": in_range(0, 1),
      "al.rlmba.advantage_clip": non_negative(), "al.rlmba.entropy_weight": non_negative(),
      "al.rlmba.reward": one_of(REWARDS), "al.rlmba.balance_weight": non_negative(),
      "al.rlmba.reward_ema": in_range(0, 1),
      "al.rlmba.policy_inputs": one_of(POLICY_INPUTS),
      "checkpoint.max_to_keep": positive(),
      "eval.progress": one_of(PROGRESS),
  }


_FLOAT32_MAX = 3.4028234663852886e38  # numbers reach the device as float32


def _finite(value: Any) -> bool:
  """Finite, also once it is a float32 (1e300 is finite in Python, inf on the device)."""
  values = value if isinstance(value, (tuple, list)) else (value,)
  return all(not isinstance(v, float) or (math.isfinite(v) and abs(v) <= _FLOAT32_MAX)
             for v in values)


def _check_keys(given: dict[str, Any], defaults: dict[str, Any]) -> None:
  for key in given:
    if key not in defaults:
      close = difflib.get_close_matches(key, defaults, n=1)
      hint = f"; did you mean config.{close[0]}?" if close else ""
      raise ConfigError(f"unknown config key config.{key}{hint}")
  for key in defaults:
    if key not in given:
      raise ConfigError(f"config.{key} is missing; start config files from "
                        "rlmba_jax.experiment.config.default_config()")


def validate_config(config: ml_collections.ConfigDict) -> None:
  """Raises ``ConfigError`` naming the key for unknown or missing keys, values outside
  their range or choices (NaN and inf included), and combinations that cannot run.

  Types are ml_collections' business: ``default_config()`` is type-safe and locked, so a
  value of the wrong type or a new key is refused where it is set.
  """
  given = flat_dict(config)
  _check_keys(given, flat_dict(default_config()))
  for key, value in given.items():
    if not _finite(value):
      raise ConfigError(f"config.{key}={value!r} is not a finite number (in float32, as "
                        "the device computes: at most 3.4e38)")
  for key, rule in _schema().items():
    value = given[key]
    if not rule.holds(value):
      sep = "" if rule.says.startswith(";") else " "
      raise ConfigError(f"config.{key}={value!r}{sep}{rule.says}")
  _check_combinations(config, given)


def _check_combinations(config: ml_collections.ConfigDict, given: dict[str, Any]) -> None:
  """The rules between keys."""
  if given["al.strategy"] == "bald" and given["model.dropout"] == 0.0:
    raise ConfigError("config.al.strategy='bald' samples dropout masks but "
                      "config.model.dropout=0.0; set a dropout rate such as 0.1")
  if given["al.oracle"] == "person" and given["al.diagnostics"]:
    raise ConfigError("config.al.diagnostics=True reads the labels of the pool's examples "
                      "before they are picked, which only the data set can give; with "
                      "config.al.oracle='person' set al.diagnostics=False")
  if given["al.strategy"] == ORACLE and given["al.oracle"] == "person":
    raise ConfigError("config.al.strategy='greedy_oracle' reads the pool's labels to choose; "
                      "a person's run cannot use it")
  if given["al.strategy"] in ("rlmba", ORACLE):
    if given["al.rlmba.efda"] and given["model.head"] != "evidential":
      raise ConfigError("config.al.strategy='rlmba' with config.al.rlmba.efda=True scores "
                        "evidential uncertainty; set config.model.head='evidential' (and "
                        "model.fusion='evidence'), or config.al.rlmba.efda=False")
    if (given["al.strategy"] == "rlmba" and given["al.rlmba.policy"]
        and given["al.rlmba.reward"] == "relative"
        and not str(given["al.rlmba.reference_runs"]).strip()):
      raise ConfigError("config.al.rlmba.reward='relative' compares with reference runs; "
                        "name their workdirs in config.al.rlmba.reference_runs, or use "
                        "reward='incremental' or 'absolute'")
  try:
    check_head_and_fusion(given["model.head"], given["model.fusion"], given["model.fused_head"])
  except ValueError as e:
    raise ConfigError(f"config.{e}") from None
  num_modalities = len([m for m in str(given["data.modalities"]).split(",") if m.strip()])
  if not 0.0 <= given["modality.floor"] * num_modalities < 1.0:
    raise ConfigError(f"config.modality.floor={given['modality.floor']} times "
                      f"{num_modalities} modalities must be in [0, 1)")
  if len(given["train.betas"]) != 2 or not all(0 <= b < 1 for b in given["train.betas"]):
    raise ConfigError(f"config.train.betas={given['train.betas']!r}: two numbers in [0, 1)")
  if len(given["data.frame_resize"]) != 2:
    raise ConfigError(f"config.data.frame_resize={given['data.frame_resize']!r}: (H, W)")
  if given["data.image_size"] > given["data.image_resize"] or given["data.frame_size"] > min(
      given["data.frame_resize"]):
    raise ConfigError("config.data.image_size / frame_size must not exceed the resized "
                      "image (data.image_resize / data.frame_resize)")
  try:
    _check_modality_assignments(config, given)
  except ValueError as e:
    raise ConfigError(f"config.{e}") from None


def _check_modality_assignments(config, given: dict[str, Any]) -> None:
  """``model.encoders``, ``model.pretrained`` and ``train.encoder_learning_rates`` name
  modalities the data has, with valid encoders, existing files and positive rates."""
  encoder_names(config.model)
  if not str(given["data.modalities"]).strip():
    return  # every modality of the data set: named only once it is read
  modalities = set(parse_modalities(given["data.modalities"]))
  for key in ("model.encoders", "model.pretrained", "train.encoder_learning_rates"):
    unknown = sorted(set(parse_assignments(given[key], key)) - modalities)
    if unknown:
      raise ValueError(f"{key} names modalities {unknown} that data.modalities "
                       f"({sorted(modalities)}) does not have")
  for m, lr in parse_assignments(given["train.encoder_learning_rates"],
                                 "train.encoder_learning_rates").items():
    if not float(lr) > 0:
      raise ValueError(f"train.encoder_learning_rates: {m}={lr} must be positive")
  for m, path in parse_assignments(given["model.pretrained"], "model.pretrained").items():
    if not os.path.exists(path):
      raise ValueError(f"model.pretrained: the weights for {m!r}, {path!r}, do not exist")


def check_budget(config: ml_collections.ConfigDict, pool_size: int) -> None:
  """The whole schedule must fit in the pool."""
  needed = config.al.initial_size + config.al.rounds * config.al.budget_per_round
  if needed > pool_size:
    raise ConfigError(
        f"the schedule needs {needed} labels (al.initial_size={config.al.initial_size} + "
        f"al.rounds={config.al.rounds} x al.budget_per_round={config.al.budget_per_round}) "
        f"but the pool holds {pool_size}; lower al.rounds or al.budget_per_round")


def config_differences(stored: dict[str, Any], config: ml_collections.ConfigDict
                       ) -> list[str]:
  """Keys whose values differ between a workdir's stored config and ``config``.

  Keys in ``RESUMABLE_KEYS`` are ignored (continuing a run with more rounds is allowed).
  """
  now = flat_dict(config)
  before = _flatten(stored)
  before = {**{k: v for k, v in LEGACY_DEFAULTS.items() if k not in before}, **before}
  defaults = flat_dict(default_config())
  diffs = []
  for key in sorted(set(now) | set(before)):
    if key in RESUMABLE_KEYS:
      continue
    if key == "al.strategy" and strategy_may_change(before, now):
      continue  # a person's run: each round's strategy is in its ledger line
    if key in PATH_KEYS and _same_path(before.get(key), now.get(key)):
      continue  # the same folder, written another way
    if key not in before and key in defaults and now.get(key) == defaults[key]:
      continue  # an option added after the run started, left at its default
    if now.get(key, "<absent>") != before.get(key, "<absent>"):
      diffs.append(f"config.{key}: workdir has {before.get(key, '<absent>')!r}, "
                   f"now {now.get(key, '<absent>')!r}")
  return diffs


def strategy_may_change(before: dict[str, Any], now: dict[str, Any]) -> bool:
  """A run a person answers may query with another strategy from one round to the next
  (the ledger line of each round records its strategy), unless RL-MBA is one of them: its
  policy is part of the round state."""
  return (before.get("al.oracle") == now.get("al.oracle") == "person"
          and "rlmba" not in (before.get("al.strategy"), now.get("al.strategy")))


def strategy_options(config: ml_collections.ConfigDict) -> dict[str, Any]:
  """Keyword options of the configured strategy: ``config.al.<strategy>`` if it exists."""
  options = config.al.get(config.al.strategy)
  if isinstance(options, ml_collections.ConfigDict):
    return options.to_dict()
  return {}


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
  """Lets this module serve as a config file itself (``--config=.../config.py``)."""
  del arg
  return default_config()
