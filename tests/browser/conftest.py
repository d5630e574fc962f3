"""What the browser tests share: the sample store behind a dashboard share of its own in
each module (a share named clinic, through the module's relay)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from ..helpers.sharing import Relay, Share


@pytest.fixture(scope="module")
def dashboard(
    relay: Relay, sample_store: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Share]:
    process = Share(
        sample_store, relay.url, tmp_path_factory.mktemp("owner"), "--dashboard", "--name", "clinic"
    )
    yield process
    process.stop()
