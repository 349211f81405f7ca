import functools
import os
import sys

import numpy as np
import pytest
import tensorflow as tf
import tensorflow_datasets as tfds
from PIL import Image
from tensorflow_datasets.testing import mocking

from keras_vivi.evaluation.vtab import tasks as vtab_tasks
from keras_vivi.evaluation.vtab.tasks import Slicing

# Hand-computed from task_adaptation's definitions and the tfds train split sizes
# (val200 starts at ⌊p·n/100⌋; eurosat/resisc45 test after ⌊0.6n⌋ + ⌊0.2n⌋, dsprites
# after ⌊0.8n⌋ + ⌊0.1n⌋).
EXPECTED_SPLITS = {
    "caltech101": ("train[2754:2954]", "test"),          # 3060 · 90 %
    "cifar100": ("train[45000:45200]", "test"),          # 50000 · 90 %
    "dtd": ("validation[:200]", "test"),
    "oxford_flowers102": ("validation[:200]", "test"),
    "oxford_iiit_pet": ("train[2944:3144]", "test"),     # 3680 · 80 %
    "sun397": ("validation[:200]", "test"),
    "svhn": ("train[65931:66131]", "test"),              # 73257 · 90 % = 65931.3
    "patch_camelyon": ("validation[:200]", "test"),
    "eurosat": ("train[16200:16400]", "train[21600:]"),  # 27000: 16200 + 5400
    "resisc45": ("train[18900:19100]", "train[25200:]"),  # 31500: 18900 + 6300
    "diabetic_retinopathy": ("validation[:200]", "test"),
    "clevr_count": ("train[63000:63200]", "validation"),  # 70000 · 90 %
    "clevr_distance": ("train[63000:63200]", "validation"),
    "dmlab": ("validation[:200]", "test"),
    "kitti_distance": ("validation[:200]", "test"),
    "dsprites_location": ("train[589824:590024]", "train[663552:]"),  # 737280: 589824 + 73728
    "dsprites_orientation": ("train[589824:590024]", "train[663552:]"),
    "smallnorb_azimuth": ("test[:200]", "test[50%:]"),
    "smallnorb_elevation": ("test[:200]", "test[50%:]"),
}
EXPECTED_CLASSES = {"caltech101": 102, "cifar100": 100, "dtd": 47, "oxford_flowers102": 102,
                    "oxford_iiit_pet": 37, "sun397": 397, "svhn": 10, "patch_camelyon": 2,
                    "eurosat": 10, "resisc45": 45, "diabetic_retinopathy": 5, "clevr_count": 8,
                    "clevr_distance": 6, "dmlab": 6, "kitti_distance": 4, "dsprites_location": 16,
                    "dsprites_orientation": 16, "smallnorb_azimuth": 18,
                    "smallnorb_elevation": 9}


def test_nineteen_tasks_in_three_groups():
  assert vtab_tasks.list_tasks() == list(EXPECTED_SPLITS)
  assert [len(vtab_tasks.list_tasks(g)) for g in vtab_tasks.GROUPS] == [7, 4, 8]
  assert vtab_tasks.list_tasks("local") == ["digits", "lfw_subset"]
  for name, classes in EXPECTED_CLASSES.items():
    assert vtab_tasks.get_task(name).num_classes == classes
  with pytest.raises(ValueError, match="Unknown VTAB task 'cifar10'"):
    vtab_tasks.get_task("cifar10")


@pytest.mark.parametrize("name", list(EXPECTED_SPLITS))
def test_split_strings_by_hand(name):
  task = vtab_tasks.get_task(name)
  val, test = EXPECTED_SPLITS[name]
  assert vtab_tasks.split_strings(task.slicing, task.train_examples) == {
      "train800": "train[:800]", "val200": val, "train800val200": f"train[:800]+{val}",
      "test": test}


def test_cut_floors_each_share():
  assert vtab_tasks.cut_index((60, 20), 99) == 59 + 19  # not ⌊0.8 · 99⌋ = 79
  assert vtab_tasks.cut_index((), 99) == 0
  slicing = Slicing(val_split="train", val_cut=(60,), test_split="train", test_cut=(60, 20))
  assert vtab_tasks.split_strings(slicing, 99, train_size=10, val_size=5) == {
      "train800": "train[:10]", "val200": "train[59:64]",
      "train800val200": "train[:10]+train[59:64]", "test": "train[78:]"}
  with pytest.raises(ValueError, match="needs num_examples, got None"):
    vtab_tasks.split_strings(slicing)


def _numpy(pair):
  image, label = pair
  return np.asarray(image), int(label)


def test_clevr_labels_by_hand():
  def scene(depths):
    coords = np.array([[10.0, 20.0, d] for d in depths], np.float32)
    return {"image": np.zeros([4, 6, 3], np.uint8),
            "objects": {"size": np.zeros(len(depths), np.int64), "pixel_coords": coords}}
  assert _numpy(vtab_tasks.clevr_count_all(scene([9, 9, 9])))[1] == 0
  assert _numpy(vtab_tasks.clevr_count_all(scene([9] * 10)))[1] == 7
  distance = lambda depths: _numpy(vtab_tasks.clevr_closest_object_distance(scene(depths)))[1]
  # Bins (0, 8], (8, 8.5], (8.5, 9], (9, 9.5], (9.5, 10], (10, 100].
  assert distance([12.0, 8.7, 9.9]) == 2
  assert distance([7.0, 11.0]) == 0
  assert distance([8.0]) == 0  # the bounds belong to the lower bin
  assert distance([8.01]) == 1
  assert distance([9.5]) == 3
  assert distance([10.5, 30.0]) == 5


def test_kitti_closest_vehicle_by_hand():
  def frame(types, depths):
    location = np.array([[1.0, 1.5, d] for d in depths], np.float32).reshape(-1, 3)
    return {"image": np.zeros([4, 6, 3], np.uint8),
            "objects": {"type": np.array(types, np.int64), "location": location}}
  label = lambda types, depths: _numpy(vtab_tasks.kitti_closest_vehicle_distance(
      frame(types, depths)))[1]
  # types 0 Car, 1 Van, 2 Truck are vehicles; 3 Pedestrian is not.
  assert label([3, 0, 2], [2.0, 15.0, 30.0]) == 1  # pedestrian at 2 m ignored; car at 15 m
  assert label([1], [5.0]) == 0
  assert label([2, 0], [25.0, 40.0]) == 2
  assert label([3, 4], [3.0, 10.0]) == 3  # no vehicle
  assert label([], []) == 3


def test_dsprites_and_smallnorb_by_hand():
  mask = np.zeros([64, 64, 1], np.uint8)
  mask[10:20, 30:40] = 1
  location = vtab_tasks.get_task("dsprites_location").preprocess
  orientation = vtab_tasks.get_task("dsprites_orientation").preprocess
  image, label = _numpy(location({"image": mask, "label_x_position": 31,
                                  "label_orientation": 0}))
  assert image.shape == (64, 64, 3) and image.dtype == np.uint8
  assert image[15, 35].tolist() == [255, 255, 255] and image[0, 0].tolist() == [0, 0, 0]
  assert label == 15
  for x, want in ((0, 0), (5, 2), (30, 15)):  # 32 positions → 16: ⌊x / 2⌋
    assert _numpy(location({"image": mask, "label_x_position": x}))[1] == want
  for angle, want in ((39, 15), (5, 2), (4, 1), (2, 0)):  # 40 angles → 16: ⌊a / 2.5⌋
    assert _numpy(orientation({"image": mask, "label_orientation": angle}))[1] == want
  gray = np.arange(96 * 96, dtype=np.uint8).reshape(96, 96, 1)
  example = {"image": gray, "label_azimuth": 17, "label_elevation": 3}
  image, label = _numpy(vtab_tasks.get_task("smallnorb_azimuth").preprocess(example))
  assert label == 17 and image.shape == (96, 96, 3)
  assert (image == gray).all()
  assert _numpy(vtab_tasks.get_task("smallnorb_elevation").preprocess(example))[1] == 3


@pytest.mark.parametrize("name", list(EXPECTED_SPLITS))
def test_every_task_loads_through_tfds(name, monkeypatch):
  """Builder names, versions, feature keys and label code run on tfds's mock data."""
  task = vtab_tasks.get_task(name)
  # Mock examples with every unknown dimension 10, so that they are consistent as real ones
  # are: a kitti frame lists one object type per location, a CLEVR scene holds 3..10 objects.
  init = mocking.RandomFakeGenerator.__init__
  monkeypatch.setattr(mocking.RandomFakeGenerator, "__init__",
                      functools.partialmethod(init, constant_dynamic_shape=True))
  with tfds.testing.mock_data(num_examples=3, policy=tfds.testing.MockPolicy.USE_CODE):
    for split in vtab_tasks.SPLITS:
      data = vtab_tasks.load_split(task, split, data_dir="/nonexistent")
      assert data.element_spec[0].dtype == tf.uint8
      assert data.element_spec[0].shape.as_list()[-1] == 3
      assert data.element_spec[1] == tf.TensorSpec([], tf.int64)
      pairs = list(data.as_numpy_iterator())
      assert len(pairs) == 3
      for image, label in pairs:
        assert image.ndim == 3 and image.shape[-1] == 3
        assert 0 <= label < task.num_classes, (split, label)


def test_missing_data_names_task_builder_dir_and_command(tmp_path):
  with pytest.raises(vtab_tasks.TaskDataMissing) as info:
    vtab_tasks.load_split(vtab_tasks.get_task("cifar100"), "train800", str(tmp_path))
  message = str(info.value)
  assert "'cifar100'" in message and "'cifar100:3.*.*'" in message and str(tmp_path) in message
  assert f"tfds build cifar100:3.0.2 --data_dir={tmp_path}" in message
  with pytest.raises(vtab_tasks.TaskDataMissing) as info:
    vtab_tasks.load_split(vtab_tasks.get_task("diabetic_retinopathy"), "test", str(tmp_path))
  assert (f"tfds build diabetic_retinopathy_detection/btgraham-300:3.0.0 --data_dir={tmp_path} "
          "--manual_dir=MANUAL_DIR") in str(info.value)
  assert "Kaggle" in str(info.value)
  assert "--manual_dir" in vtab_tasks.prepare_command(vtab_tasks.get_task("resisc45"))
  assert vtab_tasks.prepare_command(vtab_tasks.get_task("kitti_distance")) == \
      "tfds build kitti:3.1.0"


def test_digits_splits():
  from sklearn import datasets
  digits = datasets.load_digits()
  task = vtab_tasks.get_task("digits")
  loaded = {s: list(vtab_tasks.load_split(task, s).as_numpy_iterator())
            for s in vtab_tasks.SPLITS}
  assert {s: len(v) for s, v in loaded.items()} == {
      "train800": 800, "val200": 200, "train800val200": 1000, "test": 797}
  # Every image is a digit scaled from 0..16 to 0..255, with its own label.
  reference = {np.rint(im * 255 / 16).astype(np.uint8).tobytes(): t
               for im, t in zip(digits.images, digits.target)}
  seen = []
  for split in ("train800", "val200", "test"):
    for image, label in loaded[split]:
      assert image.shape == (8, 8, 3) and (image[..., 0] == image[..., 2]).all()
      assert reference[image[..., 0].tobytes()] == label
      seen.append(image[..., 0].tobytes())
  assert len(seen) == 1797
  assert [p[1] for p in loaded["train800val200"]] == \
      [p[1] for p in loaded["train800"] + loaded["val200"]]


@pytest.mark.parametrize("task,modules,package", [
    ("digits", ("sklearn", "sklearn.datasets"), "scikit-learn"),
    ("lfw_subset", ("skimage", "skimage.data"), "scikit-image")])
def test_local_task_without_its_package_says_how_to_install_it(task, modules, package,
                                                                 monkeypatch):
  for module in modules:
    monkeypatch.setitem(sys.modules, module, None)  # makes importing it fail
  with pytest.raises(ModuleNotFoundError,
                     match=rf"need {package}.*`pip install {package}`.*\.\[test\]"):
    vtab_tasks.load_split(vtab_tasks.get_task(task), "test")


def test_lfw_subset_splits():
  from skimage import data
  faces = np.asarray(data.lfw_subset())
  task = vtab_tasks.get_task("lfw_subset")
  sizes = {}
  for split in vtab_tasks.SPLITS:
    pairs = list(vtab_tasks.load_split(task, split).as_numpy_iterator())
    sizes[split] = len(pairs)
    for image, label in pairs:
      gray = image[..., 0].astype(np.float64) / 255
      index = int(np.argmin(np.abs(faces - gray).sum(axis=(1, 2))))
      assert np.abs(faces[index] - gray).max() <= 0.5 / 255 + 1e-9
      assert label == (1 if index < 100 else 0)
  assert sizes == {"train800": 120, "val200": 30, "train800val200": 150, "test": 50}


def test_image_folder_task(tmp_path):
  colours = {"cat": (200, 10, 10), "dog": (10, 10, 200)}
  for split, count in (("train", 3), ("val", 1), ("test", 2)):
    for name, colour in colours.items():
      os.makedirs(tmp_path / split / name)
      for i in range(count):
        Image.new("RGB", (5 + i, 4), colour).save(tmp_path / split / name / f"{i}.png")
  (tmp_path / "train" / "cat" / "notes.txt").write_text("not an image")
  # Listed as tf_keras's image_dataset_from_directory lists: sub-folders of a class count.
  os.makedirs(tmp_path / "train" / "cat" / "more")
  Image.new("RGB", (6, 4), colours["cat"]).save(tmp_path / "train" / "cat" / "more" / "9.PNG")
  task = vtab_tasks.get_task(f"folder:{tmp_path}")
  assert task.num_classes == 2 and task.group == "local"
  pairs = list(vtab_tasks.load_split(task, "train800val200").as_numpy_iterator())
  # train (cat ×4, dog ×3), then val (cat, dog).
  assert [label for _, label in pairs] == [0, 0, 0, 0, 1, 1, 1, 0, 1]
  for image, label in pairs:
    assert image.dtype == np.uint8 and image.shape[0] == 4
    assert tuple(image[0, 0]) == colours[["cat", "dog"][label]]
  assert len(list(vtab_tasks.load_split(task, "test"))) == 4
  with pytest.raises(FileNotFoundError, match="expected .*/nowhere/train"):
    vtab_tasks.get_task(f"folder:{tmp_path}/nowhere")
