"""Result files of the evaluations, each replaced atomically (`files.write_atomically`), so a
killed run leaves the last complete version and never a partial file."""

import os

import tensorflow as tf

from keras_vivi import files


def write_report(output_dir, stem, data, markdown):
  """Writes `output_dir/stem.json` (of `data`) and `output_dir/stem.md`."""
  tf.io.gfile.makedirs(output_dir)
  files.write_json(os.path.join(output_dir, stem + ".json"), data, indent=2)
  files.write_atomically(os.path.join(output_dir, stem + ".md"), markdown)
