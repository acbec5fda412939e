"""MSC 1.3.1's helper modules: manystore.numpy, .pickle, .os, .torch (and their contrib names)."""

from __future__ import annotations

import pickle as std_pickle
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import manystore
from manystore import StorageClientConfig

from .conftest import s3_profile
from .servers import S3Server

HELPER_BACKENDS = ["file", "s3-moto"]


@pytest.fixture(params=HELPER_BACKENDS)
def base_url(request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    """A ``msc://h/`` profile on a temp directory or on moto, configured through ``MSC_CONFIG``."""
    import uuid

    import yaml

    if request.param == "file":
        (tmp_path / "root").mkdir()
        profile = {"storage_provider": {"type": "file", "options": {"base_path": str(tmp_path / "root")}}}
    else:
        server: S3Server = request.getfixturevalue("moto_server")
        profile = s3_profile(server, f"manystore-test/{uuid.uuid4().hex}")
    config_file = tmp_path / "msc.yaml"
    config_file.write_text(yaml.safe_dump({"profiles": {"h": profile}}))
    monkeypatch.setenv("MSC_CONFIG", str(config_file))
    StorageClientConfig.from_file(profile="h")  # the config is valid
    return "msc://h/"


def test_numpy_save_load(base_url: str) -> None:
    from manystore import numpy as msc_np

    arr = np.arange(1000, dtype=np.float32).reshape(10, 100)
    msc_np.save(base_url + "a.npy", arr)
    assert manystore.read(base_url + "a.npy")[:6] == b"\x93NUMPY"
    assert np.array_equal(msc_np.load(base_url + "a.npy"), arr)
    np.savez(buf := __import__("io").BytesIO(), x=arr)
    manystore.write(base_url + "b.npz", buf.getvalue())
    with msc_np.load(base_url + "b.npz") as npz:
        assert np.array_equal(npz["x"], arr)


def test_numpy_memmap_local_and_object_store(base_url: str, tmp_path: Path) -> None:
    from manystore import numpy as msc_np

    msc_np.save(base_url + "m.npy", np.ones(4))
    mapped = msc_np.load(base_url + "m.npy", mmap_mode="r")
    assert isinstance(mapped, np.memmap) and float(mapped.sum()) == 4.0
    raw = msc_np.memmap(base_url + "m.npy", dtype=np.uint8, mode="r")  # numpy.memmap: the file's bytes
    assert bytes(raw[:6]) == b"\x93NUMPY" and len(raw) == len(manystore.read(base_url + "m.npy"))
    if "file" not in str(StorageClientConfig.from_file(profile="h").storage_provider).lower():
        with pytest.raises(ValueError, match="would write to a local copy"):
            msc_np.memmap(base_url + "m.npy", mode="r+")


class _Evil:
    def __reduce__(self) -> tuple[object, tuple[str]]:
        return (print, ("pwned",))


def test_pickle_dump_load_safe_by_default(base_url: str) -> None:
    from manystore import pickle as msc_pickle

    data = {"a": [1, 2.5, "x"], "b": {1, 2}, "c": (b"raw", None)}
    msc_pickle.dump(data, base_url + "d.pkl")
    assert msc_pickle.load(base_url + "d.pkl") == data
    assert std_pickle.loads(manystore.read(base_url + "d.pkl")) == data
    manystore.write(base_url + "evil.pkl", std_pickle.dumps(_Evil()))
    with pytest.raises(std_pickle.UnpicklingError, match=r"refusing to unpickle global builtins.print"):
        msc_pickle.load(base_url + "evil.pkl")
    path = manystore.Path(base_url + "p.pkl")
    msc_pickle.dump(Path("/x/y"), str(path))
    with pytest.raises(std_pickle.UnpicklingError, match="pathlib"):
        msc_pickle.load(path)
    assert msc_pickle.load(path, trusted=True) == Path("/x/y")
    with manystore.open(base_url + "d.pkl", "rb") as fh:
        assert msc_pickle.load(fh) == data


def test_os_helpers(base_url: str) -> None:
    from manystore import os as msc_os

    assert not msc_os.path.exists(base_url + "dir/f.txt")
    msc_os.makedirs(base_url + "dir", exist_ok=True)
    manystore.write(base_url + "dir/f.txt", b"x")
    assert msc_os.path.exists(base_url + "dir/f.txt") and msc_os.path.isfile(base_url + "dir/f.txt")
    assert msc_os.path.isdir(base_url + "dir") and not msc_os.path.isfile(base_url + "dir")
    assert not msc_os.path.isdir(base_url + "dir/f.txt")
    # strict=False: no listing; a path that is not an object counts as a directory on object
    # stores (as in the reference), while local paths are checked exactly
    assert not msc_os.isdir(base_url + "dir/f.txt", strict=False)
    assert msc_os.isdir(base_url + "dir", strict=False)
    on_object_store = manystore.resolve_storage_client(base_url)[0].get_posix_path("") is None
    assert msc_os.isdir(base_url + "nothing-here", strict=False) is on_object_store
    assert not msc_os.isdir(base_url + "nothing-here")
    msc_pickle_dump_by_keyword(base_url)


def msc_pickle_dump_by_keyword(base_url: str) -> None:
    from manystore import pickle as msc_pickle

    msc_pickle.dump({"k": 1}, file_path=base_url + "kw.pkl")  # the reference's parameter name
    assert msc_pickle.load(base_url + "kw.pkl") == {"k": 1}


def test_contrib_names_reexport_the_owners() -> None:
    import manystore.contrib.numpy as c_np
    import manystore.contrib.os as c_os
    import manystore.contrib.os.path as c_os_path
    import manystore.contrib.pickle as c_pickle
    import manystore.contrib.torch as c_torch
    from manystore import numpy as m_np
    from manystore import os as m_os
    from manystore import pickle as m_pickle
    from manystore import torch as m_torch

    assert c_np.load is m_np.load and c_np.save is m_np.save
    assert c_pickle.load is m_pickle.load and c_pickle.dump is m_pickle.dump
    assert c_torch.load is m_torch.load and c_torch.save is m_torch.save
    assert c_os.makedirs is m_os.makedirs and c_os_path.isdir is m_os.path.isdir


def test_torch_helpers_name_the_extra_without_torch(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from manystore import torch as m_torch

    monkeypatch.setitem(sys.modules, "torch", None)  # torch absent: ``import torch`` raises ImportError

    with pytest.raises(ImportError, match=r"pip install 'manystore\[torch\]'"):
        m_torch.load(str(tmp_path / "x.pt"))
    with pytest.raises(ImportError, match=r"manystore\[torch\]"):
        m_torch.save({"a": 1}, str(tmp_path / "x.pt"))


def test_torch_save_load_round_trip(base_url: str) -> None:
    import torch

    from manystore import torch as m_torch

    m_torch.save({"w": torch.arange(5)}, base_url + "ckpt.pt")
    assert torch.equal(m_torch.load(base_url + "ckpt.pt")["w"], torch.arange(5))


def test_helper_modules_are_attributes_of_the_package() -> None:
    code = (
        "import manystore as msc\n"
        "print(msc.numpy.load.__module__, msc.pickle.dump.__module__, msc.os.path.isdir.__module__,"
        " msc.torch.save.__module__, msc.async_fs.MultiStorageAsyncFileSystem.__name__)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.split() == [
        "manystore.numpy",
        "manystore.pickle",
        "manystore.os.path",
        "manystore.torch",
        "MultiStorageAsyncFileSystem",
    ]


def test_import_manystore_does_not_import_numpy_or_torch() -> None:
    code = "import sys, manystore, manystore.contrib; print(sorted(m for m in ('numpy', 'torch') if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
