import numpy as np
import pytest
from PIL import Image

from keras_sr.data.images import UnreadableImageError, list_images, read_image


@pytest.fixture
def rgb(rng):
    return rng.integers(0, 256, (9, 7, 3)).astype(np.uint8)


@pytest.mark.parametrize("suffix,options", [(".png", {}), (".bmp", {}),
                                            (".webp", {"lossless": True}), (".tif", {})])
def test_lossless_formats_read_back_exactly(tmp_path, rgb, suffix, options):
    path = tmp_path / f"image{suffix}"
    Image.fromarray(rgb).save(path, **options)
    np.testing.assert_array_equal(read_image(path), rgb)


def test_jpeg_reads_as_rgb(tmp_path, rgb):
    Image.fromarray(rgb).save(tmp_path / "image.jpg", quality=95)
    image = read_image(tmp_path / "image.jpg")
    assert image.shape == (9, 7, 3) and image.dtype == np.uint8


def test_rgba_drops_alpha_and_palette_expands(tmp_path, rgb):
    alpha = np.full((9, 7, 1), 7, np.uint8)
    Image.fromarray(np.concatenate([rgb, alpha], -1)).save(tmp_path / "rgba.png")
    np.testing.assert_array_equal(read_image(tmp_path / "rgba.png"), rgb)
    palette = Image.fromarray(rgb).quantize(16)
    palette.save(tmp_path / "palette.png")
    np.testing.assert_array_equal(read_image(tmp_path / "palette.png"),
                                  np.asarray(palette.convert("RGB")))


def test_grayscale_and_16_bit(tmp_path, rng):
    gray = rng.integers(0, 256, (9, 7)).astype(np.uint8)
    Image.fromarray(gray).save(tmp_path / "gray.png")
    np.testing.assert_array_equal(read_image(tmp_path / "gray.png", keep_gray=True), gray)
    np.testing.assert_array_equal(read_image(tmp_path / "gray.png"), np.stack([gray] * 3, -1))
    deep = rng.integers(0, 65536, (9, 7)).astype(np.uint16)
    Image.fromarray(deep).save(tmp_path / "deep.png")
    np.testing.assert_array_equal(read_image(tmp_path / "deep.png", keep_gray=True),
                                  np.round(deep / 257).astype(np.uint8))


def test_16_bit_color_png_is_rounded_like_16_bit_gray(tmp_path, rng):
    import tensorflow as tf

    deep = rng.integers(0, 65536, (9, 7, 4)).astype(np.uint16)
    for name, pixels in (("rgb16.png", deep[..., :3]), ("rgba16.png", deep)):
        (tmp_path / name).write_bytes(tf.io.encode_png(pixels).numpy())
        # Not Pillow's high byte (v >> 8): the documented round(v / 257), alpha dropped.
        np.testing.assert_array_equal(read_image(tmp_path / name),
                                      np.round(deep[..., :3] / 257).astype(np.uint8))
    good = (tmp_path / "rgb16.png").read_bytes()
    (tmp_path / "cut16.png").write_bytes(good[: len(good) - 40])
    with pytest.raises(UnreadableImageError, match="cut16.png"):
        read_image(tmp_path / "cut16.png")


def test_exif_orientation_is_applied(tmp_path, rgb):
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise to display
    Image.fromarray(rgb).save(tmp_path / "rotated.jpg", exif=exif, quality=100)
    assert read_image(tmp_path / "rotated.jpg").shape == (7, 9, 3)


@pytest.mark.parametrize("content,reason", [(b"\x89PNG\r\n\x1a\ntruncated", "OSError"),
                                            (b"plain text", "UnidentifiedImageError")])
def test_corrupt_files_name_the_file(tmp_path, content, reason):
    path = tmp_path / "broken.png"
    path.write_bytes(content)
    with pytest.raises(UnreadableImageError, match=r"broken\.png.*" + reason) as error:
        read_image(path)
    assert error.value.path == str(path)


def test_missing_file_is_named(tmp_path):
    with pytest.raises(UnreadableImageError, match="nothere.png.*no such file"):
        read_image(tmp_path / "nothere.png")


def test_list_images_from_folders_files_and_globs(tmp_path, rgb):
    for name in ("b.png", "a.jpg", "c.txt", "d.webp"):
        (tmp_path / name).write_bytes(b"x")
    (tmp_path / "sub").mkdir()
    assert [p.rsplit("/", 1)[1] for p in list_images(tmp_path)] == ["a.jpg", "b.png", "d.webp"]
    assert [p.rsplit("/", 1)[1] for p in list_images(str(tmp_path / "*.png"))] == ["b.png"]
    with pytest.raises(FileNotFoundError, match="nowhere"):
        list_images(tmp_path / "nowhere")
    with pytest.raises(FileNotFoundError, match="no image files"):
        list_images(tmp_path / "sub")


@pytest.mark.parametrize("fmt", ["png", "jpg", "webp"])
def test_a_cut_off_exif_block_does_not_stop_the_image_being_written(fmt):
    """EXIF whose first IFD is cut off (Pillow reads it as empty, with a warning): the image
    is still written, with its profile."""
    import io

    from keras_sr.data.images import ImageMetadata, encode_image

    broken = b"Exif\x00\x00MM\x00\x2a\x00\x00\x00\x08\xff\xff\x00"
    pixels = np.full((4, 6, 3), 90, np.uint8)
    written = encode_image(pixels, fmt, metadata=ImageMetadata(icc_profile=b"profile",
                                                                exif=broken))
    with Image.open(io.BytesIO(written)) as image:
        assert image.size == (6, 4) and image.info.get("icc_profile") == b"profile"
        assert np.asarray(image.convert("RGB")).mean() == pytest.approx(90, abs=2)
