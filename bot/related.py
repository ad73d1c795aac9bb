"""The Related button under a paper's own post: a click answers privately with the papers most like it.

A persistent `DynamicItem`, like the vote buttons (bot/votes.py): discord.py routes every click
whose custom_id matches `render.RELATED_ID_TEMPLATE` here, on any message and after restarts,
without a view per message in memory. The answer is an ephemeral message, so a click posts
nothing in the channel.
"""

from __future__ import annotations

import re

import discord

from bot import render
from bot.errors import UserError, send_error
from storage import papers
from storage.related import related_papers

__all__ = ["RelatedClick"]


class RelatedClick(discord.ui.DynamicItem[discord.ui.Button], template=render.RELATED_ID_TEMPLATE):
    def __init__(self, arxiv_id: str) -> None:
        button = render.related_button(arxiv_id)
        super().__init__(button if button is not None else discord.ui.Button(label="Related"))
        self.arxiv_id = arxiv_id

    @classmethod
    async def from_custom_id(
        cls, interaction: discord.Interaction, item: discord.ui.Button, match: re.Match[str]
    ) -> RelatedClick:
        return cls(match["arxiv_id"])

    async def callback(self, interaction: discord.Interaction) -> None:
        try:
            await self._answer(interaction)
        except Exception as error:  # noqa: BLE001 - every failure gets the one error reply
            await send_error(interaction, error)

    async def _answer(self, interaction: discord.Interaction) -> None:
        db = interaction.client.db  # type: ignore[attr-defined]
        paper = await papers.get_paper(db, self.arxiv_id)
        if paper is None:
            raise UserError("This paper is no longer in the library.")
        related = await related_papers(db, self.arxiv_id)
        await interaction.response.send_message(
            embed=render.related_embed(paper, related), ephemeral=True, allowed_mentions=render.NO_MENTIONS
        )
