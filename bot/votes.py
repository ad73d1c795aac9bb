"""The vote buttons under posted papers: a click adds the member's vote, a second click takes it back.

The buttons are a persistent `DynamicItem`: discord.py routes every click whose custom_id matches
`render.VOTE_ID_TEMPLATE` here, whichever message it is on and however long ago it was sent, so
the buttons keep working across restarts without keeping a view per message in memory. The answer
is the interaction's own message update: the message's buttons re-labelled with the current
counts, and nothing new posted in the channel.
"""

from __future__ import annotations

import re

import discord

from bot import render
from bot.errors import UserError, send_error
from storage import votes

__all__ = ["VoteClick", "buttons_on"]

_VOTE_ID = re.compile(render.VOTE_ID_TEMPLATE)


def buttons_on(message: discord.Message) -> list[render.VoteButton]:
    """The vote buttons a message carries, in order (counts not filled in)."""
    found = []
    for row in message.components:
        for component in getattr(row, "children", ()):
            match = _VOTE_ID.fullmatch(getattr(component, "custom_id", None) or "")
            if match:
                found.append(render.VoteButton(match["arxiv_id"], int(match["number"])))
    return found


class VoteClick(discord.ui.DynamicItem[discord.ui.Button], template=render.VOTE_ID_TEMPLATE):
    def __init__(self, arxiv_id: str, number: int = 0) -> None:
        super().__init__(render.VoteButton(arxiv_id, number).as_button())
        self.arxiv_id = arxiv_id

    @classmethod
    async def from_custom_id(
        cls, interaction: discord.Interaction, item: discord.ui.Button, match: re.Match[str]
    ) -> VoteClick:
        return cls(match["arxiv_id"], int(match["number"]))

    async def callback(self, interaction: discord.Interaction) -> None:
        try:
            await self._toggle(interaction)
        except Exception as error:  # noqa: BLE001 - every failure gets the one error reply
            await send_error(interaction, error)

    async def _toggle(self, interaction: discord.Interaction) -> None:
        db = interaction.client.db  # type: ignore[attr-defined]
        server = interaction.guild_id  # votes count only in the server they were cast in
        if await votes.toggle_vote(db, self.arxiv_id, interaction.user.id, guild_id=server) is None:
            raise UserError("This paper is no longer in the library, so it cannot take votes.")
        shown = buttons_on(interaction.message) if interaction.message is not None else []
        counts = await votes.vote_counts(db, [button.arxiv_id for button in shown], guild_id=server)
        updated = [render.VoteButton(b.arxiv_id, b.number, counts[b.arxiv_id]) for b in shown]
        await interaction.response.edit_message(view=render.vote_view(updated))
