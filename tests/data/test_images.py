"""load_image on the shipped test images, on real photos, and on the odd formats built from them.

The format conversions (CMYK, palette, alpha, 16-bit, float, EXIF, animations, truncation) run on
a shipped generated JPEG and need no shared archive; the greyscale camera JPEG, the pixel bound on
a real photo and the JPEG draft sizes use real Caltech101 / cars-bmw13 files.
"""
from __future__ import annotations

import io
import struct
import tarfile
import warnings
import zlib

import numpy as np
import pytest
from PIL import Image, ImageChops, ImageFile

from hashseek.data.images import ImageDecodeError, load_image, resize_square, to_normalized_array


@pytest.fixture(scope="module")
def caltech(archive) -> dict[str, bytes]:
    """The first colour and the first greyscale JPEG of Caltech101, as raw bytes."""
    found: dict[str, bytes] = {}
    with tarfile.open(archive("caltech101.tar")) as tar:
        for member in tar:
            if not member.name.endswith(".jpg"):
                continue
            data = tar.extractfile(member).read()
            found.setdefault(Image.open(io.BytesIO(data)).mode, data)
            if "L" in found:
                break
    return found


@pytest.fixture(scope="module")
def cars(archive) -> list[bytes]:
    """A handful of larger real JPEGs (a few hundred px per side)."""
    out = []
    with tarfile.open(archive("cars-bmw13.tar.gz")) as tar:
        for member in tar:
            if member.name.endswith(".jpg"):
                out.append(tar.extractfile(member).read())
            if len(out) == 12:
                break
    return out


@pytest.fixture(scope="module")
def jpeg(image_set) -> bytes:
    """A shipped colour JPEG (240 x 168, shapes over a noisy gradient), as raw bytes."""
    dataset, ids = image_set
    return dataset.read_bytes(ids[1])


@pytest.fixture(scope="module")
def photo(jpeg: bytes) -> Image.Image:
    return Image.open(io.BytesIO(jpeg)).convert("RGB")


def _encode(image: Image.Image, fmt: str, **kwargs) -> bytes:
    buf = io.BytesIO()
    image.save(buf, fmt, **kwargs)
    return buf.getvalue()


def _px(image: Image.Image) -> np.ndarray:
    return np.asarray(image, dtype=np.int16)


def test_path_bytes_and_file_object_give_the_same_loaded_rgb(jpeg, tmp_path):
    data = jpeg
    path = tmp_path / "photo.jpg"
    path.write_bytes(data)
    expected = _px(Image.open(io.BytesIO(data)).convert("RGB"))
    loaded = [load_image(path), load_image(str(path)), load_image(data), load_image(io.BytesIO(data))]
    path.unlink()  # fully loaded: nothing may still read from the file
    for image in loaded:
        assert image.mode == "RGB"
        np.testing.assert_array_equal(_px(image), expected)


def test_greyscale_jpeg_becomes_rgb_with_equal_channels(caltech):
    grey = Image.open(io.BytesIO(caltech["L"]))
    assert grey.mode == "L"
    image = load_image(caltech["L"])
    assert image.mode == "RGB" and image.size == grey.size
    for channel in image.split():
        np.testing.assert_array_equal(_px(channel), _px(grey))


def test_adobe_cmyk_jpeg_is_not_a_negative(photo):
    data = _encode(photo.convert("CMYK"), "JPEG", quality=95)
    assert "adobe" in Image.open(io.BytesIO(data)).info
    diff = np.abs(_px(load_image(data)) - _px(photo)).mean()
    assert diff < 4, diff


def test_plain_cmyk_jpeg_without_adobe_marker_is_read_uninverted(photo):
    # Stored values are plain CMYK; Pillow would read them as Adobe-inverted.
    data = _encode(ImageChops.invert(photo.convert("CMYK")), "JPEG", quality=95)
    assert data[2:4] == b"\xff\xee" and data[6:11] == b"Adobe"
    segment_end = 4 + struct.unpack(">H", data[4:6])[0]
    plain = data[:2] + data[segment_end:]
    assert "adobe" not in Image.open(io.BytesIO(plain)).info
    diff = np.abs(_px(load_image(plain)) - _px(photo)).mean()
    assert diff < 4, diff


def test_palette_png_transparency_is_composited_on_white(photo):
    palette = photo.quantize(colors=32, method=Image.Quantize.FASTOCTREE)
    index = np.asarray(palette)
    key = int(np.bincount(index.ravel()).argmax())
    image = load_image(_encode(palette, "PNG", transparency=key))
    expected = _px(palette.convert("RGB"))
    expected[index == key] = 255
    np.testing.assert_array_equal(_px(image), expected)


@pytest.mark.parametrize("mode", ["RGBA", "LA"])
def test_alpha_is_composited_on_white(photo, mode):
    base = photo.convert(mode[:-1])
    width, height = base.size
    alpha = np.tile(np.linspace(0, 255, width).round().astype(np.uint8), (height, 1))
    layered = base.copy()
    layered.putalpha(Image.fromarray(alpha))
    assert layered.mode == mode
    image = load_image(_encode(layered, "PNG"))
    colour = _px(base.convert("RGB")).astype(np.float64)
    a = alpha[..., None] / 255.0
    expected = colour * a + 255 * (1 - a)
    assert np.abs(_px(image) - expected).max() <= 1
    assert (_px(image)[:, 0] == 255).all()  # fully transparent column


def test_16bit_png_keeps_its_brightness_not_clipped_not_stretched(photo):
    width, height = photo.size
    ramp = np.linspace(0, 65535, width).round().astype(np.uint16)
    grey = np.asarray(photo.convert("L"), dtype=np.uint16)
    deep = np.where(np.arange(height)[:, None] < height // 2, ramp[None, :], grey * 257)
    data = _encode(Image.fromarray(deep.astype(np.uint16)), "PNG")
    opened = Image.open(io.BytesIO(data))
    assert opened.mode == "I;16"
    assert (np.asarray(opened.convert("L")) == 255).mean() > 0.9  # what naive conversion does
    out = _px(load_image(data))[..., 0]
    top = out[: height // 2]
    assert top[:, 0].max() == 0 and top[:, -1].min() == 255
    assert (np.diff(top[0]) >= 0).all()
    assert (out == 255).mean() < 0.05
    np.testing.assert_array_equal(out[height // 2 :], _px(photo.convert("L"))[height // 2 :])
    # a dark, low-contrast scan stays dark: no stretching over its own range
    dim = np.full((40, 60), 1000, np.uint16)
    dim[:, 30:] = 2000
    out = _px(load_image(_encode(Image.fromarray(dim), "PNG")))[..., 0]
    assert set(np.unique(out)) == {round(1000 / 257), round(2000 / 257)}
    flat = _px(load_image(_encode(Image.fromarray(np.full((8, 8), 30000, np.uint16)), "PNG")))
    assert (flat == round(30000 / 257)).all()


def test_float_tiff_maps_its_range_and_survives_nan(photo):
    values = np.asarray(photo.convert("L"), dtype=np.float32) / 255 * 0.02 - 0.01
    values[0, 0] = np.nan
    out = _px(load_image(_encode(Image.fromarray(values), "TIFF")))[..., 0]
    finite = np.isfinite(values)
    expected = (values - values[finite].min()) / np.ptp(values[finite]) * 255
    assert np.abs(out[finite] - expected[finite]).max() <= 1
    assert out.max() == 255 and out.min() == 0 and out[0, 0] == 0


def test_exif_orientation_6_is_applied(photo):
    exif = Image.Exif()
    exif[0x0112] = 6
    data = _encode(photo, "JPEG", quality=95, exif=exif.tobytes())
    raw = Image.open(io.BytesIO(data)).convert("RGB")
    image = load_image(data)
    assert image.size == (photo.height, photo.width)
    np.testing.assert_array_equal(_px(image), _px(raw.transpose(Image.Transpose.ROTATE_270)))


@pytest.mark.parametrize("fmt", ["GIF", "PNG", "WEBP"])
def test_animation_yields_its_first_frame(photo, fmt):
    small = photo.reduce(2)
    frames = [small, ImageChops.invert(small), small.rotate(180)]
    if fmt == "GIF":
        frames = [f.quantize(method=Image.Quantize.FASTOCTREE) for f in frames]
    extra = {"lossless": True} if fmt == "WEBP" else {}
    data = _encode(frames[0], fmt, save_all=True, append_images=frames[1:], duration=100, **extra)
    assert getattr(Image.open(io.BytesIO(data)), "n_frames", 1) == 3
    image = _px(load_image(data))
    assert np.abs(image - _px(small)).mean() < 10
    assert np.abs(image - _px(ImageChops.invert(small))).mean() > 50


@pytest.mark.parametrize("fmt", ["JPEG", "PNG"])
def test_truncated_file_is_an_error(photo, fmt, tmp_path):
    data = _encode(photo, fmt)
    path = tmp_path / f"cut.{fmt.lower()}"
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(ImageDecodeError, match="truncated") as info:
        load_image(path)
    assert str(path) in str(info.value)
    assert ImageFile.LOAD_TRUNCATED_IMAGES is False


def test_empty_input_is_an_error(tmp_path):
    empty = tmp_path / "empty.jpg"
    empty.touch()
    for source in (b"", io.BytesIO(), empty):
        with pytest.raises(ImageDecodeError, match="empty"):
            load_image(source)


def test_non_image_and_missing_file_are_errors(tmp_path):
    text = tmp_path / "notes.jpg"
    text.write_text("not a picture, just words\n" * 20)
    with pytest.raises(ImageDecodeError, match="not a recognised image"):
        load_image(text)
    with pytest.raises(ValueError, match="cannot read file"):  # ImageDecodeError is a ValueError
        load_image(tmp_path / "missing.jpg")


def _png_header_only(width: int, height: int) -> bytes:
    """A PNG that declares a huge greyscale canvas, followed by junk pixel data."""

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", b"junk" * 8) + chunk(b"IEND", b"")


def test_bomb_is_rejected_from_the_header(monkeypatch):
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", None)  # the global guard must not matter
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        # 81 Mpx: over the default max_pixels; junk IDAT shows nothing was decoded.
        with pytest.raises(ImageDecodeError, match="max_pixels=80000000"):
            load_image(_png_header_only(9000, 9000))
        with pytest.raises(ImageDecodeError, match="400000000 pixels"):
            load_image(_png_header_only(20000, 20000))
    with pytest.raises(ImageDecodeError, match="corrupt or truncated"):  # past the header: decoded
        load_image(_png_header_only(9000, 9000), max_pixels=10**8)


def test_bomb_over_pillows_own_limit_is_still_an_image_decode_error():
    with pytest.raises(ImageDecodeError, match="exceeds limit of"):
        load_image(_png_header_only(20000, 20000), max_pixels=10**9)


def test_max_pixels_bounds_real_photos(caltech):
    real = Image.open(io.BytesIO(caltech["RGB"]))
    pixels = real.width * real.height
    assert load_image(caltech["RGB"], max_pixels=pixels).size == real.size
    with pytest.raises(ImageDecodeError, match="exceeds max_pixels"):
        load_image(caltech["RGB"], max_pixels=pixels - 1)


@pytest.mark.parametrize("draft_size", [64, 100, 150, 224])
def test_draft_keeps_the_shorter_side_at_least_draft_size(cars, draft_size):
    reduced = 0
    for data in cars:
        full = load_image(data)
        small = load_image(data, draft_size=draft_size)
        assert small.mode == "RGB"
        if min(full.size) >= draft_size:
            assert min(small.size) >= draft_size, (full.size, small.size)
        reduced += small.size[0] < full.size[0]
        if min(full.size) >= 2 * draft_size:
            assert small.size[0] <= (full.size[0] + 1) // 2
            assert np.abs(_px(small) - _px(full.resize(small.size, Image.Resampling.BOX))).mean() < 12
    assert reduced > 0


def test_draft_reduces_greyscale_jpeg_and_png(caltech, photo):
    grey = load_image(caltech["L"], draft_size=32)
    assert grey.mode == "RGB" and min(grey.size) >= 32
    png = load_image(_encode(photo, "PNG"), draft_size=32)      # box-reduced after decoding, like a JPEG draft
    factor = min(photo.size) // 32
    assert factor >= 2 and 32 <= min(png.size) < 64
    assert np.abs(_px(png) - _px(photo.reduce(factor))).max() <= 1


def test_resize_square(photo):
    square = resize_square(photo, 96)
    assert square.size == (96, 96) and square.mode == "RGB"
    with pytest.raises(ValueError):
        resize_square(photo, 0)


def test_to_normalized_array_matches_the_formula(photo):
    mean, std = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)
    out = to_normalized_array(photo, mean, std)
    assert out.dtype == np.float32 and out.flags.c_contiguous
    assert out.shape == (3, photo.height, photo.width)
    pixels = np.asarray(photo, dtype=np.float64).transpose(2, 0, 1)
    expected = (pixels / 255 - np.array(mean)[:, None, None]) / np.array(std)[:, None, None]
    np.testing.assert_allclose(out, expected, atol=1e-5)
    red = to_normalized_array(Image.new("RGB", (2, 2), (255, 0, 0)), mean, std)
    expected_red = [(1 - 0.485) / 0.229, -0.456 / 0.224, -0.406 / 0.225]
    np.testing.assert_allclose(red[:, 0, 0], expected_red, rtol=1e-6)
    with pytest.raises(ValueError):
        to_normalized_array(photo, mean, (0.2, 0.0, 0.2))
