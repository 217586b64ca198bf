"""`keras-sr upscale` end to end with every model form and the image kinds it must keep."""


import numpy as np
import pytest
from PIL import Image

from export import saved_model, tflite
from keras_sr import cli
from keras_sr.models import SRVGGNetCompact
from tests.convert.test_ncnn import randomized


@pytest.fixture(scope="module")
def model_files(tmp_path_factory):
    folder = tmp_path_factory.mktemp("models")
    model = randomized(SRVGGNetCompact(scale=2, num_convs=2, num_features=8))
    model.save(folder / "g.keras")
    saved_model.export(model, str(folder / "served"))
    (folder / "g.tflite").write_bytes(tflite.convert(model))
    (folder / "fixed.tflite").write_bytes(tflite.convert(model, input_size=(24, 24)))
    # Published weights files, which --model converts on first use.
    from keras_sr.convert import basicsr, export
    from tests.convert.ncnn_files import write_srvgg

    export(model, str(folder / "g.pth"))
    export(model, str(folder / "g.safetensors"))
    write_srvgg(str(folder / "g"), basicsr.state_dict_of(model), 2, 2)
    model.save_to_preset(str(folder / "preset"))
    return model, folder


def photo(rng, height, width, channels=3):
    y, x = np.mgrid[:height, :width]
    base = (np.sin(x / 5.0) + np.cos(y / 7.0) + 2) / 4
    image = np.stack([base, base[::-1], base[:, ::-1], base.T[:height, :width]
                      if height == width else base][:channels], -1)
    return np.clip(image + rng.normal(0, 0.02, image.shape), 0, 1)


def upscale(*args):
    return cli.main(["upscale", *map(str, args), "--no-progress"])


@pytest.mark.parametrize("form", ["g.keras", "served", "g.tflite", "fixed.tflite", "g.pth",
                                  "g.safetensors", "g.param", "preset"])
def test_every_model_form_gives_the_same_result(model_files, tmp_path, rng, form):
    model, folder = model_files
    image = (photo(rng, 30, 41) * 255).round().astype(np.uint8)
    Image.fromarray(image).save(tmp_path / "in.png")
    assert upscale(tmp_path / "in.png", "-o", tmp_path / "out", "--model", folder / form) == 0
    result = np.asarray(Image.open(tmp_path / "out" / "in.png"))
    expected = np.round(np.clip(model(image[None].astype(np.float32) / 255).numpy()[0], 0, 1)
                        * 255)
    assert result.shape == (60, 82, 3)
    # Tiling (the fixed-shape model forces 24-pixel tiles) and runtimes differ by rounding only.
    assert np.abs(result.astype(int) - expected).max() <= 1


@pytest.mark.parametrize("bits", [8, 16])
def test_png_compression_changes_the_file_size_not_the_pixels(model_files, tmp_path, rng, bits,
                                                              capsys):
    _, folder = model_files
    peak = 2 ** bits - 1
    image = (photo(rng, 24, 32)[..., 0] * peak).astype(np.uint8 if bits == 8 else np.uint16)
    Image.fromarray(image).save(tmp_path / "in.png")
    sizes, pixels, files = {}, {}, {}
    for level in (None, 0, 1, 9):
        out = tmp_path / f"out{level}"
        options = [] if level is None else ["--png-compression", level]
        assert upscale(tmp_path / "in.png", "-o", out, "--model", folder / "g.keras",
                       *options) == 0
        files[level] = (out / "in.png").read_bytes()
        sizes[level] = len(files[level])
        with Image.open(out / "in.png") as result:
            pixels[level] = np.asarray(result)
    np.testing.assert_array_equal(pixels[0], pixels[None])
    np.testing.assert_array_equal(pixels[9], pixels[None])
    assert pixels[None].max() > (255 if bits == 16 else 0)
    assert sizes[0] > max(sizes[1], sizes[9])
    assert files[None] == files[1]  # the default is level 1
    with pytest.raises(SystemExit):
        upscale(tmp_path / "in.png", "-o", tmp_path / "bad", "--model", folder / "g.keras",
                "--png-compression", "10")
    assert "--png-compression: invalid choice: 10" in capsys.readouterr().err
    assert not (tmp_path / "bad").exists()


def test_gray_alpha_16_bit_and_formats_are_kept(model_files, tmp_path, rng):
    _, folder = model_files
    inputs = tmp_path / "in"
    inputs.mkdir()
    Image.fromarray((photo(rng, 16, 16)[..., 0] * 255).astype(np.uint8), "L").save(
        inputs / "gray.png")
    rgba = (photo(rng, 16, 12, channels=4) * 255).astype(np.uint8)
    Image.fromarray(rgba, "RGBA").save(inputs / "rgba.png")
    deep = (photo(rng, 10, 14)[..., 0] * 65535).astype(np.uint16)
    Image.fromarray(deep).save(inputs / "deep.png")
    Image.fromarray((photo(rng, 8, 8) * 255).astype(np.uint8)).save(inputs / "photo.jpg")
    out = tmp_path / "out"
    # The random model would not keep alpha's mean; through the model: the test below.
    assert upscale(inputs, "-o", out, "--model", folder / "g.keras", "--alpha-upscaler",
                   "bicubic") == 0
    assert Image.open(out / "gray.png").mode == "L"
    with Image.open(out / "rgba.png") as result:
        assert result.mode == "RGBA" and result.size == (24, 32)
        alpha = np.asarray(result)[..., 3].astype(float)
    assert abs(alpha.mean() - rgba[..., 3].mean()) < 4  # resized, not dropped
    with Image.open(out / "deep.png") as result:
        assert result.mode.startswith("I") and np.asarray(result).max() > 255
    assert Image.open(out / "photo.jpg").format == "JPEG"
    assert upscale(inputs / "photo.jpg", "-o", out / "photo.webp", "--model",
                   folder / "g.keras") == 0
    assert Image.open(out / "photo.webp").format == "WEBP"


def test_webp_is_lossless_and_quality_makes_webp_lossy_and_jpeg_smaller(model_files, tmp_path,
                                                                       rng, capsys):
    """WebP is written lossless, as Real-ESRGAN's OpenCV and realesrgan-ncnn-vulkan write it
    (keras-sr wrote quality 95 before: up to 76 levels off on this
    random model's noisy output); `--quality` makes it lossy and sets
    JPEG's (default 95); a value outside 1-100 is refused naming the option, and given for
    PNG it says it changes nothing."""
    model, folder = model_files
    image = (photo(rng, 30, 41) * 255).round().astype(np.uint8)
    Image.fromarray(image).save(tmp_path / "in.png")
    expected = np.round(np.clip(model(image[None].astype(np.float32) / 255).numpy()[0], 0, 1)
                        * 255)

    def written(name, *options):
        assert upscale(tmp_path / "in.png", "-o", tmp_path / name, "--model",
                       folder / "g.keras", *options) == 0
        with Image.open(tmp_path / name) as result:
            return np.abs(np.asarray(result.convert("RGB")).astype(int) - expected)

    assert written("lossless.webp").max() <= 1
    assert written("lossy.webp", "--quality", "60").mean() > 1
    assert written("default.jpg").mean() < written("rough.jpg", "--quality", "20").mean()
    assert (tmp_path / "rough.jpg").stat().st_size < (tmp_path / "default.jpg").stat().st_size
    written("same.png", "--quality", "50")
    assert "--quality is for JPEG and WebP outputs" in capsys.readouterr().err
    for bad in ("0", "101"):
        with pytest.raises(SystemExit):
            upscale(tmp_path / "in.png", "-o", tmp_path / "x.webp", "--model",
                    folder / "g.keras", "--quality", bad)
        assert "--quality" in capsys.readouterr().err


@pytest.mark.parametrize("bits", [8, 16])
def test_a_gray_image_is_the_models_three_outputs_folded_with_luma(model_files, tmp_path, rng,
                                                                   bits):
    """As Real-ESRGAN folds them (OpenCV's BGR2GRAY on the float output, then rounded); this
    random model's three outputs differ by tens of levels, so taking one, or their mean,
    would not pass."""
    from keras_sr.upscale import LUMA

    model, folder = model_files
    peak = 2**bits - 1
    gray = np.round(photo(rng, 12, 14, channels=1)[..., 0] * peak)
    Image.fromarray(gray.astype(np.uint16 if bits == 16 else np.uint8)).save(tmp_path / "g.png")
    assert upscale(tmp_path / "g.png", "-o", tmp_path / "out", "--model",
                   folder / "g.keras", "--precision", "float32") == 0
    result = np.asarray(Image.open(tmp_path / "out" / "g.png")).astype(float)
    three = np.clip(model(np.repeat(gray[None, ..., None], 3, -1).astype(np.float32)
                          / peak).numpy()[0], 0, 1)
    assert result.shape == (24, 28)
    assert np.abs(result - np.round(three @ LUMA * peak)).max() <= 1
    assert np.abs(three[..., 0] - three.mean(-1)).max() * peak > 5


def test_exif_orientation_is_applied(model_files, tmp_path, rng):
    _, folder = model_files
    image = Image.fromarray((photo(rng, 10, 20) * 255).astype(np.uint8))
    exif = image.getexif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise to display
    image.save(tmp_path / "rotated.jpg", exif=exif)
    assert upscale(tmp_path / "rotated.jpg", "-o", tmp_path / "out", "--model",
                   folder / "g.keras") == 0
    assert Image.open(tmp_path / "out" / "rotated.jpg").size == (20, 40)


def an_icc_profile():
    from PIL import ImageCms

    return ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()


@pytest.mark.parametrize("suffix", [".png", ".jpg", ".webp"])
def test_the_icc_profile_exif_and_resolution_are_kept(model_files, tmp_path, rng, suffix):
    """A camera's photo (its colour profile, its EXIF: make, date, pixel size, turned 90
    degrees; 300 dpi) keeps them upscaled: the profile byte for byte, the EXIF with the new
    pixel size and no orientation (the pixels are turned), the resolution where the format
    holds one."""
    _, folder = model_files
    image = Image.fromarray((photo(rng, 10, 20) * 255).astype(np.uint8))
    exif = image.getexif()
    exif[0x010F], exif[0x0132], exif[0x0112] = "Camera Maker", "2024:05:01 10:00:00", 6
    exif.get_ifd(0x8769).update({0xA002: 20, 0xA003: 10})
    profile = an_icc_profile()
    image.save(tmp_path / "photo.jpg", exif=exif, icc_profile=profile, dpi=(300, 300))
    target = tmp_path / f"out{suffix}"
    assert upscale(tmp_path / "photo.jpg", "-o", target, "--model", folder / "g.keras") == 0
    with Image.open(target) as result:
        assert result.size == (20, 40) and result.info.get("icc_profile") == profile
        kept = result.getexif()
        assert kept[0x010F] == "Camera Maker" and kept[0x0132] == "2024:05:01 10:00:00"
        assert kept.get(0x0112, 1) == 1
        assert kept.get_ifd(0x8769)[0xA002] == 20 and kept.get_ifd(0x8769)[0xA003] == 40
        if suffix != ".webp":
            assert np.allclose(result.info["dpi"], (300, 300), atol=0.1)


def test_a_16_bit_png_keeps_its_profile_and_resolution(model_files, tmp_path, rng):
    _, folder = model_files
    deep = (photo(rng, 10, 14)[..., 0] * 65535).astype(np.uint16)
    profile = an_icc_profile()
    Image.fromarray(deep).save(tmp_path / "deep.png", icc_profile=profile, dpi=(600, 600))
    assert upscale(tmp_path / "deep.png", "-o", tmp_path / "out", "--model",
                   folder / "g.keras") == 0
    with Image.open(tmp_path / "out" / "deep.png") as result:
        assert result.mode.startswith("I") and result.size == (28, 20)
        assert result.info.get("icc_profile") == profile
        assert np.allclose(result.info["dpi"], (600, 600), atol=0.1)


def frames_of(path):
    """[(RGBA pixels, duration ms)] of every frame of an image file, and its loop count."""
    with Image.open(path) as image:
        frames = []
        for index in range(getattr(image, "n_frames", 1)):
            image.seek(index)
            image.load()
            frames.append((np.asarray(image.convert("RGBA")), image.info.get("duration")))
        return frames, image.info.get("loop")


@pytest.mark.parametrize("suffix", [".png", ".webp"])
def test_an_animation_keeps_every_frame_its_timing_and_transparency(model_files, tmp_path, rng,
                                                                    capsys, suffix):
    """An animated PNG or WebP (a sticker: three frames of 50 / 100 / 150 ms, half
    transparent, played twice) comes out animated the same way, each frame the model's
    (WebP lossless, as still images); JPEG holds one picture: the first, and a line says
    so."""
    model, folder = model_files
    pictures = [(photo(rng, 12, 10) * 255).astype(np.uint8) for _ in range(3)]
    alpha = np.full((12, 10, 1), 128, np.uint8)
    stills = [Image.fromarray(np.concatenate([picture, alpha], -1), "RGBA")
              for picture in pictures]
    source = tmp_path / f"sticker{suffix}"
    stills[0].save(source, save_all=True, append_images=stills[1:], duration=[50, 100, 150],
                   loop=2, lossless=True)
    assert upscale(source, "-o", tmp_path / "out", "--model", folder / "g.keras",
                   "--alpha-upscaler", "bicubic") == 0  # a random model changes alpha
    frames, loop = frames_of(tmp_path / "out" / source.name)
    assert loop == 2 and [duration for _, duration in frames] == [50, 100, 150]
    for (result, _), picture in zip(frames, pictures, strict=True):
        expected = np.round(np.clip(model(picture[None].astype(np.float32) / 255).numpy()[0],
                                    0, 1) * 255)
        assert result.shape == (24, 20, 4)
        assert np.abs(result[..., :3].astype(int) - expected).max() <= 1
        assert np.abs(result[..., 3].astype(int) - 128).max() <= 1
    assert upscale(source, "-o", tmp_path / "first.jpg", "--model", folder / "g.keras") == 0
    assert "animated (3 frames), but JPEG holds one picture" in capsys.readouterr().err
    assert Image.open(tmp_path / "first.jpg").size == (20, 24)


def test_alpha_goes_through_the_model_as_in_real_esrgan_or_is_resized_bicubic(model_files,
                                                                              tmp_path, rng):
    """Real-ESRGAN's default (`--alpha_upsampler realesrgan`): the alpha channel as gray RGB
    through the model, clipped, folded back with BT.601 luma; `--alpha-upscaler bicubic`: the
    alpha resized bicubic (the model runs once)."""
    model, folder = model_files
    rgba = (photo(rng, 14, 12, channels=4) * 255).astype(np.uint8)
    Image.fromarray(rgba, "RGBA").save(tmp_path / "in.png")
    alpha = rgba[..., 3].astype(np.float32) / 255
    through_model = np.clip(model(np.repeat(alpha[None, ..., None], 3, -1)).numpy()[0], 0, 1)
    expected = np.round(through_model @ np.array([0.299, 0.587, 0.114]) * 255)
    assert upscale(tmp_path / "in.png", "-o", tmp_path / "model.png", "--model",
                   folder / "g.keras") == 0
    result = np.asarray(Image.open(tmp_path / "model.png"))[..., 3].astype(int)
    assert result.shape == (28, 24) and np.abs(result - expected).max() <= 1
    assert upscale(tmp_path / "in.png", "-o", tmp_path / "bicubic.png", "--model",
                   folder / "g.keras", "--alpha-upscaler", "bicubic") == 0
    resized = np.asarray(Image.fromarray(alpha, "F").resize((24, 28), Image.BICUBIC))
    result = np.asarray(Image.open(tmp_path / "bicubic.png"))[..., 3].astype(int)
    assert np.abs(result - np.round(np.clip(resized, 0, 1) * 255)).max() <= 1
    assert np.abs(expected - np.round(np.clip(resized, 0, 1) * 255)).max() > 10
    # An opaque RGBA image (a screenshot) stays opaque: a uniform alpha skips the model.
    rgba[..., 3] = 255
    Image.fromarray(rgba, "RGBA").save(tmp_path / "opaque.png")
    assert upscale(tmp_path / "opaque.png", "-o", tmp_path / "out", "--model",
                   folder / "g.keras") == 0
    assert (np.asarray(Image.open(tmp_path / "out" / "opaque.png"))[..., 3] == 255).all()


def test_scale_out_resizes_the_result(model_files, tmp_path, rng):
    _, folder = model_files
    Image.fromarray((photo(rng, 20, 10) * 255).astype(np.uint8)).save(tmp_path / "a.png")
    assert upscale(tmp_path / "a.png", "-o", tmp_path / "o", "--model", folder / "g.keras",
                   "--scale-out", "1.5") == 0
    assert Image.open(tmp_path / "o" / "a.png").size == (15, 30)


def test_unreadable_files_are_skipped_and_existing_outputs_kept(model_files, tmp_path, rng,
                                                                capsys):
    _, folder = model_files
    inputs = tmp_path / "in"
    inputs.mkdir()
    Image.fromarray((photo(rng, 8, 8) * 255).astype(np.uint8)).save(inputs / "good.png")
    (inputs / "broken.png").write_bytes(b"\x89PNG not really")
    out = tmp_path / "out"
    assert upscale(inputs, "-o", out, "--model", folder / "g.keras") == 1
    err = capsys.readouterr().err
    assert "broken.png" in err and "1 of 2 inputs not written" in err
    assert (out / "good.png").is_file() and not (out / "broken.png").exists()
    before = (out / "good.png").read_bytes()
    (inputs / "broken.png").unlink()
    assert upscale(inputs, "-o", out, "--model", folder / "g.keras") == 1
    assert "exists, kept" in capsys.readouterr().err
    assert (out / "good.png").read_bytes() == before
    assert upscale(inputs, "-o", out, "--model", folder / "g.keras", "--overwrite") == 0


def test_missing_model_is_a_clear_error(tmp_path, capsys, rng):
    Image.fromarray((photo(rng, 8, 8) * 255).astype(np.uint8)).save(tmp_path / "a.png")
    assert upscale(tmp_path / "a.png", "-o", tmp_path / "o", "--model",
                   tmp_path / "none.keras") == 1
    assert "none.keras" in capsys.readouterr().err


def test_console_script_in_a_fresh_process(model_files, tmp_path, rng):
    # A new interpreter has imported nothing: the .keras file must still find its classes.
    import subprocess

    from tests.test_cli import console_script

    _, folder = model_files
    Image.fromarray((photo(rng, 12, 12) * 255).astype(np.uint8)).save(tmp_path / "a.png")
    result = subprocess.run([console_script(), "upscale", str(tmp_path / "a.png"), "-o",
                             str(tmp_path / "o"), "--model", str(folder / "g.keras")],
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    assert Image.open(tmp_path / "o" / "a.png").size == (24, 24)


def test_a_weights_file_is_converted_once_and_again_when_it_changes(model_files, tmp_path,
                                                                    monkeypatch, rng, capsys):
    import shutil

    from keras_sr import presets

    _, folder = model_files
    weights = tmp_path / "mine.pth"
    shutil.copy(folder / "g.pth", weights)
    first = presets.converted_file_path(weights)
    import keras_sr.convert as converting

    calls, original = [], converting.convert
    monkeypatch.setattr(converting, "convert",
                        lambda *args, **kwargs: calls.append(args) or original(*args, **kwargs))
    assert presets.converted_file_path(weights) == first and not calls
    other = randomized(SRVGGNetCompact(scale=2, num_convs=2, num_features=8), seed=9)
    converting.export(other, str(weights), overwrite=True)
    second = presets.converted_file_path(weights)
    assert second != first and len(calls) == 1
    # Weights no network of keras-sr holds: one line naming what it knows.
    from keras_sr.convert import torch as torch_files

    torch_files.save(str(tmp_path / "other.pth"), {"encoder.weight": np.zeros((4, 3), "f")})
    image = (photo(rng, 8, 8) * 255).round().astype(np.uint8)
    Image.fromarray(image).save(tmp_path / "in.png")
    assert upscale(tmp_path / "in.png", "-o", tmp_path / "out", "--model",
                   tmp_path / "other.pth") == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err
    assert "other.pth" in err[0] and "RRDBNet" in err[0] and "SRVGGNetCompact" in err[0]
