import numpy as np
import tensorflow as tf

from keras_vivi.data import records, schema


def test_video_example_round_trips_through_the_schema():
  frames = np.stack([np.full((16, 24, 3), v, np.uint8) for v in (10, 120, 240)])
  detections = {
      "detection_boxes": np.array([[[0.1, 0.2, 0.3, 0.4], [0.5, 0.5, 0.9, 0.9]],
                                   [[0, 0, 0, 0], [0, 0, 0, 0]],
                                   [[0.0, 0.0, 1.0, 1.0], [0, 0, 0, 0]]], np.float32),
      "detection_scores": np.array([[0.9, 0.2], [0, 0], [0.5, 0]], np.float32),
      "detection_class_labels": np.array([[122, 69], [-1, -1], [179, -1]]),
      "detection_class_entities": np.array([[b"Cat", b"Person"], [b"", b""],
                                            [b"Coffee cup", b""]], object),
  }
  example = records.video_example(
      video_id="a/b.mp4", source="/videos/a/b.mp4", duration=3.0, fps=25.0, truncated=False,
      shot_starts=[0.0, 2.0], shot_ends=[2.0, 3.0],
      jpegs=[records.encode_jpeg(f) for f in frames], shot_index=[0, 0, 1],
      timestamps=[0.5, 1.5, 2.5], frame_index=[12, 37, 62], detections=detections,
      num_detections=np.array([2, 0, 1]))
  context, seq = schema.parse_video(example.SerializeToString())
  assert context[schema.VIDEO_ID].numpy() == b"a/b.mp4"
  np.testing.assert_array_equal(context[schema.SHOT_NUM_FRAMES].numpy(), [2, 1])
  np.testing.assert_allclose(context[schema.SHOT_START].numpy(), [0.0, 2.0])
  np.testing.assert_array_equal(seq[schema.FRAME_SHOT].numpy(), [0, 0, 1])
  np.testing.assert_array_equal(seq[schema.FRAME_INDEX].numpy(), [12, 37, 62])
  boxes = seq[schema.OBJECT_BOXES]
  assert boxes.row_lengths().numpy().tolist() == [8, 0, 4]
  np.testing.assert_allclose(boxes[0].numpy().reshape(-1, 4), detections["detection_boxes"][0])
  assert seq[schema.OBJECT_CLASS_IDS].to_list() == [[122, 69], [], [179]]
  assert seq[schema.OBJECT_CLASS_NAMES].to_list() == [[b"Cat", b"Person"], [], [b"Coffee cup"]]
  decoded = tf.io.decode_jpeg(seq[schema.FRAME_JPEG][1]).numpy()
  assert decoded.shape == (16, 24, 3) and abs(int(decoded.mean()) - 120) <= 2
