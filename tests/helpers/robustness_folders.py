"""Hand-built release folders of the robustness sets, read by a stand-in classifier.

`ColourClassifier` gives each solid colour a fixed logits row, so every `write_*` returns the
expected result of its protocol, computed by plain Python loops over those rows.
"""

import json
import os

import numpy as np
from PIL import Image

from keras_vivi.evaluation.robustness import classifier as robustness_classifier
from keras_vivi.evaluation.robustness import data as data_lib


SIZE = 8
WNIDS = data_lib.imagenet_wnids()


class ColourClassifier:
  """Solid colour → a registered logits row (float32 [1000])."""

  def __init__(self):
    self.rows = {}

  def add(self, row):
    i = len(self.rows)
    colour = (20 + i % 200, 30 + (i // 200) % 200, 77)
    self.rows[colour] = np.asarray(row, np.float32)
    return colour

  def __call__(self, images):
    colours = np.rint(np.asarray(images).mean(axis=(1, 2)) * 255).astype(int)
    return np.stack([self.rows[tuple(c)] for c in colours])

  def as_classifier(self, name="colours"):
    return robustness_classifier.Classifier(self, SIZE, {"source": name})


def save_image(path, colour, frame=None, shape=(13, 11)):
  """A solid `colour` PNG (any extension), with a 1-pixel `frame` colour if given."""
  os.makedirs(os.path.dirname(path), exist_ok=True)
  pixels = np.empty(shape + (3,), np.uint8)
  pixels[:] = colour
  if frame is not None:
    pixels[0], pixels[-1], pixels[:, 0], pixels[:, -1] = frame, frame, frame, frame
  Image.fromarray(pixels).save(path, format="PNG")


def peaked(rng, winner, runner_up=None):
  """A logits row whose arg-max is `winner` (and second `runner_up`)."""
  row = rng.normal(0, 1, 1000)
  row[winner] = 10
  if runner_up is not None:
    row[runner_up] = 9
  return row


def write_imagenet_a(root, classifier, rng):
  """ImageNet-A's layout; returns the expected number of correct images out of 6."""
  in_set = list(data_lib.IMAGENET_A_CLASSES)
  outside = sorted(set(range(1000)) - set(in_set))
  expected = 0
  for i in range(6):
    label = in_set[3 * i]
    # Global arg-max outside the 200 classes; among them, the label (even i) or another class.
    row = peaked(rng, outside[i], label if i % 2 == 0 else in_set[3 * i + 1])
    best_in_set = max(in_set, key=lambda c: row[c])
    expected += best_in_set == label
    save_image(os.path.join(root, WNIDS[label], f"{i}.jpg"), classifier.add(row))
  return expected


def write_objectnet(root, classifier, rng):
  """ObjectNet's layout with a shuffled 2012-id order; returns (correct, scored) expected."""
  mappings = os.path.join(root, "mappings")
  os.makedirs(mappings)
  names = [f"imagenet class {i}" for i in range(1000)]
  order = rng.permutation(1000)          # class index → ImageNet 2012 id
  names_by_2012 = [None] * 1000
  for index, id2012 in enumerate(order):
    names_by_2012[id2012] = names[index]
  with open(os.path.join(mappings, "imagenet_to_label_2012_v2"), "w") as f:
    f.write("\n".join(names_by_2012) + "\n")
  with open(os.path.join(mappings, "pytorch_to_imagenet_2012_id.json"), "w") as f:
    json.dump({str(i): int(order[i]) for i in range(1000)}, f)
  synonyms = {"Alarm clock": [409, 530], "Banana": [954]}   # many-to-one and one-to-one
  with open(os.path.join(mappings, "objectnet_to_imagenet_1k.json"), "w") as f:
    json.dump({k: "; ".join(names[i] for i in v) for k, v in synonyms.items()}, f)
  with open(os.path.join(mappings, "folder_to_objectnet_label.json"), "w") as f:
    json.dump({"alarm_clock": "Alarm clock", "banana": "Banana", "air_freshener":
               "Air freshener"}, f)
  # (folder, predicted ImageNet class): synonyms of the right class count, others do not.
  cases = [("alarm_clock", 409), ("alarm_clock", 530), ("alarm_clock", 954), ("banana", 954),
           ("banana", 3), ("air_freshener", 1)]
  correct = scored = 0
  for i, (folder, predicted) in enumerate(cases):
    label = {"alarm_clock": "Alarm clock", "banana": "Banana"}.get(folder)
    colour = classifier.add(peaked(rng, predicted))
    save_image(os.path.join(root, "images", folder, f"{i}.png"), colour, frame=(255, 0, 0),
               shape=(17, 15))
    if label is not None:  # air_freshener has no ImageNet class: not scored
      scored += 1
      correct += predicted in synonyms[label]
  return correct, scored


VID_CLASSES = {"0": ["n02691156", "airplane"], "1": ["n02419796", "antelope"],
               "2": ["n02131653", "bear"]}
VID_MEMBERS = {"n02691156": [404, 895], "n02419796": [352, 353], "n02131653": [294, 296]}


def write_video_set(root, classifier, rng):
  """The imagenet-vid-robust layout: 3 anchors; returns the expected (anchor, pm-k) accuracy."""
  os.makedirs(os.path.join(root, "misc"))
  os.makedirs(os.path.join(root, "metadata"))
  with open(os.path.join(root, "misc", "imagenet_vid_class_index.json"), "w") as f:
    json.dump(VID_CLASSES, f)
  with open(os.path.join(root, "misc", "rev_wnid_map.json"), "w") as f:
    json.dump({w: [WNIDS[i] for i in members] for w, members in VID_MEMBERS.items()}, f)
  groups = [VID_MEMBERS[VID_CLASSES[str(g)][0]] for g in range(3)]
  # video: (labels of every frame, ImageNet arg-max of [anchor, neighbours...])
  videos = {"v0": ([0], [895, 404, 404]),          # all airplane: anchor and pm-k right
            "v1": ([1, 2], [296, 353, 404]),       # bear or antelope ok; airplane breaks pm-k
            "v2": ([2], [353, 294])}               # anchor wrong
  pmsets, labels = {}, {}
  anchor_ok, pmk_ok = [], []
  for video, (accepted, predicted) in videos.items():
    keys = [f"val/{video}/{j:06d}.png" for j in range(len(predicted))]
    pmsets[keys[0]] = keys[1:]
    frame_ok = []
    for key, imagenet_class in zip(keys, predicted):
      labels[key] = accepted
      row = peaked(rng, imagenet_class)
      vid_class = max(range(3), key=lambda g: max(row[c] for c in groups[g]))
      frame_ok.append(vid_class in accepted)
      save_image(os.path.join(root, key), classifier.add(row))
    anchor_ok.append(frame_ok[0])
    pmk_ok.append(all(frame_ok))
  with open(os.path.join(root, "metadata", "pmsets.json"), "w") as f:
    json.dump(pmsets, f)
  with open(os.path.join(root, "metadata", "labels.json"), "w") as f:
    json.dump(labels, f)
  return np.mean(anchor_ok), np.mean(pmk_ok)


def write_imagenet_c(root, classifier, rng, parts):
  """`{corruption_severity: expected accuracy}` for the release layout of `parts`."""
  expected = {}
  for n, (corruption, severity) in enumerate(parts):
    hits = []
    for i in range(3):
      label = (37 * n + 11 * i) % 1000
      predicted = label if (i + n) % 3 else (label + 1) % 1000
      hits.append(predicted == label)
      save_image(os.path.join(root, corruption, str(severity), WNIDS[label], f"{i}.JPEG"),
                 classifier.add(peaked(rng, predicted)))
    expected[f"{corruption}_{severity}"] = np.mean(hits)
  return expected


def write_imagenet_v2(root, classifier, rng):
  hits = []
  for i, label in enumerate([0, 5, 999, 5]):
    predicted = label if i != 1 else 6
    hits.append(predicted == label)
    save_image(os.path.join(root, str(label), f"{i}.jpeg"), classifier.add(peaked(rng, predicted)))
  return np.mean(hits)
