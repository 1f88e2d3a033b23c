"""Format coverage of ``read_image``, the one reader behind every path input,
on files the tests write: PNG 8/16 bit, TIFF, palette, CMYK, DICOM."""

import numpy as np
import pytest
from PIL import Image

from sklearn_cxr import ImageReadError, read_image
from sklearn_cxr.datasets import load_chest_xray

GRADIENT16 = np.tile(np.linspace(1000, 4000, 32).astype(np.uint16), (16, 1))


def _pixels(path):
    return np.asarray(read_image(path))


def test_png_8_bit_values_kept(tmp_path):
    array = np.arange(256, dtype=np.uint8).reshape(16, 16)
    Image.fromarray(array).save(tmp_path / "g.png")
    image = read_image(tmp_path / "g.png")
    assert image.mode == "L"
    np.testing.assert_array_equal(np.asarray(image), array)


@pytest.mark.parametrize("name", ["x16.png", "x16.PNG", "x16.tif", "x16.TIFF"])
def test_16_bit_scaled_by_its_own_range(tmp_path, name):
    Image.fromarray(GRADIENT16).save(tmp_path / name)
    reread = np.asarray(Image.open(tmp_path / name))
    assert reread.dtype == np.uint16 and reread.max() == 4000  # really 16 bit
    pixels = _pixels(tmp_path / name)
    assert pixels.dtype == np.uint8 and pixels.shape == (16, 32)
    assert pixels.min() == 0 and pixels.max() == 255
    assert (np.diff(pixels[0].astype(int)) >= 0).all()  # order preserved
    assert len(np.unique(pixels)) == 32  # no contrast lost to clipping


def test_float_tiff(tmp_path):
    array = np.linspace(-1.0, 3.0, 64, dtype=np.float32).reshape(8, 8)
    Image.fromarray(array, mode="F").save(tmp_path / "f.tif")
    pixels = _pixels(tmp_path / "f.tif")
    assert pixels[0, 0] == 0 and pixels[-1, -1] == 255


def test_palette_png_becomes_rgb(tmp_path):
    image = Image.new("P", (4, 2))
    image.putpalette([255, 0, 0, 0, 0, 255] + [0] * 762)
    image.putdata([0, 1, 0, 1, 1, 0, 1, 0])
    image.save(tmp_path / "p.png")
    decoded = read_image(tmp_path / "p.png")
    assert decoded.mode == "RGB"
    pixels = np.asarray(decoded)
    np.testing.assert_array_equal(pixels[0, 0], [255, 0, 0])
    np.testing.assert_array_equal(pixels[0, 1], [0, 0, 255])


def test_cmyk_jpeg_becomes_rgb(tmp_path):
    Image.new("CMYK", (8, 8), (0, 0, 0, 0)).save(tmp_path / "c.jpg")
    decoded = read_image(tmp_path / "c.jpg")
    assert decoded.mode == "RGB"
    assert np.asarray(decoded).min() > 240  # no ink is white


@pytest.mark.parametrize(
    "mode, name, expected",
    [("LA", "m.png", "L"), ("RGBA", "m.png", "RGB"), ("1", "m.png", "L"),
     ("I", "m.tif", "L"), ("I;16", "m.tiff", "L")],
)
def test_other_modes_normalised(tmp_path, mode, name, expected):
    Image.new(mode, (6, 6)).save(tmp_path / name)
    assert read_image(tmp_path / name).mode == expected


# ------------------------------------------------------------------- DICOM
def _dicom(path, pixels, **attributes):
    pydicom = pytest.importorskip("pydicom")
    from pydicom.dataset import FileMetaDataset
    from pydicom.uid import ExplicitVRLittleEndian, generate_uid

    meta = FileMetaDataset()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    meta.MediaStorageSOPClassUID = "1.2.840.10008.5.1.4.1.1.1.1"  # DX
    meta.MediaStorageSOPInstanceUID = generate_uid()
    ds = pydicom.Dataset()
    ds.file_meta = meta
    ds.SOPClassUID = meta.MediaStorageSOPClassUID
    ds.SOPInstanceUID = meta.MediaStorageSOPInstanceUID
    ds.Rows, ds.Columns = pixels.shape
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.BitsAllocated = 16
    ds.BitsStored = 12
    ds.HighBit = 11
    ds.PixelRepresentation = 0
    for key, value in attributes.items():
        setattr(ds, key, value)
    ds.PixelData = pixels.astype(np.uint16).tobytes()
    ds.save_as(path, enforce_file_format=True)
    return path


RAW = np.tile(np.arange(0, 1001, 10, dtype=np.uint16), (4, 1))  # 0..1000


def test_dicom_plain(tmp_path):
    pixels = _pixels(_dicom(tmp_path / "plain.dcm", RAW))
    assert pixels.shape == RAW.shape
    assert pixels[0, 0] == 0 and pixels[0, -1] == 255
    np.testing.assert_allclose(pixels[0], RAW[0] * 255.0 / 1000, atol=1)


def test_dicom_rescale_then_window(tmp_path):
    """The window is in rescaled units: the rescale must come first.

    raw 0..1000, slope 2, intercept -1000 -> -1000..1000; window centre 0,
    width 400 keeps -200..200, i.e. raw 400..600.
    """
    path = _dicom(
        tmp_path / "ct.DCM",
        RAW,
        RescaleSlope=2,
        RescaleIntercept=-1000,
        WindowCenter=0,
        WindowWidth=400,
    )
    pixels = _pixels(path)[0].astype(int)
    raw = RAW[0]
    assert (pixels[raw <= 390] == 0).all()
    assert (pixels[raw >= 610] == 255).all()
    assert abs(pixels[raw == 500][0] - 128) <= 3
    inside = pixels[(raw > 410) & (raw < 590)]
    assert (np.diff(inside) > 0).all()


def test_dicom_monochrome1_inverted(tmp_path):
    plain = _pixels(_dicom(tmp_path / "m2.dcm", RAW))
    inverted = _pixels(
        _dicom(tmp_path / "m1.dcm", RAW, PhotometricInterpretation="MONOCHROME1")
    )
    np.testing.assert_array_equal(inverted, 255 - plain)
    assert inverted[0, 0] == 255  # lowest value is brightest in MONOCHROME1


def test_dicom_without_pixel_data_names_file(tmp_path):
    pydicom = pytest.importorskip("pydicom")
    path = _dicom(tmp_path / "nopix.dcm", RAW)
    ds = pydicom.dcmread(path)
    del ds.PixelData
    ds.save_as(path)
    with pytest.raises(ImageReadError, match="nopix.dcm"):
        read_image(path)


def test_dicom_through_load_chest_xray(tmp_path):
    (tmp_path / "NORMAL").mkdir()
    _dicom(tmp_path / "NORMAL" / "IM-0001-0001.dcm", RAW)
    (tmp_path / "PNEUMONIA").mkdir()
    Image.fromarray(GRADIENT16).save(tmp_path / "PNEUMONIA" / "person3_virus_7.PNG")
    data = load_chest_xray(tmp_path, image_size=16)
    assert data.images.shape == (2, 16, 16)
    assert data.groups.tolist() == ["IM-0001", "person3"]
    dicom = data.images[0].astype(int)  # the 0..1000 ramp, left to right
    assert dicom[:, 0].max() < 20 and dicom[:, -1].min() > 235


# ------------------------------------------------------------------- errors
def test_missing_empty_directory_and_text(tmp_path):
    with pytest.raises(FileNotFoundError, match="absent.png"):
        read_image(tmp_path / "absent.png")
    (tmp_path / "empty.png").write_bytes(b"")
    with pytest.raises(ImageReadError, match="empty.*empty.png"):
        read_image(tmp_path / "empty.png")
    with pytest.raises(ImageReadError, match="directory"):
        read_image(tmp_path)
    (tmp_path / "notes.jpeg").write_text("not an image")
    with pytest.raises(ImageReadError, match="notes.jpeg"):
        read_image(tmp_path / "notes.jpeg")


@pytest.mark.parametrize("suffix", [".jpeg", ".png"])
def test_truncated_files_refused(tmp_path, suffix):
    rng = np.random.RandomState(0)
    full = tmp_path / f"full{suffix}"
    Image.fromarray(rng.randint(0, 256, (64, 64), dtype=np.uint8)).save(full)
    cut = tmp_path / f"cut{suffix}"
    cut.write_bytes(full.read_bytes()[: len(full.read_bytes()) // 2])
    with pytest.raises(ImageReadError, match=f"cut{suffix}"):
        read_image(cut)


@pytest.mark.parametrize("factor", [1.5, 3])
def test_decompression_bomb_refused(tmp_path, monkeypatch, factor):
    """Refused both in PIL's warning band (1-2x the limit) and above it."""
    Image.new("L", (60, 50)).save(tmp_path / "big.png")
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", int(3000 / factor))
    with pytest.raises(ImageReadError, match="big.png.*too large"):
        read_image(tmp_path / "big.png")


# ---------------------------------------------------- hostile DICOM headers
def test_dicom_over_the_pixel_limit_is_refused_before_decoding(tmp_path, monkeypatch):
    from PIL import Image as PILImage
    from pydicom.uid import DeflatedExplicitVRLittleEndian

    path = _dicom(tmp_path / "bomb.dcm", RAW)
    monkeypatch.setattr(PILImage, "MAX_IMAGE_PIXELS", RAW.size - 1)
    with pytest.raises(ImageReadError, match=r"bomb\.dcm is too large.*4 x 101 pixels"):
        read_image(path)
    # frames count: 3 frames of 4 x 101 are over a limit of 2 frames
    monkeypatch.setattr(PILImage, "MAX_IMAGE_PIXELS", 2 * RAW.size)
    frames = _dicom(tmp_path / "frames.dcm", np.concatenate([RAW] * 3),
                    Rows=4, NumberOfFrames=3)
    with pytest.raises(ImageReadError, match=r"frames\.dcm is too large.*3 frame"):
        read_image(frames)
    # a deflated file is checked by its header too
    pydicom = pytest.importorskip("pydicom")
    ds = pydicom.dcmread(path)
    ds.file_meta.TransferSyntaxUID = DeflatedExplicitVRLittleEndian
    big = np.zeros((64, 64), np.uint16)
    ds.Rows, ds.Columns, ds.PixelData = 64, 64, big.tobytes()
    ds.save_as(tmp_path / "deflated.dcm", enforce_file_format=True)
    with pytest.raises(ImageReadError, match=r"deflated\.dcm is too large"):
        read_image(tmp_path / "deflated.dcm")


def test_dicom_multi_frame_decodes_the_first_frame_only(tmp_path):
    """Later frames, bright here, must not change the first frame's scaling."""
    bright = np.full_like(RAW, 4000)
    path = _dicom(tmp_path / "multi.dcm", np.concatenate([RAW] + [bright] * 9),
                  Rows=4, NumberOfFrames=10)
    pixels = _pixels(path)
    assert pixels.shape == RAW.shape
    assert pixels[0, 0] == 0 and pixels[0, -1] == 255
    np.testing.assert_allclose(pixels[0], RAW[0] * 255.0 / 1000, atol=1)


@pytest.mark.parametrize(
    "name, attributes, message",
    [("window0.dcm", {"WindowCenter": 500, "WindowWidth": 0},
      r"window0\.dcm has WindowWidth 0.*positive"),
     ("rgbframes.dcm", {"NumberOfFrames": 2, "SamplesPerPixel": 3,
                        "PhotometricInterpretation": "RGB", "PlanarConfiguration": 0,
                        "Rows": 2, "Columns": 101},
      r"rgbframes\.dcm is a multi-frame colour image")],
)
def test_dicom_unusable_headers_name_the_file(tmp_path, name, attributes, message):
    pixels = RAW if "Rows" not in attributes else np.tile(RAW[:1], (12, 1))
    path = _dicom(tmp_path / name, pixels)
    pydicom = pytest.importorskip("pydicom")
    ds = pydicom.dcmread(path)
    for key, value in attributes.items():
        setattr(ds, key, value)
    ds.save_as(path)
    with pytest.raises(ImageReadError, match=message):
        read_image(path)
