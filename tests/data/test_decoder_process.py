"""Decoding in a child process: the same samples as decoding in this one, and a crash costs one video."""

import os
import pickle
import signal

import numpy as np
import pytest

from keras_vivi.data import decoder_process, sampling
from keras_vivi.data import video as video_lib
from tests.helpers.videos import SHORT_SHOTS


def collect(decoding, time_limit=None):
  frames, samples = {}, None
  for message in decoding.messages(time_limit):
    if message[0] == "frame":
      assert message[1] not in frames  # every sampled frame comes once
      frames[message[1]] = message[2]
    else:
      samples = message[1]
  decoding.close()
  return frames, samples


@pytest.mark.parametrize("short_side", [None, 32])
def test_messages_carry_what_decode_and_sample_returns(short_shot_video, short_side):
  expected = sampling.decode_and_sample(short_shot_video, short_side=short_side, threads=1)
  n = sum(SHORT_SHOTS)
  assert set(expected.frame_indices.tolist()) > set(sampling.grid_frames(
      np.arange(n) / 25.0, n / 25.0).tolist())  # some frames are not grid frames
  with decoder_process.DecoderPool() as pool:
    frames, samples = collect(pool.decode(short_shot_video, queue_size=2, short_side=short_side, threads=1))
  assert sorted(frames) == expected.frame_indices.tolist()
  np.testing.assert_array_equal(np.stack([frames[i] for i in sorted(frames)]), expected.frames)
  assert samples.shots == expected.shots
  np.testing.assert_array_equal(samples.shot_ids, expected.shot_ids)
  np.testing.assert_array_equal(samples.times, expected.times)
  assert len(samples.frames) == 0  # sent once, as messages


def test_one_process_decodes_video_after_video(short_shot_video, sample_paths):
  with decoder_process.DecoderPool() as pool:
    first = pool.decode(short_shot_video, queue_size=4)
    pid = first._child.process.pid
    collect(first)
    second = pool.decode(sample_paths["carphone_pristine.mp4"], queue_size=4)
    assert second._child.process.pid == pid
    frames, samples = collect(second)
  expected = sampling.decode_and_sample(sample_paths["carphone_pristine.mp4"])
  assert sorted(frames) == expected.frame_indices.tolist() and samples.shots == expected.shots


def test_decode_errors_arrive_with_their_type_and_the_process_goes_on(broken_files, short_shot_video):
  with decoder_process.DecoderPool() as pool:
    with pytest.raises(video_lib.VideoDecodeError, match="file is empty") as error:
      collect(pool.decode(broken_files["empty"], queue_size=2))
    assert error.value.path == os.fspath(broken_files["empty"])
    frames, _ = collect(pool.decode(short_shot_video, queue_size=2))
  assert len(frames) == len(sampling.decode_and_sample(short_shot_video).frame_indices)


def test_a_decoder_that_dies_costs_its_video_only(sample_paths, short_shot_video):
  with decoder_process.DecoderPool() as pool:
    decoding = pool.decode(sample_paths["bikes.mp4"], queue_size=2)
    messages = decoding.messages(None)
    assert next(messages)[0] == "frame"  # the decoder now waits for room in the queue
    os.kill(decoding._child.process.pid, signal.SIGKILL)
    with pytest.raises(video_lib.VideoDecodeError, match=r"ended unexpectedly \(exit code -9\)"):
      for _ in messages:
        pass
    decoding.close()
    frames, _ = collect(pool.decode(short_shot_video, queue_size=2))
  assert len(frames) == len(sampling.decode_and_sample(short_shot_video).frame_indices)


def test_past_the_time_limit_the_decoder_is_killed(sample_paths):
  with decoder_process.DecoderPool() as pool:
    decoding = pool.decode(sample_paths["bikes.mp4"], queue_size=2)
    child = decoding._child.process
    with pytest.raises(decoder_process.TimeLimitExceeded, match="time limit of 1e-06 s"):
      collect(decoding, time_limit=1e-6)
    assert child.wait() == -signal.SIGKILL


def test_video_decode_error_pickles_with_path_and_reason():
  error = pickle.loads(pickle.dumps(video_lib.VideoDecodeError("a/b.mp4", "no such file")))
  assert (type(error), error.path, error.reason) == (video_lib.VideoDecodeError, "a/b.mp4", "no such file")
  assert str(error) == "cannot decode video 'a/b.mp4': no such file"
