"""Independent NumPy-loop references of the paper's losses."""

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
