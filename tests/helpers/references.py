"""Independent NumPy-loop references: the paper's losses, greedy NMS, crops and boxes."""

import numpy as np


def np_shot_loss(pred, shot_mask, cands, cand_mask, offset, same_position,
                 normalization="per_video"):
  """Eq. 1 by loops: local predictions `[B, K, S, D]` of videos `offset..offset+B` against the
  candidate shots `[G, K, D]` of the global batch."""
  b, k, s, _ = pred.shape
  g = cands.shape[0]
  terms = []
  for i in range(b):
    for l in range(k):
      for m in range(1, s + 1):
        t = l + m
        if t >= k or not (shot_mask[i, l] and shot_mask[i, t]):
          continue
        p = pred[i, l, m - 1].astype(np.float64)
        if same_position:
          keys = [(j, t) for j in range(g) if cand_mask[j, t] or j == offset + i]
        else:
          keys = [(j, u) for j in range(g) for u in range(k)
                  if cand_mask[j, u] or (j, u) == (offset + i, t)]
        sc = np.array([p @ cands[j, u] for j, u in keys])
        pos = p @ cands[offset + i, t]
        terms.append(-pos + np.log(np.sum(np.exp(sc))) - np.log(len(keys)))
  if normalization == "per_query":
    return np.mean(terms) if terms else 0.0
  # Eq. 1: summed over positions and steps, divided by the number of videos.
  return np.sum(terms) / sum(1 for i in range(b) if shot_mask[i].any())


def greedy_loop(boxes, scores, max_outputs, iou_threshold, score_threshold=-np.inf):
  """Greedy NMS by its definition, one box at a time: the highest remaining score is kept unless
  its IoU with a kept box exceeds the threshold."""
  def iou(a, b):
    h = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    w = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - h * w
    return h * w / union if union > 0 else 0.0
  kept = []
  for i in sorted(range(len(scores)), key=lambda i: -scores[i]):
    if len(kept) == max_outputs or scores[i] < score_threshold:
      break
    if all(iou(boxes[i], boxes[k]) <= iou_threshold for k in kept):
      kept.append(i)
  return kept


def reference_semi_hard(embeddings, labels, margin, mask=None):
  """Loop-by-loop transcription of the FaceNet semi-hard rule (DESIGN.md §3)."""
  x = embeddings.astype(np.float64)
  n = len(labels)
  valid = np.ones(n, bool) if mask is None else mask
  losses = []
  for a in range(n):
    if not valid[a]:
      continue
    negs = [j for j in range(n) if valid[j] and labels[j] != labels[a]]
    if not negs:
      continue
    for p in range(n):
      if p == a or not valid[p] or labels[p] != labels[a]:
        continue
      d_ap = np.sum((x[a] - x[p]) ** 2)
      d_neg = [np.sum((x[a] - x[j]) ** 2) for j in negs]
      farther = [d for d in d_neg if d > d_ap]
      d_an = min(farther) if farther else max(d_neg)
      losses.append(max(d_ap - d_an + margin, 0.0))
  return (float(np.mean(losses)) if losses else 0.0), len(losses)


def np_crop_resize(image, crop, flip, size):
  """NumPy reference: bilinear at output pixel centres mapped into the window, clamped to the
  image (TF's half_pixel_centers convention)."""
  image = np.asarray(image, np.float64)
  height, width = image.shape[:2]
  step_y = (crop[2] - crop[0]) * height / size
  step_x = (crop[3] - crop[1]) * width / size
  ys = crop[0] * height + (np.arange(size) + 0.5) * step_y - 0.5
  xs = crop[1] * width + (np.arange(size) + 0.5) * step_x - 0.5
  if flip:
    xs = xs[::-1]
  ys, xs = np.clip(ys, 0, height - 1), np.clip(xs, 0, width - 1)
  y0, x0 = np.floor(ys).astype(int), np.floor(xs).astype(int)
  y1, x1 = np.minimum(y0 + 1, height - 1), np.minimum(x0 + 1, width - 1)
  wy, wx = (ys - y0)[:, None, None], (xs - x0)[None, :, None]
  top = image[y0][:, x0] * (1 - wx) + image[y0][:, x1] * wx
  bottom = image[y1][:, x0] * (1 - wx) + image[y1][:, x1] * wx
  return top * (1 - wy) + bottom * wy


def np_transform_boxes(boxes, crop, flip):
  boxes = np.asarray(boxes, np.float64)
  h, w = crop[2] - crop[0], crop[3] - crop[1]
  ymin, ymax = (boxes[:, 0] - crop[0]) / h, (boxes[:, 2] - crop[0]) / h
  xmin, xmax = (boxes[:, 1] - crop[1]) / w, (boxes[:, 3] - crop[1]) / w
  if flip:
    xmin, xmax = 1 - xmax, 1 - xmin
  cy, cx = (ymin + ymax) / 2, (xmin + xmax) / 2
  valid = (cy >= 0) & (cy <= 1) & (cx >= 0) & (cx <= 1)
  return np.clip(np.stack([ymin, xmin, ymax, xmax], -1), 0, 1), valid
