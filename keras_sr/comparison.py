"""Side-by-side comparison sheets: full views and a zoomed crop, each panel labelled."""

import numpy as np
from PIL import Image, ImageDraw

LABEL_HEIGHT = 18
GAP = 4


def most_detailed_window(image, window_height, window_width):
    """Top-left corner of the window with the most gradient energy (where SR differences show)."""
    gray = image.astype(np.float64)
    if gray.ndim == 3:
        gray = gray.mean(axis=-1)
    energy = np.zeros_like(gray)
    energy[:, 1:] += np.abs(np.diff(gray, axis=1))
    energy[1:, :] += np.abs(np.diff(gray, axis=0))
    integral = np.pad(energy.cumsum(0).cumsum(1), ((1, 0), (1, 0)))
    sums = (integral[window_height:, window_width:] - integral[:-window_height, window_width:]
            - integral[window_height:, :-window_width] + integral[:-window_height, :-window_width])
    top, left = np.unravel_index(np.argmax(sums), sums.shape)
    return int(top), int(left)


def _as_rgb(image):
    image = np.asarray(image, dtype=np.uint8)
    return np.repeat(image[..., None], 3, axis=-1) if image.ndim == 2 else image


def comparison_sheet(panels, panel_width=256, zoom_fraction=0.25, title=None):
    """A uint8 RGB sheet: one column per `(label, image)` panel, full view above, zoom below,
    under an optional `title` line (which image, which model).

    All images must share one size (upscale LR before passing it). Every panel is drawn
    `panel_width` pixels wide: larger images are reduced (Lanczos), smaller ones enlarged with
    nearest-neighbour so a small image stays readable and its pixels honest. The zoomed crop
    covers `zoom_fraction` of each side, at the most detailed place of the last panel (the HR
    image), enlarged with nearest-neighbour so single pixels stay visible.
    """
    images = [_as_rgb(image) for _, image in panels]
    height, width = images[0].shape[:2]
    if any(image.shape[:2] != (height, width) for image in images):
        raise ValueError(f"comparison panels differ in size: {[i.shape for i in images]}")
    display_width = panel_width
    display_height = max(1, round(height * display_width / width))
    crop_height = max(1, int(height * zoom_fraction))
    crop_width = max(1, int(width * zoom_fraction))
    top, left = most_detailed_window(images[-1], crop_height, crop_width)
    reduce = Image.LANCZOS if width > display_width else Image.NEAREST

    header = LABEL_HEIGHT if title else 0
    column_height = header + LABEL_HEIGHT + 2 * display_height + GAP
    sheet = Image.new("RGB", (len(panels) * (display_width + GAP) - GAP, column_height), "white")
    draw = ImageDraw.Draw(sheet)
    if title:
        draw.text((2, 2), title, fill="black")
    for index, ((label, _), image) in enumerate(zip(panels, images)):
        x, y = index * (display_width + GAP), header + LABEL_HEIGHT
        draw.text((x + 2, header + 2), label, fill="black")
        full = Image.fromarray(image).resize((display_width, display_height), reduce)
        crop = image[top: top + crop_height, left: left + crop_width]
        zoom = Image.fromarray(crop).resize((display_width, display_height), Image.NEAREST)
        sheet.paste(full, (x, y))
        sheet.paste(zoom, (x, y + display_height + GAP))
        # Mark the zoomed region on the full view.
        ratio = display_width / width
        draw.rectangle([x + left * ratio, y + top * ratio, x + (left + crop_width) * ratio,
                        y + (top + crop_height) * ratio], outline="red")
    return np.asarray(sheet)
