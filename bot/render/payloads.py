"""One Discord message as data (`MessagePayload`), its vote buttons, and its ledger form.

Payloads are pure values, so the ledger can store one and replay it after a crash.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import discord

from storage.models import StoredPaper

from bot.render.text import (
    MAX_BUTTONS,
    MAX_CUSTOM_ID,
    MAX_ROW_BUTTONS,
    NO_MENTIONS,
)

# --------------------------------------------------------------------------------------------
# Payloads
# --------------------------------------------------------------------------------------------


#: A vote button's custom_id: `paperbot:vote:<number>:<arXiv id>`; number 0 = the message's only paper.
#: bot.votes answers the clicks of every button matching it, also on messages sent before a restart.
VOTE_ID_TEMPLATE = r"paperbot:vote:(?P<number>[0-9]+):(?P<arxiv_id>[A-Za-z0-9./-]+)"
_VOTE_ID = re.compile(VOTE_ID_TEMPLATE)


#: The Related button's custom_id: `paperbot:related:<arXiv id>`. bot.related answers its clicks
#: (a private list of related papers), also on messages sent before a restart.
RELATED_ID_TEMPLATE = r"paperbot:related:(?P<arxiv_id>[A-Za-z0-9./-]+)"
_RELATED_ID = re.compile(RELATED_ID_TEMPLATE)


def related_button(arxiv_id: str) -> discord.ui.Button | None:
    """The Related button of a paper, or None when its id cannot be a custom_id."""
    custom_id = f"paperbot:related:{arxiv_id}"
    if len(custom_id) > MAX_CUSTOM_ID or not _RELATED_ID.fullmatch(custom_id):
        return None
    return discord.ui.Button(style=discord.ButtonStyle.secondary, label="Related", custom_id=custom_id)


@dataclass(frozen=True)
class VoteButton:
    """One paper's vote button: its number in the message's list (0 = the only paper) and its count."""

    arxiv_id: str
    number: int = 0
    count: int = 0

    @property
    def custom_id(self) -> str:
        return f"paperbot:vote:{self.number}:{self.arxiv_id}"

    @property
    def label(self) -> str:
        """`#3 ▲ 2`, or `▲ 2` for a message's only paper."""
        return f"#{self.number} ▲ {self.count}" if self.number else f"▲ {self.count}"

    def as_button(self) -> discord.ui.Button:
        return discord.ui.Button(style=discord.ButtonStyle.secondary, label=self.label, custom_id=self.custom_id)


class _Buttons(discord.ui.View):
    """Buttons sent for their look only: clicks are answered by custom_id (see `VOTE_ID_TEMPLATE`).

    Not dispatchable, so discord.py does not keep a view per sent message in memory: the
    persistent handler registered at start-up answers every click, before and after restarts.
    """

    def __init__(self) -> None:
        super().__init__(timeout=None)

    def is_dispatchable(self) -> bool:
        return False


def _usable(buttons: Sequence[VoteButton]) -> list[VoteButton]:
    """The buttons Discord accepts, at most 25: an id too long for a custom_id gets none."""
    return [b for b in buttons if len(b.custom_id) <= MAX_CUSTOM_ID][:MAX_BUTTONS]


def vote_view(buttons: Sequence[VoteButton]) -> discord.ui.View:
    """The vote buttons of a message, five to a row, in order.

    A message of one paper (its only button numbered 0: a thread or forum post of a digest)
    also gets the paper's Related button beside its vote; a list of papers has no room for
    one per paper (25 buttons at most, all votes on a full compact digest).
    """
    view = _Buttons()
    usable = _usable(buttons)
    for index, button in enumerate(usable):
        item = button.as_button()
        item.row = index // MAX_ROW_BUTTONS
        view.add_item(item)
    if len(usable) == 1 and usable[0].number == 0:
        related = related_button(usable[0].arxiv_id)
        if related is not None:
            related.row = 0
            view.add_item(related)
    return view


@dataclass(frozen=True, eq=False)
class MessagePayload:
    """One Discord message: `channel.send(**payload.as_kwargs())`.

    Equality is equality of `payload_to_dict`, i.e. of what Discord would receive.
    """

    content: str | None
    embeds: list[discord.Embed] = field(default_factory=list)
    allowed_mentions: discord.AllowedMentions = NO_MENTIONS
    votes: tuple[VoteButton, ...] = ()  # one vote button per paper in the message

    def as_kwargs(self) -> dict[str, Any]:
        """Keyword arguments for `Messageable.send`, `InteractionResponse.send_message`, `edit`."""
        kwargs: dict[str, Any] = {
            "content": self.content,
            "embeds": list(self.embeds),
            "allowed_mentions": self.allowed_mentions,
        }
        if self.votes:
            kwargs["view"] = vote_view(self.votes)
        return kwargs

    def components(self) -> list[dict[str, Any]]:
        """The message's components as Discord receives them."""
        return vote_view(self.votes).to_components() if self.votes else []

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, MessagePayload):
            return NotImplemented
        return payload_to_dict(self) == payload_to_dict(other)

    __hash__ = None  # type: ignore[assignment]


_PAYLOAD_VERSION = 1


def payload_to_dict(payload: MessagePayload) -> dict[str, Any]:
    """A JSON-serialisable form of `payload` for the delivery ledger."""
    data = {
        "v": _PAYLOAD_VERSION,
        "content": payload.content,
        "embeds": [copy.deepcopy(embed.to_dict()) for embed in payload.embeds],
        "allowed_mentions": copy.deepcopy(payload.allowed_mentions.to_dict()),
    }
    if payload.votes:  # absent rather than empty: payloads stored before votes existed read the same
        data["votes"] = [[b.arxiv_id, b.number, b.count] for b in payload.votes]
    return data


def _allowed_mentions_from_dict(data: dict[str, Any]) -> discord.AllowedMentions:
    parse = set(data.get("parse", ()))
    users: bool | list[discord.Object] = "users" in parse
    roles: bool | list[discord.Object] = "roles" in parse
    if "users" in data:
        users = [discord.Object(id=int(i)) for i in data["users"]]
    if "roles" in data:
        roles = [discord.Object(id=int(i)) for i in data["roles"]]
    mentions = discord.AllowedMentions(
        everyone="everyone" in parse,
        users=users,
        roles=roles,
        replied_user=bool(data.get("replied_user", False)),
    )
    return NO_MENTIONS if mentions.to_dict() == NO_MENTIONS.to_dict() else mentions


def payload_from_dict(data: dict[str, Any]) -> MessagePayload:
    """The payload `payload_to_dict` stored (also after a trip through JSON)."""
    version = data.get("v", _PAYLOAD_VERSION)
    if version != _PAYLOAD_VERSION:
        raise ValueError(f"unknown payload version {version!r}")
    return MessagePayload(
        content=data.get("content"),
        embeds=[discord.Embed.from_dict(copy.deepcopy(e)) for e in data.get("embeds", [])],
        allowed_mentions=_allowed_mentions_from_dict(data.get("allowed_mentions") or {}),
        votes=tuple(VoteButton(str(a), int(n), int(c)) for a, n, c in data.get("votes", ())),
    )

def embed_size(embed: discord.Embed) -> int:
    """Characters the embed counts towards the 6000 per message (as Discord and `len(Embed)`)."""
    data = embed.to_dict()
    size = len(data.get("title") or "") + len(data.get("description") or "")
    for f in data.get("fields", []):
        size += len(f.get("name") or "") + len(f.get("value") or "")
    size += len((data.get("footer") or {}).get("text") or "")
    size += len((data.get("author") or {}).get("name") or "")
    return size


def _vote_buttons(numbered: Sequence[tuple[int, StoredPaper]]) -> tuple[VoteButton, ...]:
    """A vote button per paper (number 0: the message's only paper); an id no custom_id can carry gets none."""
    buttons = (VoteButton(paper.arxiv_id, number) for number, paper in numbered)
    return tuple(b for b in buttons if len(b.custom_id) <= MAX_CUSTOM_ID and _VOTE_ID.fullmatch(b.custom_id))
