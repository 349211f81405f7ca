"""The manifest's summary of per-video stats: counts by hand, and the same in any merge order."""

import itertools

from keras_vivi.data import manifest


def _stats():
  return [manifest.video_stats("a", "/v/a", 1, 3, [b"Cat", b"Dog", b"Cat"], [0.52, 0.91, 0.07]),
          manifest.video_stats("b", "/v/b", 3, 4, [], [], truncated=True),
          {"video_id": "c", "source": "/v/c", "reason": "VideoDecodeError: empty"}]


def test_summary_counts_by_hand():
  summary = manifest.new_summary()
  for stats in _stats():
    manifest.add_stats(summary, stats)
  m = manifest.build_manifest(summary, ["s0"], {"spec": "x"}, {122: "Cat", 13: "Dog"}, {})
  assert m["counts"] == {"videos": 2, "skipped": 1, "shots": 4, "frames": 7, "objects": 3}
  assert list(m["class_histogram"].items()) == [("Cat", 2), ("Dog", 1)]
  assert [i for i, n in enumerate(m["score_histogram"]["counts"]) for _ in range(n)] == [1, 10, 18]
  assert m["flagged"] == {"single_shot": ["a"], "no_detections": ["b"], "truncated": ["b"]}
  assert m["skipped"] == [{"source": "/v/c", "reason": "VideoDecodeError: empty"}]
  assert [v["video_id"] for v in m["videos"]] == ["a", "b"]
  assert list(m["label_map"]) == ["13", "122"]  # numeric order


def test_any_merge_order_gives_the_same_manifest():
  """What a Beam CombineFn does: partial summaries on workers, merged in any grouping and order."""
  manifests = set()
  for order in itertools.permutations(_stats()):
    parts = [manifest.add_stats(manifest.new_summary(), order[0]),
             manifest.add_stats(manifest.add_stats(manifest.new_summary(), order[1]), order[2])]
    merged = manifest.merge_summaries([manifest.new_summary(), *parts[::-1]])
    manifests.add(repr(manifest.build_manifest(merged, [], {}, {}, {})))
  assert len(manifests) == 1
