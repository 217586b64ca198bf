"""Videos through a model: frames decoded by ffmpeg into a pipe, upscaled as the still images
are (tiles, precision, --scale-out), encoded by a second ffmpeg that also copies the source's
audio and subtitle streams. Frames stream: a bounded queue holds a few decoded frames, so
memory stays flat with the clip's length, and decoding and encoding run in their own processes
beside the model.

First version (issue #26): constant-frame-rate output at the source's average rate, one frame
at a time, no resume; the file appears whole or not at all.
"""

import dataclasses
import os
import queue
import re
import shutil
import subprocess
import threading

import numpy as np

VIDEO_SUFFIXES = (".mp4", ".mkv", ".mov", ".webm", ".avi", ".m4v")
# The codec and pixel format when --codec / --pix-fmt are not given: what every player takes.
DEFAULT_CODEC, DEFAULT_PIX_FMT, DEFAULT_CRF = "libx264", "yuv420p", 18
# Decoded frames waiting for the model (a few frames of memory, whatever the clip's length).
QUEUE_FRAMES = 4


class VideoError(ValueError):
    """A video that cannot be read or written as asked; the message names it and why."""


def is_video(path):
    return os.fspath(path).lower().endswith(VIDEO_SUFFIXES)


def ffmpeg_executable():
    """ffmpeg from imageio-ffmpeg (`pip install keras-sr[video]`), else from PATH."""
    try:
        import imageio_ffmpeg

        return imageio_ffmpeg.get_ffmpeg_exe()
    except (ImportError, RuntimeError):
        pass
    found = shutil.which("ffmpeg")
    if found is None:
        raise VideoError("videos need ffmpeg: pip install 'keras-sr[video]' (imageio-ffmpeg, "
                         "which ships it) or put ffmpeg on PATH")
    return found


@dataclasses.dataclass(frozen=True)
class VideoInfo:
    width: int
    height: int
    rate: str  # the average frame rate as ffmpeg writes it: "25", "30000/1001"
    frames: int
    audio: bool
    subtitles: bool


def probe(path, ffmpeg=None):
    """What `path` holds, from `ffmpeg -i` (imageio-ffmpeg ships no ffprobe) and a count of
    its video frames (a stream copy to nowhere). VideoError for a file that is not a video,
    has no video stream, or is cut short."""
    ffmpeg = ffmpeg or ffmpeg_executable()
    if not os.path.isfile(path):
        raise VideoError(f"no such video file: {path}")
    header = subprocess.run([ffmpeg, "-hide_banner", "-i", path], capture_output=True,
                            text=True, errors="replace").stderr
    video = re.search(r"Stream #\S+.*?: Video: .*", header)
    if video is None:
        reason = "no video stream" if "Stream #" in header else "not a video ffmpeg can read"
        raise VideoError(f"{path}: {reason}")
    size = re.search(r"\b(\d{2,5})x(\d{2,5})\b", video.group(0))
    rate = re.search(r"([\d.]+) fps", video.group(0)) or re.search(r"([\d.]+) tbr",
                                                                    video.group(0))
    if size is None or rate is None:
        raise VideoError(f"{path}: cannot tell the video stream's size and frame rate")
    counted = subprocess.run([ffmpeg, "-hide_banner", "-nostats", "-i", path, "-map", "0:v:0",
                              "-c", "copy", "-f", "null", "-"], capture_output=True, text=True,
                             errors="replace")
    frames = re.findall(r"frame=\s*(\d+)", counted.stderr)
    if counted.returncode != 0 or not frames or int(frames[-1]) == 0:
        raise VideoError(f"{path}: no decodable video frame (truncated or empty?)")
    streams = header[header.find("Stream #"):]
    return VideoInfo(int(size.group(1)), int(size.group(2)), rate.group(1), int(frames[-1]),
                     "Audio:" in streams, "Subtitle:" in streams)


def _reader(process, frame_bytes, frames, stop):
    """Puts each decoded frame (bytes) on `frames`, then None."""
    try:
        while not stop.is_set():
            data = process.stdout.read(frame_bytes)
            if len(data) < frame_bytes:
                break
            frames.put(data)
    finally:
        frames.put(None)


def upscale_video(source, target, upscale_frame, scale, codec=None, crf=None, pix_fmt=None,
                  progress=None, ffmpeg=None):
    """Writes `target`: every frame of `source` through `upscale_frame` ((H, W, 3) uint8 ->
    (sH, sW, 3) uint8, `scale` the ratio of sizes), encoded with `codec` (default H.264, CRF
    18, yuv420p), the audio and subtitle streams copied. An output size the pixel format
    cannot take (odd, for 4:2:0) is padded by a pixel. `progress(done, total)` after each
    frame. Returns the number of frames written. The file is written under a temporary name
    and renamed at the end: on any failure neither it nor an ffmpeg process is left."""
    ffmpeg = ffmpeg or ffmpeg_executable()
    info = probe(source, ffmpeg)
    out_width, out_height = round(info.width * scale), round(info.height * scale)
    codec, pix_fmt = codec or DEFAULT_CODEC, pix_fmt or DEFAULT_PIX_FMT
    stem, extension = os.path.splitext(target)
    partial = f"{stem}.partial{extension}"
    os.makedirs(os.path.dirname(os.path.abspath(target)), exist_ok=True)
    decoder = subprocess.Popen(
        [ffmpeg, "-v", "error", "-i", source, "-map", "0:v:0", "-f", "rawvideo", "-pix_fmt",
         "rgb24", "-"], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    quality = ["-crf", str(DEFAULT_CRF if crf is None else crf)] \
        if codec in ("libx264", "libx265", "libvpx-vp9") or crf is not None else []
    even = ["-vf", "pad=ceil(iw/2)*2:ceil(ih/2)*2"] if pix_fmt.endswith(("420p", "422p")) \
        and (out_width % 2 or out_height % 2) else []
    encoder = subprocess.Popen(
        [ffmpeg, "-v", "error", "-y", "-f", "rawvideo", "-pix_fmt", "rgb24", "-s",
         f"{out_width}x{out_height}", "-framerate", info.rate, "-i", "-", "-i", source,
         "-map", "0:v:0", "-map", "1:a?", "-map", "1:s?", *even, "-c:v", codec, *quality,
         "-pix_fmt", pix_fmt, "-c:a", "copy", "-c:s", "copy", partial],
        stdin=subprocess.PIPE, stderr=subprocess.PIPE)
    frames, stop = queue.Queue(QUEUE_FRAMES), threading.Event()
    reader = threading.Thread(target=_reader, daemon=True,
                              args=(decoder, info.width * info.height * 3, frames, stop))
    reader.start()
    written = 0
    try:
        while (data := frames.get()) is not None:
            frame = np.frombuffer(data, np.uint8).reshape(info.height, info.width, 3)
            result = upscale_frame(frame)
            if result.shape != (out_height, out_width, 3) or result.dtype != np.uint8:
                raise VideoError(f"{source}: a frame came back {result.shape} {result.dtype}, "
                                 f"not ({out_height}, {out_width}, 3) uint8")
            try:
                encoder.stdin.write(np.ascontiguousarray(result).tobytes())
            except BrokenPipeError:
                encoder.wait()
                raise VideoError(f"{target}: encoding with {codec} / {pix_fmt} failed: "
                                 f"{_last_line(encoder)}") from None
            written += 1
            if progress:
                progress(written, info.frames)
        encoder.stdin.close()
        decoded_ok = decoder.wait() == 0
        encoded_ok = encoder.wait() == 0
        if not decoded_ok:
            raise VideoError(f"{source}: decoding failed: {_last_line(decoder)}")
        if not encoded_ok:
            raise VideoError(f"{target}: encoding with {codec} / {pix_fmt} failed: "
                             f"{_last_line(encoder)}")
        os.replace(partial, target)
        return written
    except BaseException:
        stop.set()
        for process in (decoder, encoder):
            if process.poll() is None:
                process.kill()
            process.wait()
        if os.path.exists(partial):
            os.remove(partial)
        raise
    finally:
        stop.set()
        # Unblock the reader if it waits on a full queue, then let it finish.
        while reader.is_alive():
            try:
                frames.get_nowait()
            except queue.Empty:
                pass
            reader.join(timeout=0.1)
        for stream in (decoder.stdout, decoder.stderr, encoder.stderr):
            stream.close()


def _last_line(process):
    text = process.stderr.read().decode(errors="replace").strip().splitlines()
    return text[-1] if text else f"exit status {process.returncode}"
