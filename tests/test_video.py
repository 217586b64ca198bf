"""`keras-sr upscale` on videos: tiny clips made here with ffmpeg (a test pattern, a sine tone,
a subtitle), upscaled with a small random model into a lossless RGB codec, so that every frame
can be compared with upscaling that frame as an image."""

import os
import subprocess

import numpy as np
import pytest

from keras_sr import cli, video
from keras_sr.models import SRVGGNetCompact
from tests.convert.test_ncnn import randomized

try:
    FFMPEG = video.ffmpeg_executable()
except video.VideoError:
    FFMPEG = None
pytestmark = pytest.mark.skipif(FFMPEG is None, reason="needs ffmpeg: pip install -e '.[test]'")
LOSSLESS = ["--codec", "ffv1", "--pix-fmt", "bgr0"]


def ffmpeg(*args):
    subprocess.run([FFMPEG, "-v", "error", "-y", *map(str, args)], check=True)


def make_clip(path, size="24x16", rate=10, seconds=2, subtitles=None):
    inputs = ["-f", "lavfi", "-i", f"testsrc=size={size}:rate={rate}:duration={seconds}",
              "-f", "lavfi", "-i", f"sine=frequency=440:duration={seconds}"]
    maps = ["-map", "0:v", "-map", "1:a"]
    if subtitles:
        inputs += ["-i", subtitles]
        maps += ["-map", "2:s"]
    ffmpeg(*inputs, *maps, "-c:v", "ffv1", "-pix_fmt", "bgr0", "-c:a", "flac", path)


def frames_of(path, width, height):
    data = subprocess.run([FFMPEG, "-v", "error", "-i", str(path), "-map", "0:v:0", "-f",
                           "rawvideo", "-pix_fmt", "rgb24", "-"], capture_output=True,
                          check=True).stdout
    return np.frombuffer(data, np.uint8).reshape(-1, height, width, 3)


def stream_md5(path, stream):
    """The per-frame MD5s of a stream's decoded content, without the container's timing."""
    lines = subprocess.run([FFMPEG, "-v", "error", "-i", str(path), "-map", f"0:{stream}",
                            "-f", "framemd5", "-"], capture_output=True, text=True,
                           check=True).stdout.splitlines()
    return [line.split(",")[-1].strip() for line in lines if not line.startswith("#")]


def frame_times(path):
    """Each video frame's presentation time in seconds."""
    from fractions import Fraction

    lines = subprocess.run([FFMPEG, "-v", "error", "-i", str(path), "-map", "0:v:0",
                            "-f", "framemd5", "-"], capture_output=True, text=True,
                           check=True).stdout.splitlines()
    base = Fraction(next(line for line in lines if line.startswith("#tb 0:")).split(":")[1]
                    .strip())
    return [int(line.split(",")[2]) * base for line in lines if not line.startswith("#")]


@pytest.fixture(scope="module")
def model_file(tmp_path_factory):
    folder = tmp_path_factory.mktemp("video_model")
    model = randomized(SRVGGNetCompact(scale=2, num_convs=2, num_features=8))
    model.save(folder / "g.keras")
    return model, folder / "g.keras"


def test_every_frame_is_the_image_path_and_audio_and_subtitles_are_copied(model_file,
                                                                          tmp_path):
    model, weights = model_file
    (tmp_path / "lines.srt").write_text("1\n00:00:00,000 --> 00:00:01,000\nhello\n")
    source = tmp_path / "clip.mkv"
    make_clip(source, subtitles=tmp_path / "lines.srt")
    assert cli.main(["upscale", str(source), "-o", str(tmp_path / "out"), "--model",
                     str(weights), "--precision", "float32", "--no-progress",
                     *LOSSLESS]) == 0
    result = tmp_path / "out" / "clip.mkv"
    before, after = video.probe(str(source)), video.probe(str(result))
    assert (after.width, after.height) == (48, 32)
    assert after.frames == before.frames == 20 and after.rate == before.rate
    assert after.audio and after.subtitles
    assert stream_md5(result, "a") == stream_md5(source, "a")
    assert frame_times(result) == frame_times(source)
    inputs, outputs = frames_of(source, 24, 16), frames_of(result, 48, 32)
    expected = np.round(np.clip(model(inputs.astype(np.float32) / 255).numpy(), 0, 1) * 255)
    assert np.abs(outputs.astype(int) - expected).max() <= 1
    assert not [name for name in os.listdir(tmp_path / "out") if "partial" in name]


def test_default_encoding_is_h264_with_an_odd_size_padded(model_file, tmp_path):
    """yuv420p needs even sides: a result 27 rows high gets one row of padding."""
    _, weights = model_file
    source = tmp_path / "odd.mkv"
    make_clip(source, size="21x15", seconds=1)
    target = tmp_path / "odd.mp4"
    assert cli.main(["upscale", str(source), "-o", str(target), "--model", str(weights),
                     "--precision", "float32", "--no-progress", "--scale-out", "1.8"]) == 0
    info = video.probe(str(target))
    assert (info.width, info.height) == (38, 28) and info.frames == 10 and info.audio
    header = subprocess.run([FFMPEG, "-hide_banner", "-i", str(target)], capture_output=True,
                            text=True).stderr
    assert "h264" in header and "yuv420p" in header


@pytest.mark.parametrize("content,message", [
    (b"not a video at all", "not a video ffmpeg can read"),
    (b"", "not a video ffmpeg can read"),
])
def test_bad_videos_are_named_in_one_line(model_file, tmp_path, capsys, content, message):
    _, weights = model_file
    source = tmp_path / "broken.mp4"
    source.write_bytes(content)
    assert cli.main(["upscale", str(source), "-o", str(tmp_path / "out"), "--model",
                     str(weights), "--no-progress"]) == 1
    err = capsys.readouterr().err
    assert f"broken.mp4: {message}" in err
    assert not (tmp_path / "out").exists() or not os.listdir(tmp_path / "out")


def test_an_audio_only_file_and_a_refused_codec_are_named(model_file, tmp_path, capsys):
    _, weights = model_file
    audio = tmp_path / "tone.mkv"
    ffmpeg("-f", "lavfi", "-i", "sine=duration=1", "-c:a", "flac", audio)
    assert cli.main(["upscale", str(audio), "-o", str(tmp_path / "out"), "--model",
                     str(weights), "--no-progress"]) == 1
    assert "tone.mkv: no video stream" in capsys.readouterr().err
    source = tmp_path / "clip.mkv"
    make_clip(source, seconds=1)
    assert cli.main(["upscale", str(source), "-o", str(tmp_path / "out"), "--model",
                     str(weights), "--no-progress", "--codec", "no-such-codec"]) == 1
    assert "encoding with no-such-codec" in capsys.readouterr().err
    assert not (tmp_path / "out").exists() or not os.listdir(tmp_path / "out")


def test_the_output_never_overwrites_the_input(model_file, tmp_path, capsys):
    _, weights = model_file
    source = tmp_path / "clip.mkv"
    make_clip(source, seconds=1)
    before = source.read_bytes()
    assert cli.main(["upscale", str(source), "-o", str(tmp_path), "--model", str(weights),
                     "--no-progress", "--overwrite"]) == 1
    assert "would overwrite the input" in capsys.readouterr().err
    assert source.read_bytes() == before


def test_without_ffmpeg_one_line_says_how_to_get_it(monkeypatch):
    import builtins
    import shutil

    real_import = builtins.__import__

    def no_imageio_ffmpeg(name, *args, **kwargs):
        if name == "imageio_ffmpeg":
            raise ImportError(name)
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_imageio_ffmpeg)
    monkeypatch.setattr(shutil, "which", lambda name: None)
    with pytest.raises(video.VideoError, match=r"pip install 'keras-sr\[video\]'"):
        video.ffmpeg_executable()


def test_a_folder_mixing_images_and_videos(model_file, tmp_path):
    from PIL import Image

    _, weights = model_file
    folder = tmp_path / "in"
    folder.mkdir()
    make_clip(folder / "clip.mkv", seconds=1)
    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(folder / "still.png")
    assert cli.main(["upscale", str(folder), "-o", str(tmp_path / "out"), "--model",
                     str(weights), "--no-progress"]) == 0
    assert sorted(os.listdir(tmp_path / "out")) == ["clip.mkv", "still.png"]
    assert video.probe(str(tmp_path / "out" / "clip.mkv")).frames == 10
