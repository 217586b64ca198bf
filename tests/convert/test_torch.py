import os
import pickle
import zipfile

import numpy as np
import pytest

from keras_sr.convert import ConversionError, UnsafeCheckpointError, basicsr, convert, export
from keras_sr.convert import torch as torch_format
from keras_sr.models import RRDBNet, SRVGGNetCompact
from tests.convert.test_ncnn import TINY_RRDB, TINY_SRVGG, randomized
from tests.helpers import random_images

pytestmark = pytest.mark.numerics  # compares numbers: CI runs it with oneDNN on and off

try:
    import torch
except ImportError:
    torch = None


def to_layout(state_dict, layout, num_blocks):
    """A BasicSR state dict renamed into another published key layout."""
    if layout == "basicsr":
        return dict(state_dict)
    heads = {"xinntao-esrgan": {"conv_body": "trunk_conv", "conv_up1": "upconv1",
                                "conv_up2": "upconv2", "conv_hr": "HRconv"},
             "esrgan-original": {"conv_first": "model.0", "conv_body": f"model.1.sub.{num_blocks}",
                                 "conv_up1": "model.3", "conv_up2": "model.6",
                                 "conv_hr": "model.8", "conv_last": "model.10"}}[layout]
    renamed = {}
    for key, value in state_dict.items():
        head, _, rest = key.partition(".")
        if head == "body":
            block, rdb, conv, kind = rest.split(".")
            if layout == "xinntao-esrgan":
                key = f"RRDB_trunk.{block}.{rdb.upper()}.{conv}.{kind}"
            else:
                key = f"model.1.sub.{block}.{rdb.upper()}.{conv}.0.{kind}"
        else:
            key = f"{heads.get(head, head)}.{rest}"
        renamed[key] = value
    return renamed


def save_checkpoint(path, checkpoint, legacy=False):
    """torch.save when PyTorch is installed (legacy: its pre-1.6 format), else our writer."""
    if torch is not None:
        def tensors(obj):
            if isinstance(obj, dict):
                return {key: tensors(value) for key, value in obj.items()}
            return torch.from_numpy(np.ascontiguousarray(obj))
        torch.save(tensors(checkpoint), path, _use_new_zipfile_serialization=not legacy)
    else:
        (wrapper, state_dict), = checkpoint.items() if len(checkpoint) == 1 and \
            isinstance(next(iter(checkpoint.values())), dict) else [(None, checkpoint)]
        if legacy:
            from tests.robustness.weights import torch_legacy

            arrays = {key: np.ascontiguousarray(value, np.float32)
                      for key, value in state_dict.items()}
            with open(path, "wb") as file:
                file.write(torch_legacy(torch_format.contiguous_tensors(arrays),
                                        dict(enumerate(arrays.values())), wrapper=wrapper))
        else:
            torch_format.save(path, state_dict, wrapper=wrapper)


@pytest.mark.parametrize("layout", ["basicsr", "xinntao-esrgan", "esrgan-original"])
@pytest.mark.parametrize("use_torch", [False, True])
def test_every_rrdbnet_layout_imports_the_same_model(tmp_path, layout, use_torch):
    if use_torch and torch is None:
        pytest.skip("PyTorch is not installed (pip install keras-sr[torch])")
    model = randomized(RRDBNet(**TINY_RRDB))
    path = str(tmp_path / "net.pth")
    save_checkpoint(path, to_layout(basicsr.state_dict_of(model), layout, 2))
    detected, state_dict = basicsr.to_basicsr_layout(
        basicsr.unwrap(torch_format.load(path, use_torch=use_torch)))
    assert detected == layout
    imported = basicsr.build_model(state_dict)
    assert imported.get_config()["num_blocks"] == 2
    for expected, actual in zip(model.get_weights(), imported.get_weights()):
        np.testing.assert_array_equal(actual, expected)


def test_legacy_format_checkpoint_imports(tmp_path):
    model = randomized(RRDBNet(**TINY_RRDB))
    path = str(tmp_path / "RRDB_ESRGAN_x4.pth")
    save_checkpoint(path, to_layout(basicsr.state_dict_of(model), "esrgan-original", 2),
                    legacy=True)
    assert not zipfile.is_zipfile(path)
    for use_torch in (False, True) if torch is not None else (False,):
        state_dict = basicsr.unwrap(torch_format.load(path, use_torch=use_torch))
        imported = basicsr.build_model(basicsr.to_basicsr_layout(state_dict)[1])
        np.testing.assert_array_equal(imported.get_weights()[0], model.get_weights()[0])


def test_params_ema_is_preferred_and_module_prefix_dropped(tmp_path):
    model = randomized(SRVGGNetCompact(**TINY_SRVGG))
    ema = basicsr.state_dict_of(model)
    raw = {key: value + 1.0 for key, value in ema.items()}
    path = str(tmp_path / "realesr.pth")
    checkpoint = {"params": raw, "params_ema": {f"module.{k}": v for k, v in ema.items()}}
    if torch is None:
        pytest.skip("a two-entry checkpoint needs torch.save")
    save_checkpoint(path, checkpoint)
    imported = convert(path)
    np.testing.assert_array_equal(imported.get_weights()[0], model.get_weights()[0])


@pytest.mark.parametrize("scale,channels", [(2, 12), (1, 48)])
def test_pixel_unshuffled_input_matches_pytorch_channel_order(scale, channels, tmp_path):
    # PyTorch's pixel_unshuffle: out[c*r*r + i*r + j, y, x] = in[c, y*r + i, x*r + j]. Written
    # here from that definition, independent of the importer's permutation.
    model = randomized(RRDBNet(scale=scale, **TINY_RRDB))
    state_dict = basicsr.state_dict_of(model)
    assert state_dict["conv_first.weight"].shape[1] == channels
    factor = 4 // scale
    image = random_images((1, 8, 8, 3))[0].transpose(2, 0, 1)
    unshuffled = image.reshape(3, 8 // factor, factor, 8 // factor, factor) \
        .transpose(0, 2, 4, 1, 3).reshape(channels, 8 // factor, 8 // factor)
    import keras
    first = keras.Model(model.inputs, model.get_layer("conv_first").output)
    expected = conv2d_same(unshuffled, state_dict["conv_first.weight"],
                           state_dict["conv_first.bias"])
    actual = keras.ops.convert_to_numpy(first(image.transpose(1, 2, 0)[None]))[0]
    np.testing.assert_allclose(actual, expected.transpose(1, 2, 0), atol=1e-5)


def test_pixel_shuffle_output_matches_pytorch_channel_order():
    # PyTorch's pixel_shuffle: out[c, y*r + i, x*r + j] = in[c*r*r + i*r + j, y, x].
    model = randomized(SRVGGNetCompact(scale=3, **TINY_SRVGG))
    state_dict = basicsr.state_dict_of(model)
    import keras
    before = keras.Model(model.inputs, model.get_layer("act_2").output)
    image = random_images((1, 5, 6, 3))
    features = keras.ops.convert_to_numpy(before(image))[0].transpose(2, 0, 1)
    conv = conv2d_same(features, state_dict["body.6.weight"], state_dict["body.6.bias"])
    shuffled = conv.reshape(3, 3, 3, 5, 6).transpose(0, 3, 1, 4, 2).reshape(3, 15, 18)
    base = image[0].repeat(3, axis=0).repeat(3, axis=1).transpose(2, 0, 1)
    expected = np.clip(shuffled + base, 0, 1).transpose(1, 2, 0)
    np.testing.assert_allclose(keras.ops.convert_to_numpy(model(image))[0], expected, atol=1e-5)


def conv2d_same(features, weight, bias):
    """3x3 'same' convolution in PyTorch's layout (C, H, W) x (O, I, 3, 3), in numpy."""
    channels, height, width = features.shape
    padded = np.pad(features, ((0, 0), (1, 1), (1, 1)))
    out = np.zeros((weight.shape[0], height, width), np.float64)
    for dy in range(3):
        for dx in range(3):
            window = padded[:, dy:dy + height, dx:dx + width]
            out += np.einsum("oi,ihw->ohw", weight[:, :, dy, dx], window)
    return out + bias[:, None, None]


def test_unknown_layout_lists_the_unexpected_keys(tmp_path):
    model = RRDBNet(**TINY_RRDB)
    state_dict = basicsr.state_dict_of(model)
    state_dict["decoder.proj.weight"] = np.zeros((2, 2), np.float32)
    path = str(tmp_path / "odd.pth")
    torch_format.save(path, state_dict)
    with pytest.raises(ConversionError, match="unexpected keys: decoder.proj.weight"):
        convert(path)


def test_missing_and_misshapen_weights_are_named(tmp_path):
    state_dict = basicsr.state_dict_of(RRDBNet(**TINY_RRDB))
    del state_dict["conv_hr.bias"]
    path = str(tmp_path / "partial.pth")
    torch_format.save(path, state_dict)
    with pytest.raises(ConversionError, match="missing conv_hr.bias"):
        convert(path)


def malicious_pickle(marker):
    class Payload:
        def __reduce__(self):
            return (os.system, (f"touch {marker}",))
    return pickle.dumps({"params": Payload()}, protocol=2)


def write_malicious_zip(path, marker):
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("archive/data.pkl", malicious_pickle(marker))
        archive.writestr("archive/byteorder", "little")
        archive.writestr("archive/version", "3\n")


def write_malicious_legacy(path, marker):
    with open(path, "wb") as file:
        for header in (torch_format.LEGACY_MAGIC, 1001, {}):
            pickle.dump(header, file, protocol=2)
        file.write(malicious_pickle(marker))


@pytest.mark.parametrize("writer", [write_malicious_zip, write_malicious_legacy])
@pytest.mark.parametrize("use_torch", [False, True])
def test_a_pickle_that_runs_a_command_is_refused_and_never_runs(tmp_path, writer, use_torch):
    if use_torch and torch is None:
        pytest.skip("PyTorch is not installed (pip install keras-sr[torch])")
    marker = tmp_path / "pwned"
    path = str(tmp_path / "evil.pth")
    writer(path, marker)
    with pytest.raises(UnsafeCheckpointError, match="evil.pth"):
        torch_format.load(path, use_torch=use_torch)
    assert not marker.exists()
    # A plain pickle.load of the same bytes would have run it: the test's payload is real.
    if writer is write_malicious_legacy:
        with open(path, "rb") as file:
            for _ in range(3):
                pickle.load(file)
            pickle.load(file)
        assert marker.exists()


def test_export_round_trips_through_pth_and_safetensors(tmp_path):
    for model in (randomized(RRDBNet(scale=2, **TINY_RRDB)),
                  randomized(SRVGGNetCompact(scale=3, **TINY_SRVGG))):
        for suffix in (".pth", ".safetensors"):
            path = str(tmp_path / f"{model.name}{suffix}")
            export(model, path)
            back = convert(path)
            assert back.get_config()["scale"] == model.scale
            images = random_images((1, 7, 9, 3))
            np.testing.assert_array_equal(back(images), model(images))
            with pytest.raises(FileExistsError, match="overwrite"):
                export(model, path)


def test_exported_pth_loads_in_pytorch_as_basicsr_expects(tmp_path):
    if torch is None:
        pytest.skip("PyTorch is not installed (pip install keras-sr[torch])")
    model = randomized(RRDBNet(**TINY_RRDB))
    path = str(tmp_path / "net_g.pth")
    export(model, path)
    loaded = torch.load(path, weights_only=True)
    assert set(loaded) == {"params"}  # BasicSR's load_network(param_key="params")
    expected = basicsr.state_dict_of(model)
    assert list(loaded["params"]) == list(expected)
    for key, value in expected.items():
        np.testing.assert_array_equal(loaded["params"][key].numpy(), value)


def test_exported_safetensors_reads_with_the_reference_library(tmp_path):
    safetensors_numpy = pytest.importorskip("safetensors.numpy")
    model = randomized(SRVGGNetCompact(**TINY_SRVGG))
    path = str(tmp_path / "net.safetensors")
    export(model, path)
    loaded = safetensors_numpy.load_file(path)
    for key, value in basicsr.state_dict_of(model).items():
        np.testing.assert_array_equal(loaded[key], value)


def test_truncated_checkpoint_is_a_clear_error(tmp_path):
    path = str(tmp_path / "cut.pth")
    torch_format.save(path, basicsr.state_dict_of(RRDBNet(**TINY_RRDB)))
    data = open(path, "rb").read()
    open(path, "wb").write(data[: len(data) // 2])
    with pytest.raises(ConversionError, match="cut.pth"):
        torch_format.load(path, use_torch=False)


def test_bfloat16_safetensors_are_widened_to_float32(tmp_path):
    """The reason keras-sr reads .safetensors itself: bfloat16 tensors, which the safetensors
    package's numpy loader cannot represent."""
    import json
    import struct

    from keras_sr.convert import safetensors

    values = np.array([1.0, 2.0, -3.5, 0.15625], np.float32)
    bits = (values.view(np.uint32) >> 16).astype("<u2")
    header = json.dumps({"w": {"dtype": "BF16", "shape": [2, 2],
                               "data_offsets": [0, bits.nbytes]}}).encode()
    header += b" " * (-len(header) % 8)
    path = tmp_path / "bf16.safetensors"
    path.write_bytes(struct.pack("<Q", len(header)) + header + bits.tobytes())
    loaded = safetensors.load(str(path))["w"]
    assert loaded.dtype == np.float32 and loaded.shape == (2, 2)
    np.testing.assert_array_equal(loaded.reshape(-1), values)
