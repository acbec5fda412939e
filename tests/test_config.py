"""Tests of configuration loading, validation and profile building (no network)."""

from __future__ import annotations

import json
import pickle
from pathlib import Path
from typing import Any

import pytest
import yaml

import manystore
from manystore import StorageClient, StorageClientConfig
from manystore.config import (
    config_search_paths,
    expand_env,
    load_config_file,
    mask_secrets,
    read_msc_config,
)
from manystore.errors import ConfigError, UnknownProfileError
from manystore.providers.posix_file import PosixFileStorageProvider
from manystore.providers.s3 import StaticS3CredentialsProvider
from manystore.schema import RESERVED_POSIX_PROFILE, validate_config
from manystore.types import (
    CredentialsProvider,
    MetadataProvider,
    ProviderBundle,
    RetryConfig,
    StorageProviderConfig,
)
from manystore.urls import implicit_profile_config, parse_url

#: The base_path given to :class:`MyBundle` when a test builds it directly.
_BUNDLE_DEFAULT_BASE = "/nonexistent-manystore-bundle"


class MyBundle(ProviderBundle):
    """A minimal provider bundle: a file provider on ``base_path`` and nothing else.

    Args:
        base_path: Directory served by the bundle's file provider.
    """

    def __init__(self, base_path: str = _BUNDLE_DEFAULT_BASE) -> None:
        self._base_path = base_path

    @property
    def storage_provider_config(self) -> StorageProviderConfig:
        """A ``file`` provider on the bundle's directory."""
        return StorageProviderConfig(type="file", options={"base_path": self._base_path})

    @property
    def credentials_provider(self) -> CredentialsProvider | None:
        """No credentials are needed for local files."""
        return None

    @property
    def metadata_provider(self) -> MetadataProvider | None:
        """No metadata provider."""
        return None


# ---------------------------------------------------------------- helpers
def file_profile(root: Path | str, **extra: Any) -> dict[str, Any]:
    """A profile dict for a file provider on ``root``."""
    return {"storage_provider": {"type": "file", "options": {"base_path": str(root)}}, **extra}


def write_yaml(path: Path, data: dict[str, Any]) -> Path:
    """Write ``data`` as YAML to ``path`` (creating parent directories) and return ``path``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(data), encoding="utf-8")
    return path


def roundtrip(config: StorageClientConfig, key: str = "k.txt") -> bytes:
    """Write and read back one object through a client built from ``config``."""
    client = StorageClient(config)
    client.write(key, b"payload")
    return client.read(key)


@pytest.fixture
def home(tmp_path: Path) -> Path:
    """The (conftest-assigned) home directory, created."""
    path = tmp_path / "home"
    path.mkdir(exist_ok=True)
    return path


@pytest.fixture
def root(tmp_path: Path) -> Path:
    """An empty data directory for a file provider."""
    path = tmp_path / "data"
    path.mkdir()
    return path


# ---------------------------------------------------------------- builders
def test_from_dict_builds_file_profile(root: Path) -> None:
    config = StorageClientConfig.from_dict({"profiles": {"p": file_profile(root)}}, "p")
    assert config.profile == "p"
    assert isinstance(config.storage_provider, PosixFileStorageProvider)
    assert roundtrip(config) == b"payload"
    assert (root / "k.txt").read_bytes() == b"payload"


def test_from_json(root: Path) -> None:
    text = json.dumps({"profiles": {"p": file_profile(root)}})
    config = StorageClientConfig.from_json(text, "p")
    assert roundtrip(config) == b"payload"


def test_from_yaml(root: Path) -> None:
    text = yaml.safe_dump({"profiles": {"p": file_profile(root)}})
    config = StorageClientConfig.from_yaml(text, "p")
    assert roundtrip(config) == b"payload"


def test_from_json_invalid_document() -> None:
    with pytest.raises(ConfigError, match="not valid JSON"):
        StorageClientConfig.from_json("{not json", "p")


def test_from_file_uses_msc_config(tmp_path: Path, root: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = write_yaml(tmp_path / "cfg" / "my.yaml", {"profiles": {"p": file_profile(root)}})
    monkeypatch.setenv("MSC_CONFIG", str(path))
    config = StorageClientConfig.from_file(profile="p")
    assert roundtrip(config) == b"payload"


def test_from_file_json(tmp_path: Path, root: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "cfg.json"
    path.write_text(json.dumps({"profiles": {"p": file_profile(root)}}), encoding="utf-8")
    monkeypatch.setenv("MSC_CONFIG", str(path))
    assert roundtrip(StorageClientConfig.from_file(profile="p")) == b"payload"


def test_from_file_without_config_default_is_filesystem(root: Path) -> None:
    assert read_msc_config() == ({}, None)
    config = StorageClientConfig.from_file()
    client = StorageClient(config)
    client.write(str(root / "f.txt"), b"abc")
    assert (root / "f.txt").read_bytes() == b"abc"


# ---------------------------------------------------------------- search order
def _marker_config(tmp_path: Path, name: str) -> dict[str, Any]:
    return {"profiles": {name: file_profile(tmp_path)}}


def test_search_order_msc_config_first(tmp_path: Path, home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    explicit = write_yaml(tmp_path / "explicit.yaml", _marker_config(tmp_path, "explicit"))
    xdg = tmp_path / "xdg"
    write_yaml(xdg / "msc" / "config.yaml", _marker_config(tmp_path, "xdg"))
    write_yaml(home / ".msc_config.yaml", _marker_config(tmp_path, "home"))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(xdg))
    monkeypatch.setenv("MSC_CONFIG", str(explicit))
    data, path = read_msc_config()
    assert path == str(explicit)
    assert list(data["profiles"]) == ["explicit"]


def test_search_order_xdg_home_before_home(
    tmp_path: Path, home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    xdg = tmp_path / "xdg"
    xdg_file = write_yaml(xdg / "msc" / "config.yaml", _marker_config(tmp_path, "xdg"))
    write_yaml(home / ".msc_config.yaml", _marker_config(tmp_path, "home"))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(xdg))
    data, path = read_msc_config()
    assert path == str(xdg_file)
    assert list(data["profiles"]) == ["xdg"]


def test_search_order_home_dotfile_before_dot_config(tmp_path: Path, home: Path) -> None:
    dotfile = write_yaml(home / ".msc_config.yaml", _marker_config(tmp_path, "dotfile"))
    write_yaml(home / ".config" / "msc" / "config.yaml", _marker_config(tmp_path, "dotconfig"))
    assert read_msc_config()[1] == str(dotfile)
    dotfile.unlink()
    data, path = read_msc_config()
    assert path == str(home / ".config" / "msc" / "config.yaml")
    assert list(data["profiles"]) == ["dotconfig"]


def test_search_order_xdg_config_dirs_last(
    tmp_path: Path, home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    dirs = [tmp_path / "sys1", tmp_path / "sys2"]
    second = write_yaml(dirs[1] / "msc" / "config.yaml", _marker_config(tmp_path, "sys2"))
    monkeypatch.setenv("XDG_CONFIG_DIRS", ":".join(str(d) for d in dirs))
    assert read_msc_config()[1] == str(second)
    first = write_yaml(dirs[0] / "msc" / "config.yaml", _marker_config(tmp_path, "sys1"))
    assert read_msc_config()[1] == str(first)
    home_file = write_yaml(home / ".config" / "msc" / "config.yaml", _marker_config(tmp_path, "home"))
    assert read_msc_config()[1] == str(home_file)


def test_config_search_paths_listing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MSC_CONFIG", "/explicit.yaml")
    monkeypatch.setenv("XDG_CONFIG_HOME", "/xdghome")
    monkeypatch.setenv("XDG_CONFIG_DIRS", "/a:/b")
    home = str(tmp_path / "home")
    paths = config_search_paths()
    expected_order = [
        "/explicit.yaml",
        "/xdghome/msc/config.yaml",
        f"{home}/.msc_config.yaml",
        f"{home}/.config/msc/config.yaml",
        "/a/msc/config.yaml",
        "/b/msc/config.yaml",
        "/etc/msc_config.yaml",
    ]
    positions = [paths.index(p) for p in expected_order]
    assert positions == sorted(positions)
    assert paths[0] == "/explicit.yaml"


# ---------------------------------------------------------------- include
def test_include_relative_and_absolute(tmp_path: Path, root: Path) -> None:
    other = tmp_path / "elsewhere" / "abs.yaml"
    write_yaml(other, {"profiles": {"abs": file_profile(root)}})
    write_yaml(tmp_path / "cfg" / "parts" / "rel.yaml", {"profiles": {"rel": file_profile(root)}})
    main = write_yaml(
        tmp_path / "cfg" / "main.yaml",
        {"include": ["parts/rel.yaml", str(other)], "profiles": {"main": file_profile(root)}},
    )
    data = load_config_file(str(main))
    assert sorted(data["profiles"]) == ["abs", "main", "rel"]
    assert "include" not in data
    for profile in ("abs", "main", "rel"):
        assert StorageClientConfig.from_dict(data, profile).profile == profile


def test_include_conflicting_profile_names_both_files(tmp_path: Path) -> None:
    inc = write_yaml(tmp_path / "inc.yaml", {"profiles": {"p": file_profile(tmp_path / "b")}})
    main = write_yaml(
        tmp_path / "main.yaml", {"include": ["inc.yaml"], "profiles": {"p": file_profile(tmp_path)}}
    )
    with pytest.raises(ConfigError) as info:
        load_config_file(str(main))
    message = str(info.value)
    assert "profiles.p" in message
    assert str(main) in message
    assert str(inc) in message


def test_include_identical_profile_is_accepted(tmp_path: Path) -> None:
    write_yaml(tmp_path / "inc.yaml", {"profiles": {"p": file_profile(tmp_path)}})
    main = write_yaml(
        tmp_path / "main.yaml", {"include": ["inc.yaml"], "profiles": {"p": file_profile(tmp_path)}}
    )
    assert list(load_config_file(str(main))["profiles"]) == ["p"]


def test_nested_include_refused(tmp_path: Path) -> None:
    write_yaml(tmp_path / "deep.yaml", {"profiles": {"d": file_profile(tmp_path)}})
    inc = write_yaml(tmp_path / "inc.yaml", {"include": ["deep.yaml"]})
    main = write_yaml(tmp_path / "main.yaml", {"include": ["inc.yaml"]})
    with pytest.raises(ConfigError, match="nested 'include'") as info:
        load_config_file(str(main))
    assert str(inc) in str(info.value)


def test_missing_include_names_file(tmp_path: Path) -> None:
    main = write_yaml(tmp_path / "main.yaml", {"include": ["missing.yaml"]})
    with pytest.raises(ConfigError, match=r"missing\.yaml"):
        load_config_file(str(main))


# ---------------------------------------------------------------- env interpolation
def test_env_interpolation(root: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MANYSTORE_TEST_ROOT", str(root))
    monkeypatch.delenv("MANYSTORE_TEST_UNSET", raising=False)
    config_dict = {
        "profiles": {
            "env": file_profile("${MANYSTORE_TEST_ROOT}"),
            "dflt": file_profile(f"${{MANYSTORE_TEST_UNSET:-{root}/sub}}"),
        }
    }
    assert roundtrip(StorageClientConfig.from_dict(config_dict, "env")) == b"payload"
    assert (root / "k.txt").exists()
    assert roundtrip(StorageClientConfig.from_dict(config_dict, "dflt")) == b"payload"
    assert (root / "sub" / "k.txt").exists()


def test_env_interpolation_unset_names_var_and_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("MANYSTORE_TEST_UNSET", raising=False)
    config_dict = {"profiles": {"p": file_profile("/x/${MANYSTORE_TEST_UNSET}")}}
    with pytest.raises(ConfigError) as info:
        StorageClientConfig.from_dict(config_dict, "p")
    message = str(info.value)
    assert "MANYSTORE_TEST_UNSET" in message
    assert "profiles.p.storage_provider.options.base_path" in message


def test_expand_env_recurses_and_keeps_other_values(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MANYSTORE_A", "a")
    value = {"x": ["${MANYSTORE_A}-1", 2, None], "y": {"z": "pre-${MANYSTORE_A}"}, "w": "plain"}
    assert expand_env(value) == {"x": ["a-1", 2, None], "y": {"z": "pre-a"}, "w": "plain"}


# ---------------------------------------------------------------- path mapping
def test_path_mapping_longest_prefix_wins(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    shallow, deep, local = tmp_path / "shallow", tmp_path / "deep", tmp_path / "local"
    for d in (shallow, deep, local):
        d.mkdir()
    mount = tmp_path / "mnt" / "x"
    cfg = write_yaml(
        tmp_path / "cfg.yaml",
        {
            "profiles": {
                "shallow": file_profile(shallow),
                "deep": file_profile(deep),
                "local": file_profile(local),
            },
            "path_mapping": {
                "s3://bucket/prefix/": "msc://shallow/",
                "s3://bucket/prefix/deeper/": "msc://deep/",
                f"{mount}/": "msc://local/",
            },
        },
    )
    monkeypatch.setenv("MSC_CONFIG", str(cfg))

    client, path = manystore.resolve_storage_client("s3://bucket/prefix/a/b.txt")
    assert (client.profile, path) == ("shallow", "a/b.txt")
    client.write(path, b"1")
    assert (shallow / "a" / "b.txt").read_bytes() == b"1"

    client, path = manystore.resolve_storage_client("s3://bucket/prefix/deeper/c.txt")
    assert (client.profile, path) == ("deep", "c.txt")

    client, path = manystore.resolve_storage_client(f"{mount}/d.txt")
    assert (client.profile, path) == ("local", "d.txt")
    client.write(path, b"2")
    assert (local / "d.txt").read_bytes() == b"2"

    client, path = manystore.resolve_storage_client(Path(mount) / "e.txt")  # type: ignore[arg-type]
    assert (client.profile, path) == ("local", "e.txt")

    # Unmapped URLs fall back to ordinary parsing.
    client, path = manystore.resolve_storage_client("msc://deep/f.txt")
    assert (client.profile, path) == ("deep", "f.txt")


def test_path_mapping_accepts_remote_multistoragepath(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from manystore.pathlib import MultiStoragePath

    cfg = write_yaml(
        tmp_path / "cfg.yaml",
        {"profiles": {"m": file_profile(tmp_path)}, "path_mapping": {"s3://bucket/pre/": "msc://m/"}},
    )
    monkeypatch.setenv("MSC_CONFIG", str(cfg))
    client, path = manystore.resolve_storage_client(MultiStoragePath("s3://bucket/pre/x.bin"))  # type: ignore[arg-type]
    assert (client.profile, path) == ("m", "x.bin")


# ---------------------------------------------------------------- implicit profiles
def test_implicit_s3_profile() -> None:
    assert parse_url("s3://bkt/k").profile == "_s3-bkt"
    assert implicit_profile_config("_s3-bkt") == {
        "storage_provider": {"type": "s3", "options": {"base_path": "bkt"}}
    }
    config = StorageClientConfig.from_dict({}, "_s3-bkt")
    assert config.storage_provider.provider_name == "s3"  # type: ignore[attr-defined]
    assert "bkt" in repr(config.storage_provider)


@pytest.mark.parametrize("url", ["/abs/dir/f", "file:///abs/dir/f"])
def test_implicit_filesystem_profile(url: str) -> None:
    parsed = parse_url(url)
    assert parsed.profile == RESERVED_POSIX_PROFILE == "__filesystem__"
    assert parsed.path == "abs/dir/f"


def test_filesystem_profile_serves_absolute_paths(root: Path) -> None:
    client, path = manystore.resolve_storage_client(f"file://{root}/g.txt")
    assert client.profile == "__filesystem__"
    client.write(path, b"fs")
    assert (root / "g.txt").read_bytes() == b"fs"


def test_non_implicit_names() -> None:
    assert implicit_profile_config("_ftp-bkt") is None
    assert implicit_profile_config("_s3-") is None
    assert implicit_profile_config("plain") is None


# ---------------------------------------------------------------- fully-qualified classes
def test_fully_qualified_storage_provider_type(root: Path) -> None:
    profile = {
        "storage_provider": {
            "type": "manystore.providers.posix_file.PosixFileStorageProvider",
            "options": {"base_path": str(root)},
        }
    }
    config = StorageClientConfig.from_dict({"profiles": {"p": profile}}, "p")
    assert type(config.storage_provider) is PosixFileStorageProvider
    assert roundtrip(config) == b"payload"


def test_fully_qualified_credentials_provider_type() -> None:
    profile = {
        "storage_provider": {"type": "s3", "options": {"base_path": "bkt"}},
        "credentials_provider": {
            "type": "manystore.providers.s3.StaticS3CredentialsProvider",
            "options": {"access_key": "AKIAEXAMPLE", "secret_key": "hunter2"},
        },
    }
    config = StorageClientConfig.from_dict({"profiles": {"p": profile}}, "p")
    assert isinstance(config.credentials_provider, StaticS3CredentialsProvider)
    assert config.credentials_provider.get_credentials().access_key == "AKIAEXAMPLE"
    assert "hunter2" not in repr(config)


def test_fully_qualified_type_missing_class() -> None:
    profile = {
        "storage_provider": {"type": "manystore.providers.posix_file.Nope", "options": {"base_path": "/"}}
    }
    with pytest.raises(ConfigError, match=r"profiles\.p\.storage_provider\.type.*Nope"):
        StorageClientConfig.from_dict({"profiles": {"p": profile}}, "p")


# ---------------------------------------------------------------- provider bundles
def test_provider_bundle_in_config(root: Path) -> None:
    profile = {"provider_bundle": {"type": "tests.test_config.MyBundle", "options": {"base_path": str(root)}}}
    config = StorageClientConfig.from_dict({"profiles": {"b": profile}}, "b")
    assert config.profile == "b"
    assert config.credentials_provider is None
    assert roundtrip(config) == b"payload"
    assert (root / "k.txt").exists()


def test_provider_bundle_type_must_be_bundle() -> None:
    profile = {"provider_bundle": {"type": "manystore.types.RetryConfig"}}
    with pytest.raises(ConfigError, match=r"profiles\.b\.provider_bundle\.type.*not a ProviderBundle"):
        StorageClientConfig.from_dict({"profiles": {"b": profile}}, "b")


def test_from_provider_bundle(root: Path) -> None:
    config = StorageClientConfig.from_provider_bundle(
        {"retry": {"attempts": 5, "delay": 0.1}}, MyBundle(str(root))
    )
    assert config.retry_config == RetryConfig(attempts=5, delay=0.1)
    assert roundtrip(config) == b"payload"


def test_from_provider_bundle_bad_retry(root: Path) -> None:
    with pytest.raises(ConfigError, match=r"retry\.delay.*-1.*>= 0"):
        StorageClientConfig.from_provider_bundle({"retry": {"delay": -1}}, MyBundle(str(root)))


# ---------------------------------------------------------------- validation errors
def _error(config_dict: Any, profile: str = "p") -> str:
    with pytest.raises(ConfigError) as info:
        StorageClientConfig.from_dict(config_dict, profile)
    return str(info.value)


def test_unknown_top_level_key_did_you_mean(root: Path) -> None:
    message = _error({"profile": {"p": file_profile(root)}})
    assert "profile" in message
    assert "did you mean 'profiles'" in message
    assert "allowed keys" in message


def test_misspelt_profile_key(root: Path) -> None:
    message = _error({"profiles": {"p": {"storage_providr": {"type": "file"}}}})
    assert "profiles.p.storage_providr" in message
    assert "did you mean 'storage_provider'" in message


def test_wrong_type(root: Path) -> None:
    message = _error({"profiles": {"p": file_profile(root, caching_enabled="yes")}})
    assert "profiles.p.caching_enabled" in message
    assert "expected bool" in message
    assert "'yes'" in message


def test_wrong_type_bool_for_int(root: Path) -> None:
    message = _error({"profiles": {"p": file_profile(root, retry={"attempts": True})}})
    assert "profiles.p.retry.attempts" in message
    assert "expected int" in message


def test_unknown_storage_provider_type() -> None:
    message = _error({"profiles": {"p": {"storage_provider": {"type": "floppy", "options": {}}}}})
    assert "profiles.p.storage_provider.type" in message
    assert "'floppy'" in message
    for name in ("file", "s3", "gcs", "azure"):
        assert f"'{name}'" in message


def test_unknown_credentials_provider_type() -> None:
    profile = {
        "storage_provider": {"type": "s3", "options": {"base_path": "b"}},
        "credentials_provider": {"type": "Nope"},
    }
    message = _error({"profiles": {"p": profile}})
    assert "profiles.p.credentials_provider.type" in message
    assert "S3Credentials" in message


def test_unknown_file_provider_option(root: Path) -> None:
    profile = file_profile(root)
    profile["storage_provider"]["options"]["colour"] = "blue"
    message = _error({"profiles": {"p": profile}})
    assert "profiles.p.storage_provider.options" in message
    assert "colour" in message


def test_profile_name_starting_with_underscore(root: Path) -> None:
    message = _error({"profiles": {"_private": file_profile(root)}}, "_private")
    assert "profiles._private" in message
    assert "must not start with '_'" in message


def test_missing_storage_provider() -> None:
    message = _error({"profiles": {"p": {"retry": {"attempts": 2}}}})
    assert "profiles.p" in message
    assert "missing 'storage_provider'" in message


def test_missing_type() -> None:
    message = _error({"profiles": {"p": {"storage_provider": {"options": {}}}}})
    assert "profiles.p.storage_provider" in message
    assert "'type'" in message


def test_storage_provider_and_bundle_conflict(root: Path) -> None:
    profile = file_profile(root, provider_bundle={"type": "tests.test_config.MyBundle"})
    assert "not both" in _error({"profiles": {"p": profile}})


@pytest.mark.parametrize(
    ("source", "target", "expected"),
    [
        ("s3://bucket/prefix", "msc://p/", "ending in '/'"),
        ("relative/dir/", "msc://p/", "absolute path or URL"),
        ("s3://bucket/", "s3://other/", "msc://profile/"),
        ("/mnt/data/", "msc://p", "msc://profile/"),
        ("/mnt/data/", 5, "msc://profile/"),
    ],
)
def test_bad_path_mapping(root: Path, source: str, target: Any, expected: str) -> None:
    message = _error({"profiles": {"p": file_profile(root)}, "path_mapping": {source: target}})
    assert f"path_mapping.{source}" in message
    assert expected in message


@pytest.mark.parametrize(
    ("retry", "key", "allowed"),
    [
        ({"attempts": 2, "backoff_multiplier": 0.5}, "backoff_multiplier", ">= 1.0"),
        ({"delay": -1}, "delay", ">= 0"),
        ({"attempts": 0}, "attempts", ">= 1"),
    ],
)
def test_bad_retry(root: Path, retry: dict[str, Any], key: str, allowed: str) -> None:
    message = _error({"profiles": {"p": file_profile(root, retry=retry)}})
    assert f"profiles.p.retry.{key}" in message
    assert repr(retry[key]) in message
    assert allowed in message


@pytest.mark.parametrize(
    ("retry", "key"),
    [({"attempts": 2, "backoff_multiplier": 0.5}, "backoff_multiplier"), ({"delay": -1}, "delay")],
)
def test_bad_retry_without_validation(root: Path, retry: dict[str, Any], key: str) -> None:
    config_dict = {"profiles": {"p": file_profile(root, retry=retry)}}
    with pytest.raises(ConfigError, match=rf"profiles\.p\.retry\.{key}"):
        StorageClientConfig.from_dict(config_dict, "p", skip_validation=True)


def test_bad_retry_in_config_file(tmp_path: Path, root: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    cfg = write_yaml(tmp_path / "c.yaml", {"profiles": {"p": file_profile(root, retry={"delay": -1})}})
    monkeypatch.setenv("MSC_CONFIG", str(cfg))
    with pytest.raises(ConfigError, match=r"profiles\.p\.retry\.delay"):
        StorageClientConfig.from_file(profile="p")


def test_unknown_profile_lists_defined(root: Path) -> None:
    config_dict = {"profiles": {"alpha": file_profile(root), "beta": file_profile(root)}}
    with pytest.raises(UnknownProfileError) as info:
        StorageClientConfig.from_dict(config_dict, "gamma")
    message = str(info.value)
    assert "'gamma'" in message
    assert "alpha" in message and "beta" in message
    assert isinstance(info.value, KeyError)


def test_validate_config_top_level_not_mapping() -> None:
    with pytest.raises(ConfigError, match="top level"):
        validate_config(["profiles"])


# ---------------------------------------------------------------- safe YAML
def test_yaml_python_tags_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    marker = tmp_path / "pwned"
    doc = f'profiles: !!python/object/apply:os.system ["touch {marker}"]\n'
    with pytest.raises(ConfigError):
        StorageClientConfig.from_yaml(doc, "p")
    cfg = tmp_path / "evil.yaml"
    cfg.write_text(doc, encoding="utf-8")
    monkeypatch.setenv("MSC_CONFIG", str(cfg))
    with pytest.raises(ConfigError, match="not valid YAML"):
        StorageClientConfig.from_file(profile="p")
    assert not marker.exists()


def test_yaml_top_level_python_tag_refused(tmp_path: Path) -> None:
    marker = tmp_path / "pwned2"
    with pytest.raises(ConfigError):
        StorageClientConfig.from_yaml(f'!!python/object/apply:os.system ["touch {marker}"]\n', "p")
    assert not marker.exists()


# ---------------------------------------------------------------- mask_secrets
def test_mask_secrets_keeps_structure_and_types() -> None:
    config_dict: dict[str, Any] = {
        "profiles": {
            "p": {
                "storage_provider": {"type": "s3", "options": {"base_path": "bkt"}},
                "credentials_provider": {
                    "type": "S3Credentials",
                    "options": {
                        "access_key": "AKIAIOSFODNN7EXAMPLE",
                        "secret_key": "wJalrXUtnFEMI",
                        "session_token": "tok",
                    },
                },
            },
            "az": {
                "storage_provider": {"type": "azure", "options": {"base_path": "c"}},
                "credentials_provider": {
                    "type": "AzureCredentials",
                    "options": {"connection": "DefaultEndpointsProtocol=https;AccountKey=abc"},
                },
            },
        },
        "list": [{"password": "pw", "user": "me"}, "plain"],
        "other": {
            "connection_string": "cs",
            "account_key": "ak",
            "sas_token": "sas",
            "private_key": "pk",
            "passphrase": "pp",
            "client_secret": "cs2",
            "token": "t",
            "aws_secret_access_key": "sak",
            "secret_access_key": "sak2",
            "retries": 3,
            "empty_token": "",
        },
    }
    masked = mask_secrets(config_dict)
    creds = masked["profiles"]["p"]["credentials_provider"]
    assert creds["type"] == "S3Credentials"
    assert creds["options"] == {"access_key": "AKIA***", "secret_key": "***", "session_token": "***"}
    az = masked["profiles"]["az"]["credentials_provider"]
    assert az == {"type": "AzureCredentials", "options": {"connection": "***"}}
    assert masked["profiles"]["p"]["storage_provider"] == config_dict["profiles"]["p"]["storage_provider"]
    assert masked["list"] == [{"password": "***", "user": "me"}, "plain"]
    other = masked["other"]
    for key in (
        "connection_string",
        "account_key",
        "sas_token",
        "private_key",
        "passphrase",
        "client_secret",
        "token",
        "aws_secret_access_key",
        "secret_access_key",
    ):
        assert other[key] == "***", key
    assert other["retries"] == 3
    assert other["empty_token"] == ""
    # The input is untouched.
    assert config_dict["profiles"]["p"]["credentials_provider"]["options"]["secret_key"] == "wJalrXUtnFEMI"


def test_mask_secrets_short_access_key_fully_hidden() -> None:
    assert mask_secrets({"access_key": "AKIA"}) == {"access_key": "***"}


def test_mask_secrets_provider_types_stay_visible() -> None:
    section = {
        "credentials_provider": {"type": "FileBasedCredentials", "options": {"credential_file_path": "/p"}}
    }
    assert mask_secrets(section) == section


# ---------------------------------------------------------------- pickling
def test_config_pickles_and_rebuilds(root: Path) -> None:
    config = StorageClientConfig.from_dict(
        {"profiles": {"p": file_profile(root, retry={"attempts": 4, "delay": 0.2})}}, "p"
    )
    clone = pickle.loads(pickle.dumps(config))
    assert isinstance(clone, StorageClientConfig)
    assert clone.profile == "p"
    assert clone.storage_provider is not config.storage_provider
    assert clone.retry_config == RetryConfig(attempts=4, delay=0.2)
    assert roundtrip(clone) == b"payload"
    assert (root / "k.txt").read_bytes() == b"payload"


def test_bundle_config_without_dict_does_not_pickle(root: Path) -> None:
    config = StorageClientConfig.from_provider_bundle({}, MyBundle(str(root)))
    with pytest.raises(TypeError, match="not built from a dict"):
        pickle.dumps(config)


# ---------------------------------------------------------------- retry / caching / cache
def test_retry_and_caching_parsed(tmp_path: Path, root: Path) -> None:
    cache_dir = tmp_path / "cache"
    config_dict = {
        "profiles": {
            "p": file_profile(root, retry={"attempts": 7, "delay": 0.5, "backoff_multiplier": 3}),
            "nocache": file_profile(root, caching_enabled=False),
        },
        "cache": {
            "size": "200M",
            "check_source_version": False,
            "eviction_policy": {"policy": "FIFO", "refresh_interval": 60},
            "cache_backend": {"cache_path": str(cache_dir)},
        },
    }
    config = StorageClientConfig.from_dict(config_dict, "p")
    assert config.retry_config == RetryConfig(attempts=7, delay=0.5, backoff_multiplier=3)
    assert config.caching_enabled is True
    cache = config.cache_config
    assert cache is not None
    assert cache.size == "200M"
    assert cache.size_bytes() == 200 * 1024 * 1024
    assert cache.use_etag is False
    assert cache.get_eviction_policy() == "fifo"
    assert cache.eviction_policy.refresh_interval == 60
    assert cache.backend.cache_path == str(cache_dir)
    assert StorageClientConfig.from_dict(config_dict, "nocache").caching_enabled is False


def test_cache_location_and_use_etag(tmp_path: Path, root: Path) -> None:
    config_dict = {
        "profiles": {"p": file_profile(root)},
        "cache": {
            "size": "1G",
            "location": str(tmp_path / "loc"),
            "use_etag": True,
            "eviction_policy": "random",
        },
    }
    cache = StorageClientConfig.from_dict(config_dict, "p").cache_config
    assert cache is not None
    assert cache.backend.cache_path == str(tmp_path / "loc")
    assert cache.use_etag is True
    assert cache.get_eviction_policy() == "random"


def test_defaults_without_retry_or_cache(root: Path) -> None:
    config = StorageClientConfig.from_dict({"profiles": {"p": file_profile(root)}}, "p")
    assert config.retry_config == RetryConfig()
    assert config.cache_config is None
    assert config.caching_enabled is False


def test_bad_cache_eviction_policy(root: Path) -> None:
    config_dict = {
        "profiles": {"p": file_profile(root)},
        "cache": {"size": "1G", "eviction_policy": "newest"},
    }
    with pytest.raises(ConfigError, match=r"cache\.eviction_policy\.policy.*'lru'"):
        StorageClientConfig.from_dict(config_dict, "p")
