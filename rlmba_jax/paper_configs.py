"""The paper's protocol on UPMC Food-101, Kinetics-Sounds and VGGSound (``configs/*.py``).

1,000 random initial labels, 1,000 per round, two rounds (the headline is at 3,000 labels),
training re-initialised every round. Models, optimisers, schedules, epochs and augmentations
are those of the balanced multimodal AL reference code (BMMAL, ACM MM 2023):

* **Food-101**: BERT-base ([CLS] feature, 100 tokens) + ResNet-101 (2,048-d), concat fusion;
  AdamW (0.9, 0.999), weight decay 0.01; rates: heads 1e-3, text encoder 1e-5, image encoder
  1e-4; 15 epochs, rate x0.1 at epoch 10; batch 32.
* **Kinetics-Sounds / VGGSound**: R(2+1)D-18 on 5 frames of 112 x 112 + ResNet-18 with a
  1-channel stem on the log-STFT; Adam (0.95, 0.999) with L2 1e-4; rates: heads 1e-3, video
  2e-3 (VGGSound 1e-3), audio 1e-3; 10 warm-up epochs, x0.1 at 20, 30, 40; 45 epochs;
  batch 32. (BMMAL's VGGSound runs start from 2,000 labels; the RL-MBA protocol is 1,000.)

Pretrained weights are the user's files (no downloads): e.g.
``--config.model.pretrained=text=/w/bert-base-uncased/model.safetensors,image=/w/resnet101.safetensors``
(torchvision / Hugging Face names; BERT needs its config.json beside the weights). Without
them encoders start from random initialisation.

Where the reference has no value: validation size (it does not validate; we need a
validation set for AMCB and the policy's reward), dropout 0.1 on encoder features (so BALD's
MC dropout has something to sample), grain workers.

``runlocal`` keeps the loop, data path and encoder families but shrinks everything so the
whole experiment runs on a CPU in about a minute, on a fixture written in the real layout
(``data.fixture``): 18-layer networks with 4 filters in the first stage, a one-layer BERT,
small crops, 1 s of audio, 2 epochs, 8 initial labels + one round of 4. ``rlmba`` runs
RL-MBA with evidential heads; the two combine (``configs/food101.py:rlmba,runlocal``).
"""

from __future__ import annotations

import ml_collections

from rlmba_jax.config_defaults import default_config, parse_arg


def paper_config(name: str, arg: str | None = None) -> ml_collections.ConfigDict:
  c = default_config()
  c.data.name = name
  c.data.test_size = 0  # the official test split, whatever its size
  c.data.standardize = False  # inputs are normalised by the pipeline's fixed statistics
  c.model.dropout = 0.1
  c.model.head = "softmax"
  c.model.fusion = "concat"
  c.train.batch_size = 32
  c.train.eval_batch_size = 256
  c.train.grad_clip_norm = 0.0
  c.train.data_workers = 8
  c.al.initial_size = 1000
  c.al.budget_per_round = 1000
  c.al.rounds = 2
  if name == "upmc_food101":
    c.data.modalities = "text,image"
    c.data.val_size = 1000
    c.model.encoders = "text=bert,image=resnet101"
    c.model.bert_pooling = "cls"
    c.train.optimizer = "adamw"
    c.train.betas = (0.9, 0.999)
    c.train.weight_decay = 0.01
    c.train.learning_rate = 1e-3
    c.train.encoder_learning_rates = "text=1e-5,image=1e-4"
    c.train.num_epochs = 15
    c.train.lr_milestones = (10,)
  else:
    c.data.modalities = "video,audio"
    c.data.val_size = 500 if name == "kinetics_sounds" else 1000
    c.model.encoders = "video=r2plus1d_18,audio=resnet18"
    c.train.optimizer = "adam"
    c.train.betas = (0.95, 0.999)
    c.train.weight_decay = 1e-4
    c.train.learning_rate = 1e-3
    c.train.encoder_learning_rates = ("video=2e-3,audio=1e-3" if name == "kinetics_sounds"
                                      else "video=1e-3,audio=1e-3")
    c.train.num_epochs = 45
    c.train.warmup_epochs = 10.0
    c.train.lr_milestones = (20, 30, 40)
  args = parse_arg(arg, allowed=("runlocal", "rlmba"), where=f"the configs for {name}")
  if "rlmba" in args:
    c.model.head, c.model.fusion = "evidential", "evidence"
    c.al.strategy = "rlmba"
  if "runlocal" in args:
    runlocal(c)
  return c


def runlocal(c: ml_collections.ConfigDict) -> None:
  """Shrinks a paper config to a CPU smoke run on the data set's fixture."""
  c.data.fixture = True
  c.data.test_size = 0
  c.data.val_size = 6
  c.data.image_resize, c.data.image_size = 36, 32
  c.data.frame_resize, c.data.frame_size = (40, 52), 32
  c.data.audio_seconds = 1.0
  c.model.encoders = c.model.encoders.replace("resnet101", "resnet18")
  c.model.encoder_filters = 4
  c.model.bert.update(dict(vocab_size=128, hidden_size=16, num_hidden_layers=1,
                           num_attention_heads=2, intermediate_size=32,
                           max_position_embeddings=128))
  c.train.batch_size = 4
  c.train.eval_batch_size = 8
  c.train.num_epochs = 2
  c.train.warmup_epochs = min(c.train.warmup_epochs, 1.0)
  c.train.lr_milestones = tuple(m for m in (1,) if c.train.lr_milestones)
  c.train.data_workers = 0
  c.al.initial_size = 8
  c.al.budget_per_round = 4
  c.al.rounds = 1
