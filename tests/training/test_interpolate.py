import numpy as np
import pytest

from keras_sr.models import RRDBNet, SRResNet
from training import interpolate

TINY = {"num_blocks": 1, "num_features": 8, "growth_channels": 4}


@pytest.fixture
def pair(tmp_path):
    psnr_path, gan_path = tmp_path / "psnr.keras", tmp_path / "gan.keras"
    psnr_model, gan_model = RRDBNet(**TINY), RRDBNet(**TINY)
    psnr_model.save(psnr_path)
    gan_model.save(gan_path)
    return psnr_model, gan_model, psnr_path, gan_path


@pytest.mark.parametrize("alpha", [0.0, 0.8, 1.0])
def test_weights_are_the_esrgan_interpolation(pair, tmp_path, alpha):
    psnr_model, gan_model, psnr_path, gan_path = pair
    out = tmp_path / f"interp{alpha}.keras"
    assert interpolate.main(["--psnr", str(psnr_path), "--gan", str(gan_path),
                             "--alpha", str(alpha), "--out", str(out)]) == 0
    import keras

    merged = keras.saving.load_model(out)
    assert isinstance(merged, RRDBNet)
    for m, a, b in zip(merged.get_weights(), psnr_model.get_weights(), gan_model.get_weights()):
        np.testing.assert_allclose(m, (1 - alpha) * a + alpha * b, rtol=1e-6, atol=1e-7)


def test_different_architectures_are_refused(pair, tmp_path, capsys):
    _, _, psnr_path, _ = pair
    other = tmp_path / "srresnet.keras"
    SRResNet(num_blocks=1, num_features=8).save(other)
    deeper = tmp_path / "deeper.keras"
    RRDBNet(num_blocks=2, num_features=8, growth_channels=4).save(deeper)
    for gan, message in ((other, "RRDBNet vs SRResNet"), (deeper, "num_blocks")):
        assert interpolate.main(["--psnr", str(psnr_path), "--gan", str(gan), "--alpha",
                                 "0.5", "--out", str(tmp_path / "x.keras")]) == 2
        assert message in capsys.readouterr().err
    assert not (tmp_path / "x.keras").exists()


def test_bad_alpha_missing_files_and_existing_output(pair, tmp_path, capsys):
    _, _, psnr_path, gan_path = pair
    out = tmp_path / "keep.keras"
    out.write_bytes(b"precious")
    cases = [(["--alpha", "1.5"], "argument --alpha: 1.5 is outside [0, 1]"),
             (["--alpha", "0.5", "--gan", str(tmp_path / "gone.keras")], "gone.keras"),
             (["--alpha", "0.5", "--out", str(out)], "--overwrite")]
    for extra, message in cases:
        arguments = {"--psnr": str(psnr_path), "--gan": str(gan_path),
                     "--out": str(tmp_path / "new.keras")}
        for flag, value in zip(extra[::2], extra[1::2]):
            arguments[flag] = value
        try:
            status = interpolate.main([item for pair_ in arguments.items() for item in pair_])
        except SystemExit as exit:  # argparse's own checks (--alpha's range)
            status = exit.code
        assert status == 2
        assert message in capsys.readouterr().err
    assert out.read_bytes() == b"precious"


def test_a_sweep_prints_the_trade_off_for_each_alpha(pair, tmp_path, rng, capsys):
    import json

    from PIL import Image

    from tests.training.test_evaluate import natural_like
    from training.evaluate import evaluate_folder, model_upscaler

    psnr_model, gan_model, psnr_path, gan_path = pair
    folder = tmp_path / "Held"
    folder.mkdir()
    Image.fromarray(natural_like(rng, 208, 208)).save(folder / "a.png")
    out = tmp_path / "sweep.json"
    assert interpolate.main(["--psnr", str(psnr_path), "--gan", str(gan_path), "--sweep",
                             "0,0.5,1", "--data", str(folder), "--scale", "4", "--metrics",
                             "psnr,niqe", "--json", str(out)]) == 0
    rows = json.loads(out.read_text())
    assert [row["alpha"] for row in rows] == [0.0, 0.5, 1.0]
    assert all(row["dataset"] == "Held" and row["niqe"] > 0 for row in rows)
    for alpha, model in ((0.0, psnr_model), (1.0, gan_model)):
        expected, _ = evaluate_folder(str(folder), model_upscaler(model, 4), 4, progress=False,
                                      metrics=("psnr", "niqe"))
        row = next(row for row in rows if row["alpha"] == alpha)
        assert row["psnr_y"] == pytest.approx(expected["psnr_y"], abs=1e-6)
        assert row["niqe"] == pytest.approx(expected["niqe"], abs=1e-6)
    table = capsys.readouterr().out
    assert "alpha" in table and "NIQE" in table and table.count("Held") == 3


@pytest.mark.parametrize("arguments,message", [
    (["--sweep", "0,1"], "--sweep needs --data and --scale"),
    (["--sweep", "0,2", "--scale", "4"], "alphas must be in"),
    (["--alpha", "0.5"], "--alpha needs --out"),
])
def test_sweep_and_alpha_arguments_are_checked(pair, arguments, message, capsys):
    _, _, psnr_path, gan_path = pair
    with pytest.raises(SystemExit) as exit_info:
        interpolate.main(["--psnr", str(psnr_path), "--gan", str(gan_path), *arguments])
    assert exit_info.value.code == 2 and message in capsys.readouterr().err
