"""`keras-sr upscale` on videos: tiny clips made here with ffmpeg (a test pattern, a sine tone,
a subtitle), upscaled with a small random model into a lossless RGB codec, so that every frame
can be compared with upscaling that frame as an image."""

import io
import os
import re
import subprocess
import sys
from fractions import Fraction

import numpy as np
import pytest

from keras_sr import cli, video
from keras_sr.models import SRVGGNetCompact
from tests.convert.test_ncnn import randomized

try:
    FFMPEG, NO_FFMPEG = video.ffmpeg_executable(), None
except video.VideoError as error:
    FFMPEG, NO_FFMPEG = None, str(error)
pytestmark = pytest.mark.skipif(FFMPEG is None, reason=f"{NO_FFMPEG} (pip install -e '.[test]')")
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
    """Each video frame's presentation time in seconds, from the stored packets (the file's
    own timing: a decode would be resampled to a constant rate)."""
    lines = subprocess.run([FFMPEG, "-v", "error", "-i", str(path), "-map", "0:v:0", "-c",
                            "copy", "-f", "framemd5", "-"], capture_output=True, text=True,
                           check=True).stdout.splitlines()
    base = Fraction(next(line for line in lines if line.startswith("#tb 0:")).split(":")[1]
                    .strip())
    return sorted(int(line.split(",")[2]) * base for line in lines if not line.startswith("#"))


def make_vfr_clip(path, seconds=2):
    """10 frames a second for half a second, then 25: a variable frame rate."""
    ffmpeg("-f", "lavfi", "-i", f"testsrc=size=24x16:rate=10:duration={seconds}", "-f", "lavfi",
           "-i", f"sine=frequency=440:duration={seconds}", "-map", "0:v", "-map", "1:a", "-vf",
           "settb=1/1000,setpts='if(lt(N,5),N*0.1,0.5+(N-5)*0.04)/TB'", "-fps_mode",
           "passthrough", "-enc_time_base", "1:1000", "-c:v", "ffv1", "-pix_fmt", "bgr0",
           "-c:a", "flac", path)


def decoded_frames(path, width, height):
    """Every stored frame, decoded once each (no constant-rate resampling)."""
    data = subprocess.run([FFMPEG, "-v", "error", "-i", str(path), "-map", "0:v:0",
                           "-fps_mode", "passthrough", "-f", "rawvideo", "-pix_fmt", "rgb24",
                           "-"], capture_output=True, check=True).stdout
    return np.frombuffer(data, np.uint8).reshape(-1, height, width, 3)


def upscaled(model, frames):
    return np.round(np.clip(model(frames.astype(np.float32) / 255).numpy(), 0, 1) * 255)


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
    assert np.abs(outputs.astype(int) - upscaled(model, inputs)).max() <= 1
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
    assert "cannot encode 48x32 video with --codec no-such-codec" in capsys.readouterr().err
    assert not (tmp_path / "out").exists() or not os.listdir(tmp_path / "out")


def test_a_crf_above_the_encoders_highest_stops_the_command_before_any_work(tmp_path, capsys):
    # x264 would turn 52 into 51 without a word; VP9 takes up to 63.
    source = tmp_path / "clip.mkv"
    make_clip(source, seconds=1)
    assert cli.main(["upscale", str(source), "-o", str(tmp_path / "out"), "--model",
                     str(tmp_path / "no-such.keras"), "--crf", "52"]) == 1
    assert "error: --crf 52 is above libx264's highest, 51" in capsys.readouterr().err
    assert cli.main(["upscale", str(source), "-o", str(tmp_path / "out" / "a.webm"),
                     "--model", str(tmp_path / "no-such.keras"), "--crf", "64"]) == 1
    assert "error: --crf 64 is above libvpx-vp9's highest, 63" in capsys.readouterr().err
    assert video.encoding_for("a.webm", crf=63).arguments(4, 4)[2:4] == ["-crf", "63"]
    assert not (tmp_path / "out").exists()


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


@pytest.mark.parametrize("container,extra", [
    (".mkv", LOSSLESS),
    (".mp4", []),  # H.264 with B-frames: reordered packets, an edit list
])
def test_variable_frame_rate_keeps_every_timestamp_across_segments(model_file, tmp_path,
                                                                   container, extra):
    """Frames of 100 ms, then of 40 ms, in segments of 3 frames: each frame keeps its
    source time exactly, and the audio is the source's."""
    model, weights = model_file
    source = tmp_path / "vfr.mkv"
    make_vfr_clip(source)
    times = frame_times(source)
    assert times[4:7] == [Fraction(4, 10), Fraction(5, 10), Fraction(54, 100)]
    target = tmp_path / f"out{container}"
    assert cli.main(["upscale", str(source), "-o", str(target), "--model", str(weights),
                     "--precision", "float32", "--no-progress", "--segment-seconds", "0.3",
                     *extra]) == 0
    assert frame_times(target) == times
    assert stream_md5(target, "a") == stream_md5(source, "a") or container == ".mp4"
    assert video.probe(str(target)).audio
    if container == ".mkv":
        assert np.abs(decoded_frames(target, 48, 32).astype(int)
                      - upscaled(model, decoded_frames(source, 24, 16))).max() <= 1
    assert not os.path.exists(f"{target}.parts")


def test_batches_of_frames_equal_single_frames(model_file, tmp_path):
    model, weights = model_file
    source = tmp_path / "clip.mkv"
    make_clip(source, seconds=1)
    target = tmp_path / "batched.mkv"
    assert cli.main(["upscale", str(source), "-o", str(target), "--model", str(weights),
                     "--precision", "float32", "--no-progress", "--tile", "0", "--batch", "3",
                     *LOSSLESS]) == 0
    assert frame_times(target) == frame_times(source)
    assert np.abs(frames_of(target, 48, 32).astype(int)
                  - upscaled(model, frames_of(source, 24, 16))).max() <= 1


def test_titles_dates_chapters_and_each_streams_language_are_the_sources(model_file, tmp_path):
    _, weights = model_file
    (tmp_path / "lines.srt").write_text("1\n00:00:00,000 --> 00:00:01,000\nhola\n")
    plain = tmp_path / "plain.mkv"
    make_clip(plain, seconds=1, subtitles=tmp_path / "lines.srt")
    (tmp_path / "meta.txt").write_text(
        ";FFMETADATA1\ntitle=Holiday\ncreation_time=2024-05-01T10:00:00Z\n"
        "[CHAPTER]\nTIMEBASE=1/1000\nSTART=0\nEND=500\ntitle=Intro\n"
        "[CHAPTER]\nTIMEBASE=1/1000\nSTART=500\nEND=1000\ntitle=Main\n")
    source = tmp_path / "tagged.mkv"
    ffmpeg("-i", plain, "-f", "lavfi", "-i", "sine=frequency=880:duration=1", "-i",
           tmp_path / "meta.txt", "-map", "0", "-map", "1:a", "-map_metadata", "2",
           "-map_chapters", "2", "-c", "copy", "-c:a:1", "flac",
           "-metadata:s:v:0", "language=jpn", "-metadata:s:v:0", "title=Camera",
           "-metadata:s:a:0", "language=fra", "-metadata:s:a:1", "language=deu",
           "-metadata:s:a:1", "title=Commentary", "-metadata:s:s:0", "language=spa", source)
    target = tmp_path / "out.mkv"
    assert cli.main(["upscale", str(source), "-o", str(target), "--model", str(weights),
                     "--no-progress"]) == 0
    header = subprocess.run([FFMPEG, "-hide_banner", "-i", str(target)], capture_output=True,
                            text=True).stderr
    assert re.findall(r"Stream #0:\d+\((\w+)\): (\w+):", header) == [
        ("jpn", "Video"), ("fra", "Audio"), ("deu", "Audio"), ("spa", "Subtitle")]
    assert re.search(r"title\s*: Camera", header) and re.search(r"title\s*: Commentary", header)
    assert "encoder" not in header.split("Video:")[1].split("Stream #")[0].lower()
    assert re.search(r"title\s*: Holiday", header)
    assert re.search(r"creation_time\s*: 2024-05-01T10:00:00", header)
    assert re.findall(r"start ([\d.]+), end ([\d.]+)\s+Metadata:\s+title\s*: (\w+)",
                      header) == [("0.000000", "0.500000", "Intro"),
                                  ("0.500000", "1.000000", "Main")]


def test_a_sideways_phone_clip_is_upscaled_and_written_upright(model_file, tmp_path):
    """A stream stored 24 x 16 with a display matrix of 90 degrees (how phones write portrait
    video) shows 16 x 24: its frames are upscaled upright, as a still image follows its EXIF
    orientation, and written upright, with no matrix left to turn them again."""
    model, weights = model_file
    stored = tmp_path / "stored.mkv"
    make_clip(stored, seconds=1)
    source = tmp_path / "phone.mkv"  # Matroska holds the matrix too, and FLAC audio
    ffmpeg("-display_rotation", 90, "-i", stored, "-c", "copy", source)
    info = video.probe(str(source))
    assert (info.width, info.height, info.frames) == (16, 24, 10)
    target = tmp_path / "out.mkv"
    assert cli.main(["upscale", str(source), "-o", str(target), "--model", str(weights),
                     "--precision", "float32", "--no-progress", *LOSSLESS]) == 0
    info = video.probe(str(target))
    assert (info.width, info.height, info.frames) == (32, 48, 10) and info.audio
    header = subprocess.run([FFMPEG, "-hide_banner", "-i", str(target)], capture_output=True,
                            text=True).stderr
    assert "rotation" not in header.lower()
    upright = np.rot90(frames_of(stored, 24, 16), 1, axes=(1, 2))  # 90 degrees anticlockwise
    assert np.abs(frames_of(target, 32, 48).astype(int) - upscaled(model, upright)).max() <= 1


@pytest.mark.parametrize("container,extra", [(".mkv", LOSSLESS), (".mp4", [])])
def test_anamorphic_pixels_keep_their_shape(model_file, tmp_path, container, extra):
    """Pixels twice as wide as high (SAR 2:1, as on DVDs): the upscaled video's pixels are
    too, so that it shows at the source's shape."""
    _, weights = model_file
    square = tmp_path / "square.mkv"
    make_clip(square, seconds=1)
    source = tmp_path / "wide.mkv"
    ffmpeg("-i", square, "-vf", "setsar=2/1", "-c:v", "ffv1", "-pix_fmt", "bgr0", "-c:a",
           "copy", source)
    assert video.probe(str(source)).sar == 2
    target = tmp_path / f"out{container}"
    assert cli.main(["upscale", str(source), "-o", str(target), "--model", str(weights),
                     "--no-progress", *extra]) == 0
    info = video.probe(str(target))
    assert (info.width, info.height, info.frames, info.sar) == (48, 32, 10, 2)


def ffmpeg_children():
    """ffmpeg processes whose parent is this one."""
    found = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open(f"/proc/{pid}/stat") as file:
                fields = file.read().rsplit(")", 1)[1].split()
            with open(f"/proc/{pid}/cmdline", "rb") as file:
                command = file.read()
        except OSError:
            continue
        if int(fields[1]) == os.getpid() and b"ffmpeg" in command and fields[0] != "Z":
            found.append(int(pid))
    return found


def interrupt_after(monkeypatch, frames, error=KeyboardInterrupt):
    from keras_sr import inference

    real, calls = inference.upscale_image, []

    def counting(*args, **kwargs):
        calls.append(1)
        if len(calls) == frames:
            raise error("SIGTERM")
        return real(*args, **kwargs)
    monkeypatch.setattr(inference, "upscale_image", counting)


@pytest.mark.skipif(not os.path.isdir("/proc"), reason="counts processes through /proc")
def test_an_interrupted_run_keeps_its_segments_and_resumes_to_the_same_video(
        model_file, tmp_path, capsys, monkeypatch):
    model, weights = model_file
    source = tmp_path / "clip.mkv"
    make_clip(source, seconds=2)
    target = tmp_path / "out.mkv"
    command = ["upscale", str(source), "-o", str(target), "--model", str(weights),
               "--precision", "float32", "--no-progress", "--segment-seconds", "0.5",
               *LOSSLESS]
    interrupt_after(monkeypatch, 13)
    assert cli.main(command) == 130
    err = capsys.readouterr().err
    assert "10 frames are kept" in err and "--resume" in err and "interrupted" in err
    assert not target.exists() and ffmpeg_children() == []
    assert sorted(os.listdir(f"{target}.parts")) == ["00000000-00000005.mov",
                                                      "00000005-00000010.mov", "run.json"]
    monkeypatch.undo()
    # Without --resume the parts are not thrown away; with other settings they are not mixed.
    assert cli.main(command) == 1
    assert "holds an interrupted run of this video (10 frames done)" in capsys.readouterr().err
    assert cli.main([*command[:-len(LOSSLESS)], "--codec", "ffv1", "--pix-fmt", "rgb48le",
                     "--resume"]) == 1
    assert "(pix_fmt differ)" in capsys.readouterr().err
    from keras_sr import inference

    real, calls = inference.upscale_image, []
    monkeypatch.setattr(inference, "upscale_image",
                        lambda *args, **kwargs: calls.append(1) or real(*args, **kwargs))
    assert cli.main([*command, "--resume"]) == 0
    assert len(calls) == 10  # frames 10-19 only
    assert "resuming after frame 10" in capsys.readouterr().err
    assert frame_times(target) == frame_times(source)
    assert stream_md5(target, "a") == stream_md5(source, "a")
    assert np.abs(frames_of(target, 48, 32).astype(int)
                  - upscaled(model, frames_of(source, 24, 16))).max() <= 1
    assert not os.path.exists(f"{target}.parts")


KILLED_RUN = """
import os, re, signal, sys, time
from keras_sr import cli, inference
real, calls = inference.upscale_image, []
def complete_segments():
    parts = sys.argv[sys.argv.index("-o") + 1] + ".parts"
    return [name for name in os.listdir(parts) if re.fullmatch(r"\\d{8}-\\d{8}\\.mov", name)]
def counting(*args, **kwargs):
    calls.append(1)
    if len(calls) == int(sys.argv[1]):
        # The writer's thread encodes behind the model: the kill comes once the frames
        # upscaled so far fill two segments, as it would land in a longer run.
        deadline = time.monotonic() + 60
        while len(complete_segments()) < 2 and time.monotonic() < deadline:
            time.sleep(0.02)
        os.kill(os.getpid(), signal.SIGKILL)
    return real(*args, **kwargs)
inference.upscale_image = counting
sys.exit(cli.main(sys.argv[2:]))
"""


def test_a_killed_run_resumes_to_what_an_uninterrupted_run_writes(model_file, tmp_path):
    import signal
    import sys

    _, weights = model_file
    source = tmp_path / "clip.mkv"
    make_vfr_clip(source)
    # Segments of 4 frames, whatever average rate this ffmpeg gives the clip (10 or 50).
    seconds = 4 / float(video.probe(str(source)).rate)
    command = ["upscale", str(source), "--model", str(weights), "--precision", "float32",
               "--no-progress", "--segment-seconds", f"{seconds:.6f}", *LOSSLESS]
    killed = subprocess.run([sys.executable, "-c", KILLED_RUN, "9", *command, "-o",
                             str(tmp_path / "a.mkv")], capture_output=True)
    assert killed.returncode == -signal.SIGKILL
    assert not (tmp_path / "a.mkv").exists()
    assert sorted(name for name in os.listdir(tmp_path / "a.mkv.parts")
                  if not name.endswith(".partial.mov"))[:2] == ["00000000-00000004.mov",
                                                                "00000004-00000008.mov"]
    assert cli.main([*command, "-o", str(tmp_path / "a.mkv"), "--resume"]) == 0
    assert cli.main([*command, "-o", str(tmp_path / "b.mkv")]) == 0
    assert frame_times(tmp_path / "a.mkv") == frame_times(tmp_path / "b.mkv")
    assert stream_md5(tmp_path / "a.mkv", "v") == stream_md5(tmp_path / "b.mkv", "v")
    assert stream_md5(tmp_path / "a.mkv", "a") == stream_md5(source, "a")


def test_a_container_that_cannot_hold_the_sources_streams_gets_them_converted(
        model_file, tmp_path, capsys):
    """SubRip subtitles cannot go into MP4 (mov_text can); FLAC audio cannot go into WebM
    (Opus can), whose video is VP9 by default."""
    _, weights = model_file
    (tmp_path / "lines.srt").write_text("1\n00:00:00,000 --> 00:00:00,500\nhello\n")
    source = tmp_path / "clip.mkv"
    make_clip(source, seconds=1, subtitles=tmp_path / "lines.srt")
    for name, codec in (("out.mp4", "h264"), ("out.webm", "vp9")):
        assert cli.main(["upscale", str(source), "-o", str(tmp_path / name), "--model",
                         str(weights), "--no-progress"]) == 0
        assert "re-encoded into its default codecs" in capsys.readouterr().err
        info = video.probe(str(tmp_path / name))
        assert info.audio and info.subtitles and info.frames == 10
        header = subprocess.run([FFMPEG, "-hide_banner", "-i", str(tmp_path / name)],
                                capture_output=True, text=True).stderr
        assert f"Video: {codec}" in header


def test_frames_above_the_still_image_pixel_limit_are_refused(model_file, tmp_path, capsys,
                                                              monkeypatch):
    from PIL import Image

    _, weights = model_file
    source = tmp_path / "clip.mkv"
    make_clip(source, seconds=1)
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 100)
    assert cli.main(["upscale", str(source), "-o", str(tmp_path / "out"), "--model",
                     str(weights), "--no-progress"]) == 1
    assert "24x16 frames are above the limit of 200 pixels" in capsys.readouterr().err
    assert not (tmp_path / "out").exists() or not os.listdir(tmp_path / "out")


def test_an_mp4_at_ntsc_rate_keeps_its_timestamps_through_segments(model_file, tmp_path):
    """H.264 with B-frames at 30000/1001 frames a second in MP4 (its own time base, an edit
    list for the reordering delay) to MP4: every frame's time is kept exactly."""
    _, weights = model_file
    source = tmp_path / "ntsc.mp4"
    ffmpeg("-f", "lavfi", "-i", "testsrc=size=24x16:rate=30000/1001:duration=1", "-f", "lavfi",
           "-i", "sine=duration=1", "-c:v", "libx264", "-pix_fmt", "yuv420p", "-c:a", "aac",
           source)
    target = tmp_path / "out.mp4"
    assert cli.main(["upscale", str(source), "-o", str(target), "--model", str(weights),
                     "--no-progress", "--segment-seconds", "0.25"]) == 0
    times = frame_times(source)
    assert len(times) == 30 and times[1] == Fraction(1001, 30000)
    assert frame_times(target) == times
    assert stream_md5(target, "a") == stream_md5(source, "a")


class Terminal(io.StringIO):
    def isatty(self):
        return True


def test_a_terminal_gets_a_progress_bar_and_a_log_one_summary_line(model_file, tmp_path,
                                                                   monkeypatch):
    _, weights = model_file
    source = tmp_path / "clip.mkv"
    make_clip(source)
    command = ["upscale", str(source), "--model", str(weights), "--precision", "float32",
               *LOSSLESS]
    terminal = Terminal()
    monkeypatch.setattr(sys, "stderr", terminal)
    assert cli.main([*command, "-o", str(tmp_path / "a.mkv")]) == 0
    updates = [part for part in terminal.getvalue().split("\r") if "frame " in part]
    done = [int(re.search(r"frame (\d+)/20,", part).group(1)) for part in updates]
    assert done == list(range(1, 21))
    assert re.search(r"clip\.mkv \[#{24}\] frame 20/20, [\d.]+ frames/s, ETA 0:00", updates[-1])
    assert re.search(r"\[#{12}\.{12}\] frame 10/20, [\d.]+ frames/s, ETA \d+:\d\d", updates[9])

    log = io.StringIO()
    monkeypatch.setattr(sys, "stderr", log)
    assert cli.main([*command, "-o", str(tmp_path / "b.mkv")]) == 0
    assert "\r" not in log.getvalue() and "#" not in log.getvalue()
    summary = [line for line in log.getvalue().splitlines() if "frames/s" in line]
    assert len(summary) == 1 and re.search(r"clip\.mkv: 20 frames in [\d.]+ s", summary[0])


def test_an_eta_reads_as_a_clock():
    from keras_sr.upscale import clock, progress_bar

    assert [clock(s) for s in (0, 59.4, 61, 3599, 3600, 90061)] == [
        "0:00", "0:59", "1:01", "59:59", "1:00:00", "25:01:01"]
    assert progress_bar(0, 7, width=7) == "[.......]"
    assert progress_bar(3, 7, width=7) == "[###....]"
    assert progress_bar(9, 7, width=7) == "[#######]"


def _decoder_with_times(times, rate=25):
    """A `_Decoder` holding what ffmpeg's showinfo reported, without running ffmpeg."""
    import threading

    decoder = object.__new__(video._Decoder)
    decoder.source, decoder.rate, decoder.time_base = "clip.mkv", Fraction(rate), Fraction(1, 12800)
    decoder.times, decoder.placed = list(times), {}
    decoder.changed, decoder.stderr_done = threading.Condition(), True
    return decoder


def test_a_long_run_of_frames_without_timestamps_follows_the_last_timed_frame():
    # Frame 0 at 1 s lasting 0.08 s (1024 ticks of 1/12800), then 5,000 frames without a pts:
    # each follows the previous one, lasting 1 / 25 s; a timed frame after them keeps its own.
    times = [(12800, 1024)] + [(None, None)] * 5000 + [(12800 * 500, 512)]
    decoder = _decoder_with_times(times)
    assert decoder.time_of(5000) == (1 + Fraction(8, 100) + Fraction(4999, 25), Fraction(1, 25))
    assert decoder.time_of(1) == (Fraction(108, 100), Fraction(1, 25))
    assert decoder.time_of(2500) == (Fraction(108, 100) + Fraction(2499, 25), Fraction(1, 25))
    assert decoder.time_of(5001) == (500, Fraction(512, 12800))
    untimed_start = _decoder_with_times([(None, None)] * 3 + [(1280, None)])
    assert [untimed_start.time_of(index) for index in range(4)] == [
        (0, Fraction(1, 25)), (Fraction(1, 25), Fraction(1, 25)),
        (Fraction(2, 25), Fraction(1, 25)), (Fraction(1, 10), Fraction(1, 25))]


@pytest.mark.parametrize("time_ns,duration_ns,size", [
    (0, 40_000_000, 12), (123_456_789_012, 1, 3 * 1704 * 960), (5, 0, 200)])
def test_frame_clusters_wrap_the_pixels_as_nested_matroska_elements(time_ns, duration_ns, size):
    # The pixels go to ffmpeg unwrapped, between a prefix and a suffix; together they must be
    # the cluster > block group > (simple block, duration) nesting, sizes included.
    pixels = bytes(range(256)) * (size // 256) + bytes(size % 256)
    block = video._element(b"\xa1", b"\x81\x00\x00\x00" + pixels)
    group = video._element(b"\xa0", block + video._unsigned(b"\x9b", max(duration_ns, 1)))
    cluster = video._element(b"\x1f\x43\xb6\x75", video._unsigned(b"\xe7", time_ns) + group)
    prefix, suffix = video._Matroska.frame_around(time_ns, duration_ns, size)
    assert prefix + pixels + suffix == cluster


def nearest_x2(frames):
    """A stand-in model for `video.upscale_video`: each pixel doubled, as floats in [0, 1]
    (from uint8 or, for deep video, uint16 frames)."""
    return [np.repeat(np.repeat(frame, 2, 0), 2, 1).astype(np.float32)
            / np.iinfo(frame.dtype).max for frame in frames]


def test_the_model_thread_runs_ahead_while_the_encoder_is_busy(tmp_path, monkeypatch):
    """Upscaled frames wait in the writer's queue: with the first write held, the model goes on
    with the next QUEUE_FRAMES frames (not one, as when it wrote each frame itself)."""
    import threading

    source = tmp_path / "clip.mkv"
    make_clip(source, seconds=1)
    held, calls = threading.Event(), []
    real_write = video._SegmentEncoder.write

    def held_write(self, *args):
        assert held.wait(timeout=60)
        return real_write(self, *args)

    def model(frames):
        calls.append(len(frames))
        if len(calls) == video.QUEUE_FRAMES + 2:
            held.set()  # the model ran QUEUE_FRAMES + 1 frames ahead of the first write
        return nearest_x2(frames)

    monkeypatch.setattr(video._SegmentEncoder, "write", held_write)
    fired = []  # a model thread that waited for each write would never reach the set above
    watchdog = threading.Timer(20, lambda: fired.append(1) or held.set())
    watchdog.start()
    try:
        assert video.upscale_video(str(source), str(tmp_path / "out.mkv"), model, 2,
                                   codec="ffv1", pix_fmt="bgr0", log=lambda line: None) == 10
    finally:
        watchdog.cancel()
    assert not fired and len(calls) == 10
    assert np.array_equal(frames_of(tmp_path / "out.mkv", 48, 32),
                          np.round(np.stack(nearest_x2(frames_of(source, 24, 16))) * 255))


def test_a_frame_the_writer_refuses_is_named_and_nothing_is_left(tmp_path, capsys):
    source = tmp_path / "clip.mkv"
    make_clip(source, seconds=2)
    target = tmp_path / "out.mkv"

    def wrong_after_five(frames, seen=[]):
        seen.extend(frames)
        return nearest_x2(frames) if len(seen) <= 5 else [frame[:, :, :2] for frame in frames]

    with pytest.raises(video.VideoError, match=r"a frame came back \(16, 24, 2\) uint8, not "
                                               r"\(32, 48, 3\) uint8"):
        video.upscale_video(str(source), str(target), wrong_after_five, 2, codec="ffv1",
                            pix_fmt="bgr0", segment_seconds=0.5, log=print)
    assert "5 frames are kept" in capsys.readouterr().out
    assert sorted(os.listdir(f"{target}.parts")) == ["00000000-00000005.mov", "run.json"]
    assert not target.exists() and ffmpeg_children() == []


def queued_dtypes(monkeypatch):
    """The dtype of every frame put in the video writer's queue, in order, as a list."""
    real_put, queued = video._Writer.put, []

    def recording_put(self, index, frame):
        queued.append(frame.dtype)
        return real_put(self, index, frame)

    monkeypatch.setattr(video._Writer, "put", recording_put)
    return queued


def test_the_command_queues_8_bit_frames_for_the_writer(model_file, tmp_path, monkeypatch):
    """A float frame would hold four times the bytes in the writer's queue (79 MB for a 480p
    frame at x4): `keras-sr upscale` quantizes on the model's thread, untiled or tiled."""
    _, weights = model_file
    source = tmp_path / "clip.mkv"
    make_clip(source, seconds=1)
    queued = queued_dtypes(monkeypatch)
    for tile in ("0", "16"):
        assert cli.main(["upscale", str(source), "-o", str(tmp_path / f"t{tile}.mkv"),
                         "--model", str(weights), "--precision", "float32", "--no-progress",
                         "--tile", tile, *LOSSLESS]) == 0
    assert queued == [np.dtype(np.uint8)] * 20


def shown_colour(path, conversion=None):
    """The mean RGB of a clip's first frame as ffmpeg shows it: with the conversion its stream
    states, or with `conversion` (a scale filter's in_ options) where a player would assume it."""
    data = subprocess.run([FFMPEG, "-v", "error", "-i", str(path), "-frames:v", "1",
                           *(["-vf", f"scale={conversion}"] if conversion else []), "-f",
                           "rawvideo", "-pix_fmt", "rgb24", "-"], capture_output=True,
                          check=True).stdout
    return np.frombuffer(data, np.uint8).reshape(-1, 3).mean(axis=0)


@pytest.mark.parametrize("size,source_matrix,source_range,tagged,expected", [
    ("640x8", "bt470", "tv", False, "smpte170m"),  # no tags, SD: BT.601, as players assume
    ("1280x8", "bt709", "tv", False, "bt709"),  # no tags, 1280 wide: BT.709
    ("640x8", "bt709", "tv", True, "bt709"),  # stated: kept, though the size says BT.601
    ("640x8", "bt709", "pc", True, "bt709"),  # full range, stated
])
def test_colours_are_kept_and_the_output_states_how_to_show_them(tmp_path, size, source_matrix,
                                                                 source_range, tagged,
                                                                 expected):
    """A saturated colour comes out as a player showed the source. Every output here is 1280
    wide, where a player takes an unstated matrix for BT.709: the upscaled stream states its
    matrix and range, or an SD source shown as BT.601 would shift hue."""
    source = tmp_path / "colour.mp4"
    tags = ["-colorspace", "bt709", "-color_range", source_range] if tagged else []
    unstated = "" if tagged else ",setparams=colorspace=unknown:range=unknown"
    ffmpeg("-f", "lavfi", "-i", f"color=c=0xD02060:size={size}:rate=10:duration=0.5", "-vf",
           f"scale=out_color_matrix={source_matrix}:out_range={source_range}{unstated}",
           "-c:v", "libx264", "-pix_fmt", "yuv420p", *tags, source)
    before = shown_colour(source, f"in_color_matrix={source_matrix}:in_range={source_range}")
    info = video.probe(str(source))
    assert (info.colors.matrix, info.colors.range, info.colors.assumed) == (
        expected, source_range, not tagged)
    target = tmp_path / "out.mp4"
    assert video.upscale_video(str(source), str(target), nearest_x2, 2, log=print) == 5
    header = subprocess.run([FFMPEG, "-hide_banner", "-i", str(target)], capture_output=True,
                            text=True).stderr
    stated = re.search(r"yuvj?420p\((tv|pc), (\w+)", header)
    after = shown_colour(target, None if stated else "in_color_matrix=bt709:in_range=tv")
    assert np.abs(after - before).max() <= 3
    assert stated and stated.groups() == (source_range, expected)


def test_an_hdr_sources_primaries_and_transfer_are_stated_in_the_output(tmp_path):
    """BT.2020 primaries with the PQ transfer (HDR10): the frames go through the model as
    8-bit RGB of the same signal, so the output must say the same, or a player shows the PQ
    signal as SDR, washed out."""
    source = tmp_path / "hdr.mp4"
    ffmpeg("-f", "lavfi", "-i", "testsrc=size=24x16:rate=10:duration=0.5", "-vf",
           "scale=out_color_matrix=bt2020:out_range=tv,format=yuv420p,setparams="
           "colorspace=bt2020nc:color_primaries=bt2020:color_trc=smpte2084", "-c:v", "libx264",
           "-pix_fmt", "yuv420p", source)
    colors = video.probe(str(source)).colors
    assert (colors.matrix, colors.primaries, colors.trc) == ("bt2020nc", "bt2020", "smpte2084")
    target = tmp_path / "out.mp4"
    assert video.upscale_video(str(source), str(target), nearest_x2, 2, log=print) == 5
    header = subprocess.run([FFMPEG, "-hide_banner", "-i", str(target)], capture_output=True,
                            text=True).stderr
    assert "yuv420p(tv, bt2020nc/bt2020/smpte2084" in header


def combing(frames):
    """How far each row is from the mean of the rows above and below it: the zig-zag of two
    fields caught at different times (0 for this test's progressive pictures)."""
    rows = frames.astype(float)
    return np.abs(rows[:, 1:-1] - (rows[:, :-2] + rows[:, 2:]) / 2).mean()


def test_an_interlaced_source_is_deinterlaced_frame_for_frame(tmp_path, capsys):
    """A white bar moving 4 pixels a field, interlaced top field first (as DVDs and broadcast
    hold it): each frame is made whole before the model, so no combing is upscaled; the
    frame count and every timestamp stay the source's."""
    progressive = "color=black:size=64x48:rate=50:duration=1,drawbox=x=0:y=0:w=16:h=48:" \
                  "color=white:t=fill,scroll=h=0.0625"
    source = tmp_path / "interlaced.mp4"
    ffmpeg("-f", "lavfi", "-i", progressive, "-vf", "interlace=scan=tff,setfield=tff", "-c:v",
           "libx264", "-flags", "+ildct+ilme", "-x264opts", "tff=1", "-pix_fmt", "yuv420p",
           source)
    info = video.probe(str(source))
    assert info.interlaced and info.frames == 25
    target = tmp_path / "out.mkv"
    assert video.upscale_video(str(source), str(target), nearest_x2, 2, codec="ffv1",
                               pix_fmt="bgr0", log=print) == 25
    assert "interlaced: each frame deinterlaced" in capsys.readouterr().out
    assert combing(decoded_frames(source, 64, 48)) > 20
    assert combing(decoded_frames(target, 128, 96)[:, ::2, ::2]) < 0.5
    assert frame_times(target) == frame_times(source)
    plain = tmp_path / "progressive.mp4"
    ffmpeg("-f", "lavfi", "-i", progressive, "-c:v", "libx264", "-pix_fmt", "yuv420p", plain)
    assert not video.probe(str(plain)).interlaced


def make_10_bit_clip(path, codec="ffv1", pix_fmt="gbrp10le", width=64, height=16, frames=3):
    """A lossless 10-bit RGB clip of ramps in steps of one 10-bit level (4 to a level of 8-bit
    video, which holds none of the three between): 1024 levels of each component."""
    levels = (np.arange(width * height).reshape(height, width) * 7 + np.arange(3)[:, None, None]
              * 301) % 1024
    pictures = np.stack([np.roll(np.moveaxis(levels, 0, -1), shift, 1)
                         for shift in range(frames)])
    sixteen = (pictures << 6) | (pictures >> 4)  # as ffmpeg widens 10 bits to 16
    subprocess.run([FFMPEG, "-v", "error", "-y", "-f", "rawvideo", "-pix_fmt", "rgb48le", "-s",
                    f"{width}x{height}", "-r", "10", "-i", "-", "-c:v", codec, "-pix_fmt",
                    pix_fmt, str(path)], input=sixteen.astype("<u2").tobytes(), check=True)
    return sixteen


def deep_frames(path, width, height):
    data = subprocess.run([FFMPEG, "-v", "error", "-i", str(path), "-map", "0:v:0", "-f",
                           "rawvideo", "-pix_fmt", "rgb48le", "-"], capture_output=True,
                          check=True).stdout
    return np.frombuffer(data, "<u2").reshape(-1, height, width, 3)


def test_a_10_bit_source_goes_through_the_model_in_16_bit_levels(tmp_path):
    """Every one of a 10-bit source's 1024 levels reaches the model and the output (8-bit
    frames would have kept one in four), and a 10-bit output is written without loss."""
    source = tmp_path / "deep.mkv"
    pictures = make_10_bit_clip(source)
    info = video.probe(str(source))
    assert info.depth == 10 and info.colors.rgb_source
    target = tmp_path / "out.mkv"
    seen = []

    def recording(frames):
        seen.extend(frame.dtype for frame in frames)
        return nearest_x2(frames)

    assert video.upscale_video(str(source), str(target), recording, 2, codec="ffv1",
                               pix_fmt="gbrp10le", log=print) == 3
    assert seen == [np.dtype(np.uint16)] * 3
    out = deep_frames(target, 128, 32)
    assert np.array_equal(out, pictures.repeat(2, 1).repeat(2, 2))
    assert len(np.unique(out >> 6)) == 1024


def test_a_10_bit_source_is_encoded_in_10_bits_unless_asked_otherwise(tmp_path, capsys):
    """As ffmpeg keeps a source's depth where the encoder takes it: H.264 High 10 from a
    10-bit source, with one line saying so; `pix_fmt="yuv420p"` still gives 8 bits."""
    source = tmp_path / "deep.mp4"
    make_10_bit_clip(source, "libx264", "yuv420p10le")
    assert video.probe(str(source)).depth == 10
    for name, pix_fmt, stated in (("default.mp4", None, "yuv420p10le"),
                                  ("eight.mp4", "yuv420p", "yuv420p(")):
        assert video.upscale_video(str(source), str(tmp_path / name), nearest_x2, 2,
                                   pix_fmt=pix_fmt, log=print) == 3
        header = subprocess.run([FFMPEG, "-hide_banner", "-i", str(tmp_path / name)],
                                capture_output=True, text=True).stderr
        assert stated in header
    said = capsys.readouterr().out
    assert said.count("10-bit source: upscaled in 16-bit levels and encoded as yuv420p10le") \
        == 1
    assert video.probe(str(tmp_path / "default.mp4")).depth == 10
    assert video.probe(str(tmp_path / "eight.mp4")).depth == 8


def test_the_command_runs_a_deep_video_through_the_model_in_16_bits(model_file, tmp_path):
    """`keras-sr upscale` on a 10-bit source into 16-bit lossless RGB: each frame is the model's
    output on the frame's own 16-bit levels, within a level of 65535."""
    model, weights = model_file
    source = tmp_path / "deep.mkv"
    pictures = make_10_bit_clip(source, width=24, height=16)
    for tile in ("0", "16"):
        target = tmp_path / f"out{tile}.mkv"
        assert cli.main(["upscale", str(source), "-o", str(target), "--model", str(weights),
                         "--precision", "float32", "--no-progress", "--tile", tile, "--codec",
                         "ffv1", "--pix-fmt", "gbrp16le"]) == 0
        expected = np.round(np.clip(model(pictures.astype(np.float32) / 65535).numpy(), 0, 1)
                            * 65535)
        assert np.abs(deep_frames(target, 48, 32).astype(int) - expected).max() <= 1


def test_an_8_bit_source_into_a_10_bit_format_keeps_the_models_levels(model_file, tmp_path,
                                                                         monkeypatch):
    """Asked for a 10-bit output, the model's results reach the encoder in 16-bit levels, not
    rounded to 8 bits first."""
    _, weights = model_file
    source = tmp_path / "clip.mkv"
    make_clip(source, seconds=1)
    queued = queued_dtypes(monkeypatch)
    assert cli.main(["upscale", str(source), "-o", str(tmp_path / "ten.mkv"), "--model",
                     str(weights), "--precision", "float32", "--no-progress", "--codec",
                     "ffv1", "--pix-fmt", "gbrp10le"]) == 0
    assert queued == [np.dtype(np.uint16)] * 10
    out = deep_frames(tmp_path / "ten.mkv", 48, 32)
    assert np.count_nonzero((out >> 6) % 4) > out.size // 2  # levels 8 bits cannot hold


@pytest.mark.parametrize("pix_fmt,depth", [("yuv420p", 8), ("yuv420p10le", 10),
                                           ("p010le", 10), ("gbrp12le", 12), ("rgb48le", 16),
                                           ("gray", 8), ("rgb565le", 6)])
def test_pixel_formats_name_their_depth(pix_fmt, depth, monkeypatch):
    assert video.pixel_depth(pix_fmt, FFMPEG) == depth
    monkeypatch.setattr(video, "_pixel_formats", lambda ffmpeg: {})  # an ffmpeg that lists none
    assert video.pixel_depth(pix_fmt, FFMPEG) == max(depth, 8)


def make_alpha_clip(path, codec, pix_fmt, size="32x24", seconds=1):
    """A test pattern whose left half is opaque and right half a quarter opaque, a sine
    tone beside it."""
    ffmpeg("-f", "lavfi", "-i", f"testsrc=size={size}:rate=10:duration={seconds},format=rgba,"
           "geq=r='r(X,Y)':g='g(X,Y)':b='b(X,Y)':a='if(lt(X,W/2),255,64)'", "-f", "lavfi",
           "-i", f"sine=duration={seconds}", "-c:v", codec, "-pix_fmt", pix_fmt, "-c:a",
           "libopus" if str(path).endswith(".webm") else "aac", path)


def alpha_of(path, width, height, decoder=None):
    data = subprocess.run([FFMPEG, "-v", "error", *(["-c:v", decoder] if decoder else []),
                           "-i", str(path), "-map", "0:v:0", "-f", "rawvideo", "-pix_fmt",
                           "rgba", "-"], capture_output=True, check=True).stdout
    return np.frombuffer(data, np.uint8).reshape(-1, height, width, 4)


def test_a_vp9_sticker_keeps_its_alpha_and_mp4_says_it_drops_it(tmp_path, capsys):
    """VP9 with alpha in WebM (Telegram's video stickers): the alpha, which only libvpx's
    decoder reads, is upscaled with the picture and written back as VP9 alpha; MP4 with
    H.264 holds none: dropped, and one line says so."""
    source = tmp_path / "sticker.webm"
    make_alpha_clip(source, "libvpx-vp9", "yuva420p")
    info = video.probe(str(source))
    assert info.alpha and info.alpha_decoder == "libvpx-vp9"
    target = tmp_path / "out.webm"
    assert video.upscale_video(str(source), str(target), nearest_x2, 2, log=print) == 10
    assert "has an alpha channel: kept, encoded with libvpx-vp9 / yuva420p" \
        in capsys.readouterr().out
    assert video.probe(str(target)).alpha
    before = alpha_of(source, 32, 24, "libvpx-vp9")[..., 3].repeat(2, 1).repeat(2, 2)
    after = alpha_of(target, 64, 48, "libvpx-vp9")[..., 3]
    assert np.abs(after.astype(int) - before).mean() < 1 and after[:, :, :28].min() > 240
    assert np.abs(after[:, :, 36:].astype(int) - 64).max() <= 4
    assert stream_md5(target, "a") == stream_md5(source, "a")
    plain = tmp_path / "out.mp4"
    assert video.upscale_video(str(source), str(plain), nearest_x2, 2, log=print) == 10
    assert "its alpha channel is dropped: libx264 / yuv420p holds none" \
        in capsys.readouterr().out
    assert not video.probe(str(plain)).alpha


def test_the_command_upscales_a_videos_alpha_as_a_still_images(model_file, tmp_path):
    """An RGBA clip (PNG in MOV, lossless) into lossless RGBA: the colour is the model's on
    the colour, the alpha the model's on the alpha as gray RGB folded with BT.601 luma, as
    for a still image (Real-ESRGAN's default), or bicubic with --alpha-upscaler bicubic."""
    from PIL import Image

    from keras_sr.upscale import LUMA

    model, weights = model_file
    source = tmp_path / "rgba.mov"
    make_alpha_clip(source, "png", "rgba", size="24x16")
    frames = alpha_of(source, 24, 16).astype(np.float32) / 255
    for how in ("model", "bicubic"):
        target = tmp_path / f"{how}.mov"
        assert cli.main(["upscale", str(source), "-o", str(target), "--model", str(weights),
                         "--precision", "float32", "--no-progress", "--codec", "png",
                         "--alpha-upscaler", how]) == 0
        out = alpha_of(target, 48, 32).astype(int)
        assert out.shape == (10, 32, 48, 4)
        colour = np.round(np.clip(model(frames[..., :3]).numpy(), 0, 1) * 255)
        assert np.abs(out[..., :3] - colour).max() <= 1
        if how == "model":
            gray = np.repeat(frames[..., 3:], 3, -1)
            expected = np.clip(model(gray).numpy(), 0, 1) @ LUMA * 255
        else:
            expected = np.stack([np.asarray(Image.fromarray(alpha, "F").resize(
                (48, 32), Image.BICUBIC)) for alpha in frames[..., 3]]) * 255
        assert np.abs(out[..., 3] - np.round(np.clip(expected, 0, 255))).max() <= 1


@pytest.mark.parametrize("target,depth,codec,pix_fmt", [
    ("a.webm", 8, "libvpx-vp9", "yuva420p"), ("a.mkv", 8, "libvpx-vp9", "yuva420p"),
    ("a.webm", 10, "libvpx-vp9", "yuva420p10le"), ("a.mov", 12, "prores_ks", "yuva444p10le"),
    ("a.mp4", 8, "libx264", "yuv420p")])
def test_a_source_with_alpha_gets_an_encoding_that_keeps_it_where_the_container_can(
        target, depth, codec, pix_fmt):
    if pix_fmt not in video._encoder_formats(FFMPEG, codec):
        pytest.skip(f"this ffmpeg's {codec} takes no {pix_fmt}")
    encoding = video.encoding_for(target, depth=depth, ffmpeg=FFMPEG, alpha=True)
    assert (encoding.codec, encoding.pix_fmt) == (codec, pix_fmt)
    assert video.encoding_for(target, codec="png", ffmpeg=FFMPEG, alpha=True).pix_fmt == "rgba"


@pytest.mark.parametrize("pix_fmt,alpha", [("yuva420p", True), ("rgba", True),
                                           ("gbrap10le", True), ("ya16le", True),
                                           ("yuv420p", False), ("rgb24", False),
                                           ("gray", False), ("argb", True)])
def test_pixel_formats_say_whether_they_hold_alpha(pix_fmt, alpha, monkeypatch):
    assert video.has_alpha(pix_fmt, FFMPEG) is alpha
    monkeypatch.setattr(video, "_pixel_formats", lambda ffmpeg: {})  # an ffmpeg that lists none
    assert video.has_alpha(pix_fmt, FFMPEG) is alpha


def test_cover_art_and_attached_fonts_are_kept_where_the_container_holds_them(tmp_path,
                                                                             capsys):
    """A Matroska file as fansubs and yt-dlp write them: ASS subtitles with the font they are
    drawn in attached, and a cover picture. MKV keeps both byte for byte (the font with its
    name and type, without which the subtitles fall back to another font); MP4 keeps the
    cover as its cover art; WebM holds neither; a line says what is dropped. The picture is
    never taken for the video."""
    (tmp_path / "lines.ass").write_text(
        "[Script Info]\nScriptType: v4.00+\n\n[V4+ Styles]\nFormat: Name, Fontname, Fontsize\n"
        "Style: Default,Fancy,20\n\n[Events]\nFormat: Layer, Start, End, Style, Text\n"
        "Dialogue: 0,0:00:00.00,0:00:01.00,Default,hello\n")
    (tmp_path / "fancy.ttf").write_bytes(bytes(range(256)) * 8)
    ffmpeg("-f", "lavfi", "-i", "color=red:size=64x64", "-frames:v", "1", tmp_path / "cover.png")
    source = tmp_path / "episode.mkv"
    ffmpeg("-f", "lavfi", "-i", "testsrc=size=24x16:rate=10:duration=1", "-f", "lavfi", "-i",
           "sine=duration=1", "-i", tmp_path / "lines.ass", "-map", "0", "-map", "1", "-map",
           "2", "-c:v", "libx264", "-c:a", "aac", "-c:s", "copy", "-attach",
           tmp_path / "fancy.ttf", "-metadata:s:t:0", "mimetype=application/x-truetype-font",
           "-attach", tmp_path / "cover.png", "-metadata:s:t:1", "mimetype=image/png", source)
    info = video.probe(str(source))
    assert (info.width, info.height, info.attachments, info.covers) == (24, 16, 1,
                                                                        ((1, "png"),))

    def cover_of(path):
        ffmpeg("-i", path, "-map", "0:v:1", "-c", "copy", "-f", "image2", tmp_path / "got.png")
        return (tmp_path / "got.png").read_bytes()

    target = tmp_path / "out.mkv"
    assert video.upscale_video(str(source), str(target), nearest_x2, 2, log=print) == 10
    folder = tmp_path / "dumped"
    folder.mkdir()
    subprocess.run([FFMPEG, "-v", "error", "-dump_attachment:t", "", "-i", str(target)],
                   cwd=folder)
    assert (folder / "fancy.ttf").read_bytes() == (tmp_path / "fancy.ttf").read_bytes()
    assert cover_of(target) == (tmp_path / "cover.png").read_bytes()
    header = subprocess.run([FFMPEG, "-hide_banner", "-i", str(target)], capture_output=True,
                            text=True).stderr
    assert "mimetype        : application/x-truetype-font" in header
    assert (video.probe(str(target)).width, capsys.readouterr().out.count("dropped")) == (48, 0)
    assert video.upscale_video(str(source), str(tmp_path / "out.mp4"), nearest_x2, 2,
                               log=print) == 10
    assert cover_of(tmp_path / "out.mp4") == (tmp_path / "cover.png").read_bytes()
    assert "cannot hold the source's 1 attached files (fonts, ...): dropped" \
        in capsys.readouterr().out
    assert video.upscale_video(str(source), str(tmp_path / "out.webm"), nearest_x2, 2,
                               log=print) == 10
    assert "1 attached files (fonts, ...) and 1 cover pictures: dropped" \
        in capsys.readouterr().out


@pytest.mark.parametrize("said,refused", [
    ("ffmpeg version 5.1.9-0+deb12u1 Copyright (c) 2000-2026", True),
    ("ffmpeg version 4.2.2-static https://example.org", True),
    ("ffmpeg version 7.0.2-static https://example.org", False),
    ("ffmpeg version n9.0.2-17-g2a571b6068-20260930", False),
    ("ffmpeg version N-112345-g0123456789 Copyright", False)])  # a git snapshot: no release
def test_an_ffmpeg_older_than_7_is_refused_in_one_line(model_file, tmp_path, monkeypatch,
                                                       capsys, said, refused):
    """Debian 12's ffmpeg 5.1 drops the last frame of a two-frame segment and 4.x has no
    -fps_mode: a video run on them would be wrong or fail midway, so they are refused
    before any work, saying how to get a newer one."""
    fake = tmp_path / "ffmpeg"
    fake.write_text(f"#!/bin/sh\necho '{said}'\n")
    fake.chmod(0o755)
    monkeypatch.setenv("IMAGEIO_FFMPEG_EXE", str(fake))
    if not refused:
        assert video.ffmpeg_executable() == str(fake)
        return
    with pytest.raises(video.VideoError, match=r"videos need 7\.0 or later .* unset "
                                               "IMAGEIO_FFMPEG_EXE"):
        video.ffmpeg_executable()
    source = tmp_path / "clip.mkv"
    make_clip(source, seconds=1)
    assert cli.main(["upscale", str(source), "-o", str(tmp_path / "out.mkv"), "--model",
                     str(model_file[1]), "--no-progress"]) == 1
    error = capsys.readouterr().err
    assert "is ffmpeg 5.1; videos need 7.0" in error or "is ffmpeg 4.2" in error
    assert not (tmp_path / "out.mkv").exists()
