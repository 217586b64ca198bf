import json
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf

from keras_sr.data.degradations import contributions, imresize, imresize_tf, quantize

pytestmark = pytest.mark.numerics  # compares numbers: CI runs it with oneDNN on and off

# Independent reference: MATLAB imresize(img, scale, 'bicubic') outputs for an 8x8 ramp and a
# 12x10 noise image at x1/2, x1/4, x1/3, x2, x4, computed by a separate numpy port of MATLAB's
# algorithm that reproduces the published bicubic tables (see "how" in the file).
REFERENCE = json.loads((Path(__file__).parents[1] / "fixtures" / "imresize_reference.json")
                       .read_text())
CASES = REFERENCE["cases"]


def case_id(case):
    return f"{case['input_name']}@{case['scale']:.3g}"


@pytest.mark.parametrize("case", CASES, ids=case_id)
def test_numpy_imresize_matches_matlab_reference(case):
    result = imresize(np.array(case["input"]), case["scale"])
    assert list(result.shape) == case["output_shape"]
    np.testing.assert_allclose(result, case["output"], atol=1e-9)


@pytest.mark.parametrize("case", CASES, ids=case_id)
@pytest.mark.parametrize("dtype,atol", [(tf.float64, 1e-9), (tf.float32, 1e-4)])
def test_tensorflow_imresize_matches_matlab_reference(case, dtype, atol):
    image = tf.constant(np.array(case["input"])[..., None], dtype)
    result = imresize_tf(image, case["scale"]).numpy()[..., 0]
    assert list(result.shape) == case["output_shape"]
    np.testing.assert_allclose(result, case["output"], atol=atol)


def test_tensorflow_imresize_runs_in_a_tf_data_graph_on_odd_sizes(rng):
    images = [rng.integers(0, 256, (h, w, 3)).astype("float32") for h, w in [(37, 53), (21, 8)]]
    dataset = tf.data.Dataset.from_generator(
        lambda: iter(images), output_signature=tf.TensorSpec([None, None, 3], tf.float32))
    for image, result in zip(images, dataset.map(lambda x: imresize_tf(x, 1 / 4))):
        assert result.shape == (-(-image.shape[0] // 4), -(-image.shape[1] // 4), 3)
        np.testing.assert_allclose(result, imresize(image, 1 / 4), atol=2e-4)


def test_weights_are_normalised_and_indices_mirror_at_the_borders():
    weights, indices = contributions(in_length=6, out_length=3, scale=0.5)
    np.testing.assert_allclose(weights.sum(axis=1), 1.0)
    assert indices.min() == 0 and indices.max() == 5
    # Output pixel 1 is centred at u = 1.5 with a support of 8: its taps run from index -2
    # (1-based; the zero-weight tap at -3 is dropped) and mirror with the edge repeated,
    # -2, -1, 0, 1, 2 -> 3, 2, 1, 1, 2, i.e. 0-based 2, 1, 0, 0, 1.
    assert list(indices[0][:5]) == [2, 1, 0, 0, 1]


def test_constant_image_stays_constant_and_quantize_rounds_like_matlab():
    np.testing.assert_allclose(imresize(np.full((9, 7, 3), 42.0), 0.25), 42.0)
    # MATLAB rounds halves away from zero; numpy's round would give 0 and 254 here.
    np.testing.assert_array_equal(quantize(np.array([-3.0, 0.5, 1.49, 254.5, 300.0])),
                                  [0, 1, 1, 255, 255])


@pytest.mark.parametrize("bad", [{"scale": 0}, {}])
def test_bad_scale_is_named(bad):
    with pytest.raises(ValueError, match="scale"):
        imresize(np.zeros((4, 4)), **bad)


def test_modcrop_crops_arrays_and_tensors_alike():
    import tensorflow as tf

    from keras_sr.data.degradations import modcrop

    image = np.arange(7 * 10 * 3).reshape(7, 10, 3)
    assert modcrop(image, 4).shape == (4, 8, 3)
    np.testing.assert_array_equal(modcrop(tf.constant(image), 4).numpy(), image[:4, :8])
    graph = tf.function(lambda x: modcrop(x, 3),
                        input_signature=[tf.TensorSpec([None, None, 3], tf.int64)])
    assert tuple(graph(tf.constant(image)).shape) == (6, 9, 3)
