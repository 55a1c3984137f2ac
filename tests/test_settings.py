"""Settings read from the environment: the download listener's address and URL."""

from __future__ import annotations

from pathlib import Path

import pytest

from iotstore.settings import Settings, SettingsError


def from_env(tmp_path: Path, **env: str) -> Settings:
    return Settings.from_env(tmp_path, {"IOTSTORE_BASE_URL": "https://store.example.com", **env})


def test_downloads_use_the_base_url_without_a_listener(tmp_path: Path) -> None:
    settings = from_env(tmp_path)
    assert settings.download_listen is None
    assert settings.download_base_url == "https://store.example.com"


@pytest.mark.parametrize(
    ("listen", "expected", "url"),
    [
        ("0.0.0.0:8001", ("0.0.0.0", 8001), "http://store.example.com:8001"),
        ("127.0.0.1:9", ("127.0.0.1", 9), "http://store.example.com:9"),
        ("[::1]:8001", ("::1", 8001), "http://store.example.com:8001"),
    ],
)
def test_a_listener_gets_the_download_urls(
    tmp_path: Path, listen: str, expected: tuple[str, int], url: str
) -> None:
    settings = from_env(tmp_path, IOTSTORE_DOWNLOAD_LISTEN=listen)
    assert settings.download_listen == expected
    assert settings.download_base_url == url


def test_a_proxy_url_in_front_of_the_listener_wins(tmp_path: Path) -> None:
    settings = from_env(
        tmp_path,
        IOTSTORE_DOWNLOAD_LISTEN="127.0.0.1:8001",
        IOTSTORE_DOWNLOAD_URL="https://downloads.example.com/",
    )
    assert settings.download_base_url == "https://downloads.example.com"


@pytest.mark.parametrize("listen", ["8001", ":8001", "host:", "host:0", "host:70000", "host:x"])
def test_a_bad_listen_address_is_refused(tmp_path: Path, listen: str) -> None:
    with pytest.raises(SettingsError, match="IOTSTORE_DOWNLOAD_LISTEN"):
        from_env(tmp_path, IOTSTORE_DOWNLOAD_LISTEN=listen)


def test_a_download_url_must_be_http(tmp_path: Path) -> None:
    with pytest.raises(SettingsError, match="IOTSTORE_DOWNLOAD_URL"):
        from_env(tmp_path, IOTSTORE_DOWNLOAD_URL="ftp://x")
