"""The manifest's summary of per-video stats: counts by hand, and the same in any merge order."""

import itertools

import numpy as np
import pytest
from PIL import Image

from keras_vivi.data import manifest
from tests.helpers.records import synthetic_video


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


def test_shot_thumbnails_are_each_shots_middle_frame():
  assert manifest.shot_thumbnails([0, 0, 0, 1, 2, 2, 2, 2, 5, 5]) == [1, 3, 5, 8]
  assert manifest.shot_thumbnails([]) == []


def test_contact_sheet_shows_every_shot_of_each_video(tmp_path):
  # 6 and 13 shots: the second video takes two lines of 10 thumbnails.
  first = [2, 3, 1, 4, 1, 2]
  second = [1] * 13
  records = [synthetic_video("six", first, seed=1), synthetic_video("thirteen", second, seed=2)]
  sheet = manifest.contact_sheet(records, str(tmp_path / "sheet.png"), columns=10)
  assert sheet.info["thumbnails"] == {"six": [0, 3, 5, 7, 10, 11], "thirteen": list(range(13))}
  on_disk = Image.open(tmp_path / "sheet.png")
  assert on_disk.size == sheet.size
  # Thumbnails are drawn: 10 columns of cells, 3 lines (one for "six", two for "thirteen").
  cell_h, cell_w, label_w, caption_h, title_h, pad = 90, 160, 120, 12, 20, 6
  assert sheet.size == (label_w + 10 * (cell_w + pad), title_h + 3 * (cell_h + caption_h + pad))
  pixels = np.asarray(sheet)
  def drawn(line, column):
    top = title_h + line * (cell_h + caption_h + pad) + caption_h
    left = label_w + column * (cell_w + pad)
    return (pixels[top + 5:top + 40, left + 5:left + 40] != 255).any()
  assert [drawn(0, c) for c in range(10)] == [True] * 6 + [False] * 4
  assert [drawn(2, c) for c in range(10)] == [True] * 3 + [False] * 7


def test_the_manifest_of_records_given_as_a_directory_a_glob_or_a_shard(tmp_path):
  records = tmp_path / "records"
  records.mkdir()
  (records / "train-00000.tfrecord").write_bytes(b"")
  assert manifest.read_manifest(str(records)) is None
  (records / "manifest.json").write_text('{"detector": {"spec": "mediapipe_oidv4"}}')
  expected = str(records / "manifest.json")
  for given in (records, records / "*.tfrecord", records / "train-00000.tfrecord"):
    assert manifest.manifest_path(str(given)) == expected
    assert manifest.read_manifest(str(given)) == {"detector": {"spec": "mediapipe_oidv4"}}
  (records / "manifest.json").write_text("[1]")
  with pytest.raises(ValueError, match="manifest.json is damaged.*vivi-prepare"):
    manifest.read_manifest(str(records))
