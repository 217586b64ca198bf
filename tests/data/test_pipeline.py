import logging
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import tensorflow as tf
import tensorflow_datasets as tfds
from PIL import Image

from keras_sr.data import pipeline
from keras_sr.data.degradations import imresize, quantize
from keras_sr.data.make_tfrecords import main as make_tfrecords_main
from keras_sr.data.make_tfrecords import write_shards
from keras_sr.data.pipeline import should_cache, training_dataset
from keras_sr.data.sources import (
    SkipLog,
    Source,
    folder_source,
    paired_source,
    tfds_source,
    tfrecord_source,
)
from tests.training.test_evaluate import natural_folder, natural_like


def blocky_source(rng, scale, sizes):
    """Pairs whose HR is each LR pixel blown up to a scale x scale block."""
    lr_images = [rng.integers(0, 256, (h, w, 3)).astype(np.uint8) for h, w in sizes]

    def generate():
        for index, lr_image in enumerate(lr_images):
            yield (f"img{index}", lr_image, lr_image.repeat(scale, 0).repeat(scale, 1))

    spec = tf.TensorSpec([None, None, 3], tf.uint8)
    dataset = tf.data.Dataset.from_generator(
        generate, output_signature=(tf.TensorSpec([], tf.string), spec, spec))
    return Source(dataset, SkipLog())


def upsample_nearest(lr, scale):
    return lr.repeat(scale, -3).repeat(scale, -2)


@pytest.fixture
def hr_folder(tmp_path, rng):
    folder = tmp_path / "hr"
    folder.mkdir()
    for index, (h, w) in enumerate([(64, 48), (50, 70), (41, 39)]):
        Image.fromarray(natural_like(rng, h, w)).save(folder / f"img{index}.png")
    return folder


def test_folder_source_makes_lr_with_matlab_bicubic(hr_folder):
    source = folder_source(hr_folder, scale=4)
    assert source.skip_log.total == 3 and source.skip_log.count == 0
    for name, lr_image, hr_image in source.dataset:
        expected_hr = np.asarray(Image.open(name.numpy().decode()))
        expected_hr = expected_hr[: expected_hr.shape[0] // 4 * 4, : expected_hr.shape[1] // 4 * 4]
        np.testing.assert_array_equal(hr_image, expected_hr)
        expected_lr = quantize(imresize(expected_hr, 0.25))
        difference = np.abs(lr_image.numpy().astype(int) - expected_lr)
        # float32 in the graph vs float64: at most a rare one-level rounding flip.
        assert difference.max() <= 1 and difference.mean() < 0.01


def test_bad_files_are_skipped_with_one_warning_each_and_counted(hr_folder, caplog):
    (hr_folder / "notimage.png").write_bytes(b"just text")
    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(hr_folder / "tiny.png")
    # A valid header with truncated pixel data passes the scan and fails at decode time.
    good = (hr_folder / "img0.png").read_bytes()
    (hr_folder / "truncated.png").write_bytes(good[: len(good) // 2])
    with caplog.at_level(logging.WARNING, logger="keras_sr.data"):
        source = folder_source(hr_folder, scale=2, min_hr_size=32)
        names = sorted(name.numpy().decode().rsplit("/", 1)[1] for name, _, _ in source.dataset)
        # A second pass (a new epoch without cache) warns no more.
        list(source.dataset)
    assert names == ["img0.png", "img1.png", "img2.png"]
    assert sorted(p.rsplit("/", 1)[1] for p in source.skip_log.skipped) == [
        "notimage.png", "tiny.png", "truncated.png"]
    warnings = [r.getMessage() for r in caplog.records if "skipping" in r.getMessage()]
    assert len(warnings) == 3
    assert any("tiny.png" in w and "smaller than the 32-pixel HR patch" in w for w in warnings)
    # Two were found by the header scan before training, one while decoding; the log keeps the
    # running count and the final summary for the training loop to report.
    assert "2 of 6 images skipped" in caplog.text
    assert "(3 skipped so far)" in caplog.text
    assert source.skip_log.summary() == "3 of 6 images skipped"


def test_shuffle_seed_reads_files_in_a_seeded_order(tmp_path, rng):
    for index in range(12):
        Image.fromarray(natural_like(rng, 8, 8)).save(tmp_path / f"{index:02d}.png")

    def order(seed):
        source = folder_source(tmp_path, scale=2, shuffle_seed=seed)
        return [name.numpy().decode()[-6:] for name, _, _ in source.dataset]

    assert order(None) == [f"{index:02d}.png" for index in range(12)]
    assert order(5) == order(5) != order(None)
    assert sorted(order(5)) == order(None)


def test_no_usable_image_is_a_clear_error(tmp_path):
    (tmp_path / "a.png").write_bytes(b"nope")
    (tmp_path / "b.jpg").write_bytes(b"nope")
    with pytest.raises(ValueError, match=r"none of the 2 images .*a\.png"):
        folder_source(tmp_path, scale=2)


def test_training_batches_are_aligned_shaped_and_in_unit_range(rng):
    scale = 3
    source = blocky_source(rng, scale, [(20, 17), (12, 30)])
    dataset = training_dataset(source, hr_patch_size=24, scale=scale, batch_size=5, seed=3)
    assert dataset.element_spec[0].shape == (5, 8, 8, 3)
    for lr_images, hr_images in dataset.take(4):
        assert lr_images.dtype == tf.float32 and hr_images.shape == (5, 24, 24, 3)
        assert 0.0 <= float(tf.reduce_min(lr_images)) and float(tf.reduce_max(hr_images)) <= 1.0
        np.testing.assert_array_equal(hr_images, upsample_nearest(lr_images.numpy(), scale))


def test_same_seed_same_batches_other_seed_other_batches(rng):
    source = blocky_source(rng, 2, [(20, 20), (16, 24), (30, 12)])

    def first_batches(seed):
        dataset = training_dataset(source, hr_patch_size=8, scale=2, batch_size=4, seed=seed)
        return [lr.numpy() for lr, _ in dataset.take(3)]

    first, again, other = first_batches(7), first_batches(7), first_batches(8)
    for a, b in zip(first, again):
        np.testing.assert_array_equal(a, b)
    assert any(not np.array_equal(a, b) for a, b in zip(first, other))


def test_flips_and_rotations_reach_all_eight_dihedral_variants(rng):
    # One 6x6 LR image and a full-size patch: only the flip/rotation varies.
    source = blocky_source(rng, 2, [(6, 6)])
    dataset = training_dataset(source, hr_patch_size=12, scale=2, batch_size=1, seed=0)
    variants = {lr.numpy().tobytes() for lr, _ in dataset.take(200)}
    assert len(variants) == 8
    plain = training_dataset(source, hr_patch_size=12, scale=2, batch_size=1, seed=0,
                             flip=False, rotate=False)
    assert len({lr.numpy().tobytes() for lr, _ in plain.take(20)}) == 1


def test_patch_size_must_be_a_multiple_of_the_scale(rng):
    with pytest.raises(ValueError, match="hr_patch_size 10 is not a multiple of scale 4"):
        training_dataset(blocky_source(rng, 4, [(8, 8)]), 10, 4, 2)


def test_cache_auto_follows_the_memory_budget(monkeypatch, rng):
    source = Source(tf.data.Dataset.range(1), SkipLog(), decoded_bytes=10**9)
    monkeypatch.setattr(pipeline, "physical_memory_bytes", lambda: 10**10)
    assert should_cache(source, "auto")
    monkeypatch.setattr(pipeline, "physical_memory_bytes", lambda: 10**9)
    assert not should_cache(source, "auto")
    assert not should_cache(Source(tf.data.Dataset.range(1), SkipLog()), "auto")
    with pytest.raises(ValueError, match="cache must be"):
        should_cache(source, "sometimes")


def div2k_layout(tmp_path, rng, scale):
    hr_dir, lr_dir = tmp_path / "DIV2K_train_HR", tmp_path / "DIV2K_train_LR_bicubic" / "X2"
    hr_dir.mkdir()
    lr_dir.mkdir(parents=True)
    for stem, (h, w) in [("0001", (40, 36)), ("0002", (33, 45)), ("0003", (20, 20)),
                         ("0004", (24, 24))]:
        hr = natural_like(rng, h, w)
        Image.fromarray(hr).save(hr_dir / f"{stem}.png")
        if stem == "0003":
            continue  # no LR partner
        lr = quantize(imresize(hr[: h // scale * scale, : w // scale * scale], 1 / scale))
        if stem == "0004":
            lr = lr[:7]  # wrong size
        Image.fromarray(lr).save(lr_dir / f"{stem}x{scale}.png")
    return hr_dir, lr_dir


def test_paired_div2k_layout_with_mismatches_named(tmp_path, rng, caplog):
    hr_dir, lr_dir = div2k_layout(tmp_path, rng, 2)
    with caplog.at_level(logging.WARNING, logger="keras_sr.data"):
        source = paired_source(hr_dir, lr_dir, scale=2)
    assert source.skip_log.total - source.skip_log.count == 2
    assert "0003.png" in caplog.text and "no LR image" in caplog.text
    assert "0004.png" in caplog.text and "0004x2.png" in caplog.text  # both names
    for name, lr_image, hr_image in source.dataset:
        # The odd-sized HR of 0002 (33x45) is cropped to 2 x its LR.
        assert hr_image.shape[:2] == (lr_image.shape[0] * 2, lr_image.shape[1] * 2)
    batches = training_dataset(source, hr_patch_size=16, scale=2, batch_size=2)
    lr_images, hr_images = next(iter(batches))
    assert lr_images.shape == (2, 8, 8, 3)


def test_tfrecords_round_trip(hr_folder, tmp_path, capsys):
    (hr_folder / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\nbroken")
    out = tmp_path / "records"
    written, skipped = write_shards(hr_folder, out, shards=2, progress=False)
    assert written == 3 and len(skipped) == 1 and "broken.png" in skipped[0]
    shards = sorted(p.name for p in out.iterdir())
    assert shards == ["train-00000-of-00002.tfrecord", "train-00001-of-00002.tfrecord"]

    source = tfrecord_source(str(out / "train-*.tfrecord"), scale=2)
    assert source.file_based
    by_name = {name.numpy().decode(): (lr, hr) for name, lr, hr in source.dataset}
    assert sorted(by_name) == ["img0.png", "img1.png", "img2.png"]
    original = np.asarray(Image.open(hr_folder / "img2.png"))[:40, :38]  # modcrop 41x39 by 2
    np.testing.assert_array_equal(by_name["img2.png"][1], original)

    dataset = training_dataset(source, hr_patch_size=16, scale=2, batch_size=2)
    assert (dataset.options().experimental_distribute.auto_shard_policy
            == tf.data.experimental.AutoShardPolicy.FILE)
    assert next(iter(dataset))[1].shape == (2, 16, 16, 3)

    # The command refuses to replace existing shards.
    before = (out / shards[0]).read_bytes()
    assert make_tfrecords_main([str(hr_folder), "--out", str(out), "--shards", "2"]) == 2
    assert "--overwrite" in capsys.readouterr().err
    assert (out / shards[0]).read_bytes() == before


def test_tfds_div2k_through_mock_data(rng):
    sizes = [(64, 48), (40, 56), (36, 36)]

    def as_dataset(self, split, *args, **kwargs):
        def generate():
            for index, (h, w) in enumerate(sizes):
                hr = natural_like(rng, h, w)
                lr = quantize(imresize(hr, 0.25))
                if index == 2:
                    lr = lr[:, :5]  # a pair whose sizes disagree is dropped
                yield {"hr": hr, "lr": lr}
        return tf.data.Dataset.from_generator(generate, output_signature={
            "hr": tf.TensorSpec([None, None, 3], tf.uint8),
            "lr": tf.TensorSpec([None, None, 3], tf.uint8)})

    with tfds.testing.mock_data(as_dataset_fn=as_dataset):
        source = tfds_source("div2k/bicubic_x4", scale=4)
        shapes = [(tuple(lr.shape), tuple(hr.shape)) for _, lr, hr in source.dataset]
        assert shapes == [((16, 12, 3), (64, 48, 3)), ((10, 14, 3), (40, 56, 3))]
        batches = training_dataset(source, hr_patch_size=32, scale=4, batch_size=3, seed=1)
        lr_images, hr_images = next(iter(batches))
    assert lr_images.shape == (3, 8, 8, 3) and hr_images.shape == (3, 32, 32, 3)
    assert (batches.options().experimental_distribute.auto_shard_policy
            == tf.data.experimental.AutoShardPolicy.DATA)


def test_a_folder_source_gives_whole_modcropped_images(hr_folder):
    items = list(folder_source(hr_folder, scale=2).dataset)
    assert [tuple(hr.shape) for _, _, hr in items] == [(64, 48, 3), (50, 70, 3), (40, 38, 3)]
    assert [tuple(lr.shape) for _, lr, _ in items] == [(32, 24, 3), (25, 35, 3), (20, 19, 3)]
    assert all(lr.dtype == tf.uint8 for _, lr, _ in items)


@pytest.mark.slow
def test_mirrored_strategy_splits_the_global_batch_between_replicas():
    # Logical devices must be set before TensorFlow starts, hence a fresh process.
    script = textwrap.dedent("""
        import numpy as np, tensorflow as tf
        cpu = tf.config.list_physical_devices("CPU")[0]
        tf.config.set_logical_device_configuration(
            cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
        from keras_sr.data.pipeline import training_dataset
        from keras_sr.data.sources import Source, SkipLog
        lr = np.zeros((8, 8, 3), np.uint8)
        data = tf.data.Dataset.from_tensors((tf.constant("x"), lr, lr.repeat(2, 0).repeat(2, 1)))
        dataset = training_dataset(Source(data, SkipLog()), 8, 2, batch_size=4)
        strategy = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
        lr_images, hr_images = next(iter(strategy.experimental_distribute_dataset(dataset)))
        print([tuple(t.shape) for t in strategy.experimental_local_results(hr_images)])
    """)
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                            timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.strip().splitlines()[-1] == "[(2, 8, 8, 3), (2, 8, 8, 3)]"


@pytest.fixture
def six_images(tmp_path, rng):
    return natural_folder(tmp_path / "six", rng, 6, 24, 24)


def names(stream, count):
    return [name.numpy().decode().rsplit("/", 1)[-1]
            for _, (name, _, _) in stream.take(count)]


@pytest.mark.parametrize("cache", [False, True])
def test_every_pass_visits_every_image_in_its_own_seeded_order(six_images, cache):
    source = folder_source(six_images, scale=2)
    seen = names(pipeline.element_stream(source, seed=3, cache=cache), 18)
    passes = [seen[index:index + 6] for index in (0, 6, 12)]
    assert all(sorted(one) == [f"{index}.png" for index in range(6)] for one in passes)
    assert len({tuple(one) for one in passes}) > 1  # reshuffled, not one order repeated
    assert names(pipeline.element_stream(source, seed=3, cache=cache), 18) == seen
    assert names(pipeline.element_stream(source, seed=4, cache=cache), 18) != seen


@pytest.mark.parametrize("cache", [False, True])
def test_a_resumed_stream_continues_exactly(six_images, cache):
    # 6 images, batches of 4: step 2 starts in the middle of the second pass.
    source = folder_source(six_images, scale=2)

    def batches(start_step, count):
        dataset = training_dataset(source, hr_patch_size=8, scale=2, batch_size=4, seed=5,
                                   cache=cache, start_step=start_step)
        return [hr.numpy() for _, hr in dataset.take(count)]

    uninterrupted, resumed = batches(0, 5), batches(2, 3)
    for expected, batch in zip(uninterrupted[2:], resumed):
        np.testing.assert_array_equal(batch, expected)
    assert not np.array_equal(resumed[0], uninterrupted[0])


def test_a_tfrecord_source_resumes_with_a_new_seeded_pass(hr_folder, tmp_path):
    out = tmp_path / "shards"
    write_shards(str(hr_folder), str(out), 2, progress=False)
    source = tfrecord_source(str(out / "*.tfrecord"), scale=2)

    def first_names(start_element):
        return names(pipeline.element_stream(source, seed=1, start_element=start_element,
                                             cache=False), 6)

    fresh = first_names(0)
    assert set(fresh) == {"img0.png", "img1.png", "img2.png"}
    # Not the same prefix again on every resume (the length is unknown, so a new pass).
    assert first_names(4) != fresh and first_names(4) == first_names(4)


def test_a_cached_source_is_decoded_once_for_all_passes():
    passes = []

    def generate():
        passes.append(1)
        for index in range(3):
            yield (f"img{index}", np.zeros((4, 4, 3), np.uint8), np.zeros((8, 8, 3), np.uint8))

    spec = tf.TensorSpec([None, None, 3], tf.uint8)
    source = Source(tf.data.Dataset.from_generator(generate, output_signature=(
        tf.TensorSpec([], tf.string), spec, spec)), SkipLog(), count=3)
    list(pipeline.element_stream(source, cache=True).take(12))
    assert len(passes) == 1
    list(pipeline.element_stream(source, cache=False).take(12))
    assert len(passes) > 4  # the control: uncached, every pass reads the source again
