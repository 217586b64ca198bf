"""A TF-Serving model under hostile requests: each bomb is refused from its header, quickly and
without memory growth, in a process with a memory limit, and the model keeps serving."""

import json
import os
import subprocess
import sys

import pytest

from export import saved_model
from keras_sr.models import RRDBNet
from tests.robustness import corpus

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
# Address space for the serving process: TensorFlow and the model need about 2 GB of it; one
# decoded bomb would need far more (20000 x 20000 x 3 bytes = 1.2 GB for the PNG alone, before
# the model runs on it).
MEMORY_LIMIT_MB = 4096


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    """The probe's results against a model exported with the default --max-pixels."""
    base = tmp_path_factory.mktemp("models") / "tiny"
    path = saved_model.export(RRDBNet(num_blocks=1, num_features=8, growth_channels=4),
                              str(base))
    environment = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "PYTHONPATH": ROOT}
    run = subprocess.run(
        [sys.executable, "-m", "tests.robustness.serving_probe", path, str(MEMORY_LIMIT_MB)],
        capture_output=True, text=True, timeout=600, cwd=ROOT, env=environment)
    assert run.returncode == 0, f"serving process ended with {run.returncode}:\n{run.stderr}"
    return json.loads(run.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize("name", [*corpus.BOMBS, "animated_webp"])
def test_each_hostile_request_is_refused_quickly_without_memory_growth(served, name):
    result = served["results"][name]
    assert result["outcome"] == "InvalidArgument", result
    assert result["seconds"] < 2.0, result
    assert result["rss_growth_mb"] < 300, result
    assert "image 1 of the request" in result["message"], result
    if name.startswith(("png", "jpeg", "gif_6", "gif_2", "bmp", "webp")):
        assert f"above the limit of {saved_model.DEFAULT_MAX_PIXELS} pixels" in \
            result["message"], result


def test_the_model_still_serves_the_same_answer_afterwards(served):
    assert served["still_serving"] and served["valid_png_bytes"] > 0


def test_the_png_bomb_is_the_small_file_of_the_report():
    data = corpus.png_bomb()
    assert len(data) < 50_000
    assert data[16:24] == (20000).to_bytes(4, "big") * 2
