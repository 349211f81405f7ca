"""The module cache as several users meet it: loads at once, hand-filled copies, stalled servers."""

import concurrent.futures
import http.server
import os
import socket
import subprocess
import sys
import tarfile
import threading
import time

import pytest

from keras_vivi.training import trainer
from keras_vivi.zoo import loader
from tests.helpers.archives import make_archive
from tests.helpers.cli import REPO
from tests.helpers.tiny_modules import save_tiny


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
  """`(archive, sha256)` of a tiny SavedModel."""
  root = tmp_path_factory.mktemp("tiny_module")
  archive = str(root / "tiny.tar.gz")
  return archive, make_archive(save_tiny(root / "model"), archive)


@pytest.fixture
def cache(tmp_path, monkeypatch):
  path = str(tmp_path / "cache")
  monkeypatch.setenv("TFHUB_CACHE_DIR", path)
  monkeypatch.delenv(loader.OFFLINE_ENV, raising=False)
  return path


def complete(module_dir):
  return (os.path.isfile(os.path.join(module_dir, "saved_model.pb")) and
          os.path.isfile(os.path.join(module_dir, "variables", "variables.index")))


def test_threads_filling_one_module_at_once_all_get_a_complete_copy(tiny, cache, tmp_path):
  archive, digest = tiny
  for trial in range(5):
    handle = f"https://example.org/m{trial}.tar.gz"
    barrier = threading.Barrier(6)

    def load(_):
      barrier.wait()
      return loader.cache_archive(handle, archive, sha256=digest)
    with concurrent.futures.ThreadPoolExecutor(6) as pool:
      paths = list(pool.map(load, range(6)))
    assert len(set(paths)) == 1 and complete(paths[0])
    assert loader.resolve_handle(handle, sha256=digest, offline=True) == paths[0]
  # Nothing half-written is left beside the modules.
  assert not [n for n in os.listdir(cache) if n.endswith((".tmp", ".old"))]


@pytest.mark.slow  # three processes importing TensorFlow
def test_processes_filling_the_cache_at_once(tiny, cache, tmp_path):
  archive, digest = tiny
  go = tmp_path / "go"
  script = (
      "import os, sys, time\n"
      "from keras_vivi.zoo import loader\n"
      "print('ready', flush=True)\n"
      "while not os.path.exists(sys.argv[1]): time.sleep(0.01)\n"
      "for i in range(5):\n"
      "  d = loader.cache_archive(f'https://example.org/p{i}.tar.gz', *sys.argv[2:])\n"
      "  assert os.path.isfile(os.path.join(d, 'saved_model.pb')), d\n"
      "  assert os.path.isfile(os.path.join(d, 'variables', 'variables.index')), d\n"
      "print('done', flush=True)\n")
  procs = [subprocess.Popen([sys.executable, "-c", script, str(go), archive, digest], cwd=REPO,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "TFHUB_CACHE_DIR": cache})
           for _ in range(3)]
  for proc in procs:
    assert proc.stdout.readline().strip() == "ready", proc.stderr.read()[-2000:]
  go.touch()
  for proc in procs:
    out, err = proc.communicate(timeout=600)
    assert proc.returncode == 0 and out.strip() == "done", err[-3000:]
  for i in range(5):
    module_dir = loader.cached_module_dir(f"https://example.org/p{i}.tar.gz")
    assert complete(module_dir) and loader._read_digest(module_dir) == digest


def unpack_by_hand(archive, module_dir):
  os.makedirs(module_dir)
  with tarfile.open(archive) as tar:
    tar.extractall(module_dir, filter="data")


class _Server:
  """A local HTTP server: serves `archive` at any path, or (`silent`) accepts and never answers."""

  def __init__(self, archive=None, silent=False):
    self.requests = 0
    self.stop = threading.Event()
    if silent:
      self.sock = socket.socket()
      self.sock.bind(("127.0.0.1", 0))
      self.sock.listen(8)
      self.port = self.sock.getsockname()[1]
      threading.Thread(target=self._silent, daemon=True).start()
    else:
      outer = self

      class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):  # pylint: disable=invalid-name
          outer.requests += 1
          with open(archive, "rb") as f:
            data = f.read()
          self.send_response(200)
          self.send_header("Content-Length", str(len(data)))
          self.end_headers()
          self.wfile.write(data)

        def log_message(self, *args):
          pass
      self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
      self.port = self.httpd.server_address[1]
      threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

  def _silent(self):
    self.sock.settimeout(0.1)
    held = []
    while not self.stop.is_set():
      try:
        held.append(self.sock.accept()[0])
        self.requests += 1
      except socket.timeout:
        pass
      # A client without a timeout would wait here forever; hang up at last, so that it fails.
      if held and time.monotonic() - self._started > 60:
        break
    for conn in held:
      conn.close()

  def __enter__(self):
    self._started = time.monotonic()
    return self

  def __exit__(self, *args):
    self.stop.set()
    if hasattr(self, "httpd"):
      self.httpd.shutdown()
      self.httpd.server_close()


def test_a_checksummed_preset_never_uses_an_unverifiable_copy(tiny, cache):
  archive, digest = tiny
  with _Server(archive) as server:
    url = f"http://127.0.0.1:{server.port}/tiny.tar.gz"
    module_dir = loader.cached_module_dir(url)
    unpack_by_hand(archive, module_dir)  # as tensorflow_hub or `tar -x` would: no digest record
    with pytest.raises(loader.ChecksumMismatchError,
                       match="has no record of its archive's sha256.*cannot be fetched again "
                             "offline"):
      loader.resolve_handle(url, sha256=digest, offline=True)
    assert server.requests == 0
    # Online it is fetched and verified; afterwards the cached copy is used as it is.
    assert loader.resolve_handle(url, sha256=digest) == module_dir
    assert server.requests == 1 and loader._read_digest(module_dir) == digest
    assert complete(module_dir)
    assert loader.resolve_handle(url, sha256=digest, offline=True) == module_dir


def test_a_stalled_server_times_out_and_is_retried(tiny, cache, monkeypatch):
  monkeypatch.setenv(loader.DOWNLOAD_TIMEOUT_ENV, "0.5")
  with _Server(silent=True) as server:
    url = f"http://127.0.0.1:{server.port}/tiny.tar.gz"
    with pytest.raises(loader.ModuleNotCachedError, match="fetching it failed .*timed out"):
      loader.resolve_handle(url, sha256=tiny[1])
    assert server.requests == loader.DOWNLOAD_ATTEMPTS


def test_leftovers_of_killed_loaders_are_swept_but_fresh_ones_kept(tiny, cache):
  archive, digest = tiny
  handle = "https://example.org/leftovers.tar.gz"
  module_dir = loader.cached_module_dir(handle)
  old, fresh = f"{module_dir}.dead.tmp", f"{module_dir}.running.tmp"
  for path in (old, fresh):
    os.makedirs(os.path.join(path, "variables"))
  past = time.time() - 2 * 24 * 3600  # killed two days ago
  os.utime(old, (past, past))
  loader.cache_archive(handle, archive, sha256=digest)
  assert not os.path.exists(old) and os.path.isdir(fresh)


def test_teacher_is_loaded_through_the_cache_offline(tmp_path, cache, monkeypatch):
  monkeypatch.setenv(loader.OFFLINE_ENV, "1")
  with pytest.raises(loader.ModuleNotCachedError, match="offline"):
    trainer.load_teacher("http://127.0.0.1:9/teacher.tar.gz")
  with pytest.raises(loader.ModuleNotCachedError, match="does not exist"):
    trainer.load_teacher(str(tmp_path / "no_teacher"))


def test_a_damaged_unpacked_module_is_fetched_again_or_explained(tiny, cache, tmp_path):
  archive, digest = tiny
  with _Server(archive) as server:
    url = f"http://127.0.0.1:{server.port}/tiny.tar.gz"
    module_dir = loader.resolve_handle(url, sha256=digest)
    assert server.requests == 1
    variables = os.path.join(module_dir, "variables", "variables.index")
    original = open(variables, "rb").read()
    with open(variables, "r+b") as f:
      f.write(b"\0" * 8)  # bit rot, or a copy cut short
    with pytest.raises(loader.ChecksumMismatchError,
                       match=rf"{module_dir}' of handle .* is damaged \({variables} differs "
                             "from the file unpacked.*cannot be fetched again offline"):
      loader.resolve_handle(url, sha256=digest, offline=True)
    # Online it is fetched again and the damaged copy is set aside, not used.
    assert loader.resolve_handle(url, sha256=digest) == module_dir
    assert server.requests == 2 and open(variables, "rb").read() == original
    os.remove(os.path.join(module_dir, loader.SAVED_MODEL_FILE))
    with pytest.raises(loader.ChecksumMismatchError, match="saved_model.pb is missing"):
      loader.resolve_handle(url, sha256=digest, offline=True)
  # A local archive is unpacked again.
  local = loader.resolve_handle(archive)
  os.remove(os.path.join(local, "variables", "variables.index"))
  assert loader.resolve_handle(archive) == local and complete(local)
