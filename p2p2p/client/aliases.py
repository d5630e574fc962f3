"""Short names for share links (``%p2p connect LINK as brig``) and for groups of stores
(``%p2p group sites brig sion``), kept per user.

The file holds links, and links carry access tokens: it lives in the private config
directory with mode 0600. A link entry also pins the owner key the link was checked
against when it was saved; a group entry lists its members' targets (aliases, links or
``local:`` paths), in order.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from ..errors import BadTarget
from ..paths import config_dir, private_dir, write_private_json

NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_-]{0,62}")


def _path() -> Path:
    return config_dir() / "aliases.json"


def load() -> dict[str, dict[str, Any]]:
    try:
        data = json.loads(_path().read_text())
    except FileNotFoundError:
        return {}
    except (OSError, ValueError) as exc:
        raise BadTarget(f"cannot read the aliases file {_path()}: {exc}") from None
    if not isinstance(data, dict):
        raise BadTarget(f"the aliases file {_path()} is not a JSON object")
    return {str(k): dict(v) for k, v in data.items() if isinstance(v, dict)}


def _save(aliases: dict[str, dict[str, Any]]) -> None:
    private_dir(config_dir())
    write_private_json(_path(), aliases)


RESERVED = ("here",)  # %%p2pquery here: this kernel's own DuckDB (client.combine)


def check_alias(name: str) -> str:
    if name in RESERVED:
        raise BadTarget(f"{name!r} is taken: %%p2pquery {name} means this kernel's own DuckDB")
    if not NAME.fullmatch(name):
        raise BadTarget(
            f"{name!r} cannot be an alias: use letters, digits, _ or -, starting with a letter"
        )
    return name


def save(alias: str, link: str, **facts: Any) -> None:
    aliases = load()
    aliases[check_alias(alias)] = {"link": link, **facts}
    _save(aliases)


def forget(name: str) -> bool:
    aliases = load()
    if aliases.pop(name, None) is None:
        return False
    _save(aliases)
    return True


def save_group(name: str, members: list[str]) -> None:
    if not members:
        raise BadTarget(f"the group {name!r} needs at least one store")
    aliases = load()
    for member in members:
        if "group" in aliases.get(member, {}):
            raise BadTarget(f"{member!r} is a group itself: a group lists stores, not groups")
    aliases[check_alias(name)] = {"group": list(members)}
    _save(aliases)


def seen(name: str, when: float) -> None:
    """Remember when the share an alias names was last seen live (the group widget)."""
    aliases = load()
    if name in aliases and "link" in aliases[name]:
        aliases[name]["last_seen"] = when
        _save(aliases)


def last_seen(name: str) -> float | None:
    value = load().get(name, {}).get("last_seen")
    return float(value) if isinstance(value, int | float) else None


def group(text: str) -> list[str] | None:
    """The members of the group ``text`` names, or None when it is not a group."""
    if not NAME.fullmatch(text.strip()):
        return None
    entry = load().get(text.strip())
    members = entry.get("group") if entry else None
    return [str(m) for m in members] if isinstance(members, list) else None


def resolve(text: str) -> str | None:
    """The link an alias stands for, or None when ``text`` is not an alias."""
    if not NAME.fullmatch(text.strip()):
        return None
    entry = load().get(text.strip())
    return str(entry["link"]) if entry and "link" in entry else None
