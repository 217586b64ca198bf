"""A model trained by `python -m training.fit` exports to both formats, and both exports upscale
a real photo with the documented commands."""

from importlib import resources

import numpy as np
from PIL import Image

from export import saved_model, tflite
from keras_sr import cli
from tests.training.test_fit import image_folder, tiny_config  # noqa: F401  (fixture)
from training import fit


def test_trained_model_exports_and_upscales_a_photo(tmp_path, image_folder):  # noqa: F811
    # Trained in bfloat16 (what `auto` picks on CPUs with native bf16), saved as float32: the
    # exporters, TFLite's included, start from float32 weights and policy.
    config = tiny_config(image_folder, "train.steps=2", "train.precision=bfloat16")
    run_dir = tmp_path / "run"
    fit.prepare_run_dir(str(run_dir), config)
    assert fit.train(config, str(run_dir), log=lambda m: None) == 0
    generator = str(run_dir / "generator_last.keras")
    import keras

    assert keras.saving.load_model(generator).dtype_policy.name == "float32"

    assert saved_model.main(["--model", generator, "--out", str(tmp_path / "models" / "sr")]) == 0
    assert tflite.main(["--model", generator, "--out", str(tmp_path / "sr.tflite")]) == 0

    photo = Image.open(resources.files("keras_sr.data") / "samples" / "chelsea.png")
    photo.crop((150, 60, 246, 132)).save(tmp_path / "cat.png")  # 96 x 72, a real photo
    results = {}
    for name, model in (("saved", tmp_path / "models" / "sr"), ("lite", tmp_path / "sr.tflite")):
        assert cli.main(["upscale", str(tmp_path / "cat.png"), "-o", str(tmp_path / name),
                         "--model", str(model), "--no-progress"]) == 0
        results[name] = np.asarray(Image.open(tmp_path / name / "cat.png")).astype(int)
    assert results["saved"].shape == (288, 384, 3)
    assert np.abs(results["saved"] - results["lite"]).max() <= 1
