"""Discord's message limits as a checker: every payload a test builds must pass it."""

from __future__ import annotations

import re

import discord


from bot.render.payloads import (
    MessagePayload,
    embed_size,
)
from bot.render.text import (
    MAX_ACTION_ROWS,
    MAX_ALLOWED_ROLES,
    MAX_AUTHOR,
    MAX_BUTTON_LABEL,
    MAX_CONTENT,
    MAX_CUSTOM_ID,
    MAX_DESCRIPTION,
    MAX_EMBEDS,
    MAX_FIELDS,
    MAX_FIELD_NAME,
    MAX_FIELD_VALUE,
    MAX_FOOTER,
    MAX_MESSAGE_EMBED_CHARS,
    MAX_ROW_BUTTONS,
    MAX_TITLE,
    _safe_url,
)

# --------------------------------------------------------------------------------------------
# Limits
# --------------------------------------------------------------------------------------------



_RAW_EVERYONE = re.compile(r"@(?:everyone|here)")
_RAW_USER = re.compile(r"<@!?[0-9]+>")
_RAW_ROLE = re.compile(r"<@&([0-9]+)>")


def _visible_texts(payload: MessagePayload) -> list[tuple[str, str]]:
    texts: list[tuple[str, str]] = []
    for i, embed in enumerate(payload.embeds):
        data = embed.to_dict()
        texts.append((f"embed[{i}].title", data.get("title") or ""))
        texts.append((f"embed[{i}].description", data.get("description") or ""))
        for j, f in enumerate(data.get("fields", [])):
            texts.append((f"embed[{i}].field[{j}].name", f.get("name") or ""))
            texts.append((f"embed[{i}].field[{j}].value", f.get("value") or ""))
        texts.append((f"embed[{i}].footer", (data.get("footer") or {}).get("text") or ""))
        texts.append((f"embed[{i}].author", (data.get("author") or {}).get("name") or ""))
    return texts


def check_message_limits(payload: MessagePayload) -> list[str]:
    """Every Discord limit (and Paperbot mention rule) the payload breaks; empty when it is fine."""
    problems: list[str] = []
    content = payload.content or ""
    if len(content) > MAX_CONTENT:
        problems.append(f"content has {len(content)} characters (max {MAX_CONTENT})")
    if not content.strip() and not payload.embeds:
        problems.append("message has neither content nor embeds")
    if len(payload.embeds) > MAX_EMBEDS:
        problems.append(f"message has {len(payload.embeds)} embeds (max {MAX_EMBEDS})")

    total = 0
    for i, embed in enumerate(payload.embeds):
        data = embed.to_dict()
        total += embed_size(embed)
        checks = [
            ("title", data.get("title") or "", MAX_TITLE),
            ("description", data.get("description") or "", MAX_DESCRIPTION),
            ("footer", (data.get("footer") or {}).get("text") or "", MAX_FOOTER),
            ("author", (data.get("author") or {}).get("name") or "", MAX_AUTHOR),
        ]
        for name, text, limit in checks:
            if len(text) > limit:
                problems.append(f"embed[{i}].{name} has {len(text)} characters (max {limit})")
        fields = data.get("fields", [])
        if len(fields) > MAX_FIELDS:
            problems.append(f"embed[{i}] has {len(fields)} fields (max {MAX_FIELDS})")
        for j, f in enumerate(fields):
            name, value = f.get("name") or "", f.get("value") or ""
            if len(name) > MAX_FIELD_NAME:
                problems.append(
                    f"embed[{i}].field[{j}].name has {len(name)} characters (max {MAX_FIELD_NAME})"
                )
            if len(value) > MAX_FIELD_VALUE:
                problems.append(
                    f"embed[{i}].field[{j}].value has {len(value)} characters "
                    f"(max {MAX_FIELD_VALUE})"
                )
            if not name.strip() or not value.strip():
                problems.append(f"embed[{i}].field[{j}] has an empty name or value")
        if not (data.get("title") or data.get("description") or fields):
            problems.append(f"embed[{i}] has no title, description or fields")
        url = data.get("url")
        if url is not None and _safe_url(url) != url:
            problems.append(f"embed[{i}].url is not a well-formed http(s) URL")
    if total > MAX_MESSAGE_EMBED_CHARS:
        problems.append(f"embeds have {total} characters in all (max {MAX_MESSAGE_EMBED_CHARS})")
    problems += _component_problems(payload)

    mentions = payload.allowed_mentions
    if not isinstance(mentions, discord.AllowedMentions):
        problems.append("allowed_mentions is not set")
        allowed_roles: set[int] = set()
    else:
        am = mentions.to_dict()
        if set(am.get("parse", [])) & {"everyone", "users", "roles"} or am.get("users"):
            problems.append(f"allowed_mentions allows more than listed roles: {am}")
        allowed_roles = set(am.get("roles", []))
        if len(allowed_roles) > MAX_ALLOWED_ROLES:
            problems.append(f"allowed_mentions lists {len(allowed_roles)} roles (max 100)")

    for where, text in [("content", content), *_visible_texts(payload)]:
        if _RAW_EVERYONE.search(text):
            problems.append(f"{where} has an unneutralised @everyone/@here")
        if _RAW_USER.search(text):
            problems.append(f"{where} has an unneutralised user mention")
        for role in _RAW_ROLE.findall(text):
            if where != "content" or int(role) not in allowed_roles:
                problems.append(f"{where} mentions role {role} not in allowed_mentions")
    return problems


def _component_problems(payload: MessagePayload) -> list[str]:
    """Discord's component limits: 5 rows of 5 buttons, labels of 80, unique custom_ids of 100."""
    problems: list[str] = []
    rows = payload.components()
    if len(rows) > MAX_ACTION_ROWS:
        problems.append(f"message has {len(rows)} action rows (max {MAX_ACTION_ROWS})")
    ids: list[str] = []
    for i, row in enumerate(rows):
        buttons = row.get("components", [])
        if not 1 <= len(buttons) <= MAX_ROW_BUTTONS:
            problems.append(f"action row {i} has {len(buttons)} buttons (1 to {MAX_ROW_BUTTONS})")
        for button in buttons:
            label, custom_id = button.get("label") or "", button.get("custom_id") or ""
            if not label or len(label) > MAX_BUTTON_LABEL:
                problems.append(
                    f"button {custom_id!r} has a label of {len(label)} characters (1 to {MAX_BUTTON_LABEL})"
                )
            if not custom_id or len(custom_id) > MAX_CUSTOM_ID:
                problems.append(f"a button has a custom_id of {len(custom_id)} characters (1 to {MAX_CUSTOM_ID})")
            ids.append(custom_id)
    if len(ids) != len(set(ids)):
        problems.append("two buttons share a custom_id")
    votes = [custom_id for custom_id in ids if custom_id.startswith("paperbot:vote:")]
    if len(payload.votes) != len(votes):
        problems.append("some papers of the message have no vote button")
    return problems


