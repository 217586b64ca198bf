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


def _s15(value):
    import struct

    return struct.pack(">i", round(value * 65536))


def cmyk_profile(corner_lab):
    """A minimal ICC v2 CMYK printer profile: its A2B0 (an 8-bit lut, two grid points a
    channel) takes each CMYK corner (0 or 1 of each ink) to `corner_lab(c, m, y, k)`, an
    (L*, a*, b*), and LittleCMS interpolates between them. No CMYK profile can be made with
    Pillow or fetched here; this one has inks no press has, so that converting through it
    and ignoring it differ by far."""
    import struct

    clut = bytes(round(value) for c in (0, 1) for m in (0, 1) for y in (0, 1) for k in (0, 1)
                 for value in (lambda lab: (lab[0] * 2.55, lab[1] + 128, lab[2] + 128))(
                     corner_lab(c, m, y, k)))
    ramp = bytes(range(256))
    lut = (b"mft1" + bytes(4) + bytes([4, 3, 2, 0])
           + b"".join(_s15(value) for value in (1, 0, 0, 0, 1, 0, 0, 0, 1))
           + ramp * 4 + clut + ramp * 3)
    d50 = _s15(0.9642) + _s15(1.0) + _s15(0.8249)
    text = b"inks for a test\0"
    tags = [(b"A2B0", lut), (b"wtpt", b"XYZ " + bytes(4) + d50),
            (b"desc", b"desc" + bytes(4) + struct.pack(">I", len(text)) + text + bytes(78))]
    start = 128 + 4 + 12 * len(tags)
    table, data = b"", b""
    for signature, body in tags:
        data += bytes(-(start + len(data)) % 4)
        table += signature + struct.pack(">II", start + len(data), len(body))
        data += body
    header = (struct.pack(">I", start + len(data)) + bytes(4) + bytes([2, 0x10, 0, 0])
              + b"prtrCMYKLab " + bytes(12) + b"acsp" + bytes(28) + d50 + bytes(48))
    return header + struct.pack(">I", len(tags)) + table + data


def test_a_cmyk_jpeg_is_made_rgb_through_its_profile(tmp_path):
    """A CMYK JPEG (print work) with its profile: its colours are the profile's, not Pillow's
    profile-blind formula (here cyan ink is a red, which the formula makes cyan), and the
    RGB result carries no CMYK profile. A profile LittleCMS cannot read, or none, leaves
    Pillow's conversion."""
    from keras_sr.data.images import read_image_exact

    def red_cyan(c, m, y, k):
        return (max(100 - 60 * max(c, m, y) - 90 * k, 0), 70 * (c - m),
                max(min(60 * (c + y) - 30 * m, 127), -128))

    patches = np.array([[[255, 0, 0, 0], [0, 0, 0, 0]]], np.uint8).repeat(8, 0).repeat(8, 1)
    for name, profile in (("profiled", cmyk_profile(red_cyan)), ("broken", b"not a profile"),
                          ("plain", None)):
        Image.fromarray(patches, "CMYK").save(tmp_path / f"{name}.jpg", quality=100,
                                              **({"icc_profile": profile} if profile else {}))
        decoded = read_image_exact(tmp_path / f"{name}.jpg")
        assert decoded.metadata.icc_profile is None
        cyan, white = np.round(decoded.color[4, [4, 12]] * 255).astype(int)  # float in [0, 1]
        assert np.abs(white - 255).max() <= 3
        if name == "profiled":
            assert cyan[0] > 150 and cyan[1] < 40 and cyan[2] < 110  # red, as its inks say
        else:
            assert cyan[0] < 20 and cyan[1] > 230 and cyan[2] > 230  # Pillow's cyan
