#!/usr/bin/env python3
"""Pillow's pixels, recorded for robovlm's pixel tests (`crates/pixels/tests/pillow_sweep.rs`).

Writes, under `fixtures/pixels/` (or `--out`):

* `resize_sweep.tsv` - for more than 2,000 (w, h) -> (W, H) combinations, a hash of
  `Image.resize((W, H), BICUBIC)` applied to a synthetic RGB image. The image is a formula
  (`source_pixels` below, mirrored in the Rust test), so no input files are needed.
* `decode/` - small image files in many encodings (JPEG: 4:4:4, 4:2:2, 4:2:0, 4:4:0, 4:1:1,
  progressive, restart markers, grayscale, CMYK, YCCK, Adobe RGB, EXIF orientation, truncated;
  PNG: every colour type and bit depth, palettes with and without transparency, interlaced,
  16-bit; BMP; WebP; GIF), and `decode.tsv`: for each file, what
  `Image.open(f).convert("RGB")` returns (size and a hash of the bytes) or that Pillow refuses it.

Run it with the pinned Pillow (the version the fixtures README names):

    python3 -m venv tools/.venv && tools/.venv/bin/pip install pillow==13.0.0 numpy
    tools/.venv/bin/python tools/pixels_reference.py

Everything is deterministic (fixed seeds), so re-running rewrites identical files.
"""

from __future__ import annotations

import argparse
import hashlib
import io
import random
import struct
import zlib
from pathlib import Path

import numpy as np
import PIL
from PIL import Image, features

PILLOW = "13.0.0"
M32 = 0xFFFFFFFF
TARGETS = [56, 70, 224, 448, 896]


# --------------------------------------------------------------------------------------------
# Resize sweep
# --------------------------------------------------------------------------------------------


def source_pixels(w: int, h: int) -> np.ndarray:
    """The synthetic `[h, w, 3]` uint8 input; the Rust test computes the same formula.

    16x16 tiles alternate between hashed noise (every level, hard edges: exercises rounding and
    clamping) and a smooth ramp (exercises the kernel's interpolation).
    """
    y, x, c = np.meshgrid(
        np.arange(h, dtype=np.uint64), np.arange(w, dtype=np.uint64), np.arange(3, dtype=np.uint64), indexing="ij"
    )
    v = (x * 0x9E3779B1 + y * 0x85EBCA77 + c * 0xC2B2AE3D + w * 0x27D4EB2F + h * 0x165667B1) & M32
    v ^= v >> np.uint64(15)
    v = (v * 0x2C1B3C6D) & M32
    v ^= v >> np.uint64(12)
    noise = v & np.uint64(255)
    smooth = (x * 2 + y * 3 + c * 85) & np.uint64(255)
    tile = ((x >> np.uint64(4)) + (y >> np.uint64(4))) & np.uint64(1)
    return np.where(tile == 0, noise, smooth).astype(np.uint8)


def sweep_combinations() -> list[tuple[int, int, int, int]]:
    """(w, h, W, H) tuples: special sizes, extreme aspect ratios, random sizes in 1..1000."""
    rng = random.Random(14)
    special = [1, 2, 3, 4, 5, 7, 8, 13, 14, 16, 17, 28, 31, 45, 50, 55, 56, 57, 61, 64, 69, 70, 71,
               84, 97, 100, 101, 112, 123, 127, 128, 139, 199, 200, 223, 224, 225, 251, 255, 256, 257,
               300, 301, 333, 383, 447, 448, 449, 479, 480, 509, 512, 600, 640, 720, 767, 768, 800,
               853, 895, 896, 897, 960, 991, 997, 1000]
    primes = [p for p in range(2, 1001) if all(p % d for d in range(2, int(p**0.5) + 1))]
    extreme = [(1, 1000), (2, 997), (3, 1000), (1, 2), (2, 1), (1, 1), (2, 2), (17, 301), (50, 200),
               (28, 84), (64, 100), (2, 97), (45, 123), (5, 997), (13, 877), (1, 56), (1, 896),
               (7, 640), (31, 1000), (100, 997)]
    extreme += [(h, w) for (w, h) in extreme]
    squares = [(t, t) for t in TARGETS]
    mixed = [(56, 70), (70, 56), (224, 56), (56, 224), (896, 70), (70, 896), (448, 224), (224, 448),
             (896, 448), (56, 896)]
    combos: set[tuple[int, int, int, int]] = set()
    for w, h in extreme:
        for t in squares + mixed[:4]:
            combos.add((w, h, *t))
    for w in special:
        for t in squares:
            h = rng.choice(special)
            combos.add((w, h, *t))
            combos.add((h, w, *t))
    for _ in range(1150):
        pick = rng.random()
        if pick < 0.4:
            w, h = rng.randint(1, 1000), rng.randint(1, 1000)
        elif pick < 0.7:
            w, h = rng.choice(primes), rng.choice(primes)
        else:  # log-uniform: many small sizes, strong aspect ratios
            w, h = int(10 ** rng.uniform(0, 3)), int(10 ** rng.uniform(0, 3))
        t = rng.choice(squares) if rng.random() < 0.8 else rng.choice(mixed)
        combos.add((w, h, *t))
    return sorted(combos)


def vertical_first(w: int, h: int, out_w: int, out_h: int) -> bool:
    """Pillow >= 11.2 runs the vertical pass first when it shrinks height much more than width."""
    return (h - out_h) > 0 and (h - out_h) > (w - out_w) * 2


def write_resize_sweep(out: Path) -> None:
    combos = sweep_combinations()
    cache: dict[tuple[int, int], Image.Image] = {}
    lines = []
    for w, h, out_w, out_h in combos:
        if (w, h) not in cache:
            cache.clear()
            cache[(w, h)] = Image.fromarray(source_pixels(w, h), "RGB")
        resized = cache[(w, h)].resize((out_w, out_h), Image.Resampling.BICUBIC)
        digest = hashlib.sha256(resized.tobytes()).hexdigest()[:16]
        lines.append(f"{w}\t{h}\t{out_w}\t{out_h}\t{digest}")
    vfirst = sum(vertical_first(*c) for c in combos)
    up = sum(1 for w, h, ow, oh in combos if ow > w or oh > h)
    down = sum(1 for w, h, ow, oh in combos if ow < w or oh < h)
    header = [
        f"# Pillow {PIL.__version__}: Image.fromarray(source_pixels(w, h)).resize((W, H), BICUBIC)",
        "# source_pixels: tools/pixels_reference.py; hash: first 16 hex digits of sha256(resized RGB bytes)",
        f"# {len(combos)} combinations: {vfirst} vertical-pass-first, {up} upscale an axis, {down} downscale an axis",
        "# w\th\tW\tH\tsha256_16",
    ]
    (out / "resize_sweep.tsv").write_text("\n".join(header + lines) + "\n")
    print(f"resize_sweep.tsv: {len(combos)} combinations ({vfirst} vertical-first)")


# --------------------------------------------------------------------------------------------
# Decode sweep: files
# --------------------------------------------------------------------------------------------

RNG = np.random.default_rng(14)


def photo(w: int, h: int, noise: int = 24) -> np.ndarray:
    """A smooth, camera-like RGB picture with some noise (keeps JPEGs small but non-trivial)."""
    y, x = np.mgrid[0:h, 0:w].astype(np.float64)
    r = 128 + 100 * np.sin(x / 9.0) * np.cos(y / 13.0)
    g = 255 * x / max(w - 1, 1)
    b = 255 * ((x // 8 + y // 8) % 2) * 0.8 + 20
    img = np.stack([r, g, b], -1) + RNG.integers(-noise, noise + 1, (h, w, 3))
    return np.clip(img, 0, 255).astype(np.uint8)


def jpeg(img: Image.Image, **kw) -> bytes:
    b = io.BytesIO()
    img.save(b, "JPEG", **kw)
    return b.getvalue()


def segments(data: bytes):
    """(offset, marker, length) of the marker segments before the first SOS."""
    i = 2
    while i < len(data):
        marker = data[i + 1]
        length = struct.unpack(">H", data[i + 2 : i + 4])[0]
        yield i, marker, length
        if marker == 0xDA:
            return
        i += 2 + length


def patch_sof(data: bytes, width: int, height: int, sampling: list[int]) -> bytes:
    """Rewrites the frame header's size and per-component sampling bytes (h << 4 | v)."""
    out = bytearray(data)
    for off, marker, _ in segments(data):
        if marker in (0xC0, 0xC1, 0xC2):
            struct.pack_into(">HH", out, off + 5, height, width)
            for k, s in enumerate(sampling):
                out[off + 10 + 3 * k + 1] = s
            return bytes(out)
    raise ValueError("no SOF")


def patch_adobe_transform(data: bytes, transform: int) -> bytes:
    out = bytearray(data)
    for off, marker, _ in segments(data):
        if marker == 0xEE and data[off + 4 : off + 9] == b"Adobe":
            out[off + 15] = transform
            return bytes(out)
    raise ValueError("no Adobe segment")


def jpeg_files() -> dict[str, bytes]:
    files: dict[str, bytes] = {}
    sizes = [(1, 1), (2, 2), (7, 5), (8, 8), (9, 9), (15, 17), (16, 16), (17, 31), (33, 17), (61, 97),
             (97, 61), (123, 45), (70, 70), (255, 129)]
    for w, h in sizes:
        img = Image.fromarray(photo(w, h), "RGB")
        for name, ss in (("444", 0), ("422", 1), ("420", 2)):
            files[f"jpeg_{name}_{w}x{h}.jpg"] = jpeg(img, quality=85, subsampling=ss)
            if w * h >= 64:
                files[f"jpeg_{name}_progressive_{w}x{h}.jpg"] = jpeg(
                    img, quality=85, subsampling=ss, progressive=True
                )
    for w, h in [(97, 61), (33, 17), (70, 70)]:
        img = Image.fromarray(photo(w, h), "RGB")
        for name, ss in (("444", 0), ("422", 1), ("420", 2)):
            for q in (10, 50, 100):
                files[f"jpeg_{name}_q{q}_{w}x{h}.jpg"] = jpeg(img, quality=q, subsampling=ss)
            files[f"jpeg_{name}_optimized_{w}x{h}.jpg"] = jpeg(img, quality=90, subsampling=ss, optimize=True)
            files[f"jpeg_{name}_restart_blocks3_{w}x{h}.jpg"] = jpeg(
                img, quality=85, subsampling=ss, restart_marker_blocks=3
            )
            files[f"jpeg_{name}_restart_rows1_{w}x{h}.jpg"] = jpeg(
                img, quality=85, subsampling=ss, restart_marker_rows=1
            )
            files[f"jpeg_{name}_progressive_restart_{w}x{h}.jpg"] = jpeg(
                img, quality=85, subsampling=ss, progressive=True, restart_marker_blocks=2
            )
    # Camera-sized frames, as datasets store them.
    for w, h, ss in [(320, 240, 2), (256, 256, 2), (240, 320, 1), (200, 200, 0)]:
        img = Image.fromarray(photo(w, h, noise=6), "RGB")
        files[f"jpeg_camera_{w}x{h}_ss{ss}.jpg"] = jpeg(img, quality=95, subsampling=ss)
        files[f"jpeg_camera_progressive_{w}x{h}_ss{ss}.jpg"] = jpeg(
            img, quality=75, subsampling=ss, progressive=True
        )
    # Grayscale.
    for w, h in [(1, 1), (9, 9), (97, 61), (70, 70)]:
        img = Image.fromarray(photo(w, h)[..., 1], "L")
        files[f"jpeg_gray_{w}x{h}.jpg"] = jpeg(img, quality=85)
        if w * h >= 64:
            files[f"jpeg_gray_progressive_{w}x{h}.jpg"] = jpeg(img, quality=85, progressive=True)
            files[f"jpeg_gray_restart_{w}x{h}.jpg"] = jpeg(img, quality=85, restart_marker_blocks=1)
    # CMYK (Pillow writes Adobe polarity) and YCCK (same file, Adobe transform 2).
    for w, h in [(9, 9), (61, 97), (70, 70)]:
        a = photo(w, h)
        cmyk = Image.fromarray(np.dstack([a, 255 - a[..., 1]]), "CMYK")
        data = jpeg(cmyk, quality=90)
        files[f"jpeg_cmyk_{w}x{h}.jpg"] = data
        files[f"jpeg_cmyk_progressive_{w}x{h}.jpg"] = jpeg(cmyk, quality=90, progressive=True)
        files[f"jpeg_ycck_{w}x{h}.jpg"] = patch_adobe_transform(data, 2)
    # RGB stored without YCbCr conversion (Adobe transform 0).
    for w, h in [(9, 9), (97, 61)]:
        img = Image.fromarray(photo(w, h), "RGB")
        files[f"jpeg_adobe_rgb_{w}x{h}.jpg"] = jpeg(img, quality=90, keep_rgb=True, subsampling=0)
    # 4:4:0 (Y 1x2) and 4:1:1 (Y 4x1): same entropy-coded blocks, frame header re-declared so
    # the MCU count is unchanged (a valid file with rearranged content).
    for w, h in [(48, 16), (80, 32), (16, 64)]:
        img = Image.fromarray(photo(w, h), "RGB")
        data = jpeg(img, quality=85, subsampling=1)  # 4:2:2: MCU 16x8, Y 2x1
        mcus_x, mcus_y = -(-w // 16), -(-h // 8)
        files[f"jpeg_440_{mcus_y * 8}x{mcus_x * 16}.jpg"] = patch_sof(data, mcus_y * 8, mcus_x * 16, [0x12, 0x11, 0x11])
        data = jpeg(img, quality=85, subsampling=2)  # 4:2:0: MCU 16x16, 4 Y blocks
        mcus = -(-w // 16) * -(-h // 16)
        files[f"jpeg_411_{32 * mcus}x8.jpg"] = patch_sof(data, 32 * mcus, 8, [0x41, 0x11, 0x11])
        files[f"jpeg_440_progressive_{mcus_y * 8}x{mcus_x * 16}.jpg"] = patch_sof(
            jpeg(img, quality=85, subsampling=1, progressive=True), mcus_y * 8, mcus_x * 16, [0x12, 0x11, 0x11]
        )
    # EXIF orientation 6 (rotate 90): Pillow does not apply it on open, and neither do we.
    img = Image.fromarray(photo(40, 24), "RGB")
    exif = Image.Exif()
    exif[0x0112] = 6
    files["jpeg_exif_orientation6_40x24.jpg"] = jpeg(img, quality=85, exif=exif.tobytes())
    # Trailing bytes after EOI are ignored; a missing EOI / cut scan is "truncated" for Pillow.
    base = jpeg(Image.fromarray(photo(64, 48), "RGB"), quality=85)
    files["jpeg_trailing_junk_64x48.jpg"] = base + b"\x00junk after the end-of-image marker"
    files["jpeg_truncated_eoi_64x48.jpg"] = base[:-2]
    files["jpeg_truncated_scan_64x48.jpg"] = base[: len(base) * 2 // 3]
    prog = jpeg(Image.fromarray(photo(64, 48), "RGB"), quality=85, progressive=True)
    files["jpeg_truncated_progressive_64x48.jpg"] = prog[: len(prog) * 2 // 3]
    files["jpeg_header_only.jpg"] = base[:200]
    return files


def png_chunk(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body) & M32)


def pack_row(samples: np.ndarray, depth: int) -> bytes:
    if depth == 16:
        return samples.astype(">u2").tobytes()
    if depth == 8:
        return samples.astype(np.uint8).tobytes()
    bits = np.unpackbits(samples.astype(np.uint8)[:, None], axis=1)[:, 8 - depth :].reshape(-1)
    return np.packbits(bits).tobytes()


ADAM7 = [(0, 0, 8, 8), (4, 0, 8, 8), (0, 4, 4, 8), (2, 0, 4, 4), (0, 2, 2, 4), (1, 0, 2, 2), (0, 1, 1, 2)]


def png_bytes(samples: np.ndarray, color_type: int, depth: int, plte=None, trns=None, interlace=False,
              extra=b"") -> bytes:
    """A PNG from `[h, w, channels]` samples, written by hand (Pillow cannot write 16-bit RGB,
    2/4-bit grey, low-depth palettes or interlaced files)."""
    h, w = samples.shape[:2]
    raw = b""
    passes = ADAM7 if interlace else [(0, 0, 1, 1)]
    for x0, y0, dx, dy in passes:
        sub = samples[y0::dy, x0::dx]
        if sub.size == 0:
            continue
        for row in sub:
            raw += b"\x00" + pack_row(row.reshape(-1), depth)
    out = b"\x89PNG\r\n\x1a\n"
    out += png_chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, depth, color_type, 0, 0, int(interlace)))
    out += extra
    if plte is not None:
        out += png_chunk(b"PLTE", bytes(np.asarray(plte, dtype=np.uint8).reshape(-1)))
    if trns is not None:
        out += png_chunk(b"tRNS", trns)
    out += png_chunk(b"IDAT", zlib.compress(raw, 9))
    return out + png_chunk(b"IEND", b"")


def pil_bytes(img: Image.Image, fmt: str, **kw) -> bytes:
    b = io.BytesIO()
    img.save(b, fmt, **kw)
    return b.getvalue()


def png_files() -> dict[str, bytes]:
    files: dict[str, bytes] = {}
    a = photo(37, 23, noise=60)
    alpha = (np.arange(37 * 23).reshape(23, 37) * 7 % 256).astype(np.uint8)
    files["png_rgb_37x23.png"] = pil_bytes(Image.fromarray(a, "RGB"), "PNG")
    files["png_rgba_37x23.png"] = pil_bytes(Image.fromarray(np.dstack([a, alpha]), "RGBA"), "PNG")
    files["png_l_37x23.png"] = pil_bytes(Image.fromarray(a[..., 0], "L"), "PNG")
    files["png_la_37x23.png"] = pil_bytes(Image.fromarray(np.dstack([a[..., 0], alpha]), "LA"), "PNG")
    files["png_1bit_37x23.png"] = pil_bytes(Image.fromarray(a[..., 1], "L").convert("1"), "PNG")
    pal = Image.fromarray(a, "RGB").quantize(40)
    files["png_p_37x23.png"] = pil_bytes(pal, "PNG")
    files["png_p_transparency_37x23.png"] = pil_bytes(pal, "PNG", transparency=3)
    files["png_p256_37x23.png"] = pil_bytes(Image.fromarray(a, "RGB").quantize(256), "PNG")
    files["png_l_transparency_37x23.png"] = pil_bytes(Image.fromarray(a[..., 0], "L"), "PNG", transparency=7)
    files["png_rgb_transparency_37x23.png"] = pil_bytes(Image.fromarray(a, "RGB"), "PNG", transparency=(1, 2, 3))
    g16 = (a[..., 0].astype(np.uint32) * 257 // 3 + np.arange(37)[None, :]).astype(np.uint16)
    files["png_i16_37x23.png"] = pil_bytes(Image.fromarray(g16), "PNG")
    # Hand-written: 16-bit colour, low bit depths, palettes, tRNS, interlacing, gamma.
    w16 = (a.astype(np.uint32) * 257 + RNG.integers(0, 256, a.shape)).astype(np.uint16)
    a16 = (alpha.astype(np.uint32) * 257 + 100).clip(0, 65535).astype(np.uint16)
    files["png_rgb16_37x23.png"] = png_bytes(w16, 2, 16)
    files["png_rgba16_37x23.png"] = png_bytes(np.dstack([w16, a16]), 6, 16)
    files["png_la16_37x23.png"] = png_bytes(np.dstack([w16[..., 0], a16]), 4, 16)
    files["png_gray16_37x23.png"] = png_bytes(w16[..., :1], 0, 16)
    files["png_gray16_small_values_37x23.png"] = png_bytes((w16[..., :1] >> 8), 0, 16)
    files["png_gray16_trns_37x23.png"] = png_bytes(w16[..., :1], 0, 16, trns=struct.pack(">H", int(w16[0, 0, 0])))
    files["png_rgb16_trns_37x23.png"] = png_bytes(w16, 2, 16, trns=struct.pack(">HHH", *map(int, w16[0, 0])))
    for depth in (1, 2, 4):
        levels = (a[..., :1] >> (8 - depth)).astype(np.uint8)
        files[f"png_gray{depth}_37x23.png"] = png_bytes(levels, 0, depth)
        files[f"png_gray{depth}_trns_37x23.png"] = png_bytes(levels, 0, depth, trns=struct.pack(">H", 1))
        n = 1 << depth
        plte = RNG.integers(0, 256, (n, 3))
        files[f"png_palette{depth}_37x23.png"] = png_bytes(levels, 3, depth, plte=plte)
        files[f"png_palette{depth}_trns_37x23.png"] = png_bytes(levels, 3, depth, plte=plte, trns=bytes([0, 128]))
        files[f"png_gray{depth}_interlaced_37x23.png"] = png_bytes(levels, 0, depth, interlace=True)
    idx = (a[..., :1] % 200).astype(np.uint8)
    plte = RNG.integers(0, 256, (200, 3))
    files["png_palette8_interlaced_37x23.png"] = png_bytes(idx, 3, 8, plte=plte, interlace=True)
    files["png_palette8_trns_37x23.png"] = png_bytes(idx, 3, 8, plte=plte, trns=bytes(range(0, 250, 5)))
    files["png_rgb_interlaced_37x23.png"] = png_bytes(a, 2, 8, interlace=True)
    files["png_rgba16_interlaced_37x23.png"] = png_bytes(np.dstack([w16, a16]), 6, 16, interlace=True)
    files["png_rgb_interlaced_1x1.png"] = png_bytes(a[:1, :1], 2, 8, interlace=True)
    files["png_rgb_interlaced_3x2.png"] = png_bytes(a[:2, :3], 2, 8, interlace=True)
    gama = png_chunk(b"gAMA", struct.pack(">I", 100000))  # gamma 1.0: a viewer would brighten it
    files["png_rgb_gamma_37x23.png"] = png_bytes(a, 2, 8, extra=gama)
    files["png_rgb_1x1.png"] = pil_bytes(Image.fromarray(a[:1, :1], "RGB"), "PNG")
    files["png_rgb_1000x1.png"] = pil_bytes(Image.fromarray(photo(1000, 1), "RGB"), "PNG")
    # Broken files: a cut IDAT, a bad CRC.
    good = files["png_rgb_37x23.png"]
    files["png_truncated_37x23.png"] = good[: len(good) // 2]
    bad = bytearray(good)
    bad[29] ^= 0xFF  # inside IHDR's CRC
    files["png_bad_ihdr_crc_37x23.png"] = bytes(bad)
    return files


def bmp_header(w: int, h: int, bpp: int, compression: int, image: bytes, palette: bytes = b"",
               masks: bytes = b"") -> bytes:
    info = struct.pack("<IiiHHIIiiII", 40, w, h, 1, bpp, compression, len(image), 2835, 2835,
                       len(palette) // 4, 0)
    offset = 14 + len(info) + len(masks) + len(palette)
    return b"BM" + struct.pack("<IHHI", offset + len(image), 0, 0, offset) + info + masks + palette + image


def bmp_rows(rows: list[bytes]) -> bytes:
    return b"".join(r + b"\x00" * (-len(r) % 4) for r in rows)


def bmp_files() -> dict[str, bytes]:
    files: dict[str, bytes] = {}
    a = photo(37, 23, noise=60)
    files["bmp_rgb_37x23.bmp"] = pil_bytes(Image.fromarray(a, "RGB"), "BMP")
    files["bmp_rgba_37x23.bmp"] = pil_bytes(Image.fromarray(np.dstack([a, a[..., 0]]), "RGBA"), "BMP")
    files["bmp_l_37x23.bmp"] = pil_bytes(Image.fromarray(a[..., 1], "L"), "BMP")
    files["bmp_p_37x23.bmp"] = pil_bytes(Image.fromarray(a, "RGB").quantize(50), "BMP")
    files["bmp_1bit_37x23.bmp"] = pil_bytes(Image.fromarray(a[..., 1], "L").convert("1"), "BMP")
    h, w = a.shape[:2]
    bgr_rows = [a[y, :, ::-1].tobytes() for y in range(h)]
    files["bmp_rgb_topdown_37x23.bmp"] = bmp_header(w, -h, 24, 0, bmp_rows(bgr_rows))
    x_rows = [np.dstack([a[y : y + 1, :, ::-1], np.full((1, w, 1), 255, np.uint8)]).tobytes() for y in range(h)]
    files["bmp_bgrx32_37x23.bmp"] = bmp_header(w, h, 32, 0, bmp_rows(x_rows[::-1]))
    r5, g5, b5 = (a[..., 0] >> 3).astype(np.uint16), (a[..., 1] >> 3).astype(np.uint16), (a[..., 2] >> 3).astype(np.uint16)
    p555 = (r5 << 10) | (g5 << 5) | b5
    files["bmp_rgb555_37x23.bmp"] = bmp_header(w, h, 16, 0, bmp_rows([p555[y].astype("<u2").tobytes() for y in range(h)][::-1]))
    g6 = (a[..., 1] >> 2).astype(np.uint16)
    p565 = (r5 << 11) | (g6 << 5) | b5
    masks = struct.pack("<III", 0xF800, 0x07E0, 0x001F)
    files["bmp_rgb565_37x23.bmp"] = bmp_header(w, h, 16, 3, bmp_rows([p565[y].astype("<u2").tobytes() for y in range(h)][::-1]), masks=masks)
    pal16 = bytes(np.concatenate([RNG.integers(0, 256, (16, 3)), np.zeros((16, 1), int)], axis=1).astype(np.uint8).reshape(-1))
    idx4 = (a[..., 0] >> 4).astype(np.uint8)
    rows4 = [np.packbits(np.unpackbits(idx4[y][:, None], axis=1)[:, 4:].reshape(-1)).tobytes() for y in range(h)]
    files["bmp_4bit_37x23.bmp"] = bmp_header(w, h, 4, 0, bmp_rows(rows4[::-1]), palette=pal16)
    # RLE8: each row as runs of 2 (encoded mode), end-of-line, end-of-bitmap.
    pal256 = bytes(np.concatenate([RNG.integers(0, 256, (256, 3)), np.zeros((256, 1), int)], axis=1).astype(np.uint8).reshape(-1))
    idx8 = a[..., 2]
    rle = b""
    for y in range(h - 1, -1, -1):
        for x in range(0, w, 2):
            n = min(2, w - x)
            rle += bytes([n, int(idx8[y, x])])
        rle += b"\x00\x00"
    rle += b"\x00\x01"
    files["bmp_rle8_37x23.bmp"] = bmp_header(w, h, 8, 1, rle, palette=pal256)
    # OS/2 1.x header (12-byte BITMAPCOREHEADER), 24-bit.
    core = struct.pack("<IHHHH", 12, w, h, 1, 24)
    image = bmp_rows(bgr_rows[::-1])
    files["bmp_os2_37x23.bmp"] = b"BM" + struct.pack("<IHHI", 26 + len(image), 0, 0, 26) + core + image
    return files


def webp_files() -> dict[str, bytes]:
    files: dict[str, bytes] = {}
    a = photo(37, 23, noise=60)
    alpha = (np.arange(37 * 23).reshape(23, 37) * 7 % 256).astype(np.uint8)
    rgb, rgba = Image.fromarray(a, "RGB"), Image.fromarray(np.dstack([a, alpha]), "RGBA")
    files["webp_lossless_37x23.webp"] = pil_bytes(rgb, "WEBP", lossless=True)
    files["webp_lossless_alpha_37x23.webp"] = pil_bytes(rgba, "WEBP", lossless=True)
    files["webp_lossless_alpha_exact_37x23.webp"] = pil_bytes(rgba, "WEBP", lossless=True, exact=True)
    files["webp_lossy_37x23.webp"] = pil_bytes(rgb, "WEBP", quality=80)
    files["webp_lossy_alpha_37x23.webp"] = pil_bytes(rgba, "WEBP", quality=80)
    for w, h in [(1, 1), (2, 3), (97, 61), (320, 240)]:
        files[f"webp_lossy_{w}x{h}.webp"] = pil_bytes(Image.fromarray(photo(w, h, noise=8), "RGB"), "WEBP", quality=70)
    frames = [Image.fromarray(photo(30, 20), "RGB"), Image.fromarray(photo(30, 20)[::-1].copy(), "RGB")]
    b = io.BytesIO()
    frames[0].save(b, "WEBP", save_all=True, append_images=frames[1:], duration=100, lossless=True)
    files["webp_animated_30x20.webp"] = b.getvalue()
    return files


def other_files() -> dict[str, bytes]:
    a = photo(37, 23)
    return {
        "gif_37x23.gif": pil_bytes(Image.fromarray(a, "RGB").quantize(64), "GIF"),
        "tiff_37x23.tiff": pil_bytes(Image.fromarray(a, "RGB"), "TIFF"),
        "not_an_image.png": b"this is plain text, not a PNG file\n",
        "empty.jpg": b"",
    }


def write_decode_sweep(out: Path) -> None:
    folder = out / "decode"
    folder.mkdir(parents=True, exist_ok=True)
    for old in folder.iterdir():
        old.unlink()
    files = {**jpeg_files(), **png_files(), **bmp_files(), **webp_files(), **other_files()}
    lines = []
    for name, data in sorted(files.items()):
        (folder / name).write_bytes(data)
        try:
            with Image.open(folder / name) as im:
                mode = im.mode
                rgb = im.convert("RGB")
            row = f"{name}\t{mode}\t{rgb.width}\t{rgb.height}\t{hashlib.sha256(rgb.tobytes()).hexdigest()}"
        except Exception as e:  # noqa: BLE001 - the table records Pillow's refusal
            row = f"{name}\terror\t-\t-\t{type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}"
        lines.append(row)
    header = [
        f"# Pillow {PIL.__version__} (libjpeg-turbo {features.version('libjpeg_turbo')}, "
        f"libwebp {features.version('webp')}): Image.open(f).convert('RGB')",
        "# hash: sha256 of the RGB bytes; 'error' rows: Pillow refuses the file",
        "# file\tmode_on_open\twidth\theight\tsha256_or_error",
    ]
    (out / "decode.tsv").write_text("\n".join(header + lines) + "\n")
    total = sum(len(d) for d in files.values())
    print(f"decode.tsv: {len(files)} files, {total / 1024:.0f} KiB")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", type=Path, default=Path(__file__).resolve().parent.parent / "fixtures" / "pixels")
    ap.add_argument("--only", choices=["resize", "decode"], help="write one of the two tables")
    args = ap.parse_args()
    if PIL.__version__ != PILLOW:
        raise SystemExit(f"Pillow {PILLOW} is pinned (the fixtures' version); found {PIL.__version__}")
    args.out.mkdir(parents=True, exist_ok=True)
    if args.only in (None, "decode"):
        write_decode_sweep(args.out)
    if args.only in (None, "resize"):
        write_resize_sweep(args.out)


if __name__ == "__main__":
    main()
