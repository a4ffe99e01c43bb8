"""Property-based tests: any array of any dtype and shape, any bytes in a ``.tif``, either works or
raises the plugin's own error with a readable message, never a raw error from deep inside numpy,
tifffile or torch. Few examples per property, so that they stay fast."""

from __future__ import annotations

import tempfile
import warnings
from pathlib import Path

import numpy as np
import pytest
import tifffile

hypothesis = pytest.importorskip("hypothesis")
from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402
from hypothesis.extra import numpy as hnp  # noqa: E402

from napari_dendrite_panoptic import io  # noqa: E402
from napari_dendrite_panoptic.errors import DendritePanopticError  # noqa: E402
from napari_dendrite_panoptic.inference import InferenceConfig, PanopticResult, iter_predict  # noqa: E402

FAST = settings(
    max_examples=12,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)

ANY_DTYPE = st.one_of(
    hnp.scalar_dtypes(),  # bool, ints, uints, floats, complex, datetime64, timedelta64
    hnp.byte_string_dtypes(max_len=3),
    hnp.unicode_string_dtypes(max_len=3),
)
SHAPES = hnp.array_shapes(min_dims=0, max_dims=5, min_side=0, max_side=40).filter(
    lambda s: int(np.prod(s)) <= 40_000
)


# pixel sizes (µm): nonsense ones, and sensible ones that keep the resampled planes small
SIZES = st.one_of(
    st.sampled_from([np.nan, np.inf, -np.inf, -1.0, 0.0, 5e-324, 1e-300, 1e300, 1.7e308]),
    st.floats(min_value=0.01, max_value=0.15),
)
REAL_DTYPES = st.one_of(
    hnp.boolean_dtypes(), hnp.integer_dtypes(), hnp.unsigned_integer_dtypes(), hnp.floating_dtypes()
)
IMAGE_SHAPES = hnp.array_shapes(min_dims=2, max_dims=3, min_side=2, max_side=40).filter(
    lambda s: len(s) == 2 or s[0] <= 2
)


def _readable(exc: BaseException) -> None:
    """The plugin's own error, with a message a user can read (one short paragraph)."""
    assert isinstance(exc, DendritePanopticError), f"{type(exc).__name__}: {exc}"
    text = str(exc)
    assert text and len(text) < 600 and "Traceback" not in text


@pytest.fixture(scope="module")
def config(tiny_model_dir):
    return InferenceConfig(model=str(tiny_model_dir), device="cpu", tile_size=64, tile_overlap=16)


def _predict(image, voxel, cfg):
    result = None
    for event in iter_predict(image, voxel, cfg):
        if isinstance(event, PanopticResult):
            result = event
    return result


@FAST
@given(
    array=st.one_of(
        hnp.arrays(ANY_DTYPE, SHAPES, elements=None),  # mostly refused
        hnp.arrays(REAL_DTYPES, IMAGE_SHAPES, elements=None),  # mostly segmented
    )
)
def test_engine_segments_or_raises_its_own_error(config, array):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            result = _predict(array, None, config)
        except Exception as exc:  # noqa: BLE001 - the property under test
            _readable(exc)
            return
    spatial = array.shape if array.ndim == 3 else (1, *array.shape)
    assert result.dendrite.shape == result.spines.shape == spatial
    assert not (result.dendrite.astype(bool) & (result.spines > 0)).any()


@FAST
@given(
    voxel=st.tuples(*[SIZES] * 3),
    pixel=st.one_of(st.none(), SIZES),
)
def test_engine_with_any_voxel_size(config, voxel, pixel):
    from dataclasses import replace

    image = np.random.default_rng(0).integers(0, 500, (1, 40, 40)).astype(np.uint16)
    try:
        result = _predict(image, voxel, replace(config, pixel_size_um=pixel))
    except Exception as exc:  # noqa: BLE001
        _readable(exc)
        return
    assert result.dendrite.shape == (1, 40, 40)
    assert all(np.isfinite(v) and v > 0 for v in result.voxel_size_um[1:])


@FAST
@pytest.mark.filterwarnings("ignore:.*writing zero-size array:UserWarning")  # fuzzed on purpose
@given(array=hnp.arrays(hnp.scalar_dtypes(), SHAPES, elements=None), imagej=st.booleans())
@hypothesis.example(array=np.zeros((3, 1, 1), np.int8), imagej=False)  # written as grey RGB
@hypothesis.example(array=np.arange(12, dtype=np.uint16).reshape(3, 2, 2), imagej=False)  # Z
def test_reader_returns_a_stack_or_its_own_error(array, imagej):
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "any.tif"
        try:
            tifffile.imwrite(path, array, imagej=imagej)
        except Exception:  # noqa: BLE001 - tifffile cannot write it: nothing to read
            hypothesis.assume(False)
        try:
            stack = io.read_tiff(path)
            zyx = io.stack_zyx(stack)
        except Exception as exc:  # noqa: BLE001
            _readable(exc)
            return
        assert stack.axes.endswith("YX") and len(zyx.shape) == 3
        # every voxel is there, but a colour image whose samples are equal is read as grey
        assert int(np.prod(stack.shape)) * _grey_samples(path) == array.size


def _grey_samples(path: Path) -> int:
    """The samples of a file marked colour (tifffile writes a (3|4, Y, X) array as RGB(A))
    when they are all equal, else 1."""
    with tifffile.TiffFile(path) as tif:
        series = tif.series[0]
        if int(tif.pages.first.photometric) not in (2, 5, 6) or "S" not in series.axes:
            return 1
        pixels, axis = series.asarray(), series.axes.index("S")
    first = np.take(pixels, 0, axis=axis)
    equal = all(np.array_equal(first, np.take(pixels, c, axis=axis)) for c in (1, 2))
    return pixels.shape[axis] if equal else 1


@FAST
@given(
    head=st.sampled_from([b"II*\x00", b"MM\x00*", b"II+\x00", b"", b"\x89PNG"]),
    body=st.binary(max_size=400),
)
def test_reader_on_any_bytes(head, body):
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "bytes.tif"
        path.write_bytes(head + body)
        try:
            io.read_tiff(path)
        except Exception as exc:  # noqa: BLE001
            _readable(exc)
            assert str(path) in str(exc)


@FAST
@given(cut=st.floats(min_value=0.0, max_value=0.999))
def test_reader_on_a_truncated_real_tiff(cut):
    image = np.random.default_rng(1).integers(0, 4000, (3, 32, 32)).astype(np.uint16)
    with tempfile.TemporaryDirectory() as folder:
        whole = Path(folder) / "whole.tif"
        tifffile.imwrite(whole, image, imagej=True, metadata={"axes": "ZYX"})
        content = whole.read_bytes()
        path = Path(folder) / "cut.tif"
        path.write_bytes(content[: int(len(content) * cut)])
        try:
            stack = io.read_tiff(path)
        except Exception as exc:  # noqa: BLE001
            _readable(exc)
            return
        # whatever is read must be the real pixels, never zeros standing in for missing data
        np.testing.assert_array_equal(np.asarray(stack.data), image)
