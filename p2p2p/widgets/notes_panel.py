"""The notes panel: a share's signed notes, live, and a form to write one.

Used in the viewers' dashboard (notes signed in the browser by ``BrowserSigner``; the
kernel never holds that key) and by the owner in a notebook (``%p2p notes``; signed with
the owner's own identity). Every note shown is verified here against its author key.
"""

from __future__ import annotations

import base64
import html
import threading
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import anywidget
import ipywidgets as widgets
import traitlets

from ..errors import NoteRefused, P2P2PError
from ..identity import Identity, b64, fingerprint, unb64
from ..protocol import notes
from .style import PlainTextRepr

LIVE_WAIT_S = 20.0  # one long request at a time: new notes arrive as they are written
SIGN_TIMEOUT_S = 15.0


class BrowserSigner(anywidget.AnyWidget):
    """Signs note bytes with a key that exists only in the viewer's browser."""

    # The browser's key store first (shared with the sign-in page), then the signer.
    _esm = (
        Path(__file__).with_name("browser_key.js").read_text()
        + Path(__file__).with_name("signer.js").read_text()
    )
    public_key = traitlets.Unicode("").tag(sync=True)
    error = traitlets.Unicode("").tag(sync=True)
    name = traitlets.Unicode("").tag(sync=True)


BADGES = {
    "verified": '<span class="p2p2p-verified" style="color:#1a7f37">✓ verified</span>',
    "retracted": '<span style="color:#59636e">retracted</span>',
    "forged": '<span style="color:#b42318">✗ signature does not verify</span>',
}


class NotesPanel(PlainTextRepr, widgets.VBox):  # type: ignore[misc]
    def __init__(
        self,
        store: Any,
        tables: list[str] | None = None,
        identity: Identity | None = None,
        signer: BrowserSigner | None = None,
        live: bool = True,
    ) -> None:
        self.store = store
        self.identity = identity  # signs in this process (the owner, a notebook)
        self.signer = signer  # signs in the browser (a dashboard viewer)
        self._session_key: Identity | None = None  # when the browser cannot sign
        self._pending: dict[str, dict[str, Any]] = {}  # drafts the browser is signing
        self.notes: list[dict[str, Any]] = []
        self._rows: dict[tuple[Any, ...], widgets.Widget] = {}
        self.older = widgets.HTML()  # "N older notes not shown"
        self.seq = 0
        self._lock = threading.Lock()
        self.listing = widgets.VBox()
        self.text = widgets.Textarea(
            placeholder="Write a note to the owner…", layout=widgets.Layout(width="100%")
        )
        self.name = widgets.Text(placeholder="your name", layout=widgets.Layout(width="12em"))
        self.on = widgets.Dropdown(
            options=[("the whole share", "")] + [(t, t) for t in tables or []],
            layout=widgets.Layout(width="12em"),
        )
        self.kind = widgets.ToggleButtons(options=[("note", "note"), ("action item", "action")])
        self.post_button = widgets.Button(description="Post", button_style="primary")
        self.post_button.on_click(lambda _b: self.post(self.text.value, self.kind.value))
        self.message = widgets.HTML()
        self.cancel_reply = widgets.Button(
            description="Cancel reply", layout=widgets.Layout(width="auto", display="none")
        )
        self.cancel_reply.on_click(lambda _b: self._stop_reply())
        self.reply_to: str | None = None
        self._row_target: dict[str, Any] | None = None  # set by "annotate this row"
        parts: list[widgets.Widget] = [widgets.HTML("<b>Notes</b>")]
        if signer is not None:
            parts.append(signer)
            signer.on_msg(self._signed)
            widgets.jslink((signer, "name"), (self.name, "value"))
        parts += [
            self.listing,
            self.text,
            # Wraps on a phone instead of squeezing the toggles and cutting "Post".
            widgets.HBox(
                [self.name, self.on, self.kind, self.post_button],
                layout=widgets.Layout(flex_flow="row wrap"),
            ),
            widgets.HBox([self.message, self.cancel_reply]),
        ]
        super().__init__(parts, layout=widgets.Layout(margin="12px 0"))
        self.add_class("p2p2p-notes")
        self.refresh()
        self._stop = threading.Event()
        if live:
            threading.Thread(target=self._follow, name="p2p2p-notes", daemon=True).start()

    # -- reading -----------------------------------------------------------------
    def refresh(self, wait_s: float = 0.0) -> None:
        new, seq = self.store.notes_since(self.seq, wait_s)
        with self._lock:  # the live thread and a Post click may both arrive here
            self._merge(new, seq)

    def _merge(self, new: list[dict[str, Any]], seq: int) -> None:
        self.seq = max(self.seq, seq)
        if new or not self.notes:
            known = {n["id"]: n for n in self.notes}
            for note in new:
                known[note["id"]] = note
            for note in list(known.values()):  # a retraction empties the note it retracts
                if note.get("kind") == "retract" and note.get("parent") in known:
                    parent = known[note["parent"]]
                    # Its words go from this panel's memory too, not only from the page.
                    known[note["parent"]] = {**parent, "body": "", "retracted_by": note["id"]}
            self.notes = sorted(known.values(), key=lambda n: int(n.get("seq", 0)))
            self._render()

    def _follow(self) -> None:
        while not self._stop.is_set():
            try:
                self.refresh(LIVE_WAIT_S)
            except P2P2PError:
                if self._stop.wait(5):  # offline or refused: try again later, gently
                    return

    def close(self) -> None:
        self._stop.set()
        for widget in self._rows.values():
            _close_tree(widget)
        self._rows = {}
        super().close()

    def __repr__(self) -> str:
        """The notes as text: for terminals, logs and stored notebook outputs."""
        shown = [n for n in self.notes if n.get("kind") not in ("retract", "resolve")]
        lines = [f"notes · {len(shown)}"]
        for note in reversed(shown):
            check = notes.signature_state(note)
            if check == "forged":
                check = "SIGNATURE DOES NOT VERIFY"
            author = fingerprint(unb64(str(note.get("author", ""))))
            target = notes.describe_target(note.get("target") or {})
            lines.append(
                f"  {'  ' if note.get('parent') else ''}[{note.get('kind')}] on {target} · "
                f"{note.get('name') or 'anonymous'} {author} · {check}"
            )
            if not note.get("retracted_by"):
                lines.append(f"  {'  ' if note.get('parent') else ''}  {note.get('body', '')}")
        return "\n".join(lines)

    def _render(self) -> None:
        threads: dict[str | None, list[dict[str, Any]]] = {}
        for note in self.notes:
            if note.get("kind") in ("retract",):
                continue
            threads.setdefault(note.get("parent"), []).append(note)
        resolved = {n.get("parent") for n in self.notes if n.get("kind") == "resolve"}
        rows: list[widgets.Widget] = []
        made: dict[tuple[Any, ...], widgets.Widget] = {}
        top = list(reversed(threads.get(None, [])))  # newest first
        for note in top[:SHOWN_THREADS]:
            made_row = self._row(made, note, note["id"] in resolved, 0)
            rows.append(made_row)
            for reply in threads.get(note["id"], []):
                if reply.get("kind") == "reply":
                    rows.append(self._row(made, reply, False, 1))
        if len(top) > SHOWN_THREADS:
            self.older.value = f"<i>{len(top) - SHOWN_THREADS:,} older notes not shown</i>"
            rows.append(self.older)
        # A row is made once per note and state; rows no longer shown are closed, so
        # their models leave the kernel and the page (a panel once grew by a widget per
        # note per new note, forever).
        for key, widget in self._rows.items():
            if key not in made:
                _close_tree(widget)
        self._rows = made
        self.listing.children = rows or [widgets.HTML("<i>No notes yet.</i>")]

    def _row(
        self,
        made: dict[tuple[Any, ...], widgets.Widget],
        note: dict[str, Any],
        resolved: bool,
        depth: int,
    ) -> widgets.Widget:
        key = (note["id"], resolved, bool(note.get("retracted_by")), depth)
        row = self._rows.get(key) or self._note_row(note, resolved, depth)
        made[key] = row
        return row

    def _note_row(self, note: dict[str, Any], resolved: bool, depth: int) -> widgets.Widget:
        retracted = bool(note.get("retracted_by"))
        badge = BADGES[notes.signature_state(note)]
        author = fingerprint(unb64(str(note.get("author", ""))))
        when = datetime.fromtimestamp(int(note.get("created", 0)) / 1000, UTC)
        flags = []
        if note.get("kind") == "action":
            flags.append("<b>action item</b>")
        if resolved:
            flags.append("resolved")
        holder = notes.KEY_HOLDERS.get(str(note.get("via")))
        if holder:
            flags.append(f"signed by {html.escape(holder)}")
        body = "<i>retracted by its author</i>" if retracted else html.escape(str(note["body"]))
        card = widgets.HTML(
            f'<div class="p2p2p-note" style="margin-left:{depth * 1.5}em;padding:4px 0;'
            f'border-bottom:1px solid #eee"><div style="font-size:.85em;color:#59636e">'
            f"<b>{html.escape(str(note.get('name') or 'anonymous'))}</b> "
            f"<code>{html.escape(author)}</code> · {when:%Y-%m-%d %H:%M} UTC · "
            f"on {html.escape(notes.describe_target(note.get('target') or {}))} · {badge}"
            f"{' · ' + ' · '.join(flags) if flags else ''}</div>"
            f'<div class="p2p2p-note-body">{body}</div></div>'
        )
        if retracted:
            return card
        buttons = []
        if depth == 0:
            buttons.append(self._small("Reply", lambda: self._start_reply(note)))
            if not resolved and self._may_resolve(note):
                buttons.append(self._small("Resolve", lambda: self.post("", "resolve", note["id"])))
        if note.get("author") == self._my_key():
            buttons.append(self._small("Retract", lambda: self.post("", "retract", note["id"])))
        return widgets.VBox([card, widgets.HBox(buttons)]) if buttons else card

    @staticmethod
    def _small(label: str, action: Callable[[], None]) -> widgets.Button:
        button = widgets.Button(description=label, layout=widgets.Layout(width="auto"))
        button.on_click(lambda _b: action())
        return button

    def annotate_row(self, table: str, row: dict[str, Any]) -> None:
        """The next note is about this row (from a table's "annotate this row")."""
        try:
            self._row_target = notes.target(table, row=row)
        except NoteRefused as exc:
            self._error(exc.message)
            return
        where = notes.describe_target(self._row_target)
        self.message.value = f"Your next note is on <b>{html.escape(where)}</b>."

    def _start_reply(self, note: dict[str, Any]) -> None:
        self.reply_to = note["id"]
        self.message.value = f"Replying to {html.escape(str(note.get('name') or 'a note'))}."
        self.cancel_reply.layout.display = ""

    def _stop_reply(self) -> None:
        self.reply_to = None
        self.message.value = ""
        self.cancel_reply.layout.display = "none"

    def _may_resolve(self, note: dict[str, Any]) -> bool:
        """Its author and the owner may resolve a note (the owner checks it again; in an
        identified share a listed viewer may too, which this panel cannot know)."""
        mine = self._my_key()
        owner = getattr(self.store, "owner_key", None)
        return bool(mine) and (
            note.get("author") == mine or (isinstance(owner, bytes) and mine == b64(owner))
        )

    # -- writing -----------------------------------------------------------------
    def _my_key(self) -> str:
        """This panel's key as notes name their authors (unpadded URL-safe base64)."""
        if self.identity is not None:
            return self.identity.public_key_b64
        if self.signer is not None and self.signer.public_key:
            # The browser says it in standard base64, padded: the same key either way.
            text = str(self.signer.public_key).replace("+", "-").replace("/", "_")
            try:
                return b64(unb64(text.rstrip("=")))
            except ValueError:
                return ""
        return self._session_key.public_key_b64 if self._session_key else ""

    def post(self, text: str, kind: str = "note", parent: str | None = None) -> None:
        if kind in ("note", "action") and self.reply_to:
            kind, parent = "reply", self.reply_to
        # Who signs: this process (the owner, a notebook, or a browser without Ed25519,
        # with a key held for the visit), or the viewer's browser.
        local = self.identity
        if local is None and (self.signer is None or self.signer.error):
            local = self._fallback_key()
        browser = self.signer
        try:
            if local is not None:
                author = local.public_key
            elif browser is not None and browser.public_key:
                author = unb64(str(browser.public_key))
            else:
                raise NoteRefused("the browser's key is not ready yet: try again")
            draft = notes.draft(
                self.store.link.share_id,
                author,
                self.name.value or "anonymous",
                text,
                kind=kind,
                on=self._row_target or notes.target(self.on.value or None),
                parent=parent,
            )
        except P2P2PError as exc:
            self._error(exc.message)
            return
        if local is not None:
            via = None if self.identity else "visit"
            self._deliver(notes.sign(local, draft), via)
            return
        # The browser signs; its answer arrives as a message (see ``_signed``).
        assert browser is not None
        self._pending[draft["id"]] = draft
        self.post_button.disabled = True
        self.message.value = "<i>signing in your browser…</i>"
        # The browser also does the note's proof of work (a new key's note needs one):
        # its CPU, not the owner's, which runs this kernel.
        browser.send(
            {
                "id": draft["id"],
                "bytes": base64.b64encode(notes.canonical(draft)).decode(),
                "work_prefix": base64.b64encode(notes.work_prefix(draft)).decode(),
                "work_bits": int(getattr(self.store, "work_bits", notes.WORK_BASE_BITS)),
            }
        )

    def _error(self, text: str) -> None:
        self.message.value = f'<span style="color:#b42318">{html.escape(text)}</span>'

    def _fallback_key(self) -> Identity:
        if self._session_key is None:
            self._session_key = Identity.generate()
        return self._session_key

    def _signed(self, _widget: Any, content: dict[str, Any], _buffers: Any) -> None:
        pending = self._pending.pop(str(content.get("id")), None)
        self.post_button.disabled = False
        if pending is None:
            return
        if content.get("error") or not content.get("sig"):
            self._error(f"Your browser did not sign: {content.get('error')}")
            return
        work = content.get("work")
        self._deliver({**pending, "sig": str(content["sig"])}, None, work if work else None)

    def _deliver(self, note: dict[str, Any], via: str | None, work: Any = None) -> None:
        try:
            self.store.send_note(note, via, work)
        except P2P2PError as exc:
            self._error(f"Not posted: {exc.message}")
            return
        self.text.value = ""
        self.reply_to = None
        self._row_target = None
        self.message.value = "Posted."
        self.refresh()


SHOWN_THREADS = 200  # newest notes shown with their replies; older ones are counted


def _close_tree(widget: widgets.Widget) -> None:
    """Close a widget, every widget inside it, and their layout and style models."""
    for child in getattr(widget, "children", ()):
        _close_tree(child)
    for part in ("layout", "style"):
        model = getattr(widget, part, None)
        if isinstance(model, widgets.Widget):
            model.close()
    widget.close()
