from __future__ import annotations

from collections.abc import Iterator

import pytest

from ..helpers.sharing import Relay, Share


@pytest.fixture(scope="module")
def shared(
    relay: Relay, sample_store: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Share]:
    """A real ``p2p2p share`` of the sample store on the module's relay."""
    process = Share(sample_store, relay.url, tmp_path_factory.mktemp("owner"))
    yield process
    process.stop()
