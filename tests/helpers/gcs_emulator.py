"""A real Google Cloud Storage API on this machine: `gcp-storage-emulator` from PyPI, in a process of
its own on a free loopback port.

google-cloud-storage, and so Beam's GCS filesystem, sends its requests to `$STORAGE_EMULATOR_HOST`
when set. TensorFlow's own GCS client has its endpoint built in (no variable moves it), so the TF side
of the package is tested on tf.io.gfile's `ram://` instead.
"""

import contextlib
import json
import os
import socket
import subprocess
import sys
import tempfile
import time

# Beam asks google-auth for default credentials (retrying for half a minute before it falls back to
# anonymous requests): it is handed a user token that never expires, which the emulator accepts and
# nothing refreshes; a probe of the GCE metadata server would go to a closed loopback port.
_NO_METADATA_SERVER = "127.0.0.1:9"
_TEST_TOKEN = {"type": "authorized_user", "client_id": "emulator", "client_secret": "emulator",
               "refresh_token": "emulator", "token": "emulator", "expiry": "2999-01-01T00:00:00Z"}


def _free_port():
  with socket.socket() as s:
    s.bind(("127.0.0.1", 0))
    return s.getsockname()[1]


@contextlib.contextmanager
def gcs_emulator(bucket, timeout=60.0):
  """Starts the emulator with `bucket` (in memory), sets the variables that point google-cloud-storage
  at it (for this process and the processes it starts) and yields its URL; stops it after."""
  port = _free_port()
  url = f"http://127.0.0.1:{port}"
  server = subprocess.Popen(
      [sys.executable, "-m", "gcp_storage_emulator", "start", "--host=127.0.0.1", f"--port={port}",
       "--in-memory", f"--default-bucket={bucket}"],
      stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
  token = tempfile.NamedTemporaryFile("w", suffix=".json", prefix="gcs_emulator_token_", delete=False)
  with token:
    json.dump(_TEST_TOKEN, token)
  variables = {"STORAGE_EMULATOR_HOST": url, "GCE_METADATA_IP": _NO_METADATA_SERVER,
               "GCE_METADATA_HOST": _NO_METADATA_SERVER, "GOOGLE_CLOUD_PROJECT": "test",
               "GOOGLE_APPLICATION_CREDENTIALS": token.name}
  saved = {name: os.environ.get(name) for name in variables}
  try:
    deadline = time.monotonic() + timeout
    while True:
      if server.poll() is not None:
        raise RuntimeError(f"gcp-storage-emulator exited with code {server.returncode}")
      try:
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
        break
      except OSError:
        if time.monotonic() > deadline:
          raise TimeoutError(f"gcp-storage-emulator did not listen on {url} within {timeout} s") from None
        time.sleep(0.1)
    os.environ.update(variables)
    yield url
  finally:
    for name, value in saved.items():
      if value is None:
        os.environ.pop(name, None)
      else:
        os.environ[name] = value
    os.remove(token.name)
    server.terminate()
    try:
      server.wait(timeout=10)
    except subprocess.TimeoutExpired:
      server.kill()
      server.wait()
