"""Starts the notebooks' live world (tests/helpers/notebook_env.py) when nbval reaches them.

nbval's cells are not pytest functions, so fixtures do not reach them: a setup hook
that runs before nbval starts a notebook's kernel does the job instead, once per run.
"""

from __future__ import annotations

from contextlib import ExitStack

import pytest

from tests.helpers.notebook_env import NOTEBOOKS, notebook_environment

_world = ExitStack()
_started = False


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item: pytest.Item) -> None:
    global _started
    if not _started and NOTEBOOKS in item.path.parents:
        _started = True
        _world.enter_context(notebook_environment())


def pytest_sessionfinish(session: pytest.Session) -> None:
    _world.close()
