"""The multimodal classifier: one encoder and one head per modality, and a fused prediction.

Heads are ``softmax`` (logits) or ``evidential`` (Dirichlet ``alpha = evidence + 1``). The
fused prediction is

* ``concat``: a linear head over the concatenated features (written as one bias plus one
  ``[D, C]`` block per modality, i.e. exactly ``Dense`` on the concatenation, so each
  modality's share of the fused logits, ``fused_parts``, is available for masking). Its
  output is a softmax or a Dirichlet as ``fused_head`` says: ``"auto"`` follows the
  modality heads; the paper's protocol (BMMAL's classifier) is a softmax multimodal head
  over evidential modality heads (``head="evidential", fused_head="softmax"``);
* ``tmc``: Dempster-Shafer combination of the modality opinions (Trusted Multi-View
  Classification; evidential heads);
* ``evidence``: RL-MBA's weighted evidence fusion ``1 + sum_m w_m (alpha_m - 1)`` with the
  AMCB weights passed as ``modality_weights`` (evidential heads).
"""

from __future__ import annotations

import importlib
from typing import Any, Callable, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp

from rlmba_jax import fusion as fusion_lib
from rlmba_jax.config_choices import DTYPES
from rlmba_jax.data.specs import ModalitySpec, parse_assignments
from rlmba_jax.models import bert as bert_lib
from rlmba_jax.models import resnet as resnet_lib
from rlmba_jax.models.encoders import ConvEncoder, MLPEncoder


HEADS = ("softmax", "evidential")
# Encoders by name; "auto" picks mlp for vectors, cnn for images, r2plus1d_18 for clips and
# bert for token ids.
ENCODERS = ("auto", "mlp", "cnn", "resnet18", "resnet101", "r2plus1d_18", "bert")
FUSIONS = ("concat", "tmc", "evidence")
FUSED_HEADS = ("auto",) + HEADS


def check_head_and_fusion(head: str, fusion: str, fused_head: str = "auto") -> None:
  if head not in HEADS:
    raise ValueError(f"model.head={head!r}; choose from {HEADS}")
  if fusion not in FUSIONS:
    raise ValueError(f"model.fusion={fusion!r}; choose from {FUSIONS}")
  if fused_head not in FUSED_HEADS:
    raise ValueError(f"model.fused_head={fused_head!r}; choose from {FUSED_HEADS}")
  if fusion in ("tmc", "evidence") and head != "evidential":
    raise ValueError(f"model.fusion={fusion!r} combines Dirichlet opinions and needs "
                     "model.head='evidential'")
  if fusion != "concat" and fused_head == "softmax":
    raise ValueError(f"model.fused_head='softmax' is a linear multimodal head; it needs "
                     f"model.fusion='concat', not {fusion!r} (whose fused opinion is a "
                     "Dirichlet)")


def fused_head_kind(head: str, fusion: str, fused_head: str = "auto") -> str:
  """``"softmax"`` or ``"evidential"``: what the fused (multimodal) prediction is."""
  check_head_and_fusion(head, fusion, fused_head)
  if fusion != "concat":
    return "evidential"
  return head if fused_head == "auto" else fused_head


class MultimodalClassifier(nn.Module):
  """``__call__(inputs, train, modality_weights)`` -> dict of outputs.

  Inputs: modality -> ``[B, *shape]``; ``modality_weights`` ``[M]`` (``evidence`` fusion
  only; uniform if None). Outputs (B batch, C classes, D width):
    ``features`` m -> ``[B, D]``; ``logits`` m -> ``[B, C]`` raw head outputs;
    ``probs`` m -> ``[B, C]``; ``fused_logits`` ``[B, C]`` (log alpha for Dirichlet fusions);
    ``fused_probs`` ``[B, C]``; evidential heads add ``alpha`` m -> ``[B, C]`` and
    ``fused_alpha``; ``concat`` adds ``fused_parts`` m -> ``[B, C]`` and ``fused_bias``
    ``[B, C]`` (``fused_logits = fused_bias + sum_m fused_parts[m]``).
  """
  modalities: tuple[ModalitySpec, ...]
  num_classes: int
  width: int = 128
  hidden: Sequence[int] = (256,)
  conv_channels: Sequence[int] = (32, 64)
  dropout: float = 0.0
  head: str = "softmax"
  fusion: str = "concat"
  fused_head: str = "auto"  # concat only: "softmax" | "evidential" | "auto" (= head)
  evidence_activation: str = "softplus"
  encoders: Any = ()  # ((modality, encoder name), ...); others "auto"
  encoder_filters: int = 64  # first-stage width of ResNet / R(2+1)D encoders
  bert_config: Any = None  # models.bert.BertConfig for "bert" encoders
  bert_pooling: str = "cls"
  dtype: Any = jnp.float32  # computation dtype of the large encoders (bfloat16 on GPU/TPU)

  def _distribution(self, logits, kind: str):
    if kind == "evidential":
      alpha = fusion_lib.alpha_from_evidence(
          fusion_lib.evidence_from_logits(logits, self.evidence_activation))
      return fusion_lib.expected_probabilities(alpha), alpha
    return jax.nn.softmax(logits, axis=-1), None

  def _encoder(self, spec: ModalitySpec):
    """``(module, takes_dropout_flag)``: small encoders get the dropout switch as ``train``
    (they have no BatchNorm); large ones get ``train`` for BatchNorm and their features
    pass through a separate dropout layer."""
    name = dict(self.encoders).get(spec.name, "auto")
    if name == "auto":
      name = _AUTO_ENCODERS.get(spec.kind, "mlp")
    module_name = f"encoder_{spec.name}"
    if name == "mlp":
      return MLPEncoder(self.hidden, self.width, self.dropout, name=module_name), True
    if name == "cnn":
      return ConvEncoder(self.conv_channels, self.width, self.dropout, name=module_name), True
    if name in ("resnet18", "resnet101"):
      make = resnet_lib.resnet18 if name == "resnet18" else resnet_lib.resnet101
      return make(num_filters=self.encoder_filters, dtype=self.dtype, name=module_name), False
    if name == "r2plus1d_18":
      return resnet_lib.r2plus1d_18(num_filters=self.encoder_filters, dtype=self.dtype,
                                    name=module_name), False
    if name == "bert":
      return bert_lib.Bert(self.bert_config or bert_lib.BertConfig(), self.bert_pooling,
                           dtype=self.dtype, name=module_name), False
    if is_own_encoder(name):
      return load_own_encoder(name)(width=self.width, name=module_name), False
    raise ValueError(f"model.encoders names {name!r} for modality {spec.name!r}; choose "
                     f"from {ENCODERS}")

  @nn.compact
  def __call__(self, inputs, *, train: bool = False, modality_weights=None,
               mc_dropout: bool = False):
    fused_kind = fused_head_kind(self.head, self.fusion, self.fused_head)
    missing = [s.name for s in self.modalities if s.name not in inputs]
    if missing:
      raise KeyError(f"the batch has no input for modality {missing}; it has "
                     f"{sorted(inputs)}")
    names = [s.name for s in self.modalities]
    out = {"features": {}, "logits": {}, "probs": {}}
    if self.head == "evidential":
      out["alpha"] = {}
    dropout_on = train or mc_dropout
    for spec in self.modalities:
      encoder, small = self._encoder(spec)
      if small:
        f = encoder(inputs[spec.name], train=dropout_on)
      else:
        f = encoder(inputs[spec.name], train=train)
        check_encoder_features(f, inputs[spec.name], spec.name,
                               dict(self.encoders).get(spec.name, "auto"))
        f = nn.Dropout(self.dropout, deterministic=not dropout_on)(f)
      logits = nn.Dense(self.num_classes, name=f"head_{spec.name}")(f)
      out["features"][spec.name], out["logits"][spec.name] = f, logits
      out["probs"][spec.name], alpha = self._distribution(logits, self.head)
      if alpha is not None:
        out["alpha"][spec.name] = alpha

    if self.fusion == "concat":
      # Dense over the concatenation, one block per modality (same init scale as one Dense).
      init = nn.initializers.variance_scaling(1.0 / len(names), "fan_in", "truncated_normal")
      parts = {m: nn.Dense(self.num_classes, use_bias=False, kernel_init=init,
                           name=f"fused_head_{m}")(out["features"][m]) for m in names}
      bias = self.param("fused_bias", nn.initializers.zeros, (self.num_classes,))
      fused_logits = bias + sum(parts.values())
      out["fused_parts"] = parts
      out["fused_bias"] = jnp.broadcast_to(bias, fused_logits.shape)
      out["fused_logits"] = fused_logits
      out["fused_probs"], fused_alpha = self._distribution(fused_logits, fused_kind)
    else:
      return fuse_with_weights(out, names, modality_weights, self.fusion)
    if fused_alpha is not None:
      out["fused_alpha"] = fused_alpha
    return out


def fuse_alphas(alphas: jnp.ndarray, fusion: str, modality_weights: jnp.ndarray | None = None
                ) -> jnp.ndarray:
  """The fused Dirichlet of the ``tmc`` or ``evidence`` fusion: ``[M, ..., C] -> [..., C]``.

  ``tmc``: the reduced Dempster-Shafer combination of Trusted Multi-View Classification; ``evidence``: RL-MBA's
  weighted evidence fusion ``1 + sum_m w_m (alpha_m - 1)`` (EFDA's alpha_f), uniform
  weights when ``modality_weights`` is None. The one place either fusion is computed.
  """
  if fusion == "tmc":
    return fusion_lib.tmc_fusion(alphas)
  weights = (fusion_lib.uniform_weights(alphas.shape[0]) if modality_weights is None
             else modality_weights)
  return fusion_lib.weighted_evidence_fusion(alphas, weights)


def fuse_with_weights(outputs: dict[str, Any], names: Sequence[str],
                      modality_weights: jnp.ndarray | None, fusion: str = "evidence"
                      ) -> dict[str, Any]:
  """The Dirichlet fusions' fused outputs from the modality heads' ``alpha``; for the
  ``evidence`` fusion, under any modality weights.

  Only ``fused_alpha`` (``1 + sum_m w_m (alpha_m - 1)``), ``fused_logits`` and
  ``fused_probs`` depend on the weights; the encoders and the per-modality heads do not. So
  outputs computed under one set of AMCB weights give those under another without a new
  forward pass (the loop re-scores the pool this way after the weights change).
  ``outputs``: the classifier's outputs (``alpha`` m -> ``[..., C]``); None weights =
  uniform. Returns a new dict.
  """
  fused_alpha = fuse_alphas(jnp.stack([outputs["alpha"][m] for m in names]), fusion,
                            modality_weights)
  return dict(outputs, fused_alpha=fused_alpha, fused_logits=jnp.log(fused_alpha),
              fused_probs=fusion_lib.expected_probabilities(fused_alpha))


def build_model(model_cfg, modalities: tuple[ModalitySpec, ...], num_classes: int
                ) -> MultimodalClassifier:
  check_head_and_fusion(model_cfg.head, model_cfg.fusion, model_cfg.fused_head)
  resolved = resolve_encoders(model_cfg, modalities)
  return MultimodalClassifier(
      modalities=tuple(modalities), num_classes=num_classes, width=model_cfg.width,
      hidden=tuple(model_cfg.hidden), conv_channels=tuple(model_cfg.conv_channels),
      dropout=model_cfg.dropout, head=model_cfg.head, fusion=model_cfg.fusion,
      fused_head=model_cfg.fused_head,
      evidence_activation=model_cfg.evidence_activation,
      encoders=tuple(sorted(resolved.items())),
      encoder_filters=model_cfg.encoder_filters,
      bert_config=bert_config(model_cfg, resolved),
      bert_pooling=model_cfg.bert_pooling,
      dtype=jnp.bfloat16 if model_cfg.dtype == "bfloat16" else jnp.float32)


def encoder_names(model_cfg) -> dict[str, str]:
  """``model.encoders`` ("image=resnet101,text=bert,audio=my.module:MyEncoder") as a dict,
  validated (your own encoders importable)."""
  names = parse_assignments(model_cfg.encoders, "model.encoders")
  bad = {m: n for m, n in names.items() if n not in ENCODERS and not is_own_encoder(n)}
  if bad:
    raise ValueError(f"model.encoders={model_cfg.encoders!r}: unknown encoder(s) {bad}; "
                     f"choose from {ENCODERS}, or name your own as module.path:ClassName")
  for n in names.values():
    if is_own_encoder(n):
      load_own_encoder(n)
  return names


def is_own_encoder(name: str) -> bool:
  """``module.path:ClassName``: an encoder of your own (docs/own_data.md, "Your own encoder")."""
  return ":" in name


def load_own_encoder(name: str) -> Callable[..., nn.Module]:
  """The class (or factory) ``module.path:ClassName`` names, called as
  ``(width=model.width, name=...)`` -> a Flax module whose ``__call__(x, train)`` maps a
  batch ``[B, *shape]`` of one modality to features ``[B, D]``. ``ValueError`` naming what
  is wrong otherwise."""
  module_name, _, attr = name.partition(":")
  try:
    target: Any = importlib.import_module(module_name)
    for part in attr.split("."):
      target = getattr(target, part)
  except (ImportError, AttributeError, ValueError) as e:
    raise ValueError(f"model.encoders names {name!r}, which cannot be imported "
                     f"({type(e).__name__}: {e}); give module.path:ClassName of a Flax "
                     "module on the Python path") from None
  if not callable(target):
    raise ValueError(f"model.encoders names {name!r}, which is not a Flax module class or a "
                     "factory of one")
  return target


def check_encoder_features(features, x, modality: str, encoder: str) -> None:
  """An encoder's output must be float features ``[B, D]`` for the heads and strategies."""
  ok = (hasattr(features, "ndim") and features.ndim == 2 and features.shape[0] == x.shape[0]
        and jnp.issubdtype(features.dtype, jnp.floating))
  if not ok:
    shape = getattr(features, "shape", type(features).__name__)
    raise ValueError(f"the encoder {encoder!r} of modality {modality!r} returned {shape} "
                     f"({getattr(features, 'dtype', '?')}) for a batch of shape {x.shape}; "
                     "an encoder must return float features [batch, width] (flatten or pool "
                     "its output)")


_AUTO_ENCODERS = {"image": "cnn", "clip": "r2plus1d_18", "tokens": "bert"}


def resolve_encoders(model_cfg, modalities) -> dict[str, str]:
  """Every modality's encoder: ``model.encoders`` where it names one, else by kind (mlp for
  vectors, cnn for images, r2plus1d_18 for clips, bert for token ids)."""
  named = encoder_names(model_cfg)
  out = {}
  for spec in modalities:
    name = named.get(spec.name, "auto")
    out[spec.name] = _AUTO_ENCODERS.get(spec.kind, "mlp") if name == "auto" else name
  return out


def bert_config(model_cfg, encoders: dict[str, str]) -> bert_lib.BertConfig | None:
  """The text encoder's architecture: the ``config.json`` next to its pretrained weights when
  ``model.pretrained`` names them, else ``model.bert`` (sizes)."""
  text = [m for m, n in encoders.items() if n == "bert"]
  if not text:
    return None
  weights = parse_assignments(model_cfg.pretrained, "model.pretrained")
  if text[0] in weights:
    return bert_lib.BertConfig.next_to(weights[text[0]])
  return bert_lib.BertConfig(**model_cfg.bert.to_dict())


def make_fused_head(model: MultimodalClassifier):
  """The fused prediction as a function of the features: ``(head_params, h) -> logits``.

  ``h`` is ``[B, sum_m D_m]``, the modality features concatenated in the model's modality
  order; ``head_params`` is ``{"params": params, "modality_weights": [M] or None}``. Returns
  the model's ``fused_logits`` (``log alpha`` for the Dirichlet fusions), whose argmax is the
  fused prediction. DeepFool perturbs ``h`` through this function.
  """
  names = [s.name for s in model.modalities]

  def fused_head(head_params, h):
    params = head_params["params"]
    sizes = [params[f"head_{m}"]["kernel"].shape[0] for m in names]
    if h.shape[-1] != sum(sizes):
      raise ValueError(f"fused features have width {h.shape[-1]}, the heads expect "
                       f"{sum(sizes)} ({dict(zip(names, sizes))})")
    offsets = [sum(sizes[:i]) for i in range(len(sizes) + 1)]
    parts = {m: h[..., offsets[i]:offsets[i + 1]] for i, m in enumerate(names)}
    if model.fusion == "concat":
      return params["fused_bias"] + sum(parts[m] @ params[f"fused_head_{m}"]["kernel"]
                                        for m in names)
    alphas = jnp.stack([
        fusion_lib.alpha_from_evidence(fusion_lib.evidence_from_logits(
            parts[m] @ params[f"head_{m}"]["kernel"] + params[f"head_{m}"]["bias"],
            model.evidence_activation)) for m in names])
    return jnp.log(fuse_alphas(alphas, model.fusion, head_params.get("modality_weights")))

  return fused_head
