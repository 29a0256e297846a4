"""One stored image -> one uint8 (C, size, size) tensor, the same way for every file-backed dataset.

Folders, ZIP archives and Hugging Face datasets hold images as people save them: RGBA and LA PNGs,
palette images with a transparent colour, 16-bit greyscale, JPEGs, animated GIFs. `decode` handles each
on purpose: the first frame; 16-bit grey scaled to 8 bits (PIL's convert would clip it to white);
transparent pixels composited onto a background colour (PIL's convert would drop alpha and keep
whatever colour the transparent pixels stored, often black); then grey or RGB; the short side resized
to `size` (bicubic) and the centre square cropped. `scan` reads only the headers, to count each kind.
"""

from __future__ import annotations

import os
from collections import Counter
from typing import IO, Any, Iterable, NamedTuple, Sequence, Union

import numpy as np
import torch
from torch import Tensor

from ganrun.errors import DataError

Source = Union[str, os.PathLike, IO[bytes]]  # what PIL's Image.open takes
Background = Union[str, int, Sequence[int]]  # the `dataset.background` key

ALPHA_MODES = {"RGBA", "LA", "PA", "RGBa", "La"}
GREY_MODES = {"1", "L", "LA", "La", "I", "I;16", "I;16B", "I;16L", "I;16N", "F"}
WIDE_GREY = {"I", "I;16", "I;16B", "I;16L", "I;16N"}  # 16-bit greyscale PNG / TIFF (PIL opens some as I)


def parse_background(value: Any) -> tuple[int, int, int]:
    """`dataset.background` as (r, g, b): a colour name PIL knows or "#rrggbb", a grey level 0-255, or [r, g, b]."""
    from PIL import ImageColor

    fix = "use a colour name (white, black, gray, ...), \"#rrggbb\", a grey level 0-255 or [r,g,b]"
    if isinstance(value, bool):
        raise DataError(f"dataset.background={value!r}: {fix}")
    if isinstance(value, int):
        rgb: Sequence[Any] = (value, value, value)
    elif isinstance(value, str):
        try:
            rgb = ImageColor.getrgb(value.strip())[:3]
        except ValueError:
            raise DataError(f"dataset.background={value!r} is not a colour PIL knows: {fix}") from None
    else:
        rgb = list(value) if isinstance(value, Iterable) else []
    if len(rgb) != 3 or not all(isinstance(v, int) and not isinstance(v, bool) and 0 <= v <= 255 for v in rgb):
        raise DataError(f"dataset.background={value!r}: {fix}")
    return int(rgb[0]), int(rgb[1]), int(rgb[2])


def _transparent(im: Any) -> bool:
    return im.mode in ALPHA_MODES or "transparency" in im.info


def kind_of(im: Any) -> str:
    """How an opened image is stored, for the start-of-run count: "PNG RGBA", "GIF P+transparency"."""
    extra = "+transparency" if "transparency" in im.info and im.mode not in ALPHA_MODES else ""
    return f"{im.format or 'image'} {im.mode}{extra}"


def channels_of(im: Any) -> int:
    """1 for greyscale storage (with or without alpha), else 3."""
    return 1 if im.mode in GREY_MODES else 3


def flatten(im: Any, mode: str, background: tuple[int, int, int]) -> Any:
    """An opened image (first frame) as `mode` ("L" or "RGB"), transparency composited onto `background`."""
    from PIL import Image

    if im.mode in WIDE_GREY:  # 0..65535 -> 0..255 (convert("L") would clip everything above 255 to white)
        wide = np.asarray(im, dtype=np.float64)
        im = Image.fromarray(np.clip(np.round(wide / 257.0), 0, 255).astype(np.uint8), "L")
    elif _transparent(im):
        under = Image.new("RGBA", im.size, (*background, 255))
        im = Image.alpha_composite(under, im.convert("RGBA"))
    return im.convert(mode)


def resize_crop(im: Any, size: int) -> Any:
    """Resize the short side to `size` (bicubic), then crop the centre square."""
    from PIL import Image

    scale = size / min(im.size)
    w, h = max(size, round(im.size[0] * scale)), max(size, round(im.size[1] * scale))
    im = im.resize((w, h), Image.BICUBIC)
    left, top = (w - size) // 2, (h - size) // 2
    return im.crop((left, top, left + size, top + size))


def decode(source: Source, size: int, mode: str, background: tuple[int, int, int]) -> Tensor:
    """A stored image (a path or a binary file object) -> uint8 (C, size, size): open, composite, convert,
    resize and crop (see the module docstring)."""
    from PIL import Image

    with Image.open(source) as im:  # a GIF / APNG opens on its first frame
        im = resize_crop(flatten(im, mode, background), size)
        arr = np.asarray(im, dtype=np.uint8).reshape(size, size, -1)
    return torch.from_numpy(arr.copy()).permute(2, 0, 1)  # (C, size, size)


class Scan(NamedTuple):
    items: list[Any]  # the readable ones, in the order given
    kinds: Counter[str]  # "PNG RGBA" -> how many
    channels: int  # as asked, or for 0: 3 when any readable image is in colour, else 1
    skipped: list[str]  # the unreadable ones: "name (why)"
    transparent: int  # images with an alpha band or a transparent colour


def _inspect(source: Source) -> tuple[str, bool, int] | str:
    """(kind, transparent, channels) of a stored image after decoding all of it (a truncated or corrupt file
    fails here, at the scan, not in a DataLoader worker mid-run), or why it cannot be read."""
    from PIL import Image

    try:
        with Image.open(source) as im:
            about = (kind_of(im), _transparent(im), channels_of(im))
            im.load()  # every pixel: a file cut short raises now
        return about
    except Exception as e:  # noqa: BLE001 - PIL refuses files in many ways (OSError, SyntaxError, ValueError, ...)
        return (str(e).strip().splitlines() or [type(e).__name__])[0][:120]


def scan(entries: Iterable[tuple[Any, Source]], channels: int, threads: int = 4) -> Scan:
    """Decode each (item, source) once, keeping the readable items (in order), counting each kind and naming
    the unreadable ones. Threads decode in parallel (PIL releases the GIL while decoding)."""
    from concurrent.futures import ThreadPoolExecutor
    from itertools import islice

    def decoded() -> Iterable[tuple[Any, tuple[str, bool, int] | str]]:
        stream = iter(entries)
        with ThreadPoolExecutor(max(1, threads)) as pool:
            while chunk := list(islice(stream, 256)):  # a chunk at a time: an HF set's bytes are never all in memory
                yield from zip((item for item, _ in chunk), pool.map(lambda entry: _inspect(entry[1]), chunk))

    kept, kinds, bad, transparent, widest = [], Counter(), [], 0, 1
    for item, result in decoded():
        if isinstance(result, str):
            bad.append(f"{_name(item)} ({result})")
            continue
        kind, clear, depth = result
        kinds[kind] += 1
        transparent += clear
        widest = max(widest, depth)
        kept.append(item)
    return Scan(kept, kinds, channels or widest, bad, transparent)  # 0: RGB when any image is in colour


def _name(item: Any) -> str:
    """How a skipped item is named in the log: a path's name, a ZIP member, an HF row number."""
    return f"row {item}" if isinstance(item, int) else str(item)


def summary(found: Scan, background: Any) -> str:
    """The kinds, most common first: "80 PNG RGBA, 30 JPEG RGB (transparent pixels composited on white)"."""
    text = ", ".join(f"{n} {kind}" for kind, n in sorted(found.kinds.items(), key=lambda kv: (-kv[1], kv[0])))
    return text + (f" (transparent pixels composited on {background})" if found.transparent else "")
