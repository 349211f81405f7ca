"""`vivi-export`: a keras_vivi backbone as a TF-Hub SavedModel.

  vivi-export --model_dir=RUN_DIR --export_dir=DIR             # latest checkpoint of a run
  vivi-export --checkpoint=RUN_DIR/ckpt-1000 --export_dir=DIR   # one checkpoint
  vivi-export --experiment=NAME --init=random --export_dir=DIR  # from-scratch baseline
              [--params_override=model.depth=14]

With --publish=ZOO_DIR the export also becomes ZOO_DIR/NAME/VERSION/ (SavedModel, model card,
NAME-VERSION.tar.gz and its sha256, preset.json), ready to upload to Kaggle Models / TF-Hub, and
the zoo preset entry is printed; --export_dir is optional then:
  vivi-export --model_dir=RUN_DIR --publish=zoo --name=vivi_objects --version=1
              [--results=vtab/results.json]
"""

import contextlib
import os

from absl import app
from absl import flags
from absl import logging
import yaml

from keras_vivi.cli import errors
import hub_export
from keras_vivi import configs
from keras_vivi import files

_MODEL_DIR = flags.DEFINE_string("model_dir", None,
                                 "A keras_vivi training run: its latest checkpoint is exported.")
_CHECKPOINT = flags.DEFINE_string("checkpoint", None, "A checkpoint prefix (e.g. RUN/ckpt-1000).")
_EXPERIMENT = flags.DEFINE_string(
    "experiment", None, "Registered experiment giving the architecture: required with "
    "--init=random, and for checkpoints without a config.json next to them.")
_INIT = flags.DEFINE_enum("init", "checkpoint", ["checkpoint", "random"],
                          "'random' exports a freshly initialised backbone of --experiment.")
_SEED = flags.DEFINE_integer("seed", 0, "Initialisation seed for --init=random.")
_PARAMS_OVERRIDE = flags.DEFINE_string(
    "params_override", "", "With --init=random: changes to --experiment, as vivi-train's "
    "--params_override (comma-separated section.field=value, e.g. model.depth=14, or a YAML "
    "mapping inline or in a file).")
_EXPORT_DIR = flags.DEFINE_string("export_dir", None, "Output directory of the SavedModel "
                                  "(optional with --publish).")
_OVERWRITE = flags.DEFINE_bool(
    "overwrite", False, "Replace an earlier export in --export_dir (and a published version) "
    "once the new one is complete; a directory vivi-export did not write is never replaced.")
_PUBLISH = flags.DEFINE_string("publish", None, "Also publish the export as PUBLISH/NAME/VERSION/ "
                               "for Kaggle Models / TF-Hub and print its zoo preset entry.")
_NAME = flags.DEFINE_string("name", None, "Published module (and preset) name; default: the "
                            "experiment's name.")
_VERSION = flags.DEFINE_integer("version", 1, "Published version (a positive int).", lower_bound=1)
_RESULTS = flags.DEFINE_string("results", None, "VTAB results.json for the model card and preset.")


def export(model_dir=None, checkpoint=None, experiment=None, init="checkpoint", seed=0,
           export_dir=None, overwrite=False, params_override="") -> dict:
  """Validates the flag combination and exports; returns the metadata of the export."""
  from hub_export import exporter
  try:
    exporter.check_replaceable(export_dir, overwrite)
  except FileExistsError as e:
    raise app.UsageError(str(e)) from None
  if init == "random":
    if model_dir or checkpoint:
      raise app.UsageError("--init=random takes no --model_dir or --checkpoint.")
    if not experiment:
      raise app.UsageError("--init=random needs --experiment=NAME for the architecture.")
    try:
      config = configs.build_config(experiment, params_override=params_override)
    except (KeyError, ValueError, yaml.YAMLError) as e:
      raise app.UsageError(str(e)) from None
    exporter.export_random_init(config, export_dir, seed=seed, overwrite=overwrite)
  else:
    if params_override:
      raise app.UsageError(f"--params_override applies to --init=random only (a checkpoint's "
                           f"architecture is its run's), got {params_override!r}.")
    if bool(model_dir) == bool(checkpoint):
      raise app.UsageError("Give exactly one of --model_dir or --checkpoint (or --experiment "
                           f"with --init=random); got model_dir={model_dir!r}, "
                           f"checkpoint={checkpoint!r}.")
    exporter.export_checkpoint(model_dir or checkpoint, export_dir, experiment=experiment,
                               overwrite=overwrite)
  return hub_export.read_metadata(export_dir)


def check_outputs(export_dir, publish_dir, name=None, results=None, version_given=False) -> None:
  """Raises UsageError unless the output flags make sense together."""
  if not export_dir and not publish_dir:
    raise app.UsageError("Give --export_dir=DIR, --publish=ZOO_DIR, or both.")
  if not publish_dir and (name or results or version_given):
    raise app.UsageError(f"--name, --version and --results describe a publication (got "
                         f"name={name!r}, results={results!r}): add --publish=ZOO_DIR.")


def _publication_report(publication):
  from hub_export import publish as publish_lib
  preset = publication.preset
  return (f"Published {preset.name} version {preset.version} ({preset.output_dim}-d features) "
          f"to {publication.directory}:\n"
          f"  {publish_lib.SAVED_MODEL_DIR}/, {publish_lib.MODEL_CARD_FILE}, "
          f"{os.path.basename(publication.archive)} (sha256 {publication.sha256}), "
          f"{publish_lib.PRESET_FILE}\n"
          f"Preset entry (a keras_vivi presets file; "
          f"{publish_lib.PRESET_FILE} holds exactly this):\n"
          f"{publication.preset_json()}\n"
          f"Use it: KERAS_VIVI_PRESETS="
          f"{os.path.join(publication.directory, publish_lib.PRESET_FILE)} "
          f"then keras_vivi.load_feature_extractor({preset.name!r}).\n"
          f"After uploading, set \"handle\" to the module's URL. Keep \"sha256\" if that URL "
          f"is this very archive file (gs://…/{os.path.basename(publication.archive)}); for a "
          f"Kaggle Models / TF-Hub handle set it to null: only an archive the loader fetches "
          f"itself can be checked.")


def main(argv) -> None:
  if len(argv) > 1:
    raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
  if not flags.FLAGS["verbosity"].present:
    # SavedModel writing logs every captured variable at INFO.
    logging.set_verbosity(logging.WARNING)
  from hub_export import publish as publish_lib
  publish_dir = _PUBLISH.value
  check_outputs(_EXPORT_DIR.value, publish_dir, name=_NAME.value, results=_RESULTS.value,
                version_given=flags.FLAGS["version"].present)
  # One publication at a time in a zoo directory; what killed ones left is swept.
  with (files.DirectoryLock(publish_dir, "vivi-export --publish") if publish_dir else
        contextlib.nullcontext()):
    if publish_dir:
      publish_lib.sweep_leftovers(publish_dir)
    _export_and_publish(publish_dir)


def _export_and_publish(publish_dir) -> None:
  from hub_export import publish as publish_lib
  if publish_dir:
    # Fail before the export, not after it.
    try:
      if _NAME.value:
        publish_lib.check_version_free(publish_dir, _NAME.value, _VERSION.value,
                                       _OVERWRITE.value)
      if _RESULTS.value:
        publish_lib.read_results(_RESULTS.value)
    except (OSError, ValueError) as e:
      raise app.UsageError(str(e)) from None
  export_dir = _EXPORT_DIR.value
  if not export_dir:
    assert publish_dir  # check_outputs: one of the two is given
    export_dir = publish_lib.export_temporary(publish_dir)
  try:
    info = export(_MODEL_DIR.value, _CHECKPOINT.value, _EXPERIMENT.value, _INIT.value,
                  _SEED.value, export_dir, _OVERWRITE.value, _PARAMS_OVERRIDE.value)
    source = info["source"]
    if _EXPORT_DIR.value:
      origin = source.get("checkpoint") or f"random init (seed {source.get('seed')})"
      print(f"Exported the {source['experiment']} backbone ({origin}, "
            f"{info['output']['dim']}-d features) to {export_dir}.\n"
            f"Use: hub.KerasLayer({export_dir!r}, trainable=True)")
    if publish_dir:
      try:
        publication = publish_lib.publish(export_dir, publish_dir,
                                          _NAME.value or source["experiment"], _VERSION.value,
                                          results=_RESULTS.value, overwrite=_OVERWRITE.value)
      except (OSError, ValueError) as e:
        raise app.UsageError(str(e)) from None
      print(_publication_report(publication))
  finally:
    if not _EXPORT_DIR.value:
      files.remove_tree(export_dir)


def run() -> None:
  errors.run(main)


if __name__ == "__main__":
  run()
