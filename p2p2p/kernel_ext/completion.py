"""Names in ``%%p2pquery`` cells, offered through IPython's own completer.

JupyterLab, Notebook 7 and VS Code all ask the kernel (``complete_request``), so one
matcher serves them all. In the SQL of a ``%%p2pquery`` cell it offers the store's tables
and columns (after ``t.`` or ``alias.``: that table's columns), the notebook's snippets,
the cell's own CTEs and some SQL keywords, and hides Python's names and magics, which mean
nothing there (``FROM sa`` used to offer ``%save``). On the magic line it offers aliases,
groups, store files and options.

A store's names come from its ``schema()``, read once and kept until ``%p2p refresh``. The
read runs in the background and a Tab waits for it only briefly; a store that failed, or
did not answer in time, is not asked again for a while, so a dead link costs one short
wait, not one per Tab.
"""

from __future__ import annotations

import os
import re
import string
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from IPython.core.completer import (
    CompletionContext,
    SimpleCompletion,
    SimpleMatcherResult,
    context_matcher,
)

from ..client import LocalStore, RemoteStore, StoreGroup, aliases, open_target
from ..client.combine import HERE
from ..client.target import LOCAL_PREFIX, LocalTarget, resolve_any
from ..errors import P2P2PError
from .magics import ASSIGN, VIEWER_KEY, _names_a_target, _parse_words, _words

if TYPE_CHECKING:
    from .magics import P2PMagics

__all__ = ["MATCHER_ID", "QueryCompleter"]

MATCHER_ID = "p2p2p.p2pquery"
CELL_MAGIC = "%%p2pquery"
# A Tab that hangs feels broken; a slower store's names are there for the next Tab.
SCHEMA_WAIT_S = 1.5
FAILURE_MEMORY_S = 30.0
MAX_NAMES = 500
STORE_SUFFIXES = (".duckdb", ".ddb", ".db")  # as _names_a_target reads a bare path

Store = LocalStore | RemoteStore | StoreGroup
# What gives the store to read, and whether it was opened for this read only (then closed).
Opener = Callable[[], tuple[Store, bool]]

_WORD_CHARS = string.ascii_letters + string.digits + "_$"
_PLAIN = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_NAME = r'(?:[A-Za-z_][A-Za-z0-9_$]*|"(?:[^"]|"")*")'
_AT_CURSOR = re.compile(
    rf'(?:(?P<qualifier>{_NAME})\.)?(?P<fragment>[A-Za-z_][A-Za-z0-9_$]*|"[^"]*)?$'
)
_TOKEN = re.compile(r"""'(?:[^']|'')*'?|"(?:[^"]|"")*"?|--[^\n]*|[A-Za-z_][A-Za-z0-9_$]*|\S""")
_CLOSED_STRING = re.compile(r"'(?:[^']|'')*'")
_CTE = re.compile(rf"({_NAME})\s+AS\s+(?:NOT\s+)?(?:MATERIALIZED\s+)?\(", re.IGNORECASE)
# Only {name} and $name: expanding anything else would run the user's Python at each Tab.
_SIMPLE_EXPANSION = re.compile(r"\{[A-Za-z_][A-Za-z0-9_]*\}|\$[A-Za-z_][A-Za-z0-9_]*")

KEYWORDS = (
    "SELECT", "FROM", "WHERE", "GROUP BY", "ORDER BY", "HAVING", "LIMIT", "OFFSET",
    "JOIN", "LEFT JOIN", "INNER JOIN", "CROSS JOIN", "ON", "USING", "AS", "AND", "OR",
    "NOT", "IN", "IS", "NULL", "LIKE", "ILIKE", "BETWEEN", "CASE", "WHEN", "THEN", "ELSE",
    "END", "DISTINCT", "UNION", "UNION ALL", "EXCEPT", "INTERSECT", "WITH", "OVER",
    "PARTITION BY", "QUALIFY", "ASC", "DESC", "CAST", "COUNT", "SUM", "AVG", "MIN", "MAX",
    "DESCRIBE", "SUMMARIZE",
)  # fmt: skip
TABLE_WORDS = {"from", "join", "into", "update", "table", "describe", "summarize"}
CLAUSE_WORDS = TABLE_WORDS | {
    "select", "where", "on", "using", "group", "order", "by", "having", "limit", "qualify",
    "window", "set", "values", "returning", "union", "except", "intersect", "offset",
}  # fmt: skip
NOT_AN_ALIAS = CLAUSE_WORDS | {
    "as", "left", "right", "inner", "outer", "full", "cross", "natural", "positional",
    "asof", "anti", "semi", "lateral", "tablesample", "pivot", "unpivot",
}  # fmt: skip


@dataclass(frozen=True)
class Relation:
    schema: str
    name: str
    kind: str
    columns: tuple[str, ...]


@dataclass
class _Fetch:
    started: float = field(default_factory=time.monotonic)
    done: threading.Event = field(default_factory=threading.Event)
    relations: list[Relation] | None = None
    failed_at: float | None = None

    def worth_retrying(self, now: float) -> bool:
        if self.failed_at is not None:
            return now - self.failed_at > FAILURE_MEMORY_S
        # Still running after the Tab gave up on it: as good as failed, for as long.
        return not self.done.is_set() and now - self.started > SCHEMA_WAIT_S + FAILURE_MEMORY_S


@dataclass(frozen=True)
class _Candidate:
    name: str  # as the store spells it, to match what is typed against
    text: str  # what goes into the cell
    type: str


class QueryCompleter:
    """The matcher, and what it knows of each store's tables (keyed as ``magics.stores``)."""

    def __init__(self, magics: P2PMagics) -> None:
        self.magics = magics
        self._fetches: dict[str, _Fetch] = {}
        self._lock = threading.Lock()

    def forget(self, key: str | None = None) -> None:
        """Read the tables of the store ``key`` anew at the next Tab (every store's: None)."""
        with self._lock:
            if key is None:
                self._fetches.clear()
                return
            for known in (key, key + VIEWER_KEY):  # the file as a viewer sees it, too
                self._fetches.pop(known, None)

    @context_matcher(identifier=MATCHER_ID)  # type: ignore[untyped-decorator]
    def matcher(self, context: CompletionContext) -> SimpleMatcherResult:
        try:
            found = self._complete(context)
        except Exception:  # IPython would print the traceback into the notebook
            found = None
        if found is None:
            return {"completions": [], "suppress": False}
        fragment, completions = found
        return {
            "completions": completions,
            "matched_fragment": fragment,
            "suppress": True,
            "ordered": True,
        }

    def _complete(self, context: CompletionContext) -> tuple[str, list[SimpleCompletion]] | None:
        lines = context.full_text.split("\n")
        first = next((i for i, line in enumerate(lines) if line.strip()), None)
        if first is None or context.cursor_line < first or not _is_ours(lines[first]):
            return None
        before = context.text_until_cursor
        limit = min(MAX_NAMES, context.limit or MAX_NAMES)
        if context.cursor_line == first:
            return self._magic_line(before, limit)
        body_before = "\n".join([*lines[first + 1 : context.cursor_line], before])
        body = "\n".join(lines[first + 1 :])
        return self._sql(lines[first], body_before, body, limit)

    # -- the SQL ---------------------------------------------------------------------
    def _sql(
        self, magic_line: str, body_before: str, body: str, limit: int
    ) -> tuple[str, list[SimpleCompletion]] | None:
        last = (_tokens(body_before) or [""])[-1]
        if last[:1] == "'" and not _CLOSED_STRING.fullmatch(last):
            # In a string no name is SQL; a path may be: read_csv('data/…').
            fragment = last[1:]
            return fragment, _hold(
                _pick(_paths("", fragment, None), fragment, limit, exact_case=True), fragment
            )
        if last.startswith("--"):
            fragment = last[len(last.rstrip(_WORD_CHARS)) :]
            return fragment, _hold([], fragment)
        at = _AT_CURSOR.search(body_before)
        assert at is not None  # the pattern matches the empty end of any text
        qualifier, fragment = at.group("qualifier"), at.group("fragment") or ""
        relations = self._relations(magic_line) or []
        refs = _references(body)
        if qualifier is not None:
            candidates = _qualified(_unquote(qualifier).lower(), relations, refs)
        else:
            preceding = body_before[: len(body_before) - len(fragment)]
            candidates = self._unqualified(relations, refs, body, _in_table_position(preceding))
        return fragment, _hold(_pick(candidates, fragment, limit), fragment)

    def _unqualified(
        self,
        relations: list[Relation],
        refs: list[tuple[str, str | None]],
        body: str,
        tables_only: bool,
    ) -> list[_Candidate]:
        tables = [_Candidate(r.name, _table_text(r), r.kind) for r in relations]
        tables += [_Candidate(_unquote(c), c, "cte") for c in _CTE.findall(body)]
        tables += [_Candidate(s, s, "snippet") for s in self.magics.snippets]
        if tables_only:
            return tables
        named = {name.lower() for name, _alias in refs}
        mentioned = [r for r in relations if r.name.lower() in named]
        others = [r for r in relations if r.name.lower() not in named]
        aliases_here = [_Candidate(a, a, "alias") for _name, a in refs if a is not None]
        keywords = [_Candidate(k, k, "keyword") for k in KEYWORDS]
        if not mentioned:  # SELECT before its FROM is written: any table's columns
            return [*_columns(others), *tables, *keywords]
        return [*_columns(mentioned), *aliases_here, *tables, *_columns(others), *keywords]

    def _relations(self, magic_line: str) -> list[Relation] | None:
        """The tables of the store the cell goes to, if known or quickly learnt."""
        try:
            found = self._store_for(magic_line)
        except (Exception, SystemExit):  # a line still being written, a missing file
            return None
        return None if found is None else self._schema(*found)

    def _store_for(self, magic_line: str) -> tuple[str, Opener] | None:
        """The cell's store, read from its first line as the magic reads it."""
        magics = self.magics
        words = _words(magic_line[len(CELL_MAGIC) :])
        if any(set(_SIMPLE_EXPANSION.sub("", w)) & set("{}$") for w in words):
            return None
        args, _out = _parse_words(magics.p2pquery, magics._expand(words))
        if args.target == HERE:
            return None
        if not args.target:
            key = magics.last_target
            if key is None or key not in magics.stores:
                return None
            return key, _given(magics.stores[key])
        target = resolve_any(args.target)
        if isinstance(target, LocalTarget) or target.key in magics.stores:
            # A file here costs a stat to open (its connection comes at the first read),
            # and the cell itself would open it the same way: share it with the cell.
            key = magics.store(args.target, as_viewer=args.as_viewer)
            return key, _given(magics.stores[key])
        if args.as_viewer:
            return None
        # A link or group not used yet: opening one is a call to its owner, so it is made
        # in the background like the read, and closed after it.
        return target.key, lambda: (open_target(target), True)

    def _schema(self, key: str, opener: Opener) -> list[Relation] | None:
        now = time.monotonic()
        with self._lock:
            fetch = self._fetches.get(key)
            start = fetch is None or fetch.worth_retrying(now)
            if start:
                fetch = self._fetches[key] = _Fetch()
                threading.Thread(
                    target=_fetch, args=(fetch, opener), name="p2p2p-completion", daemon=True
                ).start()
        assert fetch is not None
        if start:
            # Only the Tab that asked waits: while a read is out, the others go on without.
            fetch.done.wait(SCHEMA_WAIT_S)
        return fetch.relations

    # -- the magic line --------------------------------------------------------------
    def _magic_line(self, before: str, limit: int) -> tuple[str, list[SimpleCompletion]] | None:
        if len(before) <= len(CELL_MAGIC):
            return None  # the magic's own name: IPython's to complete
        fragment = "" if before[-1].isspace() else before.split()[-1]
        words = before[len(CELL_MAGIC) : len(before) - len(fragment)].split()
        takes_value = {
            option: action.nargs != 0
            for action in self.magics.p2pquery.parser._actions
            for option in action.option_strings
        }
        last = words[-1] if words else ""
        if last in ("--with", "--save"):
            snippets = [_Candidate(s, s, "snippet") for s in self.magics.snippets]
            return fragment, _pick(snippets, fragment, limit, exact_case=True)
        if takes_value.get(last):
            return None
        if fragment.startswith("-"):
            options = [_Candidate(o, o, "option") for o in sorted(takes_value) if o[:2] == "--"]
            return fragment, _pick(options, fragment, limit, exact_case=True)
        if any(_names_a_target(w) for w in _positional(words, takes_value)):
            return None  # the target is given: what follows is options
        return fragment, _pick(_targets(fragment), fragment, limit, exact_case=True)


def _hold(picked: list[SimpleCompletion], fragment: str) -> list[SimpleCompletion]:
    """What to offer; when nothing fits, the typed word as it is: IPython fills an empty
    answer with Python's names and magics (``%save`` for ``FROM sa``), and a lone
    completion equal to what is typed changes nothing."""
    return picked or ([SimpleCompletion(fragment, type="sql")] if fragment else [])


def _given(store: Store) -> Opener:
    return lambda: (store, False)


def _fetch(fetch: _Fetch, opener: Opener) -> None:
    """Read a store's tables (in a thread of its own: it may be a network call)."""
    try:
        store, private = opener()
        try:
            fetch.relations = _relations_of(_schema_of(store))
        finally:
            if private:
                store.close()
            elif isinstance(store, LocalStore):
                # Our read-only connection would stop the notebook's next
                # duckdb.connect(path) for writing; a cell's is let go after the cell,
                # and a Tab is no cell.
                store.release()
    except Exception:
        fetch.failed_at = time.monotonic()
    finally:
        fetch.done.set()


def _schema_of(store: Store) -> Mapping[str, Any]:
    if not isinstance(store, StoreGroup):
        return store.schema()
    # A group's stores hold the same tables, as a rule: the first that answers speaks.
    error: Exception = P2P2PError(f"no store of {store.name} answered")
    for name in store.members:
        member: LocalStore | RemoteStore | None = None
        try:
            member = store.store(name)
            return member.schema()
        except Exception as exc:
            error = exc
        finally:
            if isinstance(member, LocalStore):
                member.release()
    raise error


def _relations_of(schema: Mapping[str, Any]) -> list[Relation]:
    relations = []
    for relation in schema.get("relations") or []:
        if not isinstance(relation, Mapping) or not relation.get("name"):
            continue
        columns = tuple(
            str(c["name"])
            for c in relation.get("columns") or []
            if isinstance(c, Mapping) and c.get("name")
        )
        relations.append(
            Relation(
                str(relation.get("schema") or "main"),
                str(relation["name"]),
                str(relation.get("kind") or "table"),
                columns,
            )
        )
    return relations


# -- reading the SQL -----------------------------------------------------------------
def _tokens(sql: str) -> list[str]:
    return _TOKEN.findall(sql)


def _is_ours(line: str) -> bool:
    return line.startswith(CELL_MAGIC) and line[len(CELL_MAGIC) : len(CELL_MAGIC) + 1] in (
        "",
        " ",
        "\t",
    )


def _unquote(name: str) -> str:
    if len(name) >= 2 and name[0] == name[-1] == '"':
        return name[1:-1].replace('""', '"')
    return name


def _sql_name(name: str) -> str:
    return name if _PLAIN.fullmatch(name) else '"' + name.replace('"', '""') + '"'


def _table_text(relation: Relation) -> str:
    if relation.schema == "main":
        return _sql_name(relation.name)
    return f"{_sql_name(relation.schema)}.{_sql_name(relation.name)}"


def _is_name(token: str) -> bool:
    return bool(_PLAIN.match(token)) or (len(token) >= 2 and token[0] == token[-1] == '"')


def _in_table_position(sql: str) -> bool:
    """Whether the clause the cursor is in names tables (FROM, JOIN …) rather than columns."""
    for token in reversed(_tokens(sql)):
        word = token.lower()
        if word in CLAUSE_WORDS:
            return word in TABLE_WORDS
    return False


def _references(sql: str) -> list[tuple[str, str | None]]:
    """``(table, alias)`` for each table the SQL reads: ``FROM sales s JOIN regions r``."""
    tokens = [t for t in _tokens(sql) if t[0] != "'" and not t.startswith("--")]
    found: list[tuple[str, str | None]] = []
    in_from = False
    i = 0
    while i < len(tokens):
        word = tokens[i].lower()
        if word in ("from", "join") or (in_from and word == ","):
            if word != ",":
                in_from = word == "from"  # a comma after a JOIN's table is no list of tables
            j = i + 1
            if j < len(tokens) and _is_name(tokens[j]):
                name = _unquote(tokens[j])
                j += 1
                if j + 1 < len(tokens) and tokens[j] == "." and _is_name(tokens[j + 1]):
                    name, j = _unquote(tokens[j + 1]), j + 2  # schema.table: the table
                if j < len(tokens) and tokens[j] == "(":
                    i = j  # a table function: read_csv(…) has no columns to offer
                    continue
                if j < len(tokens) and tokens[j].lower() == "as":
                    j += 1
                alias = None
                if (
                    j < len(tokens)
                    and _is_name(tokens[j])
                    and tokens[j].lower() not in NOT_AN_ALIAS
                ):
                    alias, j = _unquote(tokens[j]), j + 1
                found.append((name, alias))
                i = j
                continue
        elif word in CLAUSE_WORDS or word in ("(", ")"):
            in_from = False
        i += 1
    return found


def _columns(relations: Iterable[Relation]) -> list[_Candidate]:
    return [_Candidate(c, _sql_name(c), "column") for r in relations for c in r.columns]


def _qualified(
    qualifier: str, relations: list[Relation], refs: list[tuple[str, str | None]]
) -> list[_Candidate]:
    """After ``x.``: the columns of table (or alias) ``x``, or the tables of schema ``x``."""
    named = {qualifier} | {n.lower() for n, alias in refs if alias and alias.lower() == qualifier}
    columns = _columns(r for r in relations if r.name.lower() in named)
    tables = [
        _Candidate(r.name, _sql_name(r.name), r.kind)
        for r in relations
        if r.schema.lower() == qualifier
    ]
    return columns + tables


def _pick(
    candidates: Iterable[_Candidate], fragment: str, limit: int, exact_case: bool = False
) -> list[SimpleCompletion]:
    """The candidates that start as typed, once each, in the order given."""
    quoted = fragment.startswith('"')
    typed = fragment[1:] if quoted else fragment
    if not exact_case:
        typed = typed.lower()
    upper = not fragment or fragment.lstrip('"')[:1].isupper()
    seen: set[str] = set()
    picked: list[SimpleCompletion] = []
    for candidate in candidates:
        name = candidate.name if exact_case else candidate.name.lower()
        if not name.startswith(typed):
            continue
        text = candidate.text
        if candidate.type == "keyword":
            if quoted:
                continue
            text = text if upper else text.lower()
        elif quoted and not text.startswith('"'):
            text = '"' + candidate.name.replace('"', '""') + '"'
        if text in seen:
            continue
        seen.add(text)
        picked.append(SimpleCompletion(text, type=candidate.type))
        if len(picked) >= limit:
            break
    return picked


# -- the magic line ------------------------------------------------------------------
def _positional(words: list[str], takes_value: Mapping[str, bool]) -> list[str]:
    """The words of the line that are neither options nor their values, nor ``NAME <<``."""
    kept: list[str] = []
    skip = False
    for word in words:
        if skip:
            skip = False
        elif word.startswith("-"):
            skip = takes_value.get(word, False) and "=" not in word
        elif word == ASSIGN or word.endswith(ASSIGN):
            if kept and word == ASSIGN:
                kept.pop()
        else:
            kept.append(word)
    return kept


def _targets(fragment: str) -> list[_Candidate]:
    if fragment.startswith(LOCAL_PREFIX):
        return _paths(LOCAL_PREFIX, fragment[len(LOCAL_PREFIX) :], STORE_SUFFIXES)
    try:
        saved = aliases.load()
    except P2P2PError:
        saved = {}
    named = [
        _Candidate(a, a, "group" if "group" in entry else "alias")
        for a, entry in sorted(saved.items())
    ]
    return [
        *named,
        _Candidate(HERE, HERE, "target"),
        _Candidate(LOCAL_PREFIX, LOCAL_PREFIX, "target"),
        *_paths("", fragment, STORE_SUFFIXES),
    ]


def _paths(prefix: str, typed: str, suffixes: tuple[str, ...] | None) -> list[_Candidate]:
    """Folders and files (those ending in ``suffixes``, if given) under what is typed, as
    ``prefix`` + path."""
    head, slash, stem = typed.rpartition("/")
    folder = head + slash
    found: list[_Candidate] = []
    try:
        with os.scandir(os.path.expanduser(folder) if folder else ".") as entries:
            for entry in entries:
                name = entry.name
                if not name.startswith(stem) or (name[:1] == "." and stem[:1] != "."):
                    continue
                path = prefix + folder + name
                if entry.is_dir():
                    found.append(_Candidate(path, path + "/", "folder"))
                elif suffixes is None or name.lower().endswith(suffixes):
                    found.append(_Candidate(path, path, "file"))
                if len(found) >= MAX_NAMES:
                    break
    except OSError:
        return []
    return sorted(found, key=lambda c: c.text)
