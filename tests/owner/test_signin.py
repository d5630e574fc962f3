"""Browser sign-in on its own: challenges, signatures, sessions, tickets (no sockets)."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from p2p2p.errors import NotInvited
from p2p2p.identity import Identity, b64
from p2p2p.owner import signin
from p2p2p.owner.signin import Sessions, signed_message
from p2p2p.owner.viewers import Invite, Viewer, ViewerList

SHARE = "a" * 32
OTHER_SHARE = "b" * 32


@pytest.fixture
def viewers(tmp_path: Path) -> ViewerList:
    listed = ViewerList(tmp_path / "viewers.json")
    return listed


def proof(identity: Identity, sessions: Sessions, share: str = SHARE) -> tuple[str, str, str]:
    nonce = sessions.challenge()
    return identity.public_key_b64, nonce, b64(identity.sign(signed_message(share, nonce)))


def listed(viewers: ViewerList, identity: Identity, name: str = "auditor") -> None:
    viewers.add([Viewer(name, identity.public_key, ("regions",), added=time.time())])
    time.sleep(0.06)


def test_a_listed_key_signs_in_and_its_session_and_ticket_work(viewers: ViewerList) -> None:
    auditor = Identity.generate()
    listed(viewers, auditor)
    sessions = Sessions(SHARE)
    secret = sessions.login(viewers, *proof(auditor, sessions))
    session = sessions.session(secret, viewers)
    assert session is not None and session.viewer == "auditor"
    assert sessions.by_ticket(session.ticket, viewers) == session
    assert sessions.session("made-up", viewers) is None
    sessions.sign_out(secret)
    assert sessions.session(secret, viewers) is None
    assert sessions.by_ticket(session.ticket, viewers) is None


def test_forged_replayed_or_foreign_signatures_are_refused(viewers: ViewerList) -> None:
    auditor, stranger = Identity.generate(), Identity.generate()
    listed(viewers, auditor)
    sessions = Sessions(SHARE)
    key, nonce, sig = proof(auditor, sessions)
    sessions.login(viewers, key, nonce, sig)
    with pytest.raises(NotInvited, match="challenge"):  # the same challenge again
        sessions.login(viewers, key, nonce, sig)
    with pytest.raises(NotInvited, match="does not verify"):  # signed for another share
        sessions.login(viewers, *proof(auditor, sessions, OTHER_SHARE))
    key, nonce, _ = proof(auditor, sessions)
    with pytest.raises(NotInvited, match="does not verify"):  # someone else's signature
        sessions.login(viewers, key, nonce, b64(stranger.sign(signed_message(SHARE, nonce))))
    with pytest.raises(NotInvited, match="challenge"):  # a nonce we never issued
        sessions.login(viewers, key, "made-up", b64(auditor.sign(b"x")))
    with pytest.raises(NotInvited, match="not a viewer"):
        sessions.login(viewers, *proof(stranger, sessions))


def test_an_old_challenge_is_refused(viewers: ViewerList, monkeypatch: pytest.MonkeyPatch) -> None:
    auditor = Identity.generate()
    listed(viewers, auditor)
    sessions = Sessions(SHARE)
    key, nonce, sig = proof(auditor, sessions)
    later = time.monotonic() + signin.CHALLENGE_TTL_S + 1
    monkeypatch.setattr(signin.time, "monotonic", lambda: later)
    with pytest.raises(NotInvited, match="too old"):
        sessions.login(viewers, key, nonce, sig)


def test_removal_and_expiry_end_sessions(viewers: ViewerList) -> None:
    auditor = Identity.generate()
    listed(viewers, auditor)
    sessions = Sessions(SHARE)
    secret = sessions.login(viewers, *proof(auditor, sessions))
    viewers.remove("auditor")
    time.sleep(0.06)
    assert sessions.session(secret, viewers) is None
    short = Sessions(SHARE, ttl_s=0.05)
    listed(viewers, auditor)
    secret = short.login(viewers, *proof(auditor, short))
    time.sleep(0.1)
    assert short.session(secret, viewers) is None


def test_an_invite_enrolls_a_browser_key_once(viewers: ViewerList) -> None:
    browser, other = Identity.generate(), Identity.generate()
    code = viewers.invite(Invite("auditor", time.time() + 60, ("regions",)))
    sessions = Sessions(SHARE)
    secret = sessions.enroll(viewers, code, *proof(browser, sessions))
    session = sessions.session(secret, viewers)
    assert session is not None and session.key == browser.public_key
    with pytest.raises(NotInvited, match="not valid"):
        sessions.enroll(viewers, code, *proof(other, sessions))


def test_challenges_and_sessions_are_bounded(viewers: ViewerList) -> None:
    auditor = Identity.generate()
    listed(viewers, auditor)
    sessions = Sessions(SHARE)
    first = sessions.challenge()
    for _ in range(signin.MAX_CHALLENGES):
        sessions.challenge()
    assert len(sessions._challenges) == signin.MAX_CHALLENGES
    with pytest.raises(NotInvited):  # pushed out by the newer ones
        sessions.login(viewers, auditor.public_key_b64, first, b64(auditor.sign(b"x")))
    secrets = [sessions.login(viewers, *proof(auditor, sessions)) for _ in range(20)]
    assert all(sessions.session(s, viewers) for s in secrets)
    assert len(sessions._sessions) <= signin.MAX_SESSIONS
