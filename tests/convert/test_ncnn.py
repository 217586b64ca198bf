import keras
import numpy as np
import pytest

from keras_sr.convert import ConversionError, basicsr, convert, ncnn
from keras_sr.models import RRDBNet, SRVGGNetCompact
from tests.convert.ncnn_files import write_rrdbnet, write_srvgg
from tests.helpers import random_images

pytestmark = pytest.mark.numerics  # compares numbers: CI runs it with oneDNN on and off

TINY_RRDB = {"num_blocks": 2, "num_features": 8, "growth_channels": 4}
TINY_SRVGG = {"num_convs": 2, "num_features": 8}


def randomized(model, seed=0):
    """The model with every weight random (biases and PReLU slopes included)."""
    rng = np.random.default_rng(seed)
    model.set_weights([rng.normal(0, 0.1, w.shape).astype("float32")
                       for w in model.get_weights()])
    return model


def run_ncnn(param, weights, lr_image):
    pytest.importorskip("ncnn", reason="the reference runtime: pip install -e '.[test]'")
    return ncnn.reference_runner(param, weights)(lr_image)


@pytest.mark.parametrize("fp16", [False, True])
def test_rrdbnet_files_import_with_their_weights(tmp_path, fp16):
    model = randomized(RRDBNet(**TINY_RRDB))
    state_dict = basicsr.state_dict_of(model)
    param, weights = write_rrdbnet(str(tmp_path / "net"), state_dict, 2, fp16=fp16)
    architecture, imported = ncnn.read_state_dict(param, weights)
    assert architecture == "rrdbnet"
    assert set(imported) == set(state_dict)
    for key, value in state_dict.items():
        # ncnn stores conv weights in fp16 when asked, biases always in fp32.
        half = fp16 and key.endswith(".weight")
        expected = value.astype("float16").astype("float32") if half else value
        np.testing.assert_array_equal(imported[key], expected, err_msg=key)


@pytest.mark.parametrize("fp16", [False, True])
def test_srvgg_files_import_with_their_weights(tmp_path, fp16):
    model = randomized(SRVGGNetCompact(scale=4, **TINY_SRVGG))
    state_dict = basicsr.state_dict_of(model)
    param, weights = write_srvgg(str(tmp_path / "net"), state_dict, 2, 4, fp16=fp16)
    imported = convert(param, weights)
    assert isinstance(imported, SRVGGNetCompact) and imported.num_convs == 2
    images = random_images((1, 9, 11, 3))
    atol = 5e-3 if fp16 else 1e-6
    np.testing.assert_allclose(imported(images), model(images), atol=atol)


@pytest.mark.parametrize("kind", ["rrdbnet", "srvgg"])
def test_written_graphs_run_in_ncnn_as_in_keras(tmp_path, kind):
    # Shows the graph our reader expects is the graph ncnn executes (same semantics of
    # pixel shuffle, concat order, residual scaling and nearest upsampling).
    if kind == "rrdbnet":
        model = randomized(RRDBNet(**TINY_RRDB))
        files = write_rrdbnet(str(tmp_path / "net"), basicsr.state_dict_of(model), 2)
    else:
        model = randomized(SRVGGNetCompact(scale=3, **TINY_SRVGG), seed=1)
        files = write_srvgg(str(tmp_path / "net"), basicsr.state_dict_of(model), 2, 3)
    image = random_images((1, 10, 13, 3))
    expected = keras.ops.convert_to_numpy(convert(*files)(image))[0]
    np.testing.assert_allclose(run_ncnn(*files, image[0]), expected, atol=1e-5)


def test_trailing_resize_is_refused_with_advice(tmp_path):
    model = SRVGGNetCompact(scale=4, **TINY_SRVGG)
    param, weights = write_srvgg(str(tmp_path / "x2"), basicsr.state_dict_of(model), 2, 4,
                                 trailing_resize=True)
    with pytest.raises(ConversionError, match="import the x4 file"):
        convert(param, weights)


def test_truncated_and_oversized_weight_files_are_refused(tmp_path):
    model = SRVGGNetCompact(scale=2, **TINY_SRVGG)
    param, weights = write_srvgg(str(tmp_path / "net"), basicsr.state_dict_of(model), 2, 2)
    data = open(weights, "rb").read()
    open(weights, "wb").write(data[:-10])
    with pytest.raises(ConversionError, match="ends early"):
        convert(param, weights)
    open(weights, "wb").write(data + b"\0" * 8)
    with pytest.raises(ConversionError, match="8 bytes left over"):
        convert(param, weights)


def test_int8_weights_are_refused(tmp_path):
    model = SRVGGNetCompact(scale=2, **TINY_SRVGG)
    param, weights = write_srvgg(str(tmp_path / "net"), basicsr.state_dict_of(model), 2, 2)
    data = bytearray(open(weights, "rb").read())
    data[:4] = ncnn.INT8_TAG.to_bytes(4, "little")
    open(weights, "wb").write(bytes(data))
    with pytest.raises(ConversionError, match="int8"):
        convert(param, weights)


def test_not_a_param_file_is_refused(tmp_path):
    path = tmp_path / "model.param"
    path.write_text("hello\n")
    with pytest.raises(ConversionError, match="not a text ncnn .param file"):
        convert(str(path))
