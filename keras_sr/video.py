"""Videos through a model: frames decoded by ffmpeg into a pipe, upscaled as the still images
are (tiles, precision, --scale-out), encoded by a second ffmpeg, then muxed with the source's
audio and subtitle streams.

- Streamed: bounded queues hold a few decoded frames and a few upscaled ones, so memory stays
  flat with the clip's length; decoding and encoding run in their own processes beside the
  model, and a writer thread times the upscaled frames and pipes them to the encoder, so
  that the model's thread never waits on ffmpeg.
- Timing: every frame keeps its own timestamp and duration (variable frame rate included).
  The decoder reports them (ffmpeg's `showinfo`), and the frames go to the encoder in a
  minimal Matroska stream (`_Matroska`) that carries them in nanoseconds, encoded with the
  source's time base and `-fps_mode passthrough`: no frame is dropped, duplicated or moved.
- Resumable: the video is encoded in segments of about `segment_seconds`, each renamed into
  the run's `<target>.parts` folder once complete. `resume=True` keeps the complete ones
  (their frames are decoded and skipped, not upscaled again); the last step concatenates the
  segments with the source's audio and subtitles into `<target>`, written under a temporary
  name and renamed, so the file appears whole or not at all.
"""

import collections
import dataclasses
import functools
import json
import math
import os
import queue
import re
import shutil
import struct
import subprocess
import tempfile
import threading
from fractions import Fraction

import numpy as np

from keras_sr.inference import quantize

VIDEO_SUFFIXES = (".mp4", ".mkv", ".mov", ".webm", ".avi", ".m4v")
# The encoder and pixel format when --codec / --pix-fmt are not given: what every player
# takes (WebM holds only VP8 / VP9 / AV1).
DEFAULT_CODEC, DEFAULT_PIX_FMT, DEFAULT_CRF = "libx264", "yuv420p", 18
# The default for a source of more than 8 bits a component (10-bit anime encodes, phones' HDR):
# as ffmpeg itself keeps a source's depth where the encoder takes it; 8 bits would band.
DEEP_PIX_FMT = "yuv420p10le"
# A source with an alpha channel (VP9 / VP8 with alpha in WebM, as Telegram's video stickers;
# ProRes 4444, PNG or QuickTime Animation in MOV) keeps it where the container can: VP9 in
# WebM and Matroska, ProRes 4444 in MOV, each in the first of these formats its encoder takes
# (MP4 and AVI hold no alpha with the codecs players take: there it is dropped, and one line
# says so).
ALPHA_CODECS = {".webm": "libvpx-vp9", ".mkv": "libvpx-vp9", ".mov": "prores_ks"}
ALPHA_PIX_FMTS = ("yuva420p", "yuva444p10le", "rgba", "argb", "bgra", "gbrap")
DEEP_ALPHA_PIX_FMTS = ("yuva420p10le", "yuva444p10le", "gbrap10le", "rgba64le")
# Decoders that give VP8 / VP9 their alpha (stored beside the picture, which ffmpeg's own
# decoders skip).
ALPHA_DECODERS = {"vp9": "libvpx-vp9", "vp8": "libvpx"}
CONTAINER_CODECS = {".webm": "libvpx-vp9"}
# The subtitle codec a container takes when it cannot hold the source's (text subtitles).
TEXT_SUBTITLES = {".mp4": "mov_text", ".m4v": "mov_text", ".mov": "mov_text", ".webm": "webvtt",
                  ".mkv": "srt"}
# The encoders that take --crf, with the highest value each takes (x264 would turn a larger one
# into its highest without a word).
CRF_HIGHEST = {"libx264": 51, "libx264rgb": 51, "libx265": 51, "libvpx-vp9": 63,
               "libaom-av1": 63, "libsvtav1": 63}
CRF_CODECS = tuple(CRF_HIGHEST)
# Decoded frames waiting for the model (a few frames of memory, whatever the clip's length).
QUEUE_FRAMES = 4
# Interlaced frames: each made whole from its two fields (ffmpeg's bwdif, one frame out for
# each frame in, so every timestamp stays), only where the frame says it is interlaced;
# upscaled as they are, their combing would be upscaled with them.
DEINTERLACE = "bwdif=mode=send_frame:parity=auto:deint=interlaced"
SEGMENT_SECONDS = 10.0
STATE_FILE = "run.json"


class VideoError(ValueError):
    """A video that cannot be read or written as asked; the message names it and why."""


def is_video(path):
    return os.fspath(path).lower().endswith(VIDEO_SUFFIXES)


# The oldest ffmpeg videos are run with: 7.0 and 9.0 pass the tests; 5.1 (Debian 12's) drops
# the last frame of a two-frame segment written in a millisecond time base, and reports no
# frame durations; 4.x has no -fps_mode.
MIN_FFMPEG = (7, 0)


def ffmpeg_executable():
    """ffmpeg from imageio-ffmpeg (`pip install keras-sr[video]`, or the one its
    IMAGEIO_FFMPEG_EXE names), else from PATH; VideoError when there is none or it is older
    than `MIN_FFMPEG`."""
    try:
        import imageio_ffmpeg

        found = imageio_ffmpeg.get_ffmpeg_exe()
    except (ImportError, RuntimeError):
        found = shutil.which("ffmpeg")
    if found is None:
        raise VideoError("videos need ffmpeg: pip install 'keras-sr[video]' (imageio-ffmpeg, "
                         "which ships it) or put ffmpeg on PATH")
    version = _ffmpeg_version(found)
    if version is not None and version < MIN_FFMPEG:
        raise VideoError(f"{found} is ffmpeg {version[0]}.{version[1]}; videos need "
                         f"{MIN_FFMPEG[0]}.{MIN_FFMPEG[1]} or later (older releases drop "
                         "frames or lack options): "
                         + ("unset IMAGEIO_FFMPEG_EXE, which names it, or name a newer one"
                            if os.environ.get("IMAGEIO_FFMPEG_EXE") else
                            "pip install 'keras-sr[video]' (imageio-ffmpeg ships one) or put "
                            "a newer ffmpeg on PATH"))
    return found


@functools.lru_cache(maxsize=None)
def _ffmpeg_version(ffmpeg):
    """(major, minor) from `ffmpeg -version` ("ffmpeg version 7.0.2-static", "n9.0.2-17-g..."),
    or None for a build that names no release (a git snapshot: "N-112345-g...")."""
    try:
        said = subprocess.run([ffmpeg, "-version"], capture_output=True, text=True,
                              errors="replace", stdin=subprocess.DEVNULL, timeout=30).stdout
    except (OSError, subprocess.TimeoutExpired) as error:
        raise VideoError(f"{ffmpeg} does not run: {error}") from None
    found = re.match(r"ffmpeg version n?(\d+)\.(\d+)", said)
    return (int(found.group(1)), int(found.group(2))) if found else None


@functools.lru_cache(maxsize=None)
def _pixel_formats(ffmpeg):
    """{pixel format: (its components, its deepest component's bits)} from `ffmpeg
    -pix_fmts` (empty from an ffmpeg too old to list depths)."""
    listed = subprocess.run([ffmpeg, "-hide_banner", "-pix_fmts"], capture_output=True,
                            text=True, errors="replace", stdin=subprocess.DEVNULL).stdout
    return {found.group(1): (int(found.group(2)),
                             max(int(bits) for bits in found.group(3).split("-")))
            for found in re.finditer(r"^[A-Z.]{5} (\w+)\s+(\d+)\s+\d+\s+([\d-]+)\s*$",
                                     listed, re.MULTILINE)}


def has_alpha(pix_fmt, ffmpeg):
    """Whether `pix_fmt` holds an alpha channel (4 components, or gray with alpha), as ffmpeg
    lists it, else as the name says (`yuva420p`, `rgba`, `gbrap10le`, `ya16le`)."""
    listed = _pixel_formats(ffmpeg).get(pix_fmt)
    if listed is not None:
        return listed[0] in (2, 4)
    return bool(re.match(r"(yuva|rgba|bgra|argb|abgr|gbrap|ya\d)", pix_fmt))


def pixel_depth(pix_fmt, ffmpeg):
    """Bits of `pix_fmt`'s deepest component (8 for yuv420p, 10 for yuv420p10le / p010le,
    16 for rgb48le), as ffmpeg lists it, else as the name says (`...10le`, `p016`)."""
    depth = (_pixel_formats(ffmpeg).get(pix_fmt) or (None, None))[1]
    if depth is None:
        named = re.search(r"(\d+)(le|be)$", pix_fmt)
        bits = int(named.group(1)) if named else 8
        depth = 16 if bits in (48, 64) else bits if 8 < bits <= 16 else 8
    return depth


@functools.lru_cache(maxsize=None)
def _help(ffmpeg, topic):
    """What `ffmpeg -h <topic>` says ("decoder=libvpx-vp9", "encoder=libx264")."""
    return subprocess.run([ffmpeg, "-hide_banner", "-h", topic], capture_output=True,
                          text=True, errors="replace", stdin=subprocess.DEVNULL).stdout


def _has_decoder(ffmpeg, name):
    return f"Decoder {name} " in _help(ffmpeg, f"decoder={name}")


def _encoder_formats(ffmpeg, codec):
    """The pixel formats ffmpeg's `codec` encoder lists (empty where it lists none)."""
    found = re.search(r"Supported pixel formats:(.*)", _help(ffmpeg, f"encoder={codec}"))
    return tuple(found.group(1).split()) if found else ()


# ffmpeg's names of YCbCr matrices as its scale filter takes them (older releases know only
# these spellings); a matrix outside this table is left to ffmpeg's defaults.
_SCALE_MATRICES = {"bt709": "bt709", "smpte170m": "smpte170m", "bt470bg": "bt470",
                   "fcc": "fcc", "smpte240m": "smpte240m", "bt2020nc": "bt2020",
                   "bt2020c": "bt2020"}
# Pixel formats without a YCbCr matrix (gray is taken as it comes, as ffmpeg takes it).
_RGB_FORMATS = re.compile(r"(rgb|bgr|gbr|argb|abgr|0rgb|0bgr|x2rgb|x2bgr|pal8|mono|gray|ya)")


@dataclasses.dataclass(frozen=True)
class Colors:
    """How a stream's YCbCr values stand for colours, in ffmpeg's names: `matrix` (`bt709`,
    `smpte170m`, ...) and `range` (`tv` or `pc`), the source's own or, where it has none,
    what players assume for its size (`assumed` then says so: BT.709 from 1280 wide or 577
    lines up, else BT.601, and limited range); `primaries` and `trc` the source's, None where
    it has none. The output is encoded with the same matrix and range and says so in its
    stream, so that a player does not guess again from the larger, upscaled size."""
    matrix: object = "smpte170m"
    range: str = "tv"
    primaries: object = None
    trc: object = None
    assumed: bool = True
    rgb_source: bool = False

    def decoding_filter(self):
        """The conversion of the source's YCbCr into RGB, or None (an RGB source, or a
        matrix ffmpeg's filter does not name)."""
        if self.rgb_source or self.matrix not in _SCALE_MATRICES:
            return None
        return f"scale=in_color_matrix={_SCALE_MATRICES[self.matrix]}:in_range={self.range}"

    def encoding(self, pix_fmt):
        """(filters, options) that convert RGB into `pix_fmt` with this matrix and range and
        write them into the stream; none for an RGB pixel format."""
        if _RGB_FORMATS.match(pix_fmt) or self.matrix not in _SCALE_MATRICES:
            return [], []
        filters = [f"scale=out_color_matrix={_SCALE_MATRICES[self.matrix]}:"
                   f"out_range={self.range}", f"format={pix_fmt}"]
        options = ["-colorspace", self.matrix, "-color_range", self.range]
        stated = [(name, value) for name, value in (("color_primaries", self.primaries),
                                                    ("color_trc", self.trc)) if value]
        if stated:  # newer ffmpeg takes these from the frames, older from the options
            filters.append("setparams=" + ":".join(f"{name}={value}" for name, value in stated))
            options += [option for name, value in stated for option in (f"-{name}", value)]
        return filters, options


def _pixel_format(stream):
    """(pixel format, [what the file states about it]) from ffmpeg's line for a video stream:
    the format and, in brackets after it, whatever of range, matrix / primaries / transfer,
    field order and chroma position the file states (`yuv420p(tv, bt709, progressive)`,
    `yuvj420p(pc, bt470bg/unknown/unknown)`, `yuv420p(top coded first (swapped))`)."""
    found = re.search(r",\s*([a-z][a-z0-9_]*)(?:\(((?:[^()]|\([^()]*\))*)\))?,", stream)
    if found is None:
        return "", []
    return found.group(1), [part.strip() for part in (found.group(2) or "").split(",")]


def _interlaced(stream):
    """Whether the stream says its frames are interlaced (a field order: `top first`,
    `bottom coded first (swapped)`, ...)."""
    return any(re.fullmatch(r"(top|bottom)( coded)? first.*", item)
               for item in _pixel_format(stream)[1])


def _colors(stream, width, height):
    """`Colors` from ffmpeg's line for a video stream (`_pixel_format`); `width` x `height`
    as stored."""
    pix_fmt, details = _pixel_format(stream)
    stated = {"range": None, "matrix": None, "primaries": None, "trc": None}
    for item in details:
        if item in ("tv", "pc"):
            stated["range"] = item
        elif item.count("/") == 2 or item in ("bt709", "smpte170m", "smpte240m"):
            triple = item.split("/") if "/" in item else [item] * 3
            for key, value in zip(("matrix", "primaries", "trc"), triple):
                stated[key] = None if value in ("unknown", "reserved", "gbr") else value
    rgb = bool(_RGB_FORMATS.match(pix_fmt))
    if rgb:  # RGB and gray state no YCbCr range: YCbCr made from them takes the usual, limited
        stated["range"] = None
    matrix = stated["matrix"] or ("bt709" if width >= 1280 or height > 576 else "smpte170m")
    return Colors(matrix, stated["range"] or ("pc" if pix_fmt.startswith("yuvj") else "tv"),
                  stated["primaries"], stated["trc"], stated["matrix"] is None, rgb)


@dataclasses.dataclass(frozen=True)
class VideoInfo:
    """`width` x `height`: the frames as decoded, i.e. as shown: a stream stored sideways
    with a display matrix (as phones write portrait video) is turned upright by ffmpeg's
    decoder, as still images follow their EXIF orientation. `sar`: the shape of a pixel,
    width / height (1 but for anamorphic video). `colors`: how its YCbCr values stand for
    colours (`Colors`). `interlaced`: the stream says its frames hold two fields each.
    `depth`: bits of the source's deepest component (8, or 10 / 12 / 16 for deep video).
    `alpha`: the frames have an alpha channel; `alpha_decoder` the decoder that gives it
    (VP8 / VP9), None where ffmpeg's own does. `covers` and `attachments`: pictures attached
    to the file (cover art, as yt-dlp embeds it) and other attached files (the fonts that
    Matroska subtitles are drawn with), which the output keeps where its container can.
    The video stream is the first that is not an attached picture."""
    width: int
    height: int
    rate: str  # the average frame rate as ffmpeg writes it: "25", "29.97"
    frames: int
    audio: int  # how many audio streams
    subtitles: int  # how many subtitle streams
    sar: Fraction = Fraction(1)
    colors: Colors = Colors()
    interlaced: bool = False
    depth: int = 8
    alpha: bool = False
    alpha_decoder: object = None
    covers: tuple = ()  # (index among video streams, codec) of each attached picture
    attachments: int = 0  # files attached to a Matroska file (fonts for its subtitles)


def probe(path, ffmpeg=None):
    """What `path` holds, from `ffmpeg -i` (imageio-ffmpeg ships no ffprobe), a count of its
    video frames (a stream copy to nowhere) and its first frame decoded as a run decodes it
    (its size after any rotation, its pixel shape). VideoError for a file that is not a
    video, has no video stream, is cut short, or whose frames are above the pixel limit that
    still images get (before any frame is decoded)."""
    ffmpeg = ffmpeg or ffmpeg_executable()
    if not os.path.isfile(path):
        raise VideoError(f"no such video file: {path}")
    header = subprocess.run([ffmpeg, "-hide_banner", "-i", path], capture_output=True,
                            text=True, errors="replace", stdin=subprocess.DEVNULL).stderr
    # The first video stream that is not a picture attached to the file (cover art).
    video = re.search(r"Stream #\S+.*?: Video: (?!.*\(attached pic\)).*", header)
    if video is None:
        reason = "no video stream" if "Stream #" in header else "not a video ffmpeg can read"
        raise VideoError(f"{path}: {reason}")
    size = re.search(r"\b([1-9]\d{0,4})x([1-9]\d{0,4})\b", video.group(0).split("Video:")[1])
    rate = re.search(r"([\d.]+) fps", video.group(0)) or re.search(r"([\d.]+) tbr",
                                                                    video.group(0))
    if size is None or rate is None:
        raise VideoError(f"{path}: cannot tell the video stream's size and frame rate")
    limit = frame_pixel_limit()
    if limit and int(size.group(1)) * int(size.group(2)) > limit:
        raise VideoError(f"{path}: its {size.group(1)}x{size.group(2)} frames are above the "
                         f"limit of {limit} pixels that still images get")
    # One line a frame, without decoding (ffmpeg 7.0's closing statistics leave out the
    # frame count of a stream copy).
    counted = subprocess.run([ffmpeg, "-hide_banner", "-v", "error", "-i", path, "-map",
                              "0:V:0", "-c", "copy", "-f", "framecrc", "-"], capture_output=True,
                             stdin=subprocess.DEVNULL)
    frames = sum(1 for line in counted.stdout.splitlines() if line and line[:1] != b"#")
    first = _first_frame(ffmpeg, path) if counted.returncode == 0 and frames else None
    if first is None:
        raise VideoError(f"{path}: no decodable video frame (truncated or empty?)")
    streams = header[header.find("Stream #"):]
    width, height, sar = first
    pix_fmt = _pixel_format(video.group(0))[0] or "yuv420p"
    alpha, alpha_decoder = _alpha(ffmpeg, video, header, pix_fmt)
    return VideoInfo(width, height, rate.group(1), frames,
                     len(re.findall(r"Stream #.*?: Audio:", streams)),
                     len(re.findall(r"Stream #.*?: Subtitle:", streams)), sar,
                     _colors(video.group(0), int(size.group(1)), int(size.group(2))),
                     _interlaced(video.group(0)), pixel_depth(pix_fmt, ffmpeg), alpha,
                     alpha_decoder,
                     tuple((index, codec) for index, (codec, rest) in enumerate(
                         re.findall(r"Stream #.*?: Video: (\w+)(.*)", streams))
                         if "(attached pic)" in rest),
                     len(re.findall(r"Stream #.*?: Attachment:", streams)))


def _alpha(ffmpeg, video, header, pix_fmt):
    """(whether the video stream has alpha, the decoder that gives it or None) from ffmpeg's
    line for the stream (`video`, a match in `header`) and the metadata under it: a pixel
    format with alpha, or VP8 / VP9 marked `alpha_mode: 1` (whose alpha only libvpx's
    decoders read; without them, none)."""
    if has_alpha(pix_fmt, ffmpeg):
        return True, None
    following = header[video.end():]
    block = following[:following.find("Stream #")] if "Stream #" in following else following
    codec = re.search(r"Video: (\w+)", video.group(0))
    decoder = ALPHA_DECODERS.get(codec.group(1)) if codec else None
    if decoder and re.search(r"^\s*alpha_mode\s*:\s*1\s*$", block, re.MULTILINE | re.IGNORECASE) \
            and _has_decoder(ffmpeg, decoder):
        return True, decoder
    return False, None


_FRAME_SHAPE = re.compile(r"\bsar:\s*(\d+)/(\d+)\s+s:\s*(\d+)x(\d+)")


def _first_frame(ffmpeg, path):
    """(width, height, sar) of the first video frame as `_Decoder` gets it (the same
    decoding, with its automatic rotation), from `showinfo`; None when none decodes. An
    unknown pixel shape (0/1) counts as square."""
    shown = subprocess.run([ffmpeg, "-hide_banner", "-nostats", "-v", "info", "-i", path,
                            "-map", "0:V:0", "-frames:v", "1", "-vf", "showinfo=checksum=0",
                            "-f", "null", "-"], capture_output=True, text=True,
                           errors="replace", stdin=subprocess.DEVNULL)
    found = _FRAME_SHAPE.search(shown.stderr)
    if shown.returncode != 0 or found is None:
        return None
    sar_width, sar_height, width, height = map(int, found.groups())
    return width, height, Fraction(sar_width, sar_height) if sar_width and sar_height \
        else Fraction(1)


def frame_pixel_limit():
    """The largest frame, in pixels, that a video may have: the limit still images get
    (Pillow refuses to decode more than twice its MAX_IMAGE_PIXELS)."""
    from PIL import Image

    return 2 * Image.MAX_IMAGE_PIXELS if Image.MAX_IMAGE_PIXELS else None


# --- decoding ------------------------------------------------------------------------------

_SHOWINFO = re.compile(r"\bn:\s*(\d+)\s+pts:\s*(\S+)\s+pts_time:\S*\s+duration:\s*(\S+)")
_TIME_BASE = re.compile(r"config in time_base:\s*(\d+)/(\d+)")


class _Decoder:
    """ffmpeg decoding the first video stream of `source` into rgb24 frames (uint8), or
    rgb48le (uint16) when `deep`, with alpha (rgba / rgba64le) when `alpha` (decoded by
    `alpha_decoder` where given), every decoded frame once (`-fps_mode passthrough`), with
    its timestamp and duration from `showinfo`."""

    def __init__(self, ffmpeg, source, width, height, rate, colors=None, deinterlace=False,
                 deep=False, alpha=False, alpha_decoder=None):
        channels = 4 if alpha else 3
        self.source, self.shape = source, (height, width, channels)
        self.dtype = np.dtype("<u2" if deep else np.uint8)
        self.frame_bytes = width * height * channels * self.dtype.itemsize
        self.rate = Fraction(rate).limit_denominator(1001 * 1000)
        self.time_base = None
        self.times = []  # (pts, duration) of each frame, in the stream's time base
        self.placed = {}  # (time, duration) of frames without a pts, once worked out
        self.tail = collections.deque(maxlen=8)  # ffmpeg's last other lines, for errors
        self.changed = threading.Condition()
        self.stderr_done = False
        self.process = subprocess.Popen(
            [ffmpeg, "-hide_banner", "-nostats", "-v", "info",
             *(["-c:v", alpha_decoder] if alpha and alpha_decoder else []), "-i", source,
             "-map", "0:V:0",
             "-vf", ",".join(filter(None, ["showinfo=checksum=0",
                                           deinterlace and DEINTERLACE,
                                           colors and colors.decoding_filter()])),
             "-fps_mode", "passthrough", "-f", "rawvideo",
             "-pix_fmt", _RAW_FORMATS[deep, alpha][0], "-"],
            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        self.frames, self.stop = queue.Queue(QUEUE_FRAMES), threading.Event()
        self.threads = [threading.Thread(target=self._read_frames, daemon=True),
                        threading.Thread(target=self._read_log, daemon=True)]
        for thread in self.threads:
            thread.start()

    def _read_frames(self):
        try:
            while not self.stop.is_set():
                data = self.process.stdout.read(self.frame_bytes)
                if len(data) < self.frame_bytes:
                    break
                self.frames.put(data)
        finally:
            self.frames.put(None)

    def _read_log(self):
        for raw in self.process.stderr:
            line = raw.decode(errors="replace").rstrip()
            shown = _SHOWINFO.search(line)
            with self.changed:
                if shown:
                    self.times.append((_integer(shown.group(2)), _integer(shown.group(3))))
                elif (base := _TIME_BASE.search(line)) and self.time_base is None:
                    self.time_base = Fraction(int(base.group(1)), int(base.group(2)))
                elif "showinfo" not in line and not line.startswith(" "):
                    self.tail.append(line)
                self.changed.notify_all()
        with self.changed:
            self.stderr_done = True
            self.changed.notify_all()

    def time_of(self, index):
        """(pts, duration) of frame `index` as Fractions of a second. A frame without a
        timestamp follows the previous one (the first starts at 0); one without a duration
        lasts 1 / rate. A run of frames without timestamps is walked once, from the last
        frame placed before it, however long it is."""
        with self.changed:
            self.changed.wait_for(lambda: len(self.times) > index or self.stderr_done)
            if len(self.times) <= index or self.time_base is None:
                raise VideoError(f"{self.source}: ffmpeg reported no time for frame {index}")
            first = index
            while first > 0 and self.times[first][0] is None and first not in self.placed:
                first -= 1
            pts, duration = self.times[first]
            if first in self.placed:
                time, duration = self.placed[first]
            elif pts is None:  # the first frame
                time, duration = Fraction(0), 1 / self.rate
            else:
                time = pts * self.time_base
                duration = duration * self.time_base if duration else 1 / self.rate
            for later in range(first + 1, index + 1):  # frames without a timestamp
                time, duration = time + duration, 1 / self.rate
                self.placed[later] = time, duration
            return time, duration

    def __iter__(self):
        """(index, frame) of every frame, in order."""
        index = 0
        while (data := self.frames.get()) is not None:
            yield index, np.frombuffer(data, self.dtype).reshape(self.shape)
            index += 1

    def finish(self):
        """Waits for ffmpeg; VideoError if it failed."""
        if self.process.wait() != 0:
            for thread in self.threads:
                thread.join(timeout=5)
            raise VideoError(f"{self.source}: decoding failed: "
                             f"{self.tail[-1] if self.tail else self.process.returncode}")

    def close(self):
        self.stop.set()
        _stop(self.process)
        # Unblock the frame reader if it waits on a full queue, then let both threads end.
        for thread in self.threads:
            while thread.is_alive():
                try:
                    self.frames.get_nowait()
                except queue.Empty:
                    pass
                thread.join(timeout=0.1)
        for stream in (self.process.stdout, self.process.stderr):
            stream.close()


def _integer(text):
    try:
        return int(text)
    except ValueError:  # NOPTS
        return None


# --- encoding ------------------------------------------------------------------------------

def _ebml_size(size):
    for length in range(1, 9):
        if size < (1 << (7 * length)) - 1:
            return (size | (1 << (7 * length))).to_bytes(length, "big")
    raise ValueError(f"{size} bytes is too large for one Matroska element")


def _element(element_id, payload):
    return element_id + _ebml_size(len(payload)) + payload


def _unsigned(element_id, value):
    return _element(element_id, value.to_bytes(max(1, (value.bit_length() + 7) // 8), "big"))


# (ffmpeg's name, rawvideo's tag in Matroska) of the frames in the pipes, by (deep, alpha).
_RAW_FORMATS = {(False, False): ("rgb24", b"RGB\x18"), (True, False): ("rgb48le", b"RGB\x30"),
                (False, True): ("rgba", b"RGBA"), (True, True): ("rgba64le", b"RBA\x40")}


class _Matroska:
    """The smallest Matroska stream ffmpeg reads: one uncompressed rgb24 (or, `deep`, rgb48le;
    with `alpha`, rgba / rgba64le) video track with a nanosecond time scale, each frame a
    cluster holding its exact timestamp and duration."""

    @staticmethod
    def header(width, height, deep=False, alpha=False):
        ebml = _element(b"\x1a\x45\xdf\xa3", _unsigned(b"\x42\x86", 1) + _unsigned(b"\x42\xf7", 1)
                        + _unsigned(b"\x42\xf2", 4) + _unsigned(b"\x42\xf3", 8)
                        + _element(b"\x42\x82", b"matroska") + _unsigned(b"\x42\x87", 4)
                        + _unsigned(b"\x42\x85", 2))
        segment = b"\x18\x53\x80\x67" + b"\x01" + b"\xff" * 7  # of unknown size: a stream
        info = _element(b"\x15\x49\xa9\x66", _unsigned(b"\x2a\xd7\xb1", 1)  # 1 ns per tick
                        + _element(b"\x4d\x80", b"keras-sr") + _element(b"\x57\x41", b"keras-sr"))
        video = _element(b"\xe0", _unsigned(b"\xb0", width) + _unsigned(b"\xba", height)
                         + _element(b"\x2e\xb5\x24", _RAW_FORMATS[deep, alpha][1]))
        track = _element(b"\xae", _unsigned(b"\xd7", 1) + _unsigned(b"\x73\xc5", 1)
                         + _unsigned(b"\x83", 1) + _unsigned(b"\x9c", 0)
                         + _element(b"\x86", b"V_UNCOMPRESSED") + video)
        return ebml + segment + info + _element(b"\x16\x54\xae\x6b", track)

    @staticmethod
    def frame_around(time_ns, duration_ns, size):
        """The bytes before and after a frame's `size` bytes of pixels in its cluster, so that
        the pixels go to the pipe as they are (a 4K frame is 25 MB; nesting it in three
        elements copied it three times, on the thread that runs the model)."""
        block_head = b"\x81" + struct.pack(">hB", 0, 0)
        block_size = len(block_head) + size
        block_header = b"\xa1" + _ebml_size(block_size)
        duration = _unsigned(b"\x9b", max(duration_ns, 1))
        group_size = len(block_header) + block_size + len(duration)
        group_header = b"\xa0" + _ebml_size(group_size)
        timestamp = _unsigned(b"\xe7", time_ns)
        cluster_size = len(timestamp) + len(group_header) + group_size
        prefix = (b"\x1f\x43\xb6\x75" + _ebml_size(cluster_size) + timestamp + group_header
                  + block_header + block_head)
        return prefix, duration


@dataclasses.dataclass(frozen=True)
class Encoding:
    codec: str
    crf: object  # int or None
    pix_fmt: str

    def __post_init__(self):
        highest = CRF_HIGHEST.get(self.codec)
        if self.crf is not None and highest is not None and self.crf > highest:
            raise ValueError(f"--crf {self.crf} is above {self.codec}'s highest, {highest}")

    def arguments(self, width, height, sar=Fraction(1), colors=None):
        """The encoder's options for RGB frames of `width` x `height` whose pixels are `sar`
        (width / height) in shape, converted with `colors`' matrix and range (`Colors`):
        both written into the stream, so that the video shows at the source's shape and
        colours."""
        quality = ["-crf", str(DEFAULT_CRF if self.crf is None else self.crf)] \
            if self.codec in CRF_CODECS or self.crf is not None else []
        filters = []
        # 4:2:0 and 4:2:2 need even sides: an odd result gets a row or column of padding.
        if self.pix_fmt.endswith(("420p", "422p", "420p10le", "422p10le")) \
                and (width % 2 or height % 2):
            filters.append("pad=ceil(iw/2)*2:ceil(ih/2)*2")
        if sar != 1:
            filters.append(f"setsar={sar.numerator}/{sar.denominator}")
        conversion, tags = colors.encoding(self.pix_fmt) if colors else ([], [])
        filters += conversion
        return [*(["-vf", ",".join(filters)] if filters else []), "-c:v", self.codec,
                *quality, "-pix_fmt", self.pix_fmt, *tags]


def encoding_for(target, codec=None, crf=None, pix_fmt=None, depth=8, ffmpeg=None,
                 alpha=False):
    """The `Encoding` of `target`: the codec given or the container's default (for a source
    with `alpha`, where neither codec nor pixel format is given, `ALPHA_CODECS`' for the
    container); the pixel format given, else the first of `ALPHA_PIX_FMTS` (or, `depth` > 8
    bits, `DEEP_ALPHA_PIX_FMTS`) the encoder takes for a source with `alpha`, else
    `DEEP_PIX_FMT` for a source of `depth` > 8 where the encoder takes it, else yuv420p
    (asked of `ffmpeg`)."""
    extension = os.path.splitext(target)[1].lower()
    if alpha and codec is None and pix_fmt is None:
        codec = ALPHA_CODECS.get(extension)
    codec = codec or CONTAINER_CODECS.get(extension, DEFAULT_CODEC)
    if pix_fmt is None and (alpha or depth > 8):
        taken = _encoder_formats(ffmpeg or ffmpeg_executable(), codec)
        wanted = ((DEEP_ALPHA_PIX_FMTS if depth > 8 else ()) + ALPHA_PIX_FMTS if alpha
                  else ()) + ((DEEP_PIX_FMT,) if depth > 8 else ())
        pix_fmt = next((name for name in wanted if name in taken), None)
    return Encoding(codec, crf, pix_fmt or DEFAULT_PIX_FMT)


def segment_format(codec, alpha=False):
    """The container of the run's segments: MOV keeps any time base and starts at 0 whatever
    the codec's reordering delay; ffmpeg writes VP9 and AV1 only in its MP4 mode, and VP8 /
    VP9's alpha only in Matroska (VP9 has no reordering delay)."""
    if alpha and re.search(r"vp8|vp9|libvpx", codec):
        return "matroska"
    return "mp4" if re.search(r"vp9|av1|aom|rav1e", codec) else "mov"


def check_encoding(ffmpeg, encoding, target, width, height, sar=Fraction(1), colors=None,
                   alpha=False):
    """Encodes two black frames of the output size as a segment, then copies them into the
    target's container, as a run does: a codec, pixel format or container that refuses them
    is named before any frame is upscaled."""
    extension = os.path.splitext(target)[1].lower()
    formats = {".mkv": "matroska", ".webm": "webm", ".mp4": "mp4", ".m4v": "mp4", ".mov": "mov",
               ".avi": "avi"}
    with tempfile.TemporaryDirectory() as folder:  # MP4 and MOV need a seekable file
        segment = os.path.join(folder, "segment")
        for command in (
                ["-f", "lavfi", "-i", f"color=black:size={width}x{height}:rate=1", "-frames:v",
                 "2", *encoding.arguments(width, height, sar, colors), "-f",
                 segment_format(encoding.codec, alpha), segment],
                ["-i", segment, "-c", "copy", "-f", formats.get(extension, "matroska"),
                 os.path.join(folder, "check")]):
            checked = subprocess.run([ffmpeg, "-v", "error", *command], capture_output=True,
                                     stdin=subprocess.DEVNULL)
            if checked.returncode != 0:
                lines = checked.stderr.decode(errors="replace").strip().splitlines()
                raise VideoError(f"{target}: cannot encode {width}x{height} video with --codec "
                                 f"{encoding.codec} --pix-fmt {encoding.pix_fmt} into "
                                 f"{extension or 'this container'}: "
                                 f"{lines[0] if lines else checked.returncode}")


class _SegmentEncoder:
    """One segment: frames from `first` on, encoded into `<parts>/<first>.partial.mov`, its
    timestamps counted from its first frame (so that every segment starts at 0, as the concat
    demuxer assumes; MOV keeps the source's time base exactly and starts at 0 whatever the
    codec's reordering delay); `finish` renames it `<first>-<end>.mov` once written whole.
    Frames are uint8, or uint16 when `deep`; RGBA when `alpha`. (VP8 / VP9 with alpha are
    written as Matroska under the same name: `segment_format`.)"""

    def __init__(self, ffmpeg, parts, first, start_ns, encoding, width, height, sar, colors,
                 time_base, deep=False, alpha=False):
        self.parts, self.first, self.count, self.start_ns = parts, first, 0, start_ns
        self.dtype = np.dtype("<u2" if deep else np.uint8)
        self.partial = os.path.join(parts, f"{first:08d}.partial.mov")
        container = segment_format(encoding.codec, alpha)
        timescale = ["-video_track_timescale", str(time_base.denominator)] \
            if container != "matroska" else []  # Matroska counts in milliseconds
        self.process = subprocess.Popen(
            [ffmpeg, "-v", "error", "-y", "-f", "matroska", "-i", "-", "-map", "0:v:0",
             "-fps_mode", "passthrough", "-copyts", "-enc_time_base",
             f"{time_base.numerator}:{time_base.denominator}",
             *encoding.arguments(width, height, sar, colors), *timescale, "-f",
             container, self.partial],
            stdin=subprocess.PIPE, stderr=subprocess.PIPE)
        self.process.stdin.write(_Matroska.header(width, height, deep, alpha))

    def write(self, time_ns, duration_ns, frame):
        pixels = memoryview(np.ascontiguousarray(frame, self.dtype)).cast("B")
        prefix, suffix = _Matroska.frame_around(time_ns - self.start_ns, duration_ns,
                                                pixels.nbytes)
        self.process.stdin.write(prefix)
        self.process.stdin.write(pixels)
        self.process.stdin.write(suffix)
        self.count += 1

    def finish(self):
        self.process.stdin.close()
        if self.process.wait() != 0:
            raise BrokenPipeError
        end = self.first + self.count
        os.replace(self.partial, os.path.join(self.parts, f"{self.first:08d}-{end:08d}.mov"))
        self.process.stderr.close()

    def abandon(self):
        _stop(self.process)
        for stream in (self.process.stdin, self.process.stderr):
            try:
                stream.close()
            except OSError:
                pass
        if os.path.exists(self.partial):
            os.remove(self.partial)

    def failure(self):
        self.process.wait()
        text = self.process.stderr.read().decode(errors="replace").strip().splitlines()
        return text[-1] if text else f"exit status {self.process.returncode}"


class _Writer:
    """The encoding side on a thread of its own: upscaled frames wait in a bounded queue
    (`QUEUE_FRAMES`) while `write_frame(index, frame)` times and encodes each (quantizing a
    float frame first), so that the model's thread does not wait on ffmpeg. An error on the
    writer's thread is raised on the model's at its next `put` or at `close`."""

    def __init__(self, write_frame):
        self.write_frame, self.error = write_frame, None
        self.queue = queue.Queue(QUEUE_FRAMES)
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self):
        while (item := self.queue.get()) is not None:
            if self.error is None:  # after an error, frames are only taken off the queue
                try:
                    self.write_frame(*item)
                except BaseException as error:  # noqa: BLE001 - raised on the model's thread
                    self.error = error

    def put(self, index, frame):
        self._raise()
        self.queue.put((index, frame))

    def close(self, raise_error=True):
        """Waits until every frame put is written (or the writer failed)."""
        if self.thread.is_alive():
            self.queue.put(None)
            while self.thread.is_alive():  # a join that Ctrl-C can interrupt
                self.thread.join(timeout=0.2)
        if raise_error:
            self._raise()

    def _raise(self):
        if self.error is not None:
            raise self.error


def _stop(process):
    if process.poll() is None:
        process.kill()
    process.wait()


# --- resuming ------------------------------------------------------------------------------

def parts_folder(target):
    return target + ".parts"


def _segments(parts):
    """[(first, end, file)] of the complete segments that follow on from frame 0."""
    found = sorted((int(match.group(1)), int(match.group(2)), name)
                   for name in os.listdir(parts)
                   if (match := re.fullmatch(r"(\d{8})-(\d{8})\.mov", name)))
    chain, expected = [], 0
    for first, end, name in found:
        if first != expected:
            break
        chain.append((first, end, name))
        expected = end
    return chain


def _prepare_parts(target, state, resume, log):
    """The run's parts folder with what a resumed run keeps; the frames already done."""
    parts = parts_folder(target)
    if os.path.isdir(parts):
        try:
            with open(os.path.join(parts, STATE_FILE)) as file:
                saved = json.load(file)
        except (OSError, ValueError):
            saved = None
        complete = _segments(parts) if saved else []
        done = complete[-1][1] if complete else 0
        if not resume:
            raise VideoError(f"{parts} holds an interrupted run of this video ({done} frames "
                             "done): pass --resume to continue it, or delete the folder to "
                             "start over")
        if saved != state:
            differing = sorted(key for key in set(state) | set(saved or {})
                               if (saved or {}).get(key) != state.get(key))
            raise VideoError(f"{parts} was written with other settings ({', '.join(differing)}"
                             f" differ); run again with the same ones, or delete the folder")
        kept = {name for _, _, name in complete} | {STATE_FILE}
        for name in os.listdir(parts):
            if name not in kept:
                os.remove(os.path.join(parts, name))
        if done:
            log(f"{target}: resuming after frame {done} ({len(kept) - 1} segments kept)")
        return parts, done
    os.makedirs(parts)
    with open(os.path.join(parts, STATE_FILE), "w") as file:
        json.dump(state, file, indent=1, sort_keys=True)
    return parts, 0


def _source_state(source, encoding, settings, segment_frames):
    status = os.stat(source)
    return {"source": os.path.abspath(source), "source_bytes": status.st_size,
            "source_mtime_ns": status.st_mtime_ns, "codec": encoding.codec,
            "crf": encoding.crf, "pix_fmt": encoding.pix_fmt,
            "segment_frames": segment_frames, **(settings or {})}


# --- muxing --------------------------------------------------------------------------------

def _ticks(seconds, per_second):
    """`seconds` (a Fraction) in whole ticks, rounded as ffmpeg rounds a time to another time
    base: to nearest, halves away from zero (times here are not negative)."""
    return math.floor(seconds * per_second + Fraction(1, 2))


def _source_metadata(audio, subtitles, attachments=0):
    """ffmpeg's options that give the output the source's title, dates and tags, its
    chapters, and each stream's language and title (the segments have none of them; a
    mapping of one stream's turns off ffmpeg's own copying for all, so each is mapped), for
    `audio` and `subtitles` streams mapped after the video in the source's order, and
    `attachments` attached files (whose file name and type are such tags)."""
    streams = [("v", 0)] + [("a", index) for index in range(audio)] \
        + [("s", index) for index in range(subtitles)] \
        + [("t", index) for index in range(attachments)]
    return ["-map_metadata", "1", "-map_chapters", "1",
            *[option for kind, index in streams
              for option in (f"-map_metadata:s:{kind}:{index}",
                             f"1:s:{'V' if kind == 'v' else kind}:{index}")],
            "-metadata:s:v:0", "encoder=", "-disposition:v:0", "default"]


# The containers that hold pictures attached to the file as ffmpeg writes them (MP4 and MOV
# as cover art, Matroska as attached files), and the one that holds other attached files.
COVER_CONTAINERS = (".mp4", ".m4v", ".mov", ".mkv")
COVER_TYPES = {"mjpeg": ("jpg", "image/jpeg"), "png": ("png", "image/png"),
               "bmp": ("bmp", "image/bmp"), "webp": ("webp", "image/webp")}


def _attached(ffmpeg, parts, source, info, target, log):
    """ffmpeg's options that carry the source's attached pictures (cover art) and attached
    files (fonts) into `target` where its container holds them (one line says what is
    dropped). ffmpeg writes a cover into Matroska as a one-frame video track, not as the
    attached file it was: there each is copied out into `parts` and attached."""
    extension = os.path.splitext(target)[1].lower()
    options, dropped = [], []
    if info.attachments and extension == ".mkv":
        options += ["-map", "1:t"]
    elif info.attachments:
        dropped.append(f"{info.attachments} attached files (fonts, ...)")
    if info.covers and extension == ".mkv":
        attached = info.attachments
        for index, (stream, codec) in enumerate(info.covers):
            suffix, mimetype = COVER_TYPES.get(codec, ("bin", "application/octet-stream"))
            name = f"cover.{suffix}" if index == 0 else f"cover{index + 1}.{suffix}"
            path = os.path.join(parts, name)
            copied = subprocess.run(
                [ffmpeg, "-v", "error", "-y", "-i", source, "-map", f"0:v:{stream}",
                 "-c", "copy", "-frames:v", "1", "-f", "image2", path],
                capture_output=True, stdin=subprocess.DEVNULL)
            if copied.returncode != 0:
                dropped.append(f"cover {name}")
                continue
            options += ["-attach", path, f"-metadata:s:t:{attached}", f"mimetype={mimetype}",
                        f"-metadata:s:t:{attached}", f"filename={name}"]
            attached += 1
    elif info.covers and extension in COVER_CONTAINERS:
        options += ["-map", "1:v", "-map", "-1:V"]
    elif info.covers:
        dropped.append(f"{len(info.covers)} cover pictures")
    if dropped:
        log(f"{target}: {extension or 'this container'} cannot hold the source's "
            f"{' and '.join(dropped)}: dropped")
    return options


def _mux(ffmpeg, parts, segments, boundaries, start, source, info, target, log,
         alpha_mode=False):
    """`target`: the segments' video one after another (ffmpeg's concat demuxer; each
    segment's duration is given to the microsecond so that every timestamp lands back
    exactly on the source's), the source's audio and subtitles, copied when the container
    holds their codecs, else in its default codecs (one line says so). `alpha_mode`: the
    video is VP8 / VP9 with alpha, which the stream must say (the source's tags replace the
    segments')."""
    listing = os.path.join(parts, "segments.ffconcat")
    with open(listing, "w") as file:
        file.write("ffconcat version 1.0\n")
        for (first, end, name) in segments:
            duration = _ticks(boundaries[end], 10**6) - _ticks(boundaries[first], 10**6)
            file.write(f"file '{name}'\nduration {duration}us\n")
    stem, extension = os.path.splitext(target)
    partial = f"{stem}.partial{extension}"
    offset = ["-itsoffset", f"{float(start):.6f}"] if start else []
    text = TEXT_SUBTITLES.get(extension.lower())
    extras = _attached(ffmpeg, parts, source, info, target, log)
    attempts = [("copy", "copy", None),
                (None, text, "the container cannot hold the source's audio or subtitle codec: "
                             "re-encoded into its default codecs"),
                (None, None, "the container cannot hold the source's subtitles: dropped")]
    try:
        for audio, subtitles, note in attempts:
            streams = ["-map", "1:a?"] + (["-map", "1:s?"] if subtitles else [])
            codecs = (["-c:a", audio] if audio else []) + (["-c:s", subtitles]
                                                          if subtitles else [])
            metadata = _source_metadata(info.audio, info.subtitles if subtitles else 0,
                                        info.attachments if "1:t" in extras else 0) \
                + (["-metadata:s:v:0", "alpha_mode=1"] if alpha_mode else [])
            result = subprocess.run(
                [ffmpeg, "-v", "error", "-y", "-f", "concat", "-safe", "0", *offset, "-i",
                 listing, "-i", source, "-map", "0:v:0", *streams, *extras, "-c:v", "copy",
                 *codecs, *metadata, partial], capture_output=True, stdin=subprocess.DEVNULL)
            if result.returncode == 0:
                if note:
                    log(f"{target}: {note}")
                os.replace(partial, target)
                return
        lines = result.stderr.decode(errors="replace").strip().splitlines()
        raise VideoError(f"{target}: writing the video failed: "
                         f"{lines[-1] if lines else result.returncode}")
    finally:
        if os.path.exists(partial):
            os.remove(partial)


# --- the whole ---------------------------------------------------------------------------

def upscale_video(source, target, upscale_frames, scale, codec=None, crf=None, pix_fmt=None,
                  progress=None, ffmpeg=None, *, settings=None, resume=False, batch=1,
                  segment_seconds=SEGMENT_SECONDS, log=print):
    """Writes `target`: every frame of `source` through `upscale_frames` (a list of (H, W, C)
    frames, at most `batch` -> the list of their (sH, sW, C) results; `scale` the ratio of
    sizes), each at its source timestamp, encoded with `codec` (default H.264, CRF 18,
    yuv420p; VP9 for .webm), then the source's audio and subtitle streams added.

    Frames are RGB, or RGBA when the source has alpha and the encoding keeps it (by default
    in .webm / .mkv / .mov: `ALPHA_CODECS`; else one line says it is dropped); uint8, or
    uint16 (65535 for white) when the source or `pix_fmt` is deeper than 8 bits ("deep": a
    10-bit source then defaults to `DEEP_PIX_FMT`, and one line says so); results come back
    in the frames' dtype, or float in [0, 1], which the writer's thread quantizes at four
    times the bytes in its queue (another integer depth is converted).

    `settings`: what else decides the frames (model, tiles, precision), kept with the parts
    so that `resume=True` continues only a run made the same way. `progress(done, total)`
    after each frame written (on the writer's thread). Returns the number of frames. On
    failure or interruption the frames already upscaled are written, the complete segments
    stay in `<target>.parts` (for `resume`) and no ffmpeg process is left.
    """
    ffmpeg = ffmpeg or ffmpeg_executable()
    if os.path.abspath(source) == os.path.abspath(target):
        raise VideoError(f"{source}: the output would overwrite the input")
    info = probe(source, ffmpeg)
    out_width, out_height = round(info.width * scale), round(info.height * scale)
    encoding = encoding_for(target, codec, crf, pix_fmt, info.depth, ffmpeg, info.alpha)
    deep = max(info.depth, pixel_depth(encoding.pix_fmt, ffmpeg)) > 8
    alpha = info.alpha and has_alpha(encoding.pix_fmt, ffmpeg)
    levels, channels = np.dtype(np.uint16 if deep else np.uint8), 4 if alpha else 3
    check_encoding(ffmpeg, encoding, target, out_width, out_height, info.sar, info.colors,
                   alpha)
    segment_frames = max(1, math.ceil(segment_seconds * float(info.rate)))
    parts, done = _prepare_parts(target, _source_state(source, encoding, settings,
                                                       segment_frames), resume, log)
    if info.interlaced:
        log(f"{source}: interlaced: each frame deinterlaced (bwdif) before the model")
    if info.depth > 8 and pix_fmt is None:
        log(f"{source}: {info.depth}-bit source: upscaled in 16-bit levels and encoded as "
            f"{encoding.pix_fmt}" + ("" if alpha else " (--pix-fmt yuv420p for 8-bit)"))
    if info.alpha and not alpha:
        log(f"{source}: its alpha channel is dropped: {encoding.codec} / {encoding.pix_fmt} "
            f"holds none (.webm, .mkv and .mov keep it by default)")
    elif alpha and pix_fmt is None:
        log(f"{source}: has an alpha channel: kept, encoded with {encoding.codec} / "
            f"{encoding.pix_fmt}")
    decoder = _Decoder(ffmpeg, source, info.width, info.height, info.rate, info.colors,
                       info.interlaced, deep, alpha, info.alpha_decoder)
    boundaries, pending, total = {}, [], 0
    state = {"segment": None, "first_pts": None}

    def encoding_failed(segment):
        raise VideoError(f"{target}: encoding with {encoding.codec} / {encoding.pix_fmt} "
                         f"failed: {segment.failure()}") from None

    def finish_segment():
        try:
            state["segment"].finish()
        except BrokenPipeError:
            encoding_failed(state["segment"])
        state["segment"] = None

    def write_frame(index, result):
        """On the writer's thread: one upscaled frame quantized, timed and encoded."""
        if np.issubdtype(result.dtype, np.floating):
            result = quantize(result, levels)
        elif result.dtype in (np.uint8, np.uint16) and result.dtype != levels:
            result = quantize(result / np.float32(np.iinfo(result.dtype).max), levels)
        if result.shape != (out_height, out_width, channels) or result.dtype != levels:
            raise VideoError(f"{source}: a frame came back {result.shape} {result.dtype}, "
                             f"not ({out_height}, {out_width}, {channels}) {levels}")
        pts, duration = decoder.time_of(index)
        time_ns = _ticks(pts - state["first_pts"], 10**9)
        segment = state["segment"]
        if segment is None:
            segment = state["segment"] = _SegmentEncoder(
                ffmpeg, parts, index, time_ns, encoding, out_width, out_height, info.sar,
                info.colors, decoder.time_base, deep, alpha)
        try:
            segment.write(time_ns, _ticks(duration, 10**9), result)
        except BrokenPipeError:
            encoding_failed(segment)
        if segment.count == segment_frames:
            finish_segment()
        if progress:
            progress(index + 1, info.frames)

    writer = _Writer(write_frame)

    def flush():
        results = upscale_frames([frame for _, frame in pending])
        for (index, _), result in zip(pending, results):
            writer.put(index, result)
        pending.clear()

    try:
        for index, frame in decoder:
            if index == 0:
                state["first_pts"] = decoder.time_of(0)[0]
            if index % segment_frames == 0:
                boundaries[index] = decoder.time_of(index)[0] - state["first_pts"]
            total = index + 1
            if index < done:
                continue
            pending.append((index, frame))
            if len(pending) == batch:
                flush()
        if pending:
            flush()
        writer.close()
        decoder.finish()
        if total < done:
            raise VideoError(f"{source}: has {total} frames, fewer than the {done} the "
                             f"interrupted run in {parts} had done; delete that folder")
        if state["segment"] is not None:
            finish_segment()
        last_pts, last_duration = decoder.time_of(total - 1)
        boundaries[total] = last_pts + last_duration - state["first_pts"]
        _mux(ffmpeg, parts, _segments(parts), boundaries, state["first_pts"], source, info,
             target, log, alpha and segment_format(encoding.codec, alpha) == "matroska")
        shutil.rmtree(parts)
        return total
    except BaseException:
        # The frames already upscaled are written first (complete segments are kept), unless
        # the writer itself failed; then the unfinished segment is thrown away.
        writer.close(raise_error=False)
        if state["segment"] is not None:
            state["segment"].abandon()
        kept = _segments(parts)
        if kept:
            log(f"{target}: stopped; {kept[-1][1]} frames are kept in {parts} (run again with "
                "--resume to continue)")
        else:
            shutil.rmtree(parts, ignore_errors=True)
        raise
    finally:
        decoder.close()
