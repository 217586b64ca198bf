import json

import numpy as np
import pytest
from PIL import Image

from keras_sr.data.degradations import imresize, quantize
from keras_sr.metrics import psnr, ssim
from keras_sr.models import RRDBNet
from training import evaluate


def natural_like(rng, height, width):
    """Smooth gradients plus texture: enough structure for PSNR/SSIM to mean something."""
    y, x = np.mgrid[0:height, 0:width] / max(height, width)
    base = np.stack([np.sin(6 * x + c) * np.cos(4 * y - c) for c in (0.0, 1.0, 2.0)], -1)
    image = 127.5 + 90 * base + rng.normal(0, 12, (height, width, 3))
    return np.clip(image, 0, 255).astype(np.uint8)


def natural_folder(folder, rng, count, height, width, stem=""):
    """`folder` (made) holding `count` `natural_like` PNGs named `<stem><index>.png`."""
    folder.mkdir(parents=True, exist_ok=True)
    for index in range(count):
        Image.fromarray(natural_like(rng, height, width)).save(folder / f"{stem}{index}.png")
    return folder


@pytest.fixture
def datasets(tmp_path, rng):
    clean, mixed = tmp_path / "Clean", tmp_path / "Mixed"
    clean.mkdir()
    mixed.mkdir()
    Image.fromarray(natural_like(rng, 50, 38)).save(clean / "a.png")
    Image.fromarray(natural_like(rng, 33, 47)).save(clean / "b.png")
    Image.fromarray(natural_like(rng, 40, 40)[..., 0]).save(mixed / "gray.png")
    (mixed / "corrupt.png").write_bytes(b"\x89PNG\r\n\x1a\nbroken")
    return clean, mixed


def test_bicubic_tables_json_and_a_skipped_file(datasets, tmp_path, capsys):
    clean, mixed = datasets
    out = tmp_path / "results.json"
    status = evaluate.main(["--model", "bicubic", "--data", str(clean), "--data", str(mixed),
                            "--scale", "2", "--json", str(out), "--no-progress"])
    assert status == 1  # corrupt.png was skipped
    captured = capsys.readouterr()
    assert "corrupt.png" in captured.err and "1 image(s) skipped" in captured.err
    assert "Clean" in captured.out and "mean" in captured.out

    report = json.loads(out.read_text())
    assert set(report) == {"Clean", "Mixed"}
    assert set(report["Mixed"]["images"]) == {"gray.png"}
    hr = np.asarray(Image.open(clean / "b.png"))[:32, :46]  # modcropped to a multiple of 2
    bicubic = quantize(imresize(quantize(imresize(hr, 0.5)), 2))
    b = report["Clean"]["images"]["b.png"]
    assert b["psnr_y"] == pytest.approx(psnr(bicubic, hr, 2, "y"))
    assert b["ssim_rgb"] == pytest.approx(ssim(bicubic, hr, 2, "rgb"))
    means = [report["Clean"]["images"][n]["psnr_y"] for n in ("a.png", "b.png")]
    assert report["Clean"]["psnr_y"] == pytest.approx(np.mean(means))
    gray = report["Mixed"]["images"]["gray.png"]
    # A grayscale image is measured on its single channel: Y and RGB figures coincide.
    assert gray["psnr_y"] == gray["psnr_rgb"] and gray["ssim_y"] == gray["ssim_rgb"]


def test_keras_model_with_saved_images_and_comparison_sheets(datasets, tmp_path):
    clean, mixed = datasets
    model_path = tmp_path / "tiny_x2.keras"
    RRDBNet(scale=2, num_blocks=1, num_features=8, growth_channels=4).save(model_path)
    (mixed / "corrupt.png").unlink()
    saved = tmp_path / "sr"
    status = evaluate.main(["--model", str(model_path), "--data", str(clean), "--data",
                            str(mixed), "--scale", "2", "--save-images", str(saved),
                            "--json", str(tmp_path / "r.json"), "--no-progress"])
    assert status == 0
    assert Image.open(saved / "Clean" / "a.png").size == (38, 50)
    assert Image.open(saved / "Mixed" / "gray.png").mode == "L"
    sheet = Image.open(saved / "Clean" / "a_comparison.png")
    # Four panels side by side, each enlarged to 256 pixels however small the image.
    assert sheet.width == 4 * 256 + 3 * 4
    pixels = np.asarray(sheet.convert("L"))
    # A title line above the panel labels names the image and the model.
    assert (pixels[:18] < 128).any() and (pixels[:18, 600:] == 255).all()
    assert json.loads((tmp_path / "r.json").read_text())["Clean"]["seconds"] > 0


def test_scale_mismatch_and_missing_model_are_named(datasets, tmp_path, capsys):
    clean, _ = datasets
    model_path = tmp_path / "x4.keras"
    RRDBNet(scale=4, num_blocks=1, num_features=8, growth_channels=4).save(model_path)
    assert evaluate.main(["--model", str(model_path), "--data", str(clean), "--scale",
                          "2"]) == 2
    assert "x4 model but --scale is 2" in capsys.readouterr().err
    assert evaluate.main(["--model", str(tmp_path / "gone.keras"), "--data", str(clean),
                          "--scale", "2"]) == 2
    assert "gone.keras" in capsys.readouterr().err


def test_existing_results_are_not_overwritten(datasets, tmp_path, capsys):
    clean, _ = datasets
    out = tmp_path / "keep.json"
    out.write_text("precious")
    assert evaluate.main(["--model", "bicubic", "--data", str(clean), "--scale", "2",
                          "--json", str(out)]) == 2
    assert out.read_text() == "precious"
    assert "--overwrite" in capsys.readouterr().err
    assert evaluate.main(["--model", "bicubic", "--data", str(clean), "--scale", "2",
                          "--json", str(out), "--overwrite", "--no-progress"]) == 0
    assert "Clean" in json.loads(out.read_text())


def test_a_preset_is_a_model(datasets, fake_package, tmp_path):
    clean, _ = datasets
    status = evaluate.main(["--model", "realesr-animevideov3-x4", "--data", str(clean),
                            "--scale", "4", "--json", str(tmp_path / "r.json"),
                            "--no-progress"])
    assert status == 0
    assert json.loads((tmp_path / "r.json").read_text())["Clean"]["psnr_y"] > 0


def test_the_progress_bar_ends_on_the_mean(datasets, capsys):
    import re

    clean, _ = datasets
    assert evaluate.main(["--model", "bicubic", "--data", str(clean), "--scale", "2"]) == 0
    out = capsys.readouterr().out
    shown = [float(v) for v in re.findall(r"mean_psnr_y: ([0-9.]+)", out)]
    mean_row = float(re.search(r"^mean\s+([0-9.]+)", out, re.MULTILINE).group(1))
    assert len(shown) >= 2 and abs(shown[-1] - mean_row) < 1e-3


def test_niqe_columns_for_sr_bicubic_and_hr(tmp_path, rng, capsys):
    from keras_sr.metrics import niqe

    folder = tmp_path / "Big"
    folder.mkdir()
    Image.fromarray(natural_like(rng, 200, 208)).save(folder / "big.png")
    Image.fromarray(natural_like(rng, 60, 60)).save(folder / "small.png")  # under two blocks
    out = tmp_path / "r.json"
    assert evaluate.main(["--model", "bicubic", "--data", str(folder), "--scale", "4",
                          "--metrics", "psnr,niqe", "--json", str(out), "--no-progress",
                          "--save-images", str(tmp_path / "sheets")]) == 0
    report = json.loads(out.read_text())["Big"]
    big, small = report["images"]["big.png"], report["images"]["small.png"]
    assert "ssim_y" not in big  # only what was asked for
    hr = np.asarray(Image.open(folder / "big.png"))
    bicubic = quantize(imresize(quantize(imresize(hr, 0.25)), 4))
    assert big["niqe"] == big["niqe_bicubic"] == pytest.approx(niqe(bicubic, crop_border=4))
    assert big["niqe_hr"] == pytest.approx(niqe(hr, crop_border=4))
    assert small["niqe"] is None and small["psnr_y"] > 0
    assert report["niqe"] == big["niqe"]  # the mean of the images that have one
    table = capsys.readouterr().out
    assert "NIQE" in table and "SSIM" not in table and "NIQE of the bicubic images" in table
    assert (tmp_path / "sheets" / "Big" / "big_comparison.png").is_file()


def test_an_unknown_metric_is_named(tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_info:
        evaluate.main(["--model", "bicubic", "--data", str(tmp_path), "--scale", "4",
                       "--metrics", "psnr,fid"])
    assert exit_info.value.code == 2
    assert "unknown metric fid; choose from psnr,ssim,niqe,lpips" in capsys.readouterr().err


def test_lpips_when_its_weights_are_there_and_a_note_when_not(tmp_path, rng, capsys,
                                                             monkeypatch):
    from benchmarks.perceptual_metrics import linear_state, trunk_state
    from keras_sr.convert import torch as torch_files
    from keras_sr.metrics import crop_border, lpips

    folder = tmp_path / "Set"
    folder.mkdir()
    Image.fromarray(natural_like(rng, 80, 88)).save(folder / "a.png")
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    monkeypatch.delenv("KERAS_SR_ALEXNET_WEIGHTS", raising=False)
    linear = tmp_path / "alex-linear.pth"
    torch_files.save(str(linear), linear_state("alex"), wrapper=None)
    monkeypatch.setenv("KERAS_SR_LPIPS_LINEAR_WEIGHTS", str(linear))
    arguments = ["--model", "bicubic", "--data", str(folder), "--scale", "4", "--no-progress",
                 "--json", str(tmp_path / "r.json"), "--overwrite"]

    # By default, without the trunk: the other metrics, and one line saying why not LPIPS.
    assert evaluate.main(arguments) == 0
    err = capsys.readouterr().err
    assert err.count("no LPIPS") == 1 and "alexnet-owt-7be5be79.pth" in err
    # Said to a command-line user: what to set, not a Python argument first.
    assert "set KERAS_SR_ALEXNET_WEIGHTS to its path" in err
    assert err.index("KERAS_SR_ALEXNET_WEIGHTS") < err.index("trunk_weights=")
    assert "lpips" not in json.loads((tmp_path / "r.json").read_text())["Set"]
    # Asked for explicitly, a missing trunk is an error.
    assert evaluate.main(arguments + ["--metrics", "lpips"]) == 2
    assert "KERAS_SR_ALEXNET_WEIGHTS" in capsys.readouterr().err

    trunk = tmp_path / "alex.pth"
    torch_files.save(str(trunk), trunk_state("alex"), wrapper=None)
    monkeypatch.setenv("KERAS_SR_ALEXNET_WEIGHTS", str(trunk))
    assert evaluate.main(arguments) == 0
    image = json.loads((tmp_path / "r.json").read_text())["Set"]["images"]["a.png"]
    hr = np.asarray(Image.open(folder / "a.png"))
    bicubic = quantize(imresize(quantize(imresize(hr, 0.25)), 4))
    expected = lpips(crop_border(bicubic, 4), crop_border(hr, 4), "alex", str(trunk),
                     str(linear))
    assert image["lpips"] == image["lpips_bicubic"] == pytest.approx(expected, rel=1e-5)
    assert "LPIPS" in capsys.readouterr().out
