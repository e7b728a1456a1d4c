"""The config's defaults, light: ``default_config()`` and what ``configs/*.py`` build on
(``paper_protocol``, ``parse_arg``, the values the searches chose). Imports only
ml_collections, so loading a config file imports no JAX; ``experiment.config`` validates a
config (and re-exports these names).
"""

from __future__ import annotations

from typing import Sequence

import ml_collections


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
  # waits, exit code 3, for WORKDIR/labels/round_NNN.csv; person.files).
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
  # RL-MBA (docs/experiments.md, "RL-MBA": candidates, policy, reward). The paper gives none of these values; ours are defaults.
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
  # figures only (hyper-parameter search: rlmba_jax.tune sets it, and refuses runs without).
  c.eval.test = True
  # Each round's scalars as TensorBoard event files in the workdir
  # (experiment.event_files; rounds.jsonl stays the record).
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
