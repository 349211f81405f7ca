import numpy as np
import pytest
import tensorflow as tf
import tf_keras

from keras_vivi import configs, losses, models
from keras_vivi.data import augment, synthetic
from keras_vivi.training import VIVIModel, build_optimizer, trainer
from tests.helpers.references import np_shot_loss
from tests.helpers.training import dataset_fn_for, small_config


def one_step(config, **kwargs):
  model = trainer.build_model(config, **kwargs)
  model.compile(optimizer=build_optimizer(config.train, config.data.batch_size))
  model.fit(dataset_fn_for(config)(None), epochs=1, steps_per_epoch=1, verbose=0)  # builds
  before = [v.numpy().copy() for v in model.trainable_variables]
  logs = model.fit(dataset_fn_for(config)(None), epochs=1, steps_per_epoch=1, verbose=0).history
  return model, {k: v[-1] for k, v in logs.items()}, before


@pytest.mark.parametrize("name", ["vivi_3x", "vivi_objects_cotrain_3x"])
def test_wide_experiments_build_three_times_wider(name):
  config = configs.get_experiment(name)
  assert config.model.width == 3
  backbone = models.build_backbone(config.model)
  assert backbone.representation_dim == 6144


def test_losses_equal_the_pure_functions_on_the_model_outputs():
  config = small_config("objects_plus_cross_entropy")
  model = VIVIModel(config)
  batch = synthetic.video_batch(config.data, seed=3)
  total, values = model.compute_losses(batch, training=False)
  d = config.data
  b, k, f, m = d.batch_size, d.shots_per_video, d.frames_per_shot, d.max_objects
  out = model.backbone(batch["frames"].reshape(-1, 32, 32, 3), training=False)
  frame_emb = model.frame_head(out["pre_logits"]).numpy().reshape(b, k, f, -1)
  want_frame = losses.frame_loss(frame_emb, batch["frame_mask"], config.loss.margin).value
  r = models.gather_box_features(out["5"], batch["boxes"].reshape(-1, m, 4), (32, 32))
  r = tf.reshape(r, [-1, r.shape[-1]])
  want_object = losses.object_loss(model.object_head(r), batch["class_ids"].reshape(-1),
                                   batch["box_mask"].reshape(-1), config.loss.margin).value
  want_box = losses.box_classifier_loss(model.box_classifier(r), batch["class_ids"].reshape(-1),
                                        batch["box_mask"].reshape(-1))
  shots = model.shot_projection(models.aggregate_shots(
      out["pre_logits"].numpy().reshape(b, k, f, -1), batch["frame_mask"]))
  want_shot = losses.shot_loss(model.shot_predictor(shots), shots, batch["shot_mask"],
                               normalization="per_video").value
  for key, want in (("frame_loss", want_frame), ("object_loss", want_object),
                    ("box_classifier_loss", want_box), ("shot_loss", want_shot)):
    np.testing.assert_allclose(values[key].numpy(), want.numpy(), rtol=1e-4, err_msg=key)
  np.testing.assert_allclose(
      total.numpy(), 5 * want_object + want_frame + 0.04 * want_shot + want_box, rtol=1e-4)
  assert model(batch["frames"][0, 0]).shape == (f, 2048)


def test_two_replicas_give_the_single_replica_loss_and_update(mirrored_strategy):
  # Group norm: batch norm would normalise each replica's half of the batch on its own.
  config = small_config("vivi_objects", "model.normalization=group")
  fn = dataset_fn_for(config, seed=5)
  weights, results = None, []
  for strategy in (tf.distribute.OneDeviceStrategy("/cpu:0"),
                   mirrored_strategy):
    with strategy.scope():
      model = VIVIModel(config)
      model.compile(optimizer=tf_keras.optimizers.SGD(0.1))
      model.compute_losses(synthetic.video_batch(config.data, batch_size=1))  # builds the variables
      if weights is None:
        weights = model.get_weights()
      model.set_weights(weights)
    data = tf_keras.utils.experimental.DatasetCreator(fn)
    hist = model.fit(data, epochs=1, steps_per_epoch=1, verbose=0)
    results.append((hist.history, model.backbone.get_layer("stem_conv").kernel.numpy()))
  (one, w1), (two, w2) = results
  for key in ("total_loss", "frame_loss", "shot_loss", "object_loss"):
    np.testing.assert_allclose(two[key], one[key], rtol=2e-4, err_msg=key)
  # Same global loss, same gradient, same updated weights.
  assert not np.allclose(w1, weights[0])
  np.testing.assert_allclose(w2, w1, rtol=1e-3, atol=1e-5)


@pytest.mark.parametrize("normalization", ["per_video", "per_query"])
def test_shot_loss_on_two_replicas_is_equation_1(mirrored_strategy, normalization):
  # A hand batch of 4 videos (the last with 2 of 3 shots), 2 per replica; no frame loss.
  config = small_config("vivi", "model.normalization=group", "loss.frame=false",
                        f"loss.shot_normalization={normalization}")
  batch = synthetic.video_batch(config.data, seed=11)
  d = config.data
  b, k, f, s = d.batch_size, d.shots_per_video, d.frames_per_shot, d.image_size
  with mirrored_strategy.scope():
    model = VIVIModel(config)
    model.compute_losses(synthetic.video_batch(config.data, batch_size=1))  # builds the variables
  reps = model.backbone(batch["frames"].reshape(-1, s, s, 3), training=False)["pre_logits"]
  shots = model.shot_projection(models.aggregate_shots(
      tf.reshape(reps, [b, k, f, -1]), batch["frame_mask"])).numpy()
  predictions = model.shot_predictor(shots).numpy()
  want = np_shot_loss(predictions, batch["shot_mask"], shots, batch["shot_mask"], 0, False,
                      normalization)
  dist = mirrored_strategy.experimental_distribute_dataset(
      tf.data.Dataset.from_tensor_slices(batch).batch(b))
  total, values = mirrored_strategy.run(tf.function(model.compute_losses),
                                        args=(next(iter(dist)),))
  shares = [t.numpy() for t in mirrored_strategy.experimental_local_results(total)]
  for value in mirrored_strategy.experimental_local_results(values["shot_loss"]):
    np.testing.assert_allclose(value.numpy(), want, rtol=1e-4)
  # The replicas' shares add up to β·L_shot, so summed gradients train on the global loss.
  np.testing.assert_allclose(sum(shares), config.loss.beta * want, rtol=1e-4)


def test_l2_weight_decay_is_added_to_the_loss_and_reported():
  config = small_config("vivi", "train.weight_decay=0.01")
  model = trainer.build_model(config)
  model.compile(optimizer=build_optimizer(config.train, config.data.batch_size))
  batch = synthetic.video_batch(config.data, seed=4)
  model.compute_losses(batch)  # builds the variables
  weights = {v.name: v.numpy() for v in model.trainable_variables}
  # Kernels of convolutions, dense layers, the LSTM and the critic; no biases or norm params.
  want = 0.01 * sum(0.5 * np.sum(w.astype(np.float64) ** 2) for n, w in weights.items()
                    if w.ndim >= 2)
  assert any("kernel" in n for n, w in weights.items() if w.ndim >= 2)
  assert all(w.ndim == 1 for n, w in weights.items() if "gamma" in n or "bias" in n)
  logs = model.train_step(batch)
  np.testing.assert_allclose(logs["weight_decay_loss"].numpy(), want, rtol=1e-4)
  assert model.optimizer.weight_decay is None  # not decoupled as well


def test_decoupled_weight_decay_stays_available_by_name():
  config = small_config("vivi", "train.weight_decay_type=decoupled")
  optimizer = build_optimizer(config.train, config.data.batch_size)
  assert optimizer.weight_decay == config.train.weight_decay
  model = trainer.build_model(config)
  model.compile(optimizer=optimizer)
  assert "weight_decay_loss" not in model.train_step(synthetic.video_batch(config.data, seed=4))
  with pytest.raises(ValueError, match="weight_decay_type expects one of l2, decoupled, got 'l1'"):
    small_config("vivi", "train.weight_decay_type=l1")


@pytest.mark.parametrize("max_crops", [0, 7])
def test_detector_crops_are_real_boxes_of_the_raw_frames_then_augmented(max_crops):
  config = small_config("detector_distill", f"loss.max_crops={max_crops}",
                        "data.raw_image_size=48")
  model = trainer.build_model(config)
  batch = synthetic.video_batch(config.data, seed=6, raw_frames=True)
  seen = []
  backbone_call = model.backbone.call

  def recording_call(images, *args, **kwargs):
    seen.append(images)
    return backbone_call(images, *args, **kwargs)

  model.backbone.call = recording_call
  _, values = model.compute_losses(batch, training=False)
  m = config.data.max_objects
  raw = batch["raw_frames"].reshape(-1, 48, 48, 3)
  valid = np.flatnonzero(batch["raw_box_mask"].reshape(-1))
  slots = max_crops or batch["raw_box_mask"].size
  # A static number of crops, every one of them a real box (cycling through them), cut from
  # the un-augmented frames: no padded crop reaches batch norm.
  chosen = valid[np.arange(slots) % len(valid)]
  want = tf.image.crop_and_resize(raw, batch["raw_boxes"].reshape(-1, 4)[chosen], chosen // m,
                                  (32, 32)).numpy()
  assert len(seen) == 1
  np.testing.assert_allclose(seen[0].numpy(), want, atol=1e-5)
  # The loss: cross-entropy of each real box once (the first `slots` of them), by hand.
  counted = valid[:slots]
  model.backbone.call = backbone_call
  logits = model.crop_classifier(model.backbone(want, training=False)["pre_logits"]).numpy()
  logits = logits[:len(counted)]
  labels = batch["raw_class_ids"].reshape(-1)[counted]
  logp = logits - np.log(np.sum(np.exp(logits), axis=1, keepdims=True))
  np.testing.assert_allclose(values["crop_loss"].numpy(),
                             -np.mean(logp[np.arange(len(counted)), labels]) / np.log(8),
                             rtol=1e-4)  # in units of chance: log 8 for 8 classes
  # In training the crops are then flipped and colour-distorted with the pipeline's parameters.
  seen.clear()
  model.backbone.call = recording_call
  model.compute_losses(batch, training=True)
  flip = batch["raw_box_flip"].reshape(-1)[chosen]
  assert 0 < flip.sum() < slots
  flipped = np.where(flip[:, None, None, None], want[:, :, ::-1], want)
  np.testing.assert_allclose(seen[0].numpy(), augment.apply_color_ops(
      flipped, *batch["raw_box_color"].reshape(-1, 4)[chosen].T), atol=1e-5)
  empty = dict(batch, raw_box_mask=np.zeros_like(batch["raw_box_mask"]))
  seen.clear()
  model.backbone.call = recording_call
  _, values = model.compute_losses(empty, training=True)
  assert seen == [] and values["crop_loss"].numpy() == 0.0


@pytest.mark.parametrize("policy", ["mixed_float16", "mixed_bfloat16"])
def test_mixed_precision_steps_are_finite(policy, tmp_path):
  config = small_config("vivi_objects", f"train.mixed_precision={policy}", "train.steps=2")
  model, history = trainer.train(config, str(tmp_path), steps_per_epoch=1,
                                 dataset_fn=dataset_fn_for(config), verbose=0)
  assert all(np.isfinite(v[-1]) for v in history.history.values())
  if policy == "mixed_float16":
    assert isinstance(model.optimizer, tf_keras.mixed_precision.LossScaleOptimizer)
  assert model.backbone.get_layer("stem_conv").compute_dtype == policy.split("_")[1]
  assert tf_keras.mixed_precision.global_policy().name == "float32"  # restored


def test_inline_detector_supplies_boxes(detector_dir):
  config = small_config("vivi_objects", "data.inline_detection=true",
                        f"data.detector={detector_dir}", "data.raw_image_size=48",
                        "data.min_score=0.0")
  model = trainer.build_model(config)
  batch = synthetic.video_batch(config.data, seed=2)
  _, values = model.compute_losses(batch, training=False)
  # The fake detector returns boxes for every frame; the object loss sees real pairs.
  assert values["object_active_triplets"].numpy() > 0
  assert np.isfinite(values["object_loss"].numpy()) and values["object_loss"].numpy() > 0


def test_missing_detector_or_teacher_is_a_clear_error():
  with pytest.raises(ValueError, match="inline_detection"):
    VIVIModel(small_config("vivi_objects", "data.inline_detection=true"))
  with pytest.raises(ValueError, match="teacher"):
    VIVIModel(small_config("distill_imagenet"))


def test_padded_shots_change_no_loss_and_no_batch_norm_statistic():
  # Videos of 2 shots, once as K=2 and once padded to K=3 (the pipeline's padding: zero frames,
  # masked); the padded run must train exactly as if the padding were not there.
  short = small_config("vivi_objects", "data.shots_per_video=2")
  batch = synthetic.video_batch(short.data, seed=5)
  batch["shot_mask"][:] = True
  batch["frame_mask"][:] = True
  pad = {key: np.zeros_like(value[:, :1]) for key, value in batch.items()}
  padded = {key: np.concatenate([value, pad[key]], axis=1) for key, value in batch.items()}
  model = VIVIModel(small_config("vivi_objects"))
  model.compute_losses(padded, training=False)  # builds the variables
  initial = model.get_weights()
  results = []
  for videos in (batch, padded):
    model.set_weights(initial)
    _, values = model.compute_losses(videos, training=True)
    results.append(({k: float(v) for k, v in values.items()},
                    [v.numpy() for v in model.backbone.non_trainable_variables]))
  (want, want_statistics), (got, got_statistics) = results
  assert want.keys() == got.keys()
  for key in want:
    np.testing.assert_allclose(got[key], want[key], rtol=1e-4, err_msg=key)
  for a, b in zip(got_statistics, want_statistics):
    np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
