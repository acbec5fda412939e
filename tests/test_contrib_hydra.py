"""``manystore.contrib.hydra`` (``manystore.hydra``): Hydra apps reading configs from ``msc://`` URLs.

The configs are stored on a manystore profile (a local directory and rclone's S3 server);
Hydra finds the plugins through ``hydra_plugins.manystore_hydra_plugin`` as an installed
app would, and composes configs with ``hydra.initialize(config_path="msc://...")``,
``hydra.searchpath`` and a ``@hydra.main`` script run as a subprocess.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

import manystore
from manystore import shortcuts

from .conftest import Backend, make_backend

hydra = pytest.importorskip("hydra", reason="hydra-core is not installed (pip install hydra-core)")

from hydra.core.config_search_path import ConfigSearchPath  # noqa: E402
from hydra.core.object_type import ObjectType  # noqa: E402
from hydra.core.plugins import Plugins  # noqa: E402
from hydra.errors import ConfigCompositionException  # noqa: E402
from hydra.plugins.config_source import ConfigLoadError  # noqa: E402
from hydra.plugins.search_path_plugin import SearchPathPlugin  # noqa: E402
from omegaconf import OmegaConf  # noqa: E402

from manystore.contrib.hydra import MSCConfigSource, MSCSearchPathPlugin  # noqa: E402

CONFIGS = {
    "configs/app.yaml": "defaults:\n  - db: postgres\n  - optim: sgd\n  - _self_\nname: demo\nepochs: 3\n",
    "configs/db/postgres.yaml": "host: pg.local\nport: 5432\n",
    "configs/db/mysql.yaml": "host: my.local\nport: 3306\n",
    "configs/optim/sgd.yaml": "# @package trainer.optim\nlr: 0.1\n",
    "configs/optim/adam.yaml": "# @package trainer.optim\nlr: 0.001\nbetas: [0.9, 0.99]\n",
    "shared/data/imagenet.yaml": "root: msc://data/imagenet\nsplits: [train, val]\n",
    "configs/broken.yaml": "a: [1, 2\n",
}


def _store(
    name: str, request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Backend:
    backend = make_backend(name, request, tmp_path)
    for key, text in CONFIGS.items():
        backend.client.write(key, text.encode())
    config = tmp_path / "msc.json"
    config.write_text(json.dumps(backend.config))
    monkeypatch.setenv("MSC_CONFIG", str(config))
    shortcuts.reset_cache()
    return backend


@pytest.fixture(params=["file", "s3-rclone"])
def store(request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Backend:
    """Profile ``test`` on a backend holding :data:`CONFIGS`, named by ``$MSC_CONFIG``."""
    return _store(request.param, request, tmp_path, monkeypatch)


@pytest.fixture
def file_store(request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Backend:
    """:func:`store` on the file backend only."""
    return _store("file", request, tmp_path, monkeypatch)


def test_lazy_name() -> None:
    assert manystore.hydra is sys.modules["manystore.contrib.hydra"]
    assert manystore.hydra.MSCConfigSource is MSCConfigSource


def test_plugins_are_discovered() -> None:
    """Hydra's plugin scan imports the ``hydra_plugins`` package this project ships and finds both classes."""
    from hydra._internal.sources_registry import SourcesRegistry

    assert MSCSearchPathPlugin in Plugins.instance().discover(SearchPathPlugin)
    assert "hydra_plugins.manystore_hydra_plugin" in sys.modules
    assert SourcesRegistry.instance().resolve("msc") is MSCConfigSource


def test_compose_from_msc_config_path(store: Backend) -> None:
    """``initialize(config_path="msc://...")``: the primary config, groups and overrides from storage."""
    with hydra.initialize(config_path="msc://test/configs", version_base=None):
        cfg = hydra.compose(config_name="app")
        assert OmegaConf.to_container(cfg) == {
            "db": {"host": "pg.local", "port": 5432},
            "trainer": {"optim": {"lr": 0.1}},
            "name": "demo",
            "epochs": 3,
        }
        cfg = hydra.compose(config_name="app", overrides=["db=mysql", "optim=adam", "epochs=7"])
        assert cfg.db.port == 3306 and cfg.epochs == 7
        assert list(cfg.trainer.optim.betas) == [0.9, 0.99]
        with pytest.raises(ConfigCompositionException) as info:
            hydra.compose(config_name="app", overrides=["db=oracle"])
        message = str(info.value)
        assert "oracle" in message and "mysql" in message and "postgres" in message, message


def test_searchpath_adds_an_msc_directory(store: Backend, tmp_path: Path) -> None:
    """A local primary config pulls a group from ``msc://`` through ``hydra.searchpath``."""
    local = tmp_path / "local-conf"
    local.mkdir()
    (local / "train.yaml").write_text(
        "defaults:\n  - data: imagenet\n  - _self_\nhydra:\n  searchpath:\n    - msc://test/shared\nbatch: 32\n"
    )
    with hydra.initialize_config_dir(config_dir=str(local), version_base=None):
        cfg = hydra.compose(config_name="train")
    assert cfg.batch == 32
    assert cfg.data.root == "msc://data/imagenet" and list(cfg.data.splits) == ["train", "val"]


def test_config_source_methods(store: Backend) -> None:
    source = MSCConfigSource(provider="main", path="msc://test/configs")
    assert source.scheme() == "msc" and source.path == "test/configs" and source.available()
    assert repr(source) == "MSCConfigSource(provider=main, path=msc://test/configs)"
    assert source.is_group("db") and source.is_group("") and not source.is_group("app")
    assert source.is_config("app") and source.is_config("db/mysql") and not source.is_config("db")
    assert not source.is_config("missing") and not source.exists("db/oracle")
    assert source.list("", None) == ["app", "broken", "db", "optim"]
    assert source.list("", ObjectType.GROUP) == ["db", "optim"]
    assert source.list("db", ObjectType.CONFIG) == ["mysql", "postgres"]
    assert source.list("nothing-here", None) == []
    result = source.load_config("optim/adam")
    assert result.header["package"] == "trainer.optim" and result.path == "msc://test/configs"
    assert result.provider == "main" and OmegaConf.to_container(result.config)["lr"] == 0.001
    assert OmegaConf.to_container(source.load_config("db: mysql").config) == {
        "host": "my.local",
        "port": 3306,
    }
    full = source.load_config("msc://test/shared/data/imagenet.yaml")
    assert full.config.splits[1] == "val"
    with pytest.raises(ConfigLoadError, match=r"msc://test/configs/broken\.yaml") as info:
        source.load_config("broken")
    assert isinstance(info.value, OSError)
    with pytest.raises(ConfigLoadError, match=r"msc://test/configs/db/oracle\.yaml"):
        source.load_config("db/oracle")
    universal = MSCConfigSource(provider="msc-universal", path="msc://")
    assert universal.available() and universal.is_config("test/configs/app")
    assert universal.load_config("test/configs/db/postgres").config.port == 5432


def test_config_source_paths_and_availability(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    config = tmp_path / "msc.json"
    config.write_text(
        json.dumps(
            {"profiles": {"p": {"storage_provider": {"type": "file", "options": {"base_path": "/tmp"}}}}}
        )
    )
    monkeypatch.setenv("MSC_CONFIG", str(config))
    shortcuts.reset_cache()
    assert MSCConfigSource("main", "p/configs").full_path() == "msc://p/configs"
    assert not MSCConfigSource("main", "msc://no-such-profile/configs").available()
    with pytest.raises(ValueError, match=r"reads msc:// URLs, got 'file:///etc/conf'"):
        MSCConfigSource("main", "file:///etc/conf")


def test_search_path_plugin_repairs_mangled_urls() -> None:
    from hydra._internal.config_search_path_impl import ConfigSearchPathImpl

    path: ConfigSearchPath = ConfigSearchPathImpl()
    path.append("hydra", "pkg://hydra.conf")
    path.append("main", "file:///home/me/app/msc:/team/configs")
    path.append("other", "file:///data/notmsc:/x")
    MSCSearchPathPlugin().manipulate_search_path(path)
    assert [(e.provider, e.path) for e in path.get_path()] == [
        ("hydra", "pkg://hydra.conf"),
        ("main", "msc://team/configs"),
        ("other", "file:///data/notmsc:/x"),
    ]
    plain: ConfigSearchPath = ConfigSearchPathImpl()
    plain.append("main", "file:///home/me/app/conf")
    MSCSearchPathPlugin().manipulate_search_path(plain)
    assert [(e.provider, e.path) for e in plain.get_path()][-1] == ("msc-universal", "msc://")


def test_hydra_main_app(file_store: Backend, tmp_path: Path) -> None:
    """A ``@hydra.main(config_path="msc://...")`` script run from the command line, with overrides.

    One backend is enough here: the in-process tests above cover S3 with the same code path.
    """
    script = tmp_path / "app.py"
    script.write_text(
        "import hydra\nfrom omegaconf import OmegaConf\n\n"
        '@hydra.main(config_path="msc://test/configs", config_name="app", version_base=None)\n'
        "def main(cfg):\n"
        "    print('RESULT', OmegaConf.to_container(cfg, resolve=True))\n\n"
        "main()\n"
    )
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(
        [str(Path(manystore.__file__).parent.parent), env.get("PYTHONPATH", "")]
    )
    done = subprocess.run(
        [sys.executable, str(script), "db=mysql", "name=cli", "hydra.run.dir=" + str(tmp_path / "out")],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    line = next(x for x in done.stdout.splitlines() if x.startswith("RESULT "))
    assert line == (
        "RESULT {'db': {'host': 'my.local', 'port': 3306}, 'trainer': {'optim': {'lr': 0.1}}, "
        "'name': 'cli', 'epochs': 3}"
    )
