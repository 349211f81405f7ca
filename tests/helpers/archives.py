"""Tar archives of SavedModel directories and their sha256, as the zoo serves them."""

import hashlib
import os
import tarfile


def sha256_of(path):
  with open(path, "rb") as f:
    return hashlib.sha256(f.read()).hexdigest()


def make_archive(saved_model_dir, archive, prefix=""):
  """Tars the directory's contents (under `prefix/` if given; gzipped if `archive` ends in .gz);
  returns the archive's sha256."""
  with tarfile.open(archive, "w:gz" if str(archive).endswith(".gz") else "w") as tar:
    for name in sorted(os.listdir(saved_model_dir)):
      tar.add(os.path.join(saved_model_dir, name), arcname=os.path.join(prefix, name))
  return sha256_of(archive)
