"""What every command checks before it starts working: its numeric options (argparse types that
refuse a bad value with the option named) and its outputs (planned up front: folders creatable
and writable, no two inputs writing the same file, an existing file kept unless asked).

A command that finds a problem here stops before any model is loaded or file written.
"""

import argparse
import os
import tempfile

# zlib's level for PNG output, 0 (none) to 9. Level 1 is OpenCV's default (what Real-ESRGAN's
# scripts write with); Pillow's and zlib's default, 6, took 2.9-4.5x as long for files 12-20%
# smaller: 190-384 against 66-92 ms for the bundled photos at 1704 x 960
# (`benchmarks.png_compression`, AMD EPYC Zen 5), where realesr-animevideov3 made such a frame
# in ~210 ms in bfloat16.
DEFAULT_PNG_COMPRESSION = 1
PNG_COMPRESSION_LEVELS = range(10)
# JPEG's quality when --quality is not given: OpenCV's default, which Real-ESRGAN writes with.
DEFAULT_JPEG_QUALITY = 95
# WebP without --quality is lossless, as OpenCV's imwrite (and so Real-ESRGAN's scripts) and
# realesrgan-ncnn-vulkan write it; at libwebp's method 1 and effort 10, where OpenCV's 4 and 70
# took 2.3-2.6x as long for files 0-7% smaller: 203-227 against 476-560 ms for the bundled
# photos at 1704 x 960 (`benchmarks.png_compression --webp`, AMD EPYC Zen 5).
WEBP_LOSSLESS = {"method": 1, "quality": 10}


def physical_memory_bytes():
    """This machine's memory (ValueError / OSError / AttributeError where sysconf lacks it)."""
    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")


def first_paragraph(text):
    """A docstring's first paragraph on one line: what a command's --help says it does (its
    first line alone can stop mid-sentence)."""
    return " ".join(text.split("\n\n")[0].split())


def int_at_least(minimum, *, or_zero=False, most=None):
    """An argparse type: an integer >= `minimum` (or exactly 0 when `or_zero`), and <= `most`
    where given."""
    def parse(text):
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None
        if value < minimum and not (or_zero and value == 0):
            raise argparse.ArgumentTypeError(
                f"{value} is too small: at least {minimum}" + (" (or 0)" if or_zero else ""))
        if most is not None and value > most:
            raise argparse.ArgumentTypeError(f"{value} is too large: at most {most}")
        return value
    parse.__name__ = "integer"
    return parse


def float_in(low, high, *, low_open=True):
    """An argparse type: a finite number in (`low`, `high`] (or [`low`, `high`])."""
    def parse(text):
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
        if not (low < value if low_open else low <= value) or not value <= high:
            bracket = "(" if low_open else "["
            raise argparse.ArgumentTypeError(f"{value:g} is outside {bracket}{low:g}, {high:g}]")
        return value
    parse.__name__ = "number"
    return parse


class OutputError(ValueError):
    """An output that cannot be written as asked; the message names it."""


def writable_directory(path, what="output folder"):
    """Checks that `path` is (or can be made as) a folder this process can write into, without
    leaving anything behind; raises OutputError naming it."""
    path = os.path.abspath(os.fspath(path))
    existing = path
    while not os.path.exists(existing):
        parent = os.path.dirname(existing)
        if parent == existing:
            break
        existing = parent
    if not os.path.isdir(existing):
        raise OutputError(f"{what} {path}: {existing} is a file, not a folder")
    if existing == path:
        try:
            tempfile.TemporaryFile(dir=path).close()
        except OSError as error:
            raise OutputError(f"{what} {path} is not writable: {error.strerror}") from None
    elif not os.access(existing, os.W_OK | os.X_OK):
        raise OutputError(f"{what} {path} cannot be created: {existing} is not writable")


def writable_file(path, overwrite=False, what="output"):
    """Checks that `path` can be written: its folder writable, not a folder itself, and absent
    unless `overwrite`; raises OutputError (FileExistsError for an existing file)."""
    path = os.fspath(path)
    if os.path.isdir(path):
        raise OutputError(f"{what} {path} is a folder; give a file name")
    if os.path.exists(path) and not overwrite:
        raise FileExistsError(f"{what} {path} exists; pass --overwrite to replace it")
    writable_directory(os.path.dirname(os.path.abspath(path)), what=f"the folder of {what}")


def refuse_collisions(targets, hint=""):
    """`targets`: (source, output path) pairs. Raises OutputError naming the first two sources
    that would write the same file (a run never overwrites its own output)."""
    seen = {}
    for source, target in targets:
        key = os.path.normcase(os.path.abspath(target))
        if key in seen:
            raise OutputError(f"{seen[key]} and {source} would both be written to {target}"
                              + (f"; {hint}" if hint else ""))
        seen[key] = source
