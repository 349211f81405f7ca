"""A decoder process ends with its parent, even while it is stuck in a video and reads no input."""

import os
import signal
import subprocess
import sys
import time

from tests.helpers.cli import REPO

PARENT = ("import sys, time\n"
          "from keras_vivi.data import decoder_process\n"
          "decoding = decoder_process.DecoderPool().decode(sys.argv[1], queue_size=2)\n"
          "print(decoding._child.process.pid, flush=True)\n"
          "time.sleep(600)\n")


def alive(pid):
  try:
    with open(f"/proc/{pid}/stat") as f:
      return f.read().rsplit(")", 1)[1].split()[0] != "Z"  # a zombie has ended
  except FileNotFoundError:
    return False


def test_a_decoder_stuck_in_a_video_ends_when_its_parent_is_killed(tmp_path):
  # Opening a FIFO nobody writes to blocks, as a stalled network file does.
  fifo = tmp_path / "stalled.mp4"
  os.mkfifo(fifo)
  parent = subprocess.Popen([sys.executable, "-c", PARENT, str(fifo)], cwd=REPO,
                            stdout=subprocess.PIPE, text=True)
  child = int(parent.stdout.readline())
  try:
    assert alive(child)
    parent.send_signal(signal.SIGKILL)
    parent.wait()
    deadline = time.monotonic() + 120  # it checks every second; a loaded machine may be slow
    while alive(child) and time.monotonic() < deadline:
      time.sleep(0.2)
    assert not alive(child)
  finally:
    parent.stdout.close()
    if alive(child):
      os.kill(child, signal.SIGKILL)
