"""Frame, stack and mask files of the field's formats, read through fabio / h5py / numpy; bad files."""

from __future__ import annotations

import fabio
import h5py
import imagecodecs
import numpy as np
import pytest
import tifffile

from laue_live import FrameFileError
from laue_live.io import frame_sources, iter_frames, read_frame, read_mask


@pytest.fixture(scope="module")
def frame(real_crops):
    return real_crops["Ge_blanc_0000"].frame[:128, :96].copy()  # a MarCCD piece, round-window corner


def _write_all(d, f):
    tifffile.imwrite(d / "a.tif", f)
    tifffile.imwrite(d / "z.tif", f, compression="zlib")
    fabio.edfimage.EdfImage(data=f).write(str(d / "b.edf"))
    fabio.cbfimage.CbfImage(data=f.astype(np.int32)).write(str(d / "c.cbf"))
    (d / "d.jp2").write_bytes(imagecodecs.jpeg2k_encode(f, level=0))  # lossless JPEG 2000
    np.save(d / "e.npy", f)
    with h5py.File(d / "s.h5", "w") as h:
        h["/entry/data/data"] = np.stack([f, f + 1, f + 2])


def test_every_format_reads_the_same_frame(tmp_path, frame):
    _write_all(tmp_path, frame)
    for name in ("a.tif", "z.tif", "b.edf", "c.cbf", "d.jp2", "e.npy"):
        got = read_frame(tmp_path / name)
        assert got.shape == frame.shape, name
        np.testing.assert_array_equal(got, frame, err_msg=name)
    np.testing.assert_array_equal(read_frame(f"{tmp_path / 's.h5'}::/entry/data/data", index=2), frame + 2)
    np.testing.assert_array_equal(read_frame(tmp_path / "s.h5", index=1), frame + 1)  # NeXus default path


def test_sources_from_folder_glob_and_stack(tmp_path, frame):
    _write_all(tmp_path, frame)
    src = frame_sources([tmp_path])
    assert [s.label for s in src] == ["a.tif", "b.edf", "c.cbf", "d.jp2", "e.npy", "s.h5[0]", "s.h5[1]",
                                      "s.h5[2]", "z.tif"]
    assert [s.label for s in frame_sources(str(tmp_path / "*.tif"))] == ["a.tif", "z.tif"]
    frames = [f for _, f in iter_frames(f"{tmp_path / 's.h5'}::/entry/data/data")]
    assert len(frames) == 3 and (frames[2] == frame + 2).all()


def test_bad_files_are_one_clear_line(tmp_path, frame):
    tifffile.imwrite(tmp_path / "good.tif", frame)
    data = (tmp_path / "good.tif").read_bytes()
    (tmp_path / "cut.tif").write_bytes(data[: len(data) // 2])
    (tmp_path / "junk.edf").write_text("not an image at all")
    np.save(tmp_path / "cube.npy", np.zeros((2, 3, 40, 40), np.uint16))
    with h5py.File(tmp_path / "s.h5", "w") as h:
        h["/entry/data/data"] = np.zeros((2, 40, 40), np.uint16)
    cases = [
        (tmp_path / "missing.tif", "no such frame file"),
        (tmp_path / "cut.tif", "truncated or corrupt"),
        (tmp_path / "junk.edf", "cannot read"),
        (tmp_path / "cube.npy", "expected a 2D frame"),
        (f"{tmp_path / 's.h5'}::/entry/nothing", "no dataset '/entry/nothing'"),
    ]
    for path, text in cases:
        with pytest.raises(FrameFileError, match=text) as exc:
            read_frame(path)
        assert "\n" not in str(exc.value)
    with pytest.raises(FrameFileError, match="index 5 out of range"):
        read_frame(tmp_path / "s.h5", index=5)
    with pytest.raises(FrameFileError, match="no frame file matches"):
        frame_sources(str(tmp_path / "*.cbf"))
    with pytest.raises(FrameFileError, match="no such frame file or folder"):
        frame_sources([tmp_path / "nowhere"])


def test_masks_from_every_kind_of_file(tmp_path):
    m = np.zeros((64, 48), bool)
    m[3:9, 5:7] = True
    np.save(tmp_path / "m.npy", m)
    tifffile.imwrite(tmp_path / "m.tif", m.astype(np.uint8))
    fabio.edfimage.EdfImage(data=m.astype(np.int8)).write(str(tmp_path / "m.edf"))
    fabio.fit2dmaskimage.Fit2dMaskImage(data=m.astype(np.int8)).write(str(tmp_path / "m.msk"))  # pyFAI/Fit2D
    with h5py.File(tmp_path / "d.nxs", "w") as h:
        h["/entry/instrument/detector/pixel_mask"] = m.astype(np.uint32) * 4  # NeXus: any non-zero bit
        h["/entry/data/data"] = np.zeros((2, 64, 48), np.uint16)
    for name in ("m.npy", "m.tif", "m.edf", "m.msk", "d.nxs"):
        got = read_mask(tmp_path / name)
        assert got.dtype == bool and (got == m).all(), name
    with pytest.raises(FrameFileError, match=r"has shape \(64, 48\) but the frames are \(2048, 2048\)"):
        read_mask(tmp_path / "m.npy", shape=(2048, 2048))
