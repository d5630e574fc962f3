"""The card a person sees after sharing a store: is it live, the link, who is querying.

Built from core ipywidgets only, so it works in JupyterLab and Voila; the Copy button and
the QR code are plain HTML inside an HTML widget. Audit entries, client names and
statements come from other people and are always HTML-escaped.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import ipywidgets as widgets

from ..owner.audit import asked_by
from .qr import QR_PX, qr_svg
from .style import MUTED, TABLE_CSS, PlainTextRepr, esc, human_bytes

Status = dict[str, Any]

GREEN = "#15803d"
AMBER = "#b45309"
GREY = "#6b7280"
RED = "#b91c1c"
AUDIT_ROWS_SHOWN = 8
AUDIT_ROWS_TEXT = 5
STATEMENT_CHARS = 80
# Polling faster than this would only burn the kernel's CPU: the numbers are for people.
MIN_INTERVAL_S = 0.02
ONLINE_S = 300  # a viewer who queried this recently is shown as online


def share_state(status: Status) -> tuple[str, str]:
    """The state as a person reads it, and its badge colour."""
    if not status.get("active", False):
        return "stopped", GREY
    relay_state = str(status.get("relay_state", ""))
    if relay_state == "connected":
        return "live", GREEN
    if relay_state in ("connecting", "reconnecting"):
        return f"{relay_state}…", AMBER
    if relay_state == "refused":
        return "refused", RED
    return relay_state or "unknown", GREY


def badge(label: str, color: str) -> str:
    return (
        f'<span style="background:{color};color:#fff;border-radius:9px;padding:0 8px;'
        f'font-size:11px;line-height:18px;display:inline-block;font-weight:600">'
        f"{esc(label)}</span>"
    )


def shorten(text: str, limit: int) -> str:
    """One line of at most ``limit`` characters."""
    flat = " ".join(str(text).split())
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"


def _location(status: Status) -> list[str]:
    lines = [
        f"this machine · {status.get('path', '')} · {human_bytes(status.get('size_bytes') or 0)}"
    ]
    snapshot = status.get("snapshot")
    if snapshot:
        lines.append(f"snapshot of {snapshot.get('source', '')} taken {snapshot.get('taken', '')}")
    return lines


def _relay(status: Status) -> str:
    embedded = " (embedded, on this machine)" if status.get("relay_embedded") else ""
    return f"{status.get('relay', '')}{embedded}"


def _counters(status: Status) -> list[tuple[str, str]]:
    return [
        (f"{int(status.get('viewers_now') or 0):,}", "viewers now"),
        (f"{int(status.get('queries') or 0):,}", "queries served"),
        (human_bytes(status.get("bytes_out") or 0), "bytes out"),
    ]


def _newest_first(entries: list[dict[str, Any]]) -> list[dict[str, Any]]:
    parsed = [_parse_time(e.get("time")) for e in entries]
    if entries and all(p is not None for p in parsed):
        pairs = sorted(zip(parsed, range(len(entries)), strict=True), reverse=True)
        return [entries[i] for _t, i in pairs]
    # Times we cannot read: the audit log is appended to, so its end is the newest.
    return list(reversed(entries))


def _parse_time(value: Any) -> datetime | None:
    try:
        parsed = datetime.fromisoformat(str(value))
    except ValueError:
        return None
    # Naive and aware times cannot be compared; an audit log without a zone is UTC.
    return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=UTC)


def _clock(value: Any) -> str:
    """HH:MM:SS as written in the entry: no conversion, so the text is the same everywhere."""
    parsed = _parse_time(value)
    return parsed.strftime("%H:%M:%S") if parsed is not None else shorten(str(value), 19)


def ago(seconds: float) -> str:
    if seconds < 60:
        return "just now"
    if seconds < 3600:
        return f"{seconds // 60:.0f} min ago"
    if seconds < 86400:
        return f"{seconds // 3600:.0f} h ago"
    return f"{seconds // 86400:.0f} d ago"


def _rows(value: Any) -> str:
    return f"{value:,}" if isinstance(value, int) and not isinstance(value, bool) else ""


class ShareStatus(PlainTextRepr, widgets.VBox):  # type: ignore[misc]
    """Live status of one share, redrawn from a status dict.

    With ``refresh``, a daemon thread fetches a new status every ``interval_s`` seconds
    until the share stops, ``refresh`` returns None or fails, Stop is pressed, or the
    widget is closed. ``stop`` is called (once) by the Stop button.
    """

    def __init__(
        self,
        status: Status,
        refresh: Callable[[], Status | None] | None = None,
        stop: Callable[[], None] | None = None,
        interval_s: float = 1.0,
    ) -> None:
        self._refresh = refresh
        self._stop = stop
        self._interval_s = max(float(interval_s), MIN_INTERVAL_S)
        self._lock = threading.Lock()
        self._halt = threading.Event()
        self._poller: threading.Thread | None = None
        self._stopped = False
        self.status: Status = dict(status)
        self.note = ""

        self.header = widgets.HTML()
        self.qr = widgets.HTML(layout=widgets.Layout(flex="0 0 auto", margin="0 12px 0 0"))
        self.details = widgets.HTML(layout=widgets.Layout(flex="1 1 auto"))
        self.audit = widgets.HTML()
        self.stop_button = widgets.Button(
            description="Stop sharing",
            button_style="danger",
            icon="stop",
            tooltip="stop sharing: the link stops working",
        )
        self.stop_button.on_click(self._on_stop)
        self.message = widgets.HTML()
        footer = widgets.HBox(
            [self.stop_button, self.message] if stop is not None else [self.message],
            layout=widgets.Layout(align_items="center"),
        )
        super().__init__(
            [self.header, widgets.HBox([self.qr, self.details]), self.audit, footer],
            layout=widgets.Layout(
                border="1px solid var(--jp-border-color2, #e0e0e0)", padding="6px 10px"
            ),
        )
        self.add_class("p2p2p-share-status")  # a stable handle for pages and tests
        self._render()
        if refresh is not None and self.status.get("active"):
            self._start_polling()

    @property
    def updating(self) -> bool:
        """Whether the background refresh is still running."""
        return self._poller is not None and self._poller.is_alive()

    def update(self, status: Status) -> None:
        """Redraw from a new status dict."""
        with self._lock:
            self.status = dict(status)
            self._render()

    def refresh(self) -> Status:
        """Fetch the status now rather than at the next tick; redraw; return it."""
        if self._refresh is not None:
            status = self._refresh()
            if status is not None:
                self.update(status)
        return self.status

    def close(self) -> None:
        self._halt.set()
        super().close()

    def _start_polling(self) -> None:
        self._halt = threading.Event()
        self._poller = threading.Thread(
            target=self._poll, args=(self._halt,), name="p2p2p-share-status", daemon=True
        )
        self._poller.start()

    def _poll(self, halt: threading.Event) -> None:
        assert self._refresh is not None
        while not halt.wait(self._interval_s):
            try:
                status = self._refresh()
            except Exception as exc:
                with self._lock:
                    if not halt.is_set():
                        self.note = f"live updates ended: {type(exc).__name__}: {exc}"
                        self._render()
                return
            if status is None:
                return
            with self._lock:
                # Stop or close may have come while refresh ran: its answer is stale.
                if halt.is_set():
                    return
                self.status = dict(status)
                self._render()
            if not status.get("active", False):
                return

    def _on_stop(self, _button: Any) -> None:
        with self._lock:
            if self._stopped or self._stop is None:
                return
            self._stopped = True
            self._halt.set()
            self.stop_button.disabled = True
        try:
            self._stop()
        except Exception as exc:
            with self._lock:
                self._stopped = False
                self.note = f"could not stop: {type(exc).__name__}: {exc}"
                self._render()
            if self._refresh is not None and self.status.get("active"):
                self._start_polling()
            return
        with self._lock:
            self.note = ""
            self._render()

    def _render(self) -> None:
        if self._stopped:
            # Stopping is final: a status fetched just before it must not revive the card.
            self.status = {**self.status, "active": False}
        status = self.status
        active = bool(status.get("active", False))
        self.stop_button.disabled = self._stopped or not active
        self.header.value = self._header_html()
        self.qr.value = self._qr_html(active)
        self.details.value = self._details_html(active)
        self.audit.value = self._audit_html()
        self.message.value = (
            f'<span style="color:{RED};font-size:12px;margin-left:8px">{esc(self.note)}</span>'
            if self.note
            else ""
        )

    def _header_html(self) -> str:
        status = self.status
        parts = [
            f'<span style="font-weight:600;font-size:15px">{esc(status.get("name", ""))}</span>',
            badge(*share_state(status)),
        ]
        if status.get("title"):
            parts.append(f'<span style="color:{MUTED}">{esc(status["title"])}</span>')
        if status.get("listed"):
            parts.append(
                f'<span style="color:{MUTED};font-size:12px">listed in the directory</span>'
            )
        return (
            '<div style="display:flex;align-items:center;gap:8px;line-height:1.6;'
            f'margin-bottom:4px">{"".join(parts)}</div>'
        )

    def _qr_html(self, active: bool) -> str:
        svg = qr_svg(str(self.status.get("link") or ""))
        if not svg:
            return ""
        # Dimmed rather than removed once stopped, so the card keeps its shape.
        opacity = "1" if active else "0.15"
        return f'<div style="width:{QR_PX}px;height:{QR_PX}px;opacity:{opacity}">{svg}</div>'

    def _details_html(self, active: bool) -> str:
        status = self.status
        link = str(status.get("link") or "")
        disabled = "" if active else " disabled"
        # json.dumps makes the link a JavaScript string literal; esc() then makes that safe
        # inside the double-quoted attribute (the browser undoes it before running it).
        # The fallback copies from the selected field when the clipboard API is missing
        # (a page served over plain http from another host).
        script = (
            "(function(b){var t=" + json.dumps(link) + ";"
            "function ok(){b.textContent='Copied';"
            "setTimeout(function(){b.textContent='Copy'},1500)}"
            "function old(){var i=b.parentNode.querySelector('input');i.focus();i.select();"
            "try{document.execCommand('copy');ok()}catch(e){}}"
            "if(navigator.clipboard&&window.isSecureContext)"
            "{navigator.clipboard.writeText(t).then(ok,old)}else{old()}})(this)"
        )
        link_row = (
            '<div style="display:flex;align-items:center;gap:4px;margin-bottom:4px">'
            f'<input type="text" readonly value="{esc(link)}" title="{esc(link)}"'
            ' onclick="this.select()" onfocus="this.select()" aria-label="share link"'
            ' style="width:46em;max-width:100%;box-sizing:border-box;font-family:var(--jp-code-font-family,monospace);'
            "font-size:12px;padding:3px 6px;border:1px solid var(--jp-border-color1,#bdbdbd);"
            "background:var(--jp-layout-color1,#fff);color:var(--jp-ui-font-color1,#212121);"
            f'{"" if active else "text-decoration:line-through;opacity:0.6;"}">'
            f'<button class="jupyter-button jupyter-widgets" type="button" onclick="{esc(script)}"'
            f' title="copy the link"{disabled}>Copy</button></div>'
        )
        rows = [("data" if i == 0 else "", line) for i, line in enumerate(_location(status))]
        rows.append(("relay", _relay(status)))
        facts = "".join(
            f'<tr><td style="color:{MUTED};padding:0 10px 0 0;vertical-align:top">{esc(k)}</td>'
            f'<td style="word-break:break-all">{esc(v)}</td></tr>'
            for k, v in rows
        )
        stats = "".join(
            '<div style="margin-right:22px">'
            f'<div style="font-size:18px;font-weight:600;line-height:1.2">{esc(n)}</div>'
            f'<div style="font-size:11px;color:{MUTED}">{esc(label)}</div></div>'
            for n, label in _counters(status)
        )
        return (
            f'<div style="font-size:12px;line-height:1.5">{link_row}'
            f'<table style="border-collapse:collapse;margin-bottom:6px">{facts}</table>'
            f'<div style="display:flex">{stats}</div></div>'
        )

    def _audit_html(self) -> str:
        return self._viewers_html() + self._queries_html()

    def _viewers_html(self) -> str:
        """Identified mode: who may look, what they may read, and when they last did."""
        if not self.status.get("identified"):
            return ""
        viewers = list(self.status.get("viewers") or [])
        now = datetime.now(UTC).timestamp()
        rows = []
        for v in viewers:
            seen = v.get("last_query")
            online = isinstance(seen, int | float) and now - seen < ONLINE_S
            dot = GREEN if online else GREY
            expires = v.get("expires")
            until = (
                "expired"
                if v.get("expired")
                else datetime.fromtimestamp(expires, UTC).strftime("%Y-%m-%d %H:%M")
                if isinstance(expires, int | float)
                else "no end"
            )
            tables = v.get("tables")
            via = f" · by {v['via']}" if v.get("via") else ""
            rows.append(
                "<tr>"
                f'<td><span style="color:{dot}">●</span> {esc(v.get("name", ""))}'
                f'<span style="color:{MUTED}">{esc(via)}</span></td>'
                f'<td style="font-family:var(--jp-code-font-family,monospace)">'
                f"{esc(v.get('fingerprint', ''))}</td>"
                f"<td>{esc(', '.join(tables) if tables is not None else 'every table')}</td>"
                f"<td>{esc(until)}</td>"
                f"<td>{esc(ago(now - seen) if isinstance(seen, int | float) else 'not yet')}</td>"
                "</tr>"
            )
        head = "<th>viewer</th><th>key</th><th>may read</th><th>until (UTC)</th><th>last query</th>"
        body = "".join(rows) or "<tr><td colspan=5>nobody listed yet: %p2p viewers add</td></tr>"
        return (
            f'{TABLE_CSS}<div style="font-size:12px;color:{MUTED};margin:6px 0 2px;line-height:1.5">'
            "open to listed viewers only</div>"
            f'<div class="p2p2p-scroll"><table class="p2p2p-table"><thead><tr>{head}</tr></thead>'
            f"<tbody>{body}</tbody></table></div>"
        )

    def _queries_html(self) -> str:
        entries = _newest_first(list(self.status.get("recent_audit") or []))
        if not entries:
            return f'<div style="color:{MUTED};font-size:12px;margin:4px 0">no queries yet</div>'
        rows = []
        for entry in entries[:AUDIT_ROWS_SHOWN]:
            outcome = str(entry.get("outcome", ""))
            color = GREEN if outcome == "ok" else RED
            statement = str(entry.get("statement", ""))
            channel = entry.get("channel")
            client = _who(entry)
            rows.append(
                "<tr>"
                f'<td title="{esc(entry.get("time", ""))}">{esc(_clock(entry.get("time")))}</td>'
                f'<td title="{esc(f"{client} via {channel}" if channel else client)}">'
                f"{esc(shorten(client, 32))}</td>"
                f'<td style="color:{color}">{esc(outcome)}</td>'
                f'<td style="text-align:right">{esc(_rows(entry.get("rows")))}</td>'
                f'<td title="{esc(statement)}" style="font-family:var(--jp-code-font-family,monospace)">'
                f"{esc(shorten(statement, STATEMENT_CHARS))}</td>"
                "</tr>"
            )
        head = (
            '<th>time</th><th>client</th><th>outcome</th><th style="text-align:right">rows</th>'
            "<th>statement</th>"
        )
        return (
            f'{TABLE_CSS}<div style="font-size:12px;color:{MUTED};margin:6px 0 2px;line-height:1.5">'
            "recent queries, newest first</div>"
            f'<div class="p2p2p-scroll"><table class="p2p2p-table"><thead><tr>{head}</tr></thead>'
            f"<tbody>{''.join(rows)}</tbody></table></div>"
        )

    def __repr__(self) -> str:
        status = self.status
        state, _color = share_state(status)
        lines = [f"share {status.get('name', '')} · {state}"]
        if status.get("title"):
            lines[0] += f" · {status['title']}"
        lines.append(f"  link      {status.get('link', '')}")
        for i, line in enumerate(_location(status)):
            lines.append(f"  {'data' if i == 0 else '':<8}  {line}")
        lines.append(f"  relay     {_relay(status)}")
        (viewers, _), (queries, _), (out, _) = _counters(status)
        lines.append(f"  activity  {viewers} viewers now · {queries} queries served · {out} out")
        if status.get("identified"):
            listed = [
                f"{v.get('name')} ({', '.join(v['tables']) if v.get('tables') else 'every table'})"
                for v in status.get("viewers") or []
            ]
            lines.append(f"  viewers   {'; '.join(listed) or 'nobody listed yet'} (listed only)")
        entries = _newest_first(list(status.get("recent_audit") or []))[:AUDIT_ROWS_TEXT]
        if entries:
            lines.append("  recent queries, newest first:")
            table = [
                (
                    _clock(e.get("time")),
                    shorten(_who(e), 24),
                    shorten(str(e.get("outcome", "")), 12),
                    _rows(e.get("rows")),
                    shorten(str(e.get("statement", "")), STATEMENT_CHARS),
                )
                for e in entries
            ]
            widths = [max(len(row[c]) for row in table) for c in range(4)]
            for row in table:
                lines.append(
                    f"    {row[0]:<{widths[0]}}  {row[1]:<{widths[1]}}  {row[2]:<{widths[2]}}"
                    f"  {row[3]:>{widths[3]}}  {row[4]}".rstrip()
                )
        else:
            lines.append("  no queries yet")
        if self.note:
            lines.append(f"  {self.note}")
        return "\n".join(lines)


def _who(entry: dict[str, Any]) -> str:
    """Who asked, as the owner verified it, and any session label it claimed, as a claim."""
    client = asked_by(entry)
    claimed = entry.get("claimed_session")
    return f"{client} (claims session {str(claimed)[:8]})" if claimed else client
