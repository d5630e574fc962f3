"""Registration without sockets: only the key holder can announce a share id."""

from __future__ import annotations

import pytest

from p2p2p.errors import RegistrationRefused
from p2p2p.identity import Identity
from p2p2p.protocol.registration import ShareAd, answer, check, new_challenge
from p2p2p.protocol.shareid import share_id


def ad(identity: Identity, name: str = "sales") -> ShareAd:
    return ShareAd(share_id(identity.public_key, name), name)


def test_a_signed_answer_is_accepted() -> None:
    owner = Identity.generate()
    challenge = new_challenge()
    key, shares = check(answer(owner, challenge, [ad(owner)]), challenge)
    assert key == owner.public_key and shares[0].name == "sales"


def test_an_answer_for_another_challenge_is_a_replay() -> None:
    owner = Identity.generate()
    old = answer(owner, new_challenge(), [ad(owner)])
    with pytest.raises(RegistrationRefused, match="not signed"):
        check(old, new_challenge())


def test_someone_elses_share_id_is_refused() -> None:
    owner, thief = Identity.generate(), Identity.generate()
    challenge = new_challenge()
    # The thief signs correctly with its own key, but claims the owner's share id.
    with pytest.raises(RegistrationRefused, match="does not belong"):
        check(answer(thief, challenge, [ad(owner)]), challenge)


def test_a_forged_owner_field_is_refused() -> None:
    owner, thief = Identity.generate(), Identity.generate()
    challenge = new_challenge()
    message = answer(thief, challenge, [ad(owner)])
    message["owner"] = owner.public_key_b64  # claims to be the owner, signed by the thief
    with pytest.raises(RegistrationRefused, match="not signed"):
        check(message, challenge)


@pytest.mark.parametrize(
    "message", [{}, {"owner": "x"}, {"owner": "AA", "signature": "AA", "shares": "no"}]
)
def test_malformed_registrations(message: dict[str, object]) -> None:
    with pytest.raises(RegistrationRefused):
        check(message, new_challenge())
