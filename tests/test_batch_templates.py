"""Object collections of manystore.batch: names, ranges and bash brace-expansion templates."""

from __future__ import annotations

import subprocess

import pytest

from manystore.batch import ObjectNames, ObjectRange, ObjectTemplate
from manystore.batch.templates import expand_template


@pytest.mark.parametrize(
    ("template", "expected"),
    [
        ("plain.tar", ["plain.tar"]),
        ("s-{0..3}.tar", ["s-0.tar", "s-1.tar", "s-2.tar", "s-3.tar"]),
        ("s-{3..0}", ["s-3", "s-2", "s-1", "s-0"]),
        ("{00..10..2}", ["00", "02", "04", "06", "08", "10"]),
        ("{0..10..5}", ["0", "5", "10"]),
        ("x{8..12}", ["x8", "x9", "x10", "x11", "x12"]),
        ("x{08..11}", ["x08", "x09", "x10", "x11"]),
        ("{1..005}", ["001", "002", "003", "004", "005"]),
        ("{a,b,c}.bin", ["a.bin", "b.bin", "c.bin"]),
        ("{a..c}", ["a", "b", "c"]),
        ("{a,}z", ["az", "z"]),
        ("{x,y{1..2}}", ["x", "y1", "y2"]),
        ("{a,b{c,d{0..1}}}", ["a", "bc", "bd0", "bd1"]),
        ("s{0..1}-{a,b}.tar", ["s0-a.tar", "s0-b.tar", "s1-a.tar", "s1-b.tar"]),
        ("{train,val}/p-{0..4..2}", ["train/p-0", "train/p-2", "train/p-4", "val/p-0", "val/p-2", "val/p-4"]),
        ("a,b", ["a,b"]),
    ],
)
def test_template_forms_expand_as_bash(template: str, expected: list[str]) -> None:
    assert list(ObjectTemplate(template)) == expected


def test_templates_match_bash_itself() -> None:
    forms = ["s{0..3}.tar", "{00..10..2}", "{a,b{c,d{0..1}}}", "s{0..1}-{a,b}.tar", "x{08..11}", "{9..7}"]
    for form in [*forms, "{1..005}", "{a..e..2}", "{10..0..5}", "{-2..2}"]:
        out = subprocess.run(["bash", "-c", f"echo {form}"], capture_output=True, text=True, check=True)
        assert " ".join(expand_template(form)) == out.stdout.strip(), form


@pytest.mark.parametrize(
    ("template", "part"),
    [
        ("shard-{0..9", "unclosed '{' at position 6"),
        ("shard-0..9}", "unmatched '}' at position 10"),
        ("x{a}", "'{a}'"),
        ("x{}", "'{}'"),
        ("x{1..x}", "'{1..x}'"),
        ("x{1..5..0}", "'{1..5..0}'"),
        ("{a,{b}", "unclosed '{' at position 0"),
        ("{0..99999999}{0..9}", "expected at most"),
    ],
)
def test_malformed_templates_name_the_offending_part(template: str, part: str) -> None:
    with pytest.raises(ValueError) as info:
        ObjectTemplate(template)
    assert part in str(info.value)


def test_object_range_forms() -> None:
    r = ObjectRange("shard-", 0, 10, pad_width=3, step=5, suffix=".tar")
    assert list(r) == ["shard-000.tar", "shard-005.tar", "shard-010.tar"]
    assert str(r) == "shard-{000..010..5}.tar"
    assert list(ObjectRange.from_string("shard-{000..003}.tar")) == [f"shard-{i:03d}.tar" for i in range(4)]
    assert list(ObjectRange.from_string("in-{00..09..3}.txt")) == [
        "in-00.txt",
        "in-03.txt",
        "in-06.txt",
        "in-09.txt",
    ]
    assert list(ObjectRange.from_string("p{7..7}")) == ["p7"]
    assert not ObjectRange("prefix/").has_indices()
    assert ObjectRange("a", 1, 2).get_value() == {"template": "a{1..2..1}"}


@pytest.mark.parametrize(
    ("kwargs", "part"),
    [
        ({"prefix": "a", "min_index": 1}, "expected both or neither"),
        ({"prefix": "a", "min_index": 5, "max_index": 2}, "min_index 5 > max_index 2"),
        ({"prefix": "a", "min_index": 0, "max_index": 2, "step": 0}, "step 0"),
        ({"prefix": "a", "min_index": 100, "max_index": 200, "pad_width": 2}, "wider than pad_width 2"),
        ({"prefix": "a", "suffix": ".x"}, "suffix '.x' without indices"),
        ({"prefix": "a", "min_index": -1, "max_index": 2}, "non-negative"),
    ],
)
def test_object_range_rejects_bad_arguments(kwargs: dict[str, object], part: str) -> None:
    with pytest.raises(ValueError) as info:
        ObjectRange(**kwargs)  # type: ignore[arg-type]
    assert part in str(info.value)


@pytest.mark.parametrize("text", ["shard-{a..b}.tar", "shard.tar", "s{1..2}{3..4}", "s{1..2..}"])
def test_object_range_from_string_rejects(text: str) -> None:
    with pytest.raises(ValueError, match="range string"):
        ObjectRange.from_string(text)


def test_object_names() -> None:
    assert list(ObjectNames(["b", "a"])) == ["b", "a"]
    with pytest.raises(ValueError, match="expected a non-empty string"):
        ObjectNames(["a", ""])
    with pytest.raises(TypeError, match="list of str"):
        ObjectNames("abc")
