"""Buttons that page through results.

Only the member who ran the command may turn its pages (others get a polite,
private refusal), and the buttons disable themselves when the view times out so
nobody clicks a dead button.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import discord

from bot.errors import send_error
from bot.render import NO_MENTIONS

PageRenderer = Callable[[int], Awaitable[discord.Embed]]  # 0-based page number -> embed


class Pager(discord.ui.View):
    def __init__(self, *, owner_id: int, page_count: int, render_page: PageRenderer, timeout: float) -> None:
        super().__init__(timeout=timeout)
        self.owner_id = owner_id
        self.page_count = page_count
        self.render_page = render_page
        self.page = 0
        self.message: discord.Message | discord.InteractionMessage | None = None
        self._sync_buttons()

    @classmethod
    async def send(
        cls,
        interaction: discord.Interaction,
        *,
        page_count: int,
        render_page: PageRenderer,
        timeout: float,
        ephemeral: bool = False,
    ) -> None:
        """Reply to `interaction` with page 1, with buttons only when there is more than one page.

        After a deferral the page replaces "thinking…" (and keeps the deferral's visibility).
        """
        first = await render_page(0)
        view = None
        if page_count > 1:
            view = cls(owner_id=interaction.user.id, page_count=page_count, render_page=render_page, timeout=timeout)
        extra = {"view": view} if view is not None else {}
        if interaction.response.is_done():
            message = await interaction.followup.send(embed=first, ephemeral=ephemeral, wait=True,
                                                      allowed_mentions=NO_MENTIONS, **extra)
        else:
            await interaction.response.send_message(embed=first, ephemeral=ephemeral, allowed_mentions=NO_MENTIONS,
                                                    **extra)
            message = await interaction.original_response() if view is not None else None
        if view is not None:
            view.message = message

    def _sync_buttons(self) -> None:
        self.previous.disabled = self.page == 0
        self.next.disabled = self.page >= self.page_count - 1
        self.counter.label = f"Page {self.page + 1} of {self.page_count}"

    async def interaction_check(self, interaction: discord.Interaction) -> bool:
        if interaction.user.id == self.owner_id:
            return True
        await interaction.response.send_message(
            "These buttons belong to whoever ran the command; run it yourself to page through results.",
            ephemeral=True,
            allowed_mentions=NO_MENTIONS,
        )
        return False

    async def _show(self, interaction: discord.Interaction, page: int) -> None:
        self.page = max(0, min(page, self.page_count - 1))
        self._sync_buttons()
        embed = await self.render_page(self.page)
        await interaction.response.edit_message(embed=embed, view=self, allowed_mentions=NO_MENTIONS)

    @discord.ui.button(label="◀ Previous", style=discord.ButtonStyle.secondary)
    async def previous(self, interaction: discord.Interaction, _: discord.ui.Button) -> None:
        await self._show(interaction, self.page - 1)

    @discord.ui.button(label="Page", style=discord.ButtonStyle.secondary, disabled=True)
    async def counter(self, interaction: discord.Interaction, _: discord.ui.Button) -> None:
        """A label, never clickable."""

    @discord.ui.button(label="Next ▶", style=discord.ButtonStyle.secondary)
    async def next(self, interaction: discord.Interaction, _: discord.ui.Button) -> None:
        await self._show(interaction, self.page + 1)

    async def on_timeout(self) -> None:
        for item in self.children:
            if isinstance(item, discord.ui.Button):
                item.disabled = True
        if self.message is not None:
            try:
                await self.message.edit(view=self)
            except discord.HTTPException:
                pass  # the message is gone or the token expired; nothing left to disable

    async def on_error(self, interaction: discord.Interaction, error: Exception, item: discord.ui.Item) -> None:
        await send_error(interaction, error)
