"""manystore.samples core: packable samples, field checks, atdata's wire format (built here independently)."""

from __future__ import annotations

import io
import struct
from typing import Any, Optional

import msgpack
import numpy as np
import pytest

from manystore.samples import (
    DictSample,
    NDArray,
    PackableSample,
    PickledArrayError,
    SampleDecodeError,
    SampleTypeError,
    decode_sample,
    encode_member,
    packable,
)


@packable
class Everything:
    text: str
    count: int
    score: float
    flag: bool
    blob: bytes
    tags: list[str]
    nums: list[int]
    attrs: dict[str, float]
    image: NDArray
    label: Optional[int] = None  # noqa: UP045 (typing.Optional on purpose)
    mask: NDArray[np.uint8] | None = None
    extra: Optional[list[str]] = None  # noqa: UP045


def _everything(**over: Any) -> Everything:
    kw: dict[str, Any] = dict(
        text="héllo",
        count=-7,
        score=2.5,
        flag=True,
        blob=b"\x00\xff",
        tags=["a", "b"],
        nums=[1, 2, 3],
        attrs={"x": 1.5},
        image=np.arange(12, dtype=np.float32).reshape(3, 4),
    )
    kw.update(over)
    return Everything(**kw)


def _npy(a: np.ndarray, allow_pickle: bool = False) -> bytes:
    buf = io.BytesIO()
    np.save(buf, a, allow_pickle=allow_pickle)
    return buf.getvalue()


def _compact(a: np.ndarray) -> bytes:
    """atdata 0.7's compact array form, built here with struct."""
    d = a.dtype.str.encode()
    return struct.pack("<B", len(d)) + d + struct.pack(f"<B{a.ndim}q", a.ndim, *a.shape) + a.tobytes()


def test_round_trip_every_field_kind() -> None:
    s = _everything(label=3, mask=np.ones((2, 2), np.uint8), extra=["z"])
    back = Everything.from_bytes(s.packed)
    assert back == s
    assert back.image.dtype == np.float32 and back.image.shape == (3, 4)
    assert back.mask is not None and back.mask.dtype == np.uint8
    assert back.text == "héllo" and back.blob == b"\x00\xff" and back.flag is True


def test_optional_none_and_present() -> None:
    none = Everything.from_bytes(_everything().packed)
    assert none.label is None and none.mask is None and none.extra is None
    present = Everything.from_bytes(_everything(label=0, mask=np.zeros(0, np.uint8)).packed)
    assert present.label == 0 and present.mask is not None and present.mask.shape == (0,)


@packable
class Arr:
    a: NDArray


DTYPES = [
    np.bool_,
    np.int8,
    np.int16,
    np.int32,
    np.int64,
    np.uint8,
    np.uint16,
    np.uint32,
    np.uint64,
    np.float16,
    np.float32,
    np.float64,
    np.complex64,
    np.complex128,
    np.dtype("U5"),
    np.dtype("S3"),
    np.dtype("datetime64[ms]"),
    np.dtype("timedelta64[s]"),
    np.dtype(">i4"),
    np.dtype([("x", "<f4"), ("y", "<i2")]),
]


@pytest.mark.parametrize("dtype", DTYPES, ids=[str(np.dtype(d)) for d in DTYPES])
def test_array_dtypes_round_trip(dtype: Any) -> None:
    a = np.zeros((2, 3), dtype=dtype)
    back = Arr.from_bytes(Arr(a).packed).a
    assert back.dtype == np.dtype(dtype) and back.shape == (2, 3)
    assert back.tobytes() == a.tobytes()


@pytest.mark.parametrize(
    "a",
    [
        np.array(3.5),
        np.zeros((0,), np.int32),
        np.zeros((4, 0, 2)),
        np.asfortranarray(np.arange(12).reshape(3, 4)),
    ],
    ids=["0-d", "empty", "empty-3d", "fortran"],
)
def test_array_shapes_round_trip(a: np.ndarray) -> None:
    back = Arr.from_bytes(Arr(a).packed).a
    assert back.shape == a.shape and back.dtype == a.dtype
    np.testing.assert_array_equal(back, a)
    if a.ndim == 2:
        assert back.flags.f_contiguous


def test_wire_format_is_atdatas_msgpack_map_with_npy() -> None:
    s = _everything()
    data = msgpack.unpackb(s.packed, raw=False)
    assert set(data) == {f for f in Everything.__dataclass_fields__}
    assert data["image"][:6] == b"\x93NUMPY"
    np.testing.assert_array_equal(np.load(io.BytesIO(data["image"]), allow_pickle=False), s.image)
    assert data["text"] == "héllo" and data["blob"] == b"\x00\xff" and data["label"] is None


def test_reads_independently_built_npy_and_compact() -> None:
    a = np.arange(24, dtype=np.int16).reshape(2, 3, 4)
    for enc in (_npy(a), _compact(a)):
        back = Arr.from_bytes(msgpack.packb({"a": enc}, use_bin_type=True)).a
        assert back.dtype == np.int16
        np.testing.assert_array_equal(back, a)
    zero_d = np.array(7, dtype=">f8")
    np.testing.assert_array_equal(Arr.from_bytes(msgpack.packb({"a": _compact(zero_d)})).a, zero_d)


def test_pickled_array_refused_by_default() -> None:
    obj = np.array([{"x": 1}, None], dtype=object)
    raw = msgpack.packb({"a": _npy(obj, allow_pickle=True)}, use_bin_type=True)
    with pytest.raises(PickledArrayError, match="allow_pickle"):
        Arr.from_bytes(raw)
    with pytest.raises(PickledArrayError):
        decode_sample(Arr, raw, member="k.msgpack")
    back = decode_sample(Arr, raw, allow_pickle=True)
    assert back.a[0] == {"x": 1}
    with pytest.raises(TypeError, match="object"):
        _ = Arr(obj).packed


def test_type_mismatch_names_field_expected_and_got() -> None:
    with pytest.raises(SampleTypeError) as ei:
        _everything(count="7")
    assert ei.value.field == "count" and ei.value.expected == "int" and ei.value.got == "str"
    assert "Everything.count" in str(ei.value)
    with pytest.raises(SampleTypeError, match=r"tags\[1\]: expected str, got int"):
        _everything(tags=["a", 1])
    with pytest.raises(
        SampleTypeError, match=r"mask: expected NDArray\[uint8\] \| None, got ndarray\[float64\]"
    ):
        _everything(mask=np.zeros(2))
    with pytest.raises(SampleTypeError, match="expected int, got bool"):
        _everything(count=True)
    assert isinstance(SampleTypeError("T", "f", "int", "str"), TypeError)


def test_type_mismatch_at_decode() -> None:
    good = msgpack.unpackb(_everything().packed, raw=False)
    bad = dict(good, score="high")
    with pytest.raises(SampleTypeError, match="score: expected float, got str"):
        Everything.from_bytes(msgpack.packb(bad, use_bin_type=True))
    with pytest.raises(SampleTypeError, match="unknown field"):
        Everything.from_data(dict(good, nope=1))
    missing = dict(good)
    del missing["text"]
    with pytest.raises(SampleTypeError, match=r"text.*missing field"):
        Everything.from_data(missing)


def test_numpy_scalars_and_int_for_float_are_normalised() -> None:
    s = _everything(count=np.int32(4), score=3, flag=np.bool_(False), nums=(np.int64(1),))
    assert type(s.count) is int and type(s.score) is float and s.flag is False and s.nums == [1]


def test_corrupt_payload_is_value_error_with_member() -> None:
    with pytest.raises(SampleDecodeError) as ei:
        decode_sample(Everything, b"\xc1garbage", member="000001.msgpack")
    assert isinstance(ei.value, ValueError) and ei.value.member == "000001.msgpack"
    ei.value.url = "msc://p/x.tar"
    assert "msc://p/x.tar" in str(ei.value) and "000001.msgpack" in str(ei.value)
    cut = msgpack.packb({"a": _compact(np.arange(10))}, use_bin_type=True)[:-5]
    with pytest.raises(SampleDecodeError):
        Arr.from_bytes(cut)
    npy_cut = msgpack.packb({"a": _npy(np.arange(10, dtype=np.int64))[:-3]}, use_bin_type=True)
    with pytest.raises(SampleDecodeError, match="needs 80 data bytes, got 77"):
        Arr.from_bytes(npy_cut)
    trunc = msgpack.packb({"a": _compact(np.arange(10))[:-5]}, use_bin_type=True)
    with pytest.raises(SampleDecodeError, match="needs 80 data bytes"):
        Arr.from_bytes(trunc)


def test_unsupported_annotation_rejected_at_class_definition() -> None:
    with pytest.raises(TypeError, match=r"Bad\.when: unsupported field type"):

        @packable
        class Bad:
            when: set[int]


def test_user_post_init_runs_after_checks_and_dataclass_subclass_works() -> None:
    seen: list[int] = []

    @packable
    class WithPost:
        n: int

        def __post_init__(self) -> None:
            seen.append(self.n)

    WithPost(np.int8(5))
    assert seen == [5]
    assert issubclass(WithPost, PackableSample) and WithPost.__name__ == "WithPost"


def test_as_wds_and_encode_member() -> None:
    s = _everything()
    wds = s.as_wds
    assert set(wds) == {"__key__", "msgpack"} and "." not in wds["__key__"] and wds["msgpack"] == s.packed
    assert encode_member(s, "000042") == ("000042.msgpack", s.packed)
    with pytest.raises(ValueError, match=r"a\.b"):
        encode_member(s, "a.b")


def test_dict_sample() -> None:
    raw = _everything().packed
    d = DictSample.from_bytes(raw)
    assert d.count == -7 and d["text"] == "héllo" and "image" in d and isinstance(d.image, bytes)
    assert DictSample.from_bytes(d.packed) == d
    with pytest.raises(AttributeError, match="nope"):
        _ = d.nope
    made = DictSample(x=np.arange(3), y=np.int64(2))
    back = DictSample.from_bytes(made.packed)
    assert back.y == 2 and Arr.from_bytes(msgpack.packb({"a": back.x})).a.tolist() == [0, 1, 2]


# ------------------------------------------------------------------------------------------ lenses
@packable
class Color:
    image: NDArray
    label: int


@packable
class Gray:
    image: NDArray


@packable
class Label:
    label: int


def test_lens_getter_putter_and_registry() -> None:
    from manystore.samples import LensNetwork, find_lens, lens, view_as

    @lens
    def to_gray(s: Color) -> Gray:
        return Gray(s.image.mean(axis=0))

    @to_gray.putter
    def to_gray_put(view: Gray, source: Color) -> Color:
        return Color(np.broadcast_to(view.image, source.image.shape).copy(), source.label)

    src = Color(np.arange(12, dtype=np.float64).reshape(3, 4), 9)
    assert find_lens(Color, Gray) is to_gray and LensNetwork().transform(Color, Gray) is to_gray
    g = view_as(src, Gray)
    np.testing.assert_array_equal(g.image, src.image.mean(axis=0))
    back = to_gray.put(Gray(np.zeros(4)), src)
    assert back.label == 9 and back.image.shape == (3, 4) and not back.image.any()
    with pytest.raises(TypeError, match="expected a Color"):
        to_gray(Gray(np.zeros(1)))
    LensNetwork().unregister(Color, Gray)


def test_lens_chain_identity_and_missing() -> None:
    from manystore.samples import LensNotFoundError, find_lens, lens
    from manystore.samples.lens import Lens

    @packable
    class A:
        x: int

    @packable
    class B:
        y: int

    @packable
    class C:
        z: str

    @lens
    def ab(a: A) -> B:
        return B(a.x + 1)

    @lens
    def bc(b: B) -> C:
        return C(str(b.y))

    assert find_lens(A, C).get(A(1)) == C("2")
    assert (ab | bc)(A(4)) == C("5") and (bc @ ab)(A(4)) == C("5")
    ident = find_lens(A, A)
    assert ident(A(3)) == A(3) and isinstance(ident, Lens)
    with pytest.raises(LensNotFoundError, match=r"no lens from C to A \(lenses from C reach: none\)") as ei:
        find_lens(C, A)
    assert isinstance(ei.value, LookupError) and ei.value.source is C and ei.value.view is A
    with pytest.raises(ValueError, match="exactly 1 parameter"):
        lens(lambda a, b: a)
    with pytest.raises(TypeError, match="annotate"):

        @lens
        def unannotated(a):  # type: ignore[no-untyped-def]
            return a

    with pytest.raises(TypeError, match="putter"):

        @ab.putter
        def wrong(view: C, source: A) -> A:
            return source


def test_lens_from_dict_sample_by_field_names() -> None:
    from manystore.samples import find_lens, view_as

    src = Color(np.arange(6, dtype=np.uint8).reshape(2, 3), 4)
    d = DictSample.from_bytes(src.packed)
    assert view_as(d, Color) == src
    assert view_as(d, Label) == Label(4)  # extra field 'image' ignored
    with pytest.raises(SampleTypeError, match=r"Gray\.image: expected NDArray, got int"):
        view_as(DictSample(image=3), Gray)
    with pytest.raises(SampleTypeError, match="missing field"):
        view_as(DictSample(other=1), Label)
    put = find_lens(DictSample, Label).put(Label(7), d)
    assert put.label == 7 and "image" in put
    as_dict = view_as(src, DictSample)
    assert isinstance(as_dict, DictSample) and as_dict.label == 4
    # allow_pickle chosen at decode travels with the DictSample
    obj = np.array([None, 1], dtype=object)
    buf = io.BytesIO()
    np.save(buf, obj, allow_pickle=True)
    raw = msgpack.packb({"image": buf.getvalue()}, use_bin_type=True)
    with pytest.raises(PickledArrayError):
        view_as(DictSample.from_bytes(raw), Gray)
    assert view_as(DictSample.from_bytes(raw, allow_pickle=True), Gray).image[1] == 1


# ----------------------------------------------------------------------------------------- batches
def test_sample_batch_stacks_arrays_and_lists_others() -> None:
    from manystore.samples import SampleBatch

    samples = [_everything(count=i, image=np.full((3, 4), i, np.float32)) for i in range(5)]
    batch = SampleBatch[Everything](samples)
    assert batch.sample_type is Everything and len(batch) == 5 and list(batch) == samples
    assert batch.image.shape == (5, 3, 4) and batch.image.dtype == np.float32
    assert batch.image[3, 0, 0] == 3 and batch.count == [0, 1, 2, 3, 4] and batch.samples == samples
    assert batch.mask == [None] * 5 and batch.image is batch.image  # cached
    with pytest.raises(AttributeError, match="no field 'nope'"):
        _ = batch.nope
    ragged = SampleBatch([_everything(image=np.zeros(2)), _everything(image=np.zeros(3))])
    with pytest.raises(ValueError, match="different shapes"):
        _ = ragged.image
    with pytest.raises(TypeError, match="one type"):
        SampleBatch([_everything(), Arr(np.zeros(1))])
    with pytest.raises(TypeError, match="needs a type"):
        _ = SampleBatch([]).sample_type
    assert SampleBatch[Arr]([]).a == []
    dicts = SampleBatch([DictSample(a=1, b=b"x"), DictSample(a=2, b=b"y")])
    assert dicts.a == [1, 2] and dicts.field_names() == ["a", "b"]


def test_import_is_lazy() -> None:
    import subprocess
    import sys

    code = (
        "import sys, manystore.samples as m; m.lens; "
        "print(sorted(x for x in ('numpy', 'msgpack', 'torch') if x in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_dict_samples_and_batches_pickle() -> None:
    """DictSamples (and batches of them) cross process boundaries: DataLoader workers pickle them."""
    import pickle

    from manystore.samples import SampleBatch

    sample = DictSample.from_data({"a": 1, "b": b"y"}, allow_pickle=True)
    back = pickle.loads(pickle.dumps(sample))
    assert back == sample and back.allow_pickle and back.to_dict() == {"a": 1, "b": b"y"}
    batch = pickle.loads(pickle.dumps(SampleBatch([DictSample(a=1), DictSample(a=2, b=b"y")])))
    assert [d.to_dict() for d in batch] == [{"a": 1}, {"a": 2, "b": b"y"}] and batch.a == [1, 2]
