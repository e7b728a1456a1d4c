"""Small synthetic copies of the paper's data sets, written in exactly the layouts users have.

They exercise the builders, the input pipelines and the whole loop on a CPU (the configs'
``runlocal`` switch and the tests). The content is learnable: each class has its own photo
colour and pattern, recipe words, frame colour and audio pitch, with noise. Nothing here is
real data; results on fixtures say only that the code runs.
"""

from __future__ import annotations

import io
import os

import numpy as np

from rlmba_jax import extras

FOOD_CLASSES = ("apple_pie", "baklava", "churros", "pho")
CLIP_CLASSES = {"kinetics_sounds": ("playing drums", "playing violin", "tap dancing"),
                "vggsound": ("dog barking", "rain", "car passing by")}
_WORDS = ("flour sugar butter apples cinnamon", "phyllo walnuts honey syrup pistachio",
          "dough fried sugar chocolate cinnamon", "broth noodles beef basil lime")


def _jpeg(array: np.ndarray, quality: int = 90) -> bytes:
  from PIL import Image  # pylint: disable=g-import-not-at-top
  buf = io.BytesIO()
  Image.fromarray(np.clip(array, 0, 255).astype(np.uint8)).save(buf, "JPEG", quality=quality)
  return buf.getvalue()


def _class_image(rng, label: int, num_classes: int, size: tuple[int, int]) -> np.ndarray:
  h, w = size
  hue = np.array([np.cos(2 * np.pi * label / num_classes), np.sin(2 * np.pi * label /
                                                                    num_classes), 0.0])
  base = 128 + 90 * np.array([hue[0], hue[1], -hue[0]])
  yy, xx = np.mgrid[0:h, 0:w]
  stripes = 40 * np.sin(2 * np.pi * (xx * (label + 1) / w + yy / h))[..., None]
  return base + stripes + rng.normal(0, 25, (h, w, 3))


def write_wav(path: str, wave: np.ndarray, rate: int) -> None:
  soundfile = extras.require("soundfile", "writing wav fixtures")
  soundfile.write(path, wave.astype(np.float32), rate, subtype="PCM_16")


def write_food101(root: str, *, per_class_train: int = 12, per_class_test: int = 4,
                  seed: int = 0, classes=FOOD_CLASSES,
                  image_sides: tuple[int, int] = (40, 64)) -> str:
  """UPMC Food-101 layout: images/{train,test}/{class}/{class}_{n}.jpg + texts_txt/ + a
  vocab.txt covering the words (so the fixture runs without a BERT vocabulary)."""
  rng = np.random.default_rng(seed)
  n = 0
  words = set()
  for label, name in enumerate(classes):
    os.makedirs(os.path.join(root, "texts_txt", name), exist_ok=True)
    for split, count in (("train", per_class_train), ("test", per_class_test)):
      folder = os.path.join(root, "images", split, name)
      os.makedirs(folder, exist_ok=True)
      for _ in range(count):
        stem = f"{name}_{n}"
        n += 1
        size = (int(rng.integers(*image_sides)), int(rng.integers(*image_sides)))
        with open(os.path.join(folder, stem + ".jpg"), "wb") as f:
          f.write(_jpeg(_class_image(rng, label, len(classes), size)))
        own = _WORDS[label % len(_WORDS)].split()
        other = _WORDS[int(rng.integers(len(_WORDS)))].split()
        body = rng.choice(own, 6).tolist() + rng.choice(other, 3).tolist()
        words.update(body)
        page = (f"{name.replace('_', ' ').title()} recipe - serves {int(rng.integers(2, 9))}."
                f"\nIngredients: {', '.join(body)}.\nBake and serve!")
        with open(os.path.join(root, "texts_txt", name, stem + ".txt"), "w") as f:
          f.write(page)
  vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"] + sorted(words)
  vocab += [f"##{c}" for c in "abcdefghijklmnopqrstuvwxyz0123456789"]
  vocab += list("abcdefghijklmnopqrstuvwxyz0123456789.,;:!-")
  with open(os.path.join(root, "vocab.txt"), "w") as f:
    f.write("\n".join(dict.fromkeys(vocab)) + "\n")
  return root


def write_av_clips(root: str, dataset: str, *, per_class_train: int = 8,
                   per_class_test: int = 3, seed: int = 0, seconds: float = 10.0,
                   frame_size: tuple[int, int] = (48, 64), rate: int = 16000) -> str:
  """Kinetics-Sounds or VGGSound layout: 10 frames + a wav per clip, and the clip list."""
  rng = np.random.default_rng(seed)
  classes = CLIP_CLASSES[dataset]
  rows = {"train": [], "test": []}
  n = 0
  for label, name in enumerate(classes):
    for split, count in (("train", per_class_train), ("test", per_class_test)):
      for _ in range(count):
        youtube_id = f"{n:011d}"
        clip = f"{youtube_id}_{n * 10:06d}_{n * 10 + 10:06d}"
        n += 1
        if dataset == "kinetics_sounds":
          audio_dir = os.path.join(root, split, "audio", name)
          frames_dir = os.path.join(root, split, "video", name, clip)
        else:
          audio_dir = os.path.join(root, "audio", split, name)
          frames_dir = os.path.join(root, "frames", split, name, clip)
        os.makedirs(audio_dir, exist_ok=True)
        os.makedirs(frames_dir, exist_ok=True)
        for i in range(10):
          frame = _class_image(rng, label, len(classes), frame_size) + 8 * i
          with open(os.path.join(frames_dir, f"frame_{i}.jpg"), "wb") as f:
            f.write(_jpeg(frame))
        t = np.arange(int(seconds * rate)) / rate
        pitch = 220.0 * 2 ** (label * 4 / 12)
        wave = 0.3 * np.sin(2 * np.pi * pitch * t) + 0.05 * rng.standard_normal(len(t))
        write_wav(os.path.join(audio_dir, clip + ".wav"), wave, rate)
        rows[split].append((youtube_id, n * 10, name))
  if dataset == "kinetics_sounds":
    for split in ("train", "test"):
      with open(os.path.join(root, f"my_{split}.txt"), "w") as f:
        f.writelines(f"{y},{s},{s + 10},{split}\n" for y, s, _ in rows[split])
  else:
    with open(os.path.join(root, "vggsound.csv"), "w") as f:
      for split in ("train", "test"):
        f.writelines(f"{y},{s},{c},{split}\n" for y, s, c in rows[split])
  return root
