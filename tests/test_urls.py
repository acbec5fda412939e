"""Tests of URL parsing, path mapping, key normalisation, globbing and byte ranges."""

from __future__ import annotations

import fnmatch
import os
import string
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from manystore.errors import InvalidPathError, InvalidURLError
from manystore.pathlib import MultiStoragePath
from manystore.types import Range
from manystore.urls import ParsedURL, PathMapping, parse_url, url_to_str
from manystore.utils import match_glob, normalize_key

#: Characters safe in profile names and key segments (no "/", no glob or URL syntax).
_SAFE = string.ascii_letters + string.digits + "-_.~"

profile_names = st.text(alphabet=_SAFE, min_size=1, max_size=20).filter(lambda s: "/" not in s)
segments = st.text(alphabet=_SAFE, min_size=1, max_size=12)
keys = st.lists(segments, min_size=0, max_size=5).map("/".join)


# ---------------------------------------------------------------- parse_url
@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("msc://prof/a/b.txt", ParsedURL("prof", "a/b.txt")),
        ("msc://prof", ParsedURL("prof", "")),
        ("msc://prof/", ParsedURL("prof", "")),
        ("MSC://prof/x", ParsedURL("prof", "x")),
        ("s3://bucket/key/with/slashes", ParsedURL("_s3-bucket", "key/with/slashes")),
        ("gs://bkt/k", ParsedURL("_gs-bkt", "k")),
        ("ais://bkt/k", ParsedURL("_ais-bkt", "k")),
        ("az://container/k", ParsedURL("_az-container", "k")),
        ("s3://bucket", ParsedURL("_s3-bucket", "")),
        ("/abs/path/f.txt", ParsedURL("__filesystem__", "abs/path/f.txt")),
        ("file:///abs/path/f.txt", ParsedURL("__filesystem__", "abs/path/f.txt")),
        ("file:///abs/./x/../f", ParsedURL("__filesystem__", "abs/f")),
    ],
)
def test_parse_url(url: str, expected: ParsedURL) -> None:
    assert parse_url(url) == expected


def test_parse_relative_path_uses_cwd(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    assert parse_url("sub/f.txt") == ParsedURL("__filesystem__", f"{tmp_path}/sub/f.txt".lstrip("/"))


def test_parse_path_objects() -> None:
    assert parse_url(Path("/abs/p")) == ParsedURL("__filesystem__", "abs/p")
    assert parse_url(MultiStoragePath("s3://bkt/a/b")) == ParsedURL("_s3-bkt", "a/b")
    assert parse_url(MultiStoragePath("msc://prof/a")) == ParsedURL("prof", "a")
    assert parse_url(MultiStoragePath("/abs/q")) == ParsedURL("__filesystem__", "abs/q")


def test_url_to_str() -> None:
    assert url_to_str("s3://b/k") == "s3://b/k"
    assert url_to_str(Path("/x/y")) == "/x/y"
    assert url_to_str(MultiStoragePath("gs://b/k")) == "gs://b/k"
    assert url_to_str(5) == 5


@pytest.mark.parametrize(
    ("url", "fragment"),
    [
        ("", "empty URL"),
        ("/a\x00b", "NUL"),
        ("ftp://host/file", "unsupported scheme 'ftp'"),
        ("msc://", "names no profile"),
        ("msc:///key", "names no profile"),
        ("s3://", "names no bucket"),
        ("s3:///key", "names no bucket"),
        ("file://relative/path", "absolute path"),
    ],
)
def test_parse_url_errors(url: str, fragment: str) -> None:
    with pytest.raises(InvalidURLError, match=fragment):
        parse_url(url)


def test_parse_url_unknown_scheme_lists_allowed() -> None:
    with pytest.raises(InvalidURLError) as info:
        parse_url("ftp://host/file")
    for scheme in ("msc", "file", "s3", "gs", "ais", "az"):
        assert f"'{scheme}'" in str(info.value)


@pytest.mark.parametrize("value", [None, 42, b"/bytes/path"])
def test_parse_url_rejects_non_strings(value: object) -> None:
    with pytest.raises(InvalidURLError, match="expected a URL or path string"):
        parse_url(value)  # type: ignore[arg-type]


def test_invalid_url_error_is_value_error() -> None:
    with pytest.raises(ValueError):
        parse_url("")


@given(profile=profile_names, key=keys)
def test_msc_url_roundtrip(profile: str, key: str) -> None:
    parsed = parse_url(f"msc://{profile}/{key}")
    assert parsed == ParsedURL(profile, key)
    assert parse_url(f"msc://{parsed.profile}/{parsed.path}") == parsed


@given(
    bucket=st.text(alphabet=string.ascii_lowercase + string.digits + "-.", min_size=1, max_size=20), key=keys
)
def test_s3_url_implicit_profile(bucket: str, key: str) -> None:
    assert parse_url(f"s3://{bucket}/{key}") == ParsedURL(f"_s3-{bucket}", key)


# ---------------------------------------------------------------- PathMapping
def _mapping() -> PathMapping:
    return PathMapping.from_config(
        {
            "s3://bucket/a/": "msc://short/",
            "s3://bucket/a/b/": "msc://long/",
            "gs://bucket/a/": "msc://gcs/",
            "/mnt/x/": "msc://local/",
        }
    )


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("s3://bucket/a/k", ("short", "k")),
        ("s3://bucket/a/b/k", ("long", "k")),
        ("s3://bucket/a/bc", ("short", "bc")),
        ("gs://bucket/a/k", ("gcs", "k")),
        ("/mnt/x/sub/f", ("local", "sub/f")),
        ("file:///mnt/x/f", ("local", "f")),
        ("s3://bucket/other/k", None),
        ("s3://other/a/k", None),
        ("/mnt/xy/f", None),
        ("msc://short/k", None),
    ],
)
def test_find_mapping(url: str, expected: tuple[str, str] | None) -> None:
    assert _mapping().find_mapping(url) == expected


def test_find_mapping_path_objects() -> None:
    mapping = _mapping()
    assert mapping.find_mapping(Path("/mnt/x/f")) == ("local", "f")
    assert mapping.find_mapping(MultiStoragePath("s3://bucket/a/b/z")) == ("long", "z")
    assert mapping.find_mapping(MultiStoragePath("msc://short/k")) is None


def test_empty_mapping() -> None:
    assert PathMapping.from_config(None).find_mapping("s3://bucket/a/k") is None


def test_find_mapping_relative_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    mapping = PathMapping.from_config({f"{tmp_path}/": "msc://here/"})
    monkeypatch.chdir(tmp_path)
    assert mapping.find_mapping(os.path.join("d", "f")) == ("here", "d/f")


# ---------------------------------------------------------------- normalize_key
key_text = st.text(alphabet=st.sampled_from(list("ab./")), max_size=30)


@given(key=key_text)
def test_normalize_key_never_escapes(key: str) -> None:
    has_dotdot = ".." in key.split("/")
    if has_dotdot:
        with pytest.raises(InvalidPathError, match=r"'\.\.'"):
            normalize_key(key)
        return
    out = normalize_key(key)
    assert not out.startswith("/")
    assert ".." not in out.split("/")
    assert "." not in out.split("/")
    assert "//" not in out
    assert normalize_key(out) == out


@given(parts=st.lists(segments, min_size=1, max_size=4), at=st.integers(min_value=0, max_value=4))
def test_normalize_key_rejects_dotdot_anywhere(parts: list[str], at: int) -> None:
    parts.insert(min(at, len(parts)), "..")
    with pytest.raises(InvalidPathError):
        normalize_key("/".join(parts))


@pytest.mark.parametrize(
    ("key", "expected"),
    [("/a//b/./c", "a/b/c"), ("a/b/", "a/b/"), ("", ""), ("./", ""), ("a..b/c", "a..b/c")],
)
def test_normalize_key_examples(key: str, expected: str) -> None:
    assert normalize_key(key) == expected


@pytest.mark.parametrize("key", ["a\x00b", 5])
def test_normalize_key_invalid(key: object) -> None:
    with pytest.raises(InvalidPathError):
        normalize_key(key)  # type: ignore[arg-type]


# ---------------------------------------------------------------- match_glob
glob_patterns = st.text(alphabet=st.sampled_from(list("ab.*?[]!-")), max_size=8).filter(
    lambda p: "**" not in p
)
names = st.text(alphabet=st.sampled_from(list("ab.-!")), max_size=8)


@given(pattern=glob_patterns, name=names)
def test_match_glob_agrees_with_fnmatch(pattern: str, name: str) -> None:
    assert match_glob(pattern, name) == fnmatch.fnmatchcase(name, pattern)


@pytest.mark.parametrize(
    ("pattern", "key", "expected"),
    [
        ("*.txt", "a.txt", True),
        ("*.txt", "d/a.txt", False),
        ("**/*.txt", "a.txt", True),
        ("**/*.txt", "d/e/a.txt", True),
        ("d/**", "d/e/f", True),
        ("d/?", "d/ab", False),
    ],
)
def test_match_glob_segments(pattern: str, key: str, expected: bool) -> None:
    assert match_glob(pattern, key) is expected


# ---------------------------------------------------------------- Range
@given(offset=st.integers(min_value=0, max_value=2**63), size=st.integers(min_value=0, max_value=2**63))
def test_range_end(offset: int, size: int) -> None:
    assert Range(offset, size).end == offset + size


@given(offset=st.integers(max_value=-1), size=st.integers(min_value=0))
def test_range_negative_offset(offset: int, size: int) -> None:
    with pytest.raises(ValueError, match="offset"):
        Range(offset, size)


@given(offset=st.integers(min_value=0), size=st.integers(max_value=-1))
def test_range_negative_size(offset: int, size: int) -> None:
    with pytest.raises(ValueError, match="size"):
        Range(offset, size)


@pytest.mark.parametrize(("offset", "size"), [(True, 1), (0, 1.5), ("1", 2)])
def test_range_rejects_non_ints(offset: object, size: object) -> None:
    with pytest.raises(ValueError):
        Range(offset, size)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("profile", "prefix"),
    [
        ("__filesystem__", "/"),
        ("_s3-bkt", "s3://bkt/"),
        ("_gs-bkt", "gs://bkt/"),
        ("_az-cont", "az://cont/"),
        ("_azblob-acct-cont", "https://acct.blob.core.windows.net/cont/"),
        ("train", None),
    ],
)
def test_implicit_url_prefix(profile: str, prefix: str | None) -> None:
    from manystore.urls import implicit_url_prefix

    assert implicit_url_prefix(profile) == prefix
