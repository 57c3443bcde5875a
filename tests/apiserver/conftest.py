"""Fixtures for the API server interop and reliability tests: a real `wasmfleet apiserver` per module."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from wasmfleet.testing.apiserver import ApiServerProcess


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ApiServerProcess]:
    proc = ApiServerProcess(tmp_path_factory.mktemp("apiserver"))
    proc.start()
    yield proc
    proc.stop()
