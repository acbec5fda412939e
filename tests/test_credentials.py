"""Credentials providers: the JSON-file provider (rotation end-to-end) and secret hygiene."""

from __future__ import annotations

import json
import logging
import os
import pickle
import time
import uuid
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest

from manystore import StorageClient, StorageClientConfig
from manystore.errors import ConfigError, ManystoreError
from manystore.providers.file_credentials import (
    CredentialsFileNotFoundError,
    CredentialsFileTypeError,
    FileBasedCredentialsProvider,
)

from .conftest import s3_profile
from .servers import S3Server, start_rclone_s3

KEY_A = ("rotating-key-a", "rotating-secret-aaaa-0001")
KEY_B = ("rotating-key-b", "rotating-secret-bbbb-0002")
BUCKET = "creds-test"


def _iso(seconds_from_now: float) -> str:
    when = datetime.now(timezone.utc) + timedelta(seconds=seconds_from_now)
    return when.strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def write_creds(path: Path, pair: tuple[str, str], expires_in: float | None, **extra: Any) -> None:
    """Write the file atomically (temp file + rename), as a rotating agent should."""
    data: dict[str, Any] = {"Version": 1, "AccessKeyId": pair[0], "SecretAccessKey": pair[1]}
    if expires_in is not None:
        data["Expiration"] = _iso(expires_in)
    data.update(extra)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(data))
    os.replace(tmp, path)


# ---------------------------------------------------------------------------- unit tests
def test_reads_aws_credential_process_format(tmp_path: Path) -> None:
    path = tmp_path / "creds.json"
    write_creds(path, KEY_A, 3600, SessionToken="session-tok-123")
    provider = FileBasedCredentialsProvider(str(path))
    creds = provider.get_credentials()
    assert (creds.access_key, creds.secret_key, creds.token) == (*KEY_A, "session-tok-123")
    assert creds.expiration is not None and not creds.is_expired()
    assert provider.reads == 1


def test_no_expiration_means_static(tmp_path: Path) -> None:
    path = tmp_path / "creds.json"
    write_creds(path, KEY_A, None)
    provider = FileBasedCredentialsProvider(str(path))
    write_creds(path, KEY_B, None)
    assert provider.get_credentials().access_key == KEY_A[0]  # not near expiry: cached
    provider.refresh_credentials()
    assert provider.get_credentials().access_key == KEY_B[0]


@pytest.mark.parametrize(
    ("content", "error", "needle"),
    [
        ({"AccessKeyId": "a", "SecretAccessKey": KEY_A[1]}, ConfigError, "'Version'"),
        ({"Version": 2, "AccessKeyId": "a", "SecretAccessKey": KEY_A[1]}, ConfigError, "Version"),
        ({"Version": 1, "SecretAccessKey": KEY_A[1]}, ConfigError, "'AccessKeyId'"),
        ({"Version": 1, "AccessKeyId": "a"}, ConfigError, "'SecretAccessKey'"),
        (
            {"Version": 1, "AccessKeyId": 5, "SecretAccessKey": KEY_A[1]},
            CredentialsFileTypeError,
            "'AccessKeyId'",
        ),
        (
            {"Version": 1, "AccessKeyId": "a", "SecretAccessKey": KEY_A[1], "SessionToken": 7},
            CredentialsFileTypeError,
            "'SessionToken'",
        ),
        (
            {"Version": 1, "AccessKeyId": "a", "SecretAccessKey": KEY_A[1], "Expiration": "soon"},
            ConfigError,
            "'Expiration'",
        ),
        ([KEY_A[1]], CredentialsFileTypeError, "JSON object"),
    ],
)
def test_invalid_file_names_file_and_field_not_secret(
    tmp_path: Path, content: Any, error: type[Exception], needle: str
) -> None:
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(content))
    with pytest.raises(error) as info:
        FileBasedCredentialsProvider(str(path))
    message = str(info.value)
    assert needle in message and str(path) in message
    assert KEY_A[1] not in message


def test_missing_file_and_bad_json(tmp_path: Path) -> None:
    with pytest.raises(CredentialsFileNotFoundError, match="does not exist") as info:
        FileBasedCredentialsProvider(str(tmp_path / "nope.json"))
    assert isinstance(info.value, FileNotFoundError)
    path = tmp_path / "broken.json"
    path.write_text('{"Version": 1, "SecretAccessKey": "' + KEY_A[1])
    with pytest.raises(ConfigError, match="not valid JSON") as err:
        FileBasedCredentialsProvider(str(path))
    assert KEY_A[1] not in str(err.value)
    with pytest.raises(ConfigError, match="not a regular file"):
        FileBasedCredentialsProvider(str(tmp_path))
    with pytest.raises(ConfigError, match="refresh_margin_seconds"):
        FileBasedCredentialsProvider(str(path), refresh_margin_seconds=-1)


def test_rereads_near_expiry_only_when_file_changed(tmp_path: Path) -> None:
    path = tmp_path / "creds.json"
    write_creds(path, KEY_A, 3600)
    provider = FileBasedCredentialsProvider(str(path), refresh_margin_seconds=60)
    write_creds(path, KEY_B, 7200)
    assert provider.get_credentials().access_key == KEY_A[0]  # an hour left: no re-read
    provider = FileBasedCredentialsProvider(str(path), refresh_margin_seconds=60)
    assert provider.get_credentials().access_key == KEY_B[0]
    write_creds(path, KEY_A, 30)  # within the margin from the start
    provider = FileBasedCredentialsProvider(str(path), refresh_margin_seconds=60)
    for _ in range(5):
        provider.get_credentials()
    assert provider.reads == 1  # unchanged file: stat only
    write_creds(path, KEY_B, 3600)
    assert provider.get_credentials().access_key == KEY_B[0]
    assert provider.reads == 2


def test_half_written_file_keeps_valid_cached_credentials(tmp_path: Path, caplog: Any) -> None:
    path = tmp_path / "creds.json"
    write_creds(path, KEY_A, 30)
    provider = FileBasedCredentialsProvider(str(path))
    path.write_text('{"Version": 1, "AccessKeyId": "x", "Secret')
    with caplog.at_level(logging.WARNING):
        assert provider.get_credentials().access_key == KEY_A[0]
    assert "keeping cached credentials" in caplog.text
    with pytest.raises(ConfigError):
        provider.refresh_credentials()


def test_repr_and_pickle(tmp_path: Path) -> None:
    path = tmp_path / "creds.json"
    write_creds(path, KEY_A, 3600, SessionToken="session-tok-123")
    provider = FileBasedCredentialsProvider(str(path))
    text = repr(provider) + repr(provider.get_credentials()) + str(provider.get_credentials())
    assert str(path) in repr(provider)
    for secret in (KEY_A[1], "session-tok-123"):
        assert secret not in text
    clone = pickle.loads(pickle.dumps(provider))
    assert clone.get_credentials().access_key == KEY_A[0]


# ------------------------------------------------------------------------ end to end
@pytest.fixture(scope="module")
def two_key_server() -> Iterator[S3Server]:
    server = start_rclone_s3(extra_auth_keys=[KEY_A, KEY_B])
    server.create_bucket(BUCKET)
    yield server
    server.stop()


def _file_client(server: S3Server, cred_path: Path) -> StorageClient:
    profile = s3_profile(server, f"{BUCKET}/{uuid.uuid4().hex}")
    profile["credentials_provider"] = {
        "type": "FileBasedCredentials",
        "options": {"credential_file_path": str(cred_path)},
    }
    return StorageClient(StorageClientConfig.from_dict({"profiles": {"rot": profile}}, "rot"))


def test_long_job_outlives_its_first_token(two_key_server: S3Server, tmp_path: Path, caplog: Any) -> None:
    caplog.set_level(logging.DEBUG)
    cred_path = tmp_path / "creds.json"
    lifetime = 3.0
    write_creds(cred_path, KEY_A, lifetime)
    started = time.monotonic()
    client = _file_client(two_key_server, cred_path)
    provider = client.config.credentials_provider
    assert isinstance(provider, FileBasedCredentialsProvider)

    # Record what the S3 transport's credential callback is handed.
    handed: list[str] = []
    original = provider.get_credentials

    def spy() -> Any:
        creds = original()
        handed.append(creds.access_key)
        return creds

    provider.get_credentials = spy  # type: ignore[method-assign]

    client.write("phase1/a.bin", b"A" * 1000)
    assert client.read("phase1/a.bin") == b"A" * 1000
    assert [m.key for m in client.list("phase1/")] == ["phase1/a.bin"]
    assert handed and set(handed) == {KEY_A[0]}

    # The agent rotates the file; then the first token runs out.
    write_creds(cred_path, KEY_B, 3600)
    time.sleep(max(0.0, lifetime - (time.monotonic() - started)) + 1.0)
    assert original().access_key == KEY_B[0]
    handed.clear()

    for i in range(5):
        client.write(f"phase2/{i}.bin", bytes([i]) * 2000)
        assert client.read(f"phase2/{i}.bin") == bytes([i]) * 2000
    assert len(list(client.list("phase2/"))) == 5
    assert client.read("phase1/a.bin") == b"A" * 1000
    # The transport re-asked after expiry and was given pair B only.
    assert handed and set(handed) == {KEY_B[0]}
    assert provider.reads >= 2
    for secret in (KEY_A[1], KEY_B[1]):
        assert secret not in caplog.text
        assert secret not in repr(client) and secret not in repr(client.config)


# ------------------------------------------------------------------------ secret hygiene
def test_static_secret_never_shown(rclone_server: S3Server, caplog: Any) -> None:
    caplog.set_level(logging.DEBUG)
    secret = rclone_server.secret_key
    config = {"profiles": {"good": s3_profile(rclone_server, f"manystore-test/{uuid.uuid4().hex}")}}
    client = StorageClient(StorageClientConfig.from_dict(config, "good"))
    client.write("k.txt", b"hello")
    assert client.read("k.txt") == b"hello"
    provider = client.config.storage_provider
    cred = client.config.credentials_provider
    for text in (repr(client), repr(provider), repr(cred), repr(client.config), str(client.config)):
        assert secret not in text

    wrong_secret = "wrong-secret-" + uuid.uuid4().hex
    bad_profile = s3_profile(rclone_server, "manystore-test/denied")
    bad_profile["credentials_provider"]["options"]["secret_key"] = wrong_secret
    bad_profile["retry"] = {"attempts": 1, "delay": 0}
    bad = StorageClient(StorageClientConfig.from_dict({"profiles": {"bad": bad_profile}}, "bad"))
    for operation in (lambda: bad.write("x", b"1"), lambda: bad.read("k.txt"), lambda: list(bad.list(""))):
        with pytest.raises(ManystoreError) as info:
            operation()
        shown = f"{info.value!s} {info.value!r} {info.value.__cause__!r}"
        assert wrong_secret not in shown and secret not in shown
    assert wrong_secret not in repr(bad) and wrong_secret not in repr(bad.config)
    assert secret not in caplog.text and wrong_secret not in caplog.text
