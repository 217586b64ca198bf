import io
import os
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

from export import client, saved_model
from keras_sr import inference
from keras_sr.models import RRDBNet
from tests.export.serving_double import ServingDouble
from tests.helpers import random_images
from tests.robustness import corpus


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    base = tmp_path_factory.mktemp("models") / "tiny"
    model = RRDBNet(num_blocks=1, num_features=8, growth_channels=4)
    path = saved_model.export(model, str(base), max_pixels=40 * 40)
    return model, str(base), path


def png_of(image):
    buffer = io.BytesIO()
    Image.fromarray((image * 255).round().astype(np.uint8)).save(buffer, format="PNG")
    return buffer.getvalue()


def test_saved_model_cli_lists_both_signatures_with_dynamic_shapes(exported):
    _, _, path = exported
    cli = os.path.join(os.path.dirname(sys.executable), "saved_model_cli")
    shown = subprocess.run([cli, "show", "--all", "--dir", path], capture_output=True,
                           text=True, timeout=120, check=True).stdout
    assert "signature_def['serving_default']" in shown
    assert "signature_def['upscale_image']" in shown
    assert "shape: (-1, -1, -1, 3)" in shown
    assert "shape: (-1)" in shown
    assert "outputs['png_bytes']" in shown and "outputs['sr_images']" in shown


def test_signatures_equal_keras(exported):
    model, _, path = exported
    loaded = tf.saved_model.load(path, tags=["serve"])
    images = random_images((2, 13, 11, 3))
    expected = np.clip(model(images).numpy(), 0, 1)
    served = loaded.signatures["serving_default"](lr_images=tf.constant(images))["sr_images"]
    np.testing.assert_allclose(served.numpy(), expected, atol=1e-5)

    quantized = np.round(images[0] * 255) / 255  # what the PNG carries
    pngs = loaded.signatures["upscale_image"](images=tf.constant([png_of(images[0])]))
    decoded = tf.io.decode_png(pngs["png_bytes"][0]).numpy()
    reference = np.round(np.clip(model(quantized[None].astype(np.float32)).numpy()[0], 0, 1)
                         * 255)
    assert np.abs(decoded.astype(int) - reference.astype(int)).max() <= 1


@pytest.mark.parametrize("fmt", ["JPEG", "WEBP", "BMP"])
def test_upscale_image_takes_other_formats(exported, fmt):
    _, _, path = exported
    loaded = tf.saved_model.load(path, tags=["serve"])
    buffer = io.BytesIO()
    Image.fromarray(np.zeros((9, 7, 3), np.uint8)).save(buffer, format=fmt)
    out = loaded.signatures["upscale_image"](images=tf.constant([buffer.getvalue()]))
    assert tf.io.decode_png(out["png_bytes"][0]).shape == (36, 28, 3)


def test_bad_requests_fail_and_the_model_keeps_serving(exported):
    _, _, path = exported
    loaded = tf.saved_model.load(path, tags=["serve"])
    upscale = loaded.signatures["upscale_image"]
    with pytest.raises(tf.errors.InvalidArgumentError,
                       match=r"image 1 of the request \(12 bytes\) is not a PNG, JPEG"):
        upscale(images=tf.constant([b"not an image"]))
    with pytest.raises(tf.errors.InvalidArgumentError, match=r"image 2 of the request: "
                       r"decoding this PNG \(40 x 41\) takes 1640 pixels, above the limit "
                       r"of 1600 pixels"):
        upscale(images=tf.constant([png_of(np.zeros((4, 4, 3))),
                                    png_of(np.zeros((41, 40, 3)))]))
    # Each image fits, but not the two together.
    with pytest.raises(tf.errors.InvalidArgumentError, match="1800 pixels together, above "
                       "the limit of 1600 pixels per request"):
        upscale(images=tf.constant([png_of(np.zeros((30, 30, 3)))] * 2))
    with pytest.raises(tf.errors.InvalidArgumentError, match="animated WebP"):
        upscale(images=tf.constant([corpus.animated_webp()]))
    serve = loaded.signatures["serving_default"]
    with pytest.raises(tf.errors.InvalidArgumentError,
                       match="lr_images of 41 x 40 pixels are above the limit of 1600"):
        serve(lr_images=tf.zeros([1, 41, 40, 3]))
    with pytest.raises(tf.errors.InvalidArgumentError, match="a request of 2 images of 1200 "
                       "pixels is above the limit of 1600 pixels per request"):
        serve(lr_images=tf.zeros([2, 30, 40, 3]))
    with pytest.raises(tf.errors.InvalidArgumentError, match="NaN or infinite"):
        serve(lr_images=tf.fill([1, 4, 4, 3], float("nan")))
    assert upscale(images=tf.constant([png_of(np.zeros((40, 40, 3)))]))["png_bytes"].shape == 1


@pytest.mark.parametrize("mode", ["L", "LA", "RGBA", "P"])
def test_upscale_image_takes_gray_alpha_and_palette_images(exported, mode):
    model, _, path = exported
    loaded = tf.saved_model.load(path, tags=["serve"])
    rgb = (random_images((1, 6, 5, 3))[0] * 255).astype(np.uint8)
    image = Image.fromarray(rgb).convert(mode)
    for fmt in ("PNG", "WEBP") if mode == "RGBA" else ("PNG",):
        buffer = io.BytesIO()
        image.save(buffer, format=fmt, **({"lossless": True} if fmt == "WEBP" else {}))
        out = loaded.signatures["upscale_image"](images=tf.constant([buffer.getvalue()]))
        decoded = tf.io.decode_png(out["png_bytes"][0]).numpy()
        as_rgb = np.asarray(image.convert("RGB"), np.float32) / 255.0
        expected = np.round(np.clip(model(as_rgb[None]).numpy()[0], 0, 1) * 255)
        assert decoded.shape == (24, 20, 3)
        assert np.abs(decoded.astype(int) - expected).max() <= 1, (mode, fmt)


def test_serving_tiles_large_images_like_upscale_image(tmp_path):
    """Above one tile of its memory budget, the signature runs tiles with real context, as
    `keras-sr upscale` does, and its result equals that tiling exactly."""
    model = RRDBNet(num_blocks=1, num_features=8, growth_channels=4)
    serving_default, _ = saved_model.serving_functions(model, 10**6, memory_budget_mb=8,
                                                       tile_pad=3)
    tile = inference.tile_side(4, 8, 3)
    assert tile == 16
    image = random_images((1, 37, 35, 3))  # 3 x 3 tiles, the last ones narrower
    served = tf.function(serving_default)(tf.constant(image))["sr_images"].numpy()[0]
    expected = inference.upscale_image(inference.keras_upscaler(model), image[0], tile=tile,
                                       tile_pad=3)
    np.testing.assert_allclose(served, np.clip(expected, 0, 1), atol=1e-6)
    whole = np.clip(model(image).numpy()[0], 0, 1)
    assert np.abs(served - whole).max() > 1e-4  # tiles really were used


def test_warmup_file_holds_a_prediction_log_per_signature(exported):
    prediction_log_pb2 = pytest.importorskip(
        "tensorflow_serving.apis.prediction_log_pb2", reason="pip install -e '.[test]'")
    _, base, path = exported
    records = list(tf.data.TFRecordDataset(os.path.join(path, saved_model.WARMUP_FILE)))
    logs = [prediction_log_pb2.PredictionLog.FromString(r.numpy()) for r in records]
    requests = {log.predict_log.request.model_spec.signature_name: log.predict_log.request
                for log in logs}
    assert set(requests) == {"serving_default", "upscale_image"}
    assert all(r.model_spec.name == "tiny" for r in requests.values())
    array = tf.make_ndarray(requests["serving_default"].inputs["lr_images"])
    assert array.shape == (1, 16, 16, 3) and array.dtype == np.float32
    (png,) = tf.make_ndarray(requests["upscale_image"].inputs["images"])
    assert tf.io.decode_png(png).shape == (16, 16, 3)
    # And the server would replay them: each runs on the exported model.
    loaded = tf.saved_model.load(path, tags=["serve"])
    assert loaded.signatures["serving_default"](lr_images=tf.constant(array))[
        "sr_images"].shape == (1, 64, 64, 3)


def test_versions_count_up_and_are_never_overwritten(tmp_path):
    model = RRDBNet(num_blocks=1, num_features=8, growth_channels=4)
    base = str(tmp_path / "sr")
    assert saved_model.export(model, base).endswith(os.path.join("sr", "1"))
    assert saved_model.export(model, base, version=5).endswith("5")
    assert saved_model.export(model, base).endswith("6")
    marker = os.path.join(base, "5", "keep")
    open(marker, "w").close()
    with pytest.raises(FileExistsError, match="never overwritten"):
        saved_model.export(model, base, version=5)
    assert os.path.exists(marker)
    assert sorted(os.listdir(base)) == ["1", "5", "6"]  # no staging folder left behind


def test_command_line_exports_a_keras_file(tmp_path, capsys):
    model_path = tmp_path / "g.keras"
    RRDBNet(scale=2, num_blocks=1, num_features=8, growth_channels=4).save(model_path)
    assert saved_model.main(["--model", str(model_path), "--out", str(tmp_path / "m"),
                             "--version", "3"]) == 0
    assert os.path.isfile(tmp_path / "m" / "3" / "saved_model.pb")
    assert saved_model.main(["--model", str(model_path), "--out", str(tmp_path / "m"),
                             "--version", "3"]) == 1
    assert "never overwritten" in capsys.readouterr().err


def test_rest_client_against_the_rest_contract_double(exported):
    model, base, _ = exported
    image = random_images((1, 10, 12, 3))[0]
    with ServingDouble("tiny", base) as server:
        rest = client.RestClient(server.url, "tiny")
        (png,) = rest.upscale_images([png_of(image)])
        assert tf.io.decode_png(png).shape == (40, 48, 3)
        arrays = rest.upscale_array(image[None])
        np.testing.assert_allclose(arrays, np.clip(model(image[None]).numpy(), 0, 1),
                                   atol=1e-5)
        with pytest.raises(client.ServingError, match="limit of 1600 pixels"):
            rest.upscale_images([png_of(np.zeros((50, 50, 3)))])
        assert len(rest.upscale_images([png_of(image)])) == 1  # still serving
        with pytest.raises(client.ServingError, match="HTTP 404"):
            client.RestClient(server.url, "tiny", version=9).upscale_images([png_of(image)])


def test_client_command_writes_pngs_and_keeps_existing(exported, tmp_path, capsys):
    _, base, _ = exported
    source = tmp_path / "in.png"
    source.write_bytes(png_of(random_images((1, 8, 8, 3))[0]))
    with ServingDouble("tiny", base) as server:
        args = [str(source), "-o", str(tmp_path / "out"), "--model-name", "tiny",
                "--url", server.url]
        assert client.main(args) == 0
        assert Image.open(tmp_path / "out" / "in.png").size == (32, 32)
        assert client.main(args) == 1
        assert "exists" in capsys.readouterr().err


def test_grpc_predict_request_builds_and_parses():
    predict_pb2 = pytest.importorskip("tensorflow_serving.apis.predict_pb2",
                                      reason="pip install -e '.[test]'")
    request = client.predict_request([b"png-1", b"png-2"], "sr", version=4)
    parsed = predict_pb2.PredictRequest.FromString(request.SerializeToString())
    assert parsed.model_spec.name == "sr"
    assert parsed.model_spec.signature_name == "upscale_image"
    assert parsed.model_spec.version.value == 4
    assert list(tf.make_ndarray(parsed.inputs["images"])) == [b"png-1", b"png-2"]
    response = predict_pb2.PredictResponse()
    response.outputs["png_bytes"].CopyFrom(tf.make_tensor_proto([b"out"], dtype=tf.string))
    assert client.png_outputs(predict_pb2.PredictResponse.FromString(
        response.SerializeToString())) == [b"out"]
