"""Turns library objects into Discord messages: the one Discord-facing renderer.

The package splits at its seams: `text` (limits, cutting, escaping, links), `payloads` (a message
as data, vote buttons, the ledger form), `papers` (one paper and lists of papers) and `posts`
(daily digests, notices and subscribers' DMs). Callers import from here.

Everything here is pure and deterministic (no clock, no randomness, no I/O): the same inputs give
the same payloads, so a payload can be stored in the delivery ledger (`payload_to_dict`) and
replayed after a crash (`payload_from_dict`).

Guarantees, checked by the tests (`tests/limits.py`):

* No Discord limit is ever exceeded (embed title 256, description 4096, field name 256, field
  value 1024, footer 2048, author 256, 25 fields, 10 embeds and 6000 embed characters per message,
  2000 characters of content). Lengths are counted in code points, as discord.py's `len(Embed)`.
  Over-long text is cut at a word boundary and ends with `…`; a single over-long word is hard-cut.
  Lists (authors, links, days, search hits, digest entries) keep whole items and say "+N more".
* Paper text is untrusted. Titles, authors, tags and link labels have Discord markdown escaped;
  summaries keep their markdown where they stand alone (a `paper_embed` description) and are
  escaped where they share a description with other papers, so a stray `**` or ``` cannot
  reformat the next entry. Every visible string has mentions neutralised (`@​everyone`, `<@​123>`),
  and every payload carries an explicit `allowed_mentions` (`NO_MENTIONS` unless a digest is asked
  to ping roles, and then only those roles).
* Papers posted in channels carry vote buttons (`VoteButton`), one per paper, at most 25 per
  message (a compact digest starts a new message rather than leave a paper without one); the
  buttons are part of the payload, so the ledger replays them too.
* URLs are only used when they are http(s), at most 2048 characters, and percent-encoded so they
  cannot break a `[label](url)` link; otherwise the canonical arXiv URL is used or the link is
  dropped (an invalid embed URL makes Discord reject the whole message).
"""


from bot.render.papers import (
    paper_embed,
    related_embed,
    roundup_message,
    search_results_embed,
    tag_list_embeds,
    top_papers_embed,
)
from bot.render.payloads import (
    RELATED_ID_TEMPLATE,
    VOTE_ID_TEMPLATE,
    related_button,
    MessagePayload,
    VoteButton,
    embed_size,
    payload_from_dict,
    payload_to_dict,
    vote_view,
)
from bot.render.lists import field_pages
from bot.render.posts import (
    DEFAULT_MAX_PAPERS_PER_POST,
    broken_channel_notice,
    day_tags_by_frequency,
    digest_header,
    digest_messages,
    digest_thread_name,
    empty_day_message,
    more_papers_note,
    subscription_digest_header,
    subscription_digest_messages,
)
from bot.render.text import (
    BRAND_COLOUR,
    ELLIPSIS,
    MAX_ACTION_ROWS,
    MAX_AUTHOR,
    MAX_CONTENT,
    MAX_DESCRIPTION,
    MAX_EMBEDS,
    MAX_FIELD_NAME,
    MAX_FIELD_VALUE,
    MAX_FIELDS,
    MAX_FOOTER,
    MAX_MESSAGE_EMBED_CHARS,
    MAX_TITLE,
    NO_MENTIONS,
    escape_text,
    neutralize_mentions,
    truncate,
)

__all__ = [
    "BRAND_COLOUR", "DEFAULT_MAX_PAPERS_PER_POST", "ELLIPSIS", "MAX_ACTION_ROWS", "MAX_AUTHOR", "MAX_CONTENT", "MAX_DESCRIPTION", "MAX_EMBEDS",
    "MAX_FIELDS", "MAX_FIELD_NAME", "MAX_FIELD_VALUE", "MAX_FOOTER", "MAX_MESSAGE_EMBED_CHARS", "MAX_TITLE",
    "NO_MENTIONS", "RELATED_ID_TEMPLATE", "VOTE_ID_TEMPLATE", "MessagePayload", "VoteButton", "broken_channel_notice",
    "day_tags_by_frequency", "digest_header", "digest_messages", "digest_thread_name", "embed_size",
    "empty_day_message", "escape_text", "field_pages", "more_papers_note", "neutralize_mentions", "paper_embed",
    "payload_from_dict", "payload_to_dict", "related_button", "related_embed", "roundup_message",
    "search_results_embed", "subscription_digest_header",
    "subscription_digest_messages", "tag_list_embeds", "top_papers_embed", "truncate", "vote_view",
]
