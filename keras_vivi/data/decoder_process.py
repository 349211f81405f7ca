"""`sampling.decode_and_sample` in a process of its own, streaming the sampled frames back.

Why a process: a decoding thread beside the detector shares the interpreter lock with the detector's
NumPy, TensorFlow and JPEG glue, and on 2 cores it waited for it about a fifth of its time (the
benchmark's 75-s video: 1.99 s on the clock for 1.62 CPU s). In a process of its own it decodes at full
speed: `prepare` took 7–12% less time on the benchmark's 68 videos. The child imports PyAV and NumPy,
not TensorFlow: it starts in about 0.2 s and decodes video after video. A decoder that hangs is killed
at the time limit; one that crashes costs its video, not the job.

Protocol, pickled over the child's stdin and stdout: first the parent's `sys.path`; then each request
`(path, kwargs)` (see `DecoderPool.decode`) is answered by `("frame", index, image)` for
every sampled frame (grid frames as they decode, the few others once the shots are known), then
`("done", samples)` (whose `frames` is empty), or by `("error", exception)`. Sent frames are not
kept: the child holds the last second of decoded frames, not every sampled frame of the video.
"""

import os
import pickle
import queue
import signal
import subprocess
import sys
import threading
import time
from typing import Optional

from keras_vivi.data import sampling
from keras_vivi.data import video as video_lib


class TimeLimitExceeded(Exception):
  """Decoding one video took longer than its time limit; the decoder was stopped."""


class _Child:
  """One decoder process."""

  def __init__(self):
    # The parent's import path comes first, as multiprocessing's spawn passes it: the child imports
    # this very keras_vivi, installed or from a checkout.
    bootstrap = (f"import pickle, sys; sys.path[:] = pickle.load(sys.stdin.buffer); "
                 f"import {__name__} as m; m.main({os.getpid()})")
    self.process = subprocess.Popen([sys.executable, "-c", bootstrap], stdin=subprocess.PIPE,
                                    stdout=subprocess.PIPE)
    self.send(list(sys.path))

  def send(self, request) -> None:
    pickle.dump(request, self.process.stdin, protocol=pickle.HIGHEST_PROTOCOL)
    self.process.stdin.flush()

  def receive(self):
    """The next message; EOFError if the process ended."""
    return pickle.load(self.process.stdout)

  def close(self) -> None:
    """Ends the process once it has read the end of its input (killed if it does not within 10 s),
    and closes its pipes."""
    try:
      self.process.stdin.close()
    except OSError:  # a dead child's pipe
      pass
    try:
      self.process.wait(timeout=10)
    except subprocess.TimeoutExpired:
      self.process.kill()
      self.process.wait()
    self.process.stdout.close()


class DecoderPool:
  """Decoder processes, started on demand and reused; `close` ends the idle ones (a busy one ends when
  its `Decoding` closes)."""

  def __init__(self):
    self._idle: list = []
    self._lock = threading.Lock()

  def decode(self, path, *, queue_size: int, **kwargs) -> "Decoding":
    """Starts `sampling.decode_and_sample(path, **kwargs)` in an idle process (a new one if none is
    idle). At most `queue_size` frames wait for the consumer; the decoder pauses meanwhile."""
    with self._lock:
      child = self._idle.pop() if self._idle else None
    if child is not None and child.process.poll() is not None:  # it died while idle
      child.close()
      child = None
    return Decoding(self, child or _Child(), os.fspath(path), kwargs, queue_size)

  def _release(self, child: _Child) -> None:
    with self._lock:
      self._idle.append(child)

  def close(self) -> None:
    with self._lock:
      idle, self._idle = self._idle, []
    for child in idle:
      child.close()

  def __enter__(self) -> "DecoderPool":
    return self

  def __exit__(self, *exc) -> None:
    self.close()


class _Cancelled(Exception):
  pass


class Decoding:
  """One video decoding in a child process; a reader thread moves its messages into a bounded queue.

  `messages(time_limit)` yields them. The time limit counts the seconds the decoder works, not those it
  waits for the consumer to make room; past it the child is killed and `TimeLimitExceeded` raised.
  """

  def __init__(self, pool, child, path, kwargs, queue_size):
    self._pool, self._child, self._path = pool, child, path
    self._queue: queue.Queue = queue.Queue(maxsize=max(2, queue_size))
    self._cancelled = threading.Event()
    self._finished = False    # the child answered completely and can decode again
    self._waited = 0.0        # seconds the reader spent waiting for room in the queue
    self._waiting_since: Optional[float] = None
    self._start = time.monotonic()
    child.send((path, kwargs))
    self._reader = threading.Thread(target=self._read, daemon=True,
                                    name=f"decode {os.path.basename(path)}")
    self._reader.start()

  def _put(self, message) -> None:
    self._waiting_since = start = time.monotonic()
    try:
      while True:
        if self._cancelled.is_set():
          raise _Cancelled()
        try:
          self._queue.put(message, timeout=0.1)
          return
        except queue.Full:
          pass
    finally:
      self._waiting_since = None
      self._waited += time.monotonic() - start

  def _read(self) -> None:
    try:
      while True:
        try:
          message = self._child.receive()
        except (EOFError, OSError, pickle.UnpicklingError):
          if not self._cancelled.is_set():
            try:  # its output ended: it is exiting
              code = self._child.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
              code = None
            self._put(("error", video_lib.VideoDecodeError(
                self._path, f"the decoder process ended unexpectedly (exit code {code})")))
          return
        if message[0] != "frame":
          self._finished = True
        self._put(message)
        if self._finished:
          return
    except _Cancelled:
      pass

  def _busy_seconds(self) -> float:
    now = time.monotonic()
    waiting_since = self._waiting_since
    waiting = now - waiting_since if waiting_since is not None else 0.0
    return now - self._start - self._waited - waiting

  def messages(self, time_limit: Optional[float]):
    """Yields `("frame", index, image)`, then `("done", samples)`; raises what decoding raised."""
    while True:
      if time_limit is not None and self._busy_seconds() > time_limit:
        self.close()
        raise TimeLimitExceeded(f"decoding took longer than the time limit of {time_limit:g} s "
                                "(--time_limit), abandoned")
      try:
        message = self._queue.get(timeout=0.25)
      except queue.Empty:
        continue
      if message[0] == "error":
        raise message[1]
      yield message
      if message[0] == "done":
        return

  def idle(self) -> bool:
    """Whether no message is waiting: the consumer may as well work on what it has."""
    return self._queue.empty()

  def close(self) -> None:
    """Returns the child to the pool if it answered completely; kills it otherwise."""
    if self._cancelled.is_set():
      return
    self._cancelled.set()
    if self._finished:
      self._reader.join()
      self._pool._release(self._child)
    else:
      self._child.process.kill()
      self._reader.join()  # it reads to the end of the dead child's output, then stops
      self._child.close()


def _picklable(error: Exception) -> Exception:
  try:
    pickle.loads(pickle.dumps(error))
    return error
  except Exception:  # noqa: BLE001 — any exception must reach the parent
    return RuntimeError(f"{type(error).__name__}: {error}")


def _serve(requests, replies) -> None:
  def send(message):
    pickle.dump(message, replies, protocol=pickle.HIGHEST_PROTOCOL)
    replies.flush()

  while True:
    try:
      path, kwargs = pickle.load(requests)
    except EOFError:
      return
    try:
      samples = sampling.decode_and_sample(
          path, on_frame=lambda index, image: send(("frame", index, image)), **kwargs)
    except Exception as e:  # noqa: BLE001 — reported per video by the parent
      send(("error", _picklable(e)))
      continue
    send(("done", samples))


PARENT_POLL_SECONDS = 1.0


def _die_with(parent: int) -> None:
  """Ends this process once `parent` is gone, even while it decodes and reads no input: an orphan
  is adopted by another process, so its parent pid changes. (Linux's PR_SET_PDEATHSIG would fire
  when the parent's *thread* that started it ends, and decoders are started from worker threads.)"""
  def watch():
    while os.getppid() == parent:
      time.sleep(PARENT_POLL_SECONDS)
    os._exit(1)
  threading.Thread(target=watch, daemon=True, name="parent watch").start()


def main(parent: Optional[int] = None) -> None:
  # Ctrl-C is the parent's to handle; the child ends when its input does, or with its parent.
  signal.signal(signal.SIGINT, signal.SIG_IGN)
  _die_with(parent or os.getppid())
  replies = os.fdopen(os.dup(1), "wb")
  os.dup2(2, 1)  # whatever else writes to stdout must not enter the message stream
  sys.stdout = sys.stderr
  try:
    _serve(sys.stdin.buffer, replies)
  except BrokenPipeError:  # the parent is gone
    pass


if __name__ == "__main__":
  main()
