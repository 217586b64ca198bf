import numpy as np
import pytest

from keras_sr import inference
from keras_sr.models import RRDBNet, SRVGGNetCompact
from keras_sr.presets import ModelFileError
from tests.convert.test_ncnn import randomized
from tests.helpers import random_images

pytestmark = pytest.mark.numerics  # compares numbers: CI runs it with oneDNN on and off


def test_tiles_cover_the_image_exactly_once():
    covered = np.zeros((37, 53), int)
    for top, bottom, left, right in inference.tiles(37, 53, 16):
        covered[top:bottom, left:right] += 1
    assert (covered == 1).all()


def test_tiled_output_equals_untiled_when_the_pad_covers_the_receptive_field():
    # Two 3x3 convs at LR plus the ones after pixel shuffle: a pad of 8 covers all context.
    model = randomized(SRVGGNetCompact(scale=2, num_convs=2, num_features=8))
    upscaler = inference.keras_upscaler(model)
    image = random_images((1, 45, 38, 3))[0]
    whole = inference.upscale_image(upscaler, image)
    tiled = inference.upscale_image(upscaler, image, tile=16, tile_pad=8)
    np.testing.assert_allclose(tiled, whole, atol=1e-6)
    # Without overlap the tiles see zero padding at their borders: seams appear.
    seams = inference.upscale_image(upscaler, image, tile=16, tile_pad=0)
    assert np.abs(seams - whole).max() > 1e-3


def test_integer_outputs_are_rounded_per_tile():
    upscaler = inference.keras_upscaler(RRDBNet(num_blocks=1, num_features=8,
                                                growth_channels=4))
    image = random_images((1, 20, 20, 3))[0]
    as_float = inference.upscale_image(upscaler, image, tile=8, tile_pad=4)
    as_uint16 = inference.upscale_image(upscaler, image, tile=8, tile_pad=4,
                                        out=np.empty((80, 80, 3), np.uint16))
    np.testing.assert_array_equal(as_uint16, np.round(as_float * 65535).astype(np.uint16))


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16])
def test_quantize_clips_and_rounds_halves_to_even(dtype):
    peak = np.iinfo(dtype).max
    # Out of range, exact levels, halves between levels (to even: 0 and 2), and a float64 value
    # that float32 would round to the level below.
    values = np.array([-0.3, 0.0, 0.5 / peak, 1.5 / peak, 1.0, 1.7,
                       (3.5 - 1e-9) / peak], np.float64)
    expected = np.array([0, 0, 0, 2, peak, peak, 3], dtype)
    np.testing.assert_array_equal(inference.quantize(values, dtype), expected)
    assert values[0] == -0.3  # not overwritten unless asked


def test_quantize_overwrites_only_a_writeable_float_array_when_asked():
    image = random_images((1, 9, 7, 3))[0] * 1.4 - 0.2
    expected = np.round(np.clip(image, 0.0, 1.0) * 255).astype(np.uint8)
    frozen = image.copy()
    frozen.flags.writeable = False
    np.testing.assert_array_equal(inference.quantize(frozen, overwrite=True), expected)
    out = np.zeros((9, 7, 3), np.uint8)
    assert inference.quantize(image.copy(), out=out) is out
    np.testing.assert_array_equal(out, expected)
    scratch = image.copy()
    np.testing.assert_array_equal(inference.quantize(scratch, overwrite=True), expected)
    assert not np.array_equal(scratch, image)  # computed in place
    np.testing.assert_array_equal(inference.quantize((image > 0.5).astype(np.uint8)),
                                  (image > 0.5) * 255)


def test_auto_tile_follows_the_memory_budget():
    assert inference.auto_tile(100, 100, 4, memory_budget_mb=1024) is None
    tile = inference.auto_tile(2000, 2000, 4, memory_budget_mb=1024, tile_pad=16)
    assert tile is not None and tile % 8 == 0
    used = (tile + 32) ** 2 * 16 * inference.BYTES_PER_HR_PIXEL
    assert used <= 1024 * 2**20
    with pytest.raises(ValueError, match="raise it"):
        inference.auto_tile(2000, 2000, 4, memory_budget_mb=1)


def test_compact_models_are_costed_at_their_low_resolution_features():
    """SRVGGNetCompact holds its features at LR resolution: a 240p video frame (or an 800 x 800
    image: 825 MiB measured, benchmarks/upscale_memory.py) runs whole within the default
    budget, where an RRDBNet's activations need tiles."""
    from keras_sr.models import RRDBNet, SRVGGNetCompact

    compact = inference.activation_bytes(SRVGGNetCompact(scale=4), 4)
    assert compact == 4 * (4 * 64 + 3 * 48)  # + the last conv, the upsampled input, the output
    assert inference.activation_bytes(RRDBNet(num_blocks=1), 4) == \
        16 * inference.BYTES_PER_HR_PIXEL
    assert inference.auto_tile(240, 426, 4, bytes_per_pixel=compact) is None
    assert inference.auto_tile(800, 800, 4, bytes_per_pixel=compact) is None
    assert inference.auto_tile(240, 426, 4) is not None
    assert inference.auto_tile(2000, 2000, 4, bytes_per_pixel=compact) is not None


def test_unknown_missing_and_corrupt_models_are_named(tmp_path):
    with pytest.raises(ModelFileError, match="not a .keras file, SavedModel folder"):
        inference.load_upscaler("model.onnx")
    with pytest.raises(ModelFileError, match="no such model file: .*gone.tflite"):
        inference.load_upscaler(str(tmp_path / "gone.tflite"))
    (tmp_path / "empty").mkdir()
    with pytest.raises(ModelFileError, match="empty does not load: .*no SavedModel"):
        inference.load_upscaler(str(tmp_path / "empty"))
    for name, data in {"garbage.keras": b"not a zip", "garbage.tflite": b"\0" * 64}.items():
        (tmp_path / name).write_bytes(data)
        with pytest.raises(ModelFileError, match=name):
            inference.load_upscaler(str(tmp_path / name))
    (tmp_path / "broken" / "1").mkdir(parents=True)
    (tmp_path / "broken" / "1" / "saved_model.pb").write_bytes(b"\x0a\xff garbage")
    with pytest.raises(ModelFileError, match="broken.* does not load"):
        inference.load_upscaler(str(tmp_path / "broken"))
