"""DICOM radiographs read as a viewer shows them; what cannot be decoded is refused by name.

Every file here is made by the test with pydicom (synthetic ramps, no patient data).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.encaps import encapsulate
from pydicom.uid import (
    ExplicitVRLittleEndian,
    JPEG2000Lossless,
    SecondaryCaptureImageStorage,
    generate_uid,
)

from napari_pal.data import dicom
from napari_pal.data.dataset import open_dataset
from napari_pal.data.imagefiles import read_image, stored_shape
from napari_pal.errors import DatasetError, PalError


def write_dcm(path: Path, stored: np.ndarray, *, photometric: str = "MONOCHROME2",
              bits_stored: int | None = None, preamble: bool = True, **tags) -> Path:
    """A minimal uncompressed single-frame grey DICOM file (pydicom writes it)."""
    stored = np.asarray(stored)
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = SecondaryCaptureImageStorage
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = Dataset()
    ds.file_meta = meta
    ds.SOPClassUID = meta.MediaStorageSOPClassUID
    ds.SOPInstanceUID = meta.MediaStorageSOPInstanceUID
    ds.Modality = "DX"
    ds.set_pixel_data(stored, photometric, bits_stored or stored.dtype.itemsize * 8)
    for k, v in tags.items():
        setattr(ds, k, v)
    path.parent.mkdir(parents=True, exist_ok=True)
    ds.save_as(path, enforce_file_format=preamble)
    return path


def ramp(dtype=np.uint16, top: int = 4095, h: int = 12, w: int = 16) -> np.ndarray:
    return np.linspace(0, top, h * w).reshape(h, w).astype(dtype)


def test_monochrome2_uses_the_data_range_without_window(tmp_path: Path) -> None:
    p = write_dcm(tmp_path / "a.dcm", ramp(top=4095), bits_stored=12)
    img = read_image(p)
    assert img.dtype == np.float32 and img.shape == (12, 16)
    assert img[0, 0] == 0.0 and img[-1, -1] == 1.0
    assert np.all(np.diff(img.ravel()) >= 0)
    assert stored_shape(p) == (12, 16)


def test_monochrome1_is_inverted_so_air_is_dark(tmp_path: Path) -> None:
    stored = ramp(top=4095)
    m2 = read_image(write_dcm(tmp_path / "m2.dcm", stored, bits_stored=12))
    m1 = read_image(write_dcm(tmp_path / "m1.dcm", stored, photometric="MONOCHROME1",
                              bits_stored=12))
    np.testing.assert_allclose(m1, 1.0 - m2, atol=1e-6)
    assert m1[0, 0] == 1.0  # stored 0 is bright in MONOCHROME1


def test_slope_intercept_then_window(tmp_path: Path) -> None:
    stored = np.array([[0, 100, 200, 300, 400, 1000]], np.uint16)
    # measured value = 2 * stored - 1000 -> -1000, -800, -600, -400, -200, 1000
    p = write_dcm(tmp_path / "w.dcm", stored, RescaleSlope=2, RescaleIntercept=-1000,
                  WindowCenter=-600, WindowWidth=401, VOILUTFunction="LINEAR_EXACT")
    img = read_image(p)[0]
    expected = np.clip((np.array([-1000, -800, -600, -400, -200, 1000]) + 600) / 401 + 0.5,
                       0, 1)
    np.testing.assert_allclose(img, expected, atol=1e-6)
    assert img[2] == pytest.approx(0.5)


def test_linear_window_and_first_of_several(tmp_path: Path) -> None:
    stored = np.array([[0, 50, 100, 150, 200]], np.uint16)
    p = write_dcm(tmp_path / "w.dcm", stored, WindowCenter=[100, 9999], WindowWidth=[101, 1])
    img = read_image(p)[0]
    # PS3.3 C.11.2.1.2.1: ((x - (c - 0.5)) / (w - 1) + 0.5), clipped
    np.testing.assert_allclose(img, np.clip((stored[0] - 99.5) / 100 + 0.5, 0, 1), atol=1e-6)


def test_voi_lut_sequence_is_applied(tmp_path: Path) -> None:
    from pydicom.sequence import Sequence

    item = Dataset()
    item.LUTDescriptor = [4, 0, 8]  # 4 entries, first stored value 0, 8-bit output
    item.LUTData = np.array([255, 128, 64, 0], "<u2").tobytes()  # a reversing LUT
    stored = np.array([[0, 1, 2, 3]], np.uint16)
    p = write_dcm(tmp_path / "lut.dcm", stored, bits_stored=2, VOILUTSequence=Sequence([item]))
    np.testing.assert_allclose(read_image(p)[0], np.array([255, 128, 64, 0]) / 255, atol=1e-6)


def test_8_and_16_bit_signed_values(tmp_path: Path) -> None:
    img8 = read_image(write_dcm(tmp_path / "b8.dcm", ramp(np.uint8, 255)))
    assert img8.min() == 0.0 and img8.max() == 1.0
    signed = np.linspace(-2000, 2000, 12 * 16).reshape(12, 16).astype(np.int16)
    img16 = read_image(write_dcm(tmp_path / "s16.dcm", signed))
    assert img16[0, 0] == 0.0 and img16[-1, -1] == 1.0
    assert np.all(np.diff(img16.ravel()) >= 0)


def test_extensionless_file_is_found_by_its_header(tmp_path: Path) -> None:
    root = tmp_path / "data"
    name = "1.2.840.99.7"
    write_dcm(root / "images" / name, ramp())
    (root / "images" / "notes").write_text("not an image")  # ignored: no DICM marker
    write_dcm(root / "images" / "chest.dcm", ramp())
    for n in (name, "chest"):
        m = np.zeros((12, 16), np.uint8)
        m[2:8, 3:12] = 255
        (root / "masks" / "lungs").mkdir(parents=True, exist_ok=True)
        Image.fromarray(m).save(root / "masks" / "lungs" / f"{n}.png")
    assert dicom.is_dicom(root / "images" / name)
    assert not dicom.is_dicom(root / "images" / "notes")
    ds = open_dataset(root)
    assert ds.names == [name, "chest"]  # the header-found file keeps its whole name
    i = ds.index(name)
    assert ds.read_image(i).shape == (12, 16) and ds.image_shape(i) == (12, 16)
    assert ds.read_masks(i).shape == (1, 12, 16)


def test_file_without_preamble_marker_is_not_taken_for_dicom(tmp_path: Path) -> None:
    p = tmp_path / "x"
    p.write_bytes(b"\0" * 200)
    assert not dicom.is_dicom(p)


def test_compressed_without_decoder_is_refused_with_what_to_install(tmp_path: Path) -> None:
    p = write_dcm(tmp_path / "c.dcm", ramp())
    import pydicom

    ds = pydicom.dcmread(p)
    ds.file_meta.TransferSyntaxUID = JPEG2000Lossless
    ds.PixelData = encapsulate([b"\xff\x4f\xff\x51 not a real codestream"])
    ds["PixelData"].VR = "OB"
    ds.save_as(p)
    with pytest.raises(PalError) as err:
        read_image(p)
    msg = str(err.value)
    assert str(p) in msg and "compressed" in msg
    assert "pip install pylibjpeg" in msg and "gdcmconv --raw" in msg


def test_multiframe_is_refused(tmp_path: Path) -> None:
    frames = np.stack([ramp(), ramp()])
    p = write_dcm(tmp_path / "mf.dcm", frames)
    with pytest.raises(DatasetError, match=r"2 frames.*one 2-D radiograph per file") as err:
        read_image(p)
    assert str(p) in str(err.value)
    with pytest.raises(DatasetError, match="2 frames"):
        stored_shape(p)


def test_no_pixel_data_and_colour_are_refused(tmp_path: Path) -> None:
    p = write_dcm(tmp_path / "np.dcm", ramp())
    import pydicom

    ds = pydicom.dcmread(p)
    del ds.PixelData
    ds.save_as(p)
    with pytest.raises(DatasetError, match="no pixel data"):
        read_image(p)
    rgb = np.zeros((12, 16, 3), np.uint8)
    q = write_dcm(tmp_path / "rgb.dcm", rgb, photometric="RGB")
    with pytest.raises(DatasetError, match="RGB"):
        read_image(q)


def test_garbage_with_dcm_suffix_names_the_file(tmp_path: Path) -> None:
    p = tmp_path / "bad.dcm"
    p.write_bytes(b"hello")
    with pytest.raises(DatasetError) as err:
        read_image(p)
    assert str(p) in str(err.value)


def test_open_dataset_reports_a_bad_dicom_among_good_ones(tmp_path: Path) -> None:
    root = tmp_path / "data"
    write_dcm(root / "images" / "good.dcm", ramp())
    write_dcm(root / "images" / "multi.dcm", np.stack([ramp(), ramp()]))
    for n in ("good", "multi"):
        m = np.zeros((12, 16), np.uint8)
        m[2:8, 3:12] = 255
        (root / "masks").mkdir(parents=True, exist_ok=True)
        Image.fromarray(m).save(root / "masks" / f"{n}.png")
    with pytest.raises(DatasetError, match="multi.dcm.*2 frames"):
        open_dataset(root)


def test_a_dicom_folder_trains_and_scores(tmp_path: Path) -> None:
    from napari_pal.data.trainset import load_training_set
    from napari_pal.method.config import TrainConfig
    from napari_pal.method.inference import TrainedModel
    from napari_pal.method.training import Trainer
    from napari_pal.scoring.quality import analyse

    root = tmp_path / "data"
    rng = np.random.default_rng(0)
    for k in range(4):
        stored = (rng.random((40, 36)) * 3000).astype(np.uint16)
        stored[8:30, 6:30] += 1000
        write_dcm(root / "images" / f"im{k}.dcm", stored, photometric="MONOCHROME1",
                  bits_stored=12, RescaleSlope=1, RescaleIntercept=-1024,
                  WindowCenter=1000, WindowWidth=3000)
        m = np.zeros((40, 36), np.uint8)
        m[8:30, 6:30] = 255
        (root / "masks" / "lungs").mkdir(parents=True, exist_ok=True)
        Image.fromarray(m).save(root / "masks" / "lungs" / f"im{k}.png")
    ds = open_dataset(root)
    config = TrainConfig(epochs=1, size=32, batch_size=4, width=4, depth=2, qam_width=4,
                         warmup_epochs=0, precision="fp32", threads=1)
    events = list(Trainer(load_training_set(ds, 32), config, tmp_path / "run").run())
    assert events[-1].state == "finished" and events[0].step == 1
    model = TrainedModel.load(tmp_path / "run")
    scores = [a.score for a in analyse(model, ds, maps=False)]
    assert [s.name for s in scores] == ds.names
