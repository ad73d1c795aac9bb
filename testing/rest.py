"""REST side: request recording, a tiny router, and the routes Paperbot uses.

A route is ``async def handler(fake, req) -> dict | list | None | Reply``;
``None`` means 204. Raise :class:`ApiError` for Discord JSON errors. Add one
with ``@routes.add("GET", "/path/{param}")`` here, or per test with
``fake.add_route(...)`` (which takes precedence).
"""

from __future__ import annotations

import json
import time
import urllib.parse
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Awaitable, Callable

from aiohttp import web

from .faults import ApiError, path_pattern
from .state import Channel, ChannelType, MessageFlag, Perm

if TYPE_CHECKING:
    import re

    from .interactions import Interaction
    from .server import FakeDiscord

Handler = Callable[["FakeDiscord", "RecordedRequest"], Awaitable[Any]]

#: How long Discord remembers an enforced nonce ("a few minutes").
NONCE_WINDOW_SECONDS = 5 * 60


@dataclass
class UploadedFile:
    field: str  # "files[0]"
    filename: str
    content_type: str | None
    data: bytes


@dataclass
class RecordedRequest:
    """One REST call as the bot made it, plus what the fake answered."""

    method: str
    path: str  # relative to /api/v10, e.g. "/channels/1/messages"
    query: dict[str, str]
    headers: dict[str, str]
    json: Any = None  # the JSON body, or the parsed ``payload_json`` of a multipart body
    files: list[UploadedFile] = field(default_factory=list)
    route: str | None = None  # the matched template, e.g. "/channels/{channel_id}/messages"
    params: dict[str, str] = field(default_factory=dict)
    status: int | None = None
    response: Any = None

    @property
    def reason(self) -> str | None:
        """The audit-log reason (discord.py URL-quotes it into X-Audit-Log-Reason)."""
        raw = self.headers.get("X-Audit-Log-Reason")
        return urllib.parse.unquote(raw) if raw is not None else None

    def matches(self, method: str | None = None, path: str | None = None) -> bool:
        return (method is None or method.upper() == self.method) and (path is None or path in (self.path, self.route))


async def read_request(request: web.Request, path: str) -> RecordedRequest:
    """Parse JSON or multipart (``payload_json`` + ``files[n]``) bodies into a RecordedRequest."""
    req = RecordedRequest(method=request.method, path=path, query=dict(request.query), headers=dict(request.headers))
    if request.content_type == "multipart/form-data":
        async for part in await request.multipart():
            if part.name == "payload_json":
                req.json = json.loads(await part.text())
            else:
                data = bytes(await part.read())
                req.files.append(UploadedFile(field=part.name, filename=part.filename,
                                              content_type=part.headers.get("Content-Type"), data=data))
    elif request.can_read_body:
        text = await request.text()
        req.json = json.loads(text) if request.content_type == "application/json" and text else text
    return req


@dataclass
class Route:
    method: str
    template: str
    handler: Handler
    auth: bool = True  # needs "Authorization: Bot <token>" (webhook/interaction routes don't)
    pattern: re.Pattern[str] = field(init=False)

    def __post_init__(self) -> None:
        self.pattern = path_pattern(self.template)


class Router:
    def __init__(self, routes: list[Route] | None = None) -> None:
        self.routes: list[Route] = list(routes or [])

    def add(self, method: str, template: str, handler: Handler | None = None, *,
            auth: bool = True, first: bool = False):
        """Register a handler; usable as ``@router.add("GET", "/x")``. ``first`` overrides existing routes."""
        def register(fn: Handler) -> Handler:
            route = Route(method.upper(), template, fn, auth)
            self.routes.insert(0, route) if first else self.routes.append(route)
            return fn
        return register(handler) if handler is not None else register

    def match(self, method: str, path: str) -> tuple[Route | None, dict[str, str], bool]:
        """(route, params, path_known): path_known distinguishes 405 from 404."""
        path_known = False
        for route in self.routes:
            m = route.pattern.match(path)
            if m:
                path_known = True
                if route.method == method:
                    return route, m.groupdict(), True
        return None, {}, path_known

    def copy(self) -> Router:
        return Router(self.routes)


routes = Router()


# -- helpers -------------------------------------------------------------------


def _channel(fake: FakeDiscord, req: RecordedRequest) -> Channel:
    channel = fake.state.channels.get(int(req.params["channel_id"]))
    if channel is None:
        raise ApiError(404, 10003)
    return channel


def _message(fake: FakeDiscord, channel: Channel, message_id: str) -> dict[str, Any]:
    message = fake.state.messages.get(int(message_id))
    if message is None or message["channel_id"] != str(channel.id) or message["flags"] & MessageFlag.EPHEMERAL:
        raise ApiError(404, 10008)
    return message


def _require(fake: FakeDiscord, channel: Channel, needed: int) -> None:
    if fake.state.permissions_in(channel, fake.bot_user.id) & needed != needed:
        raise ApiError(403, 50013 if channel.guild_id else 50001)


def _interaction(fake: FakeDiscord, req: RecordedRequest, id_param: str) -> Interaction:
    inter = fake.interactions_by_token.get(req.params["token"])
    if inter is None or (id_param == "interaction_id" and str(inter.id) != req.params[id_param]):
        raise ApiError(404, 10062 if id_param == "interaction_id" else 10015)
    if id_param == "webhook_id" and req.params[id_param] != str(fake.application_id):
        raise ApiError(404, 10015)
    return inter


# -- users, application, gateway ---------------------------------------------


@routes.add("GET", "/users/@me")
async def get_me(fake: FakeDiscord, req: RecordedRequest) -> Any:
    return {**fake.bot_user.to_dict(), "verified": True, "mfa_enabled": False, "flags": 0, "locale": "en-US"}


@routes.add("GET", "/users/{user_id}")
async def get_user(fake: FakeDiscord, req: RecordedRequest) -> Any:
    user = fake.state.users.get(int(req.params["user_id"]))
    if user is None:
        raise ApiError(404, 10013)
    return user.to_dict()


@routes.add("GET", "/oauth2/applications/@me")  # what Client.login() calls
@routes.add("GET", "/applications/@me")
async def get_application(fake: FakeDiscord, req: RecordedRequest) -> Any:
    return {
        "id": str(fake.application_id),
        "name": fake.bot_user.username,
        "icon": None,
        "description": "",
        "summary": "",
        "bot_public": True,
        "bot_require_code_grant": False,
        "owner": fake.owner.to_dict(),
        "team": None,
        "verify_key": "0" * 64,
        "flags": 0,
        "bot": fake.bot_user.to_dict(),
        "interactions_endpoint_url": None,  # non-null makes discord.py warn that it gets no interactions
        "redirect_uris": [],
        "tags": [],
    }


@routes.add("GET", "/gateway")
async def get_gateway(fake: FakeDiscord, req: RecordedRequest) -> Any:
    return {"url": fake.gateway_url}


@routes.add("GET", "/gateway/bot")
async def get_gateway_bot(fake: FakeDiscord, req: RecordedRequest) -> Any:
    return {"url": fake.gateway_url, "shards": fake.shard_count,
            "session_start_limit": {"total": 1000, "remaining": 999, "reset_after": 0, "max_concurrency": 1}}


# -- application commands (tree.sync / fetch_commands) ---------------------------


@routes.add("GET", "/applications/{application_id}/commands")
@routes.add("GET", "/applications/{application_id}/guilds/{guild_id}/commands")
async def get_commands(fake: FakeDiscord, req: RecordedRequest) -> Any:
    guild_id = int(req.params["guild_id"]) if "guild_id" in req.params else None
    return list(fake.commands.get(guild_id, {}).values())


@routes.add("PUT", "/applications/{application_id}/commands")
@routes.add("PUT", "/applications/{application_id}/guilds/{guild_id}/commands")
async def put_commands(fake: FakeDiscord, req: RecordedRequest) -> Any:
    """Bulk overwrite. Like Discord, a command keeps its id when re-synced under the same name."""
    guild_id = int(req.params["guild_id"]) if "guild_id" in req.params else None
    if guild_id is not None and guild_id not in fake.state.guilds:
        raise ApiError(403, 50001)
    old = fake.commands.get(guild_id, {})
    stored = {}
    for command in req.json or []:
        name = command["name"]
        stored[name] = {
            "type": 1,
            "description": "",
            "options": [],
            "default_member_permissions": None,
            "nsfw": False,
            **command,
            "id": old[name]["id"] if name in old else str(fake.ids.next()),
            "application_id": str(fake.application_id),
            "version": str(fake.ids.next()),
            **({"guild_id": str(guild_id)} if guild_id else {}),
        }
    fake.commands[guild_id] = stored
    return list(stored.values())


# -- interactions -----------------------------------------------------------------


@routes.add("POST", "/interactions/{interaction_id}/{token}/callback", auth=False)
async def interaction_callback(fake: FakeDiscord, req: RecordedRequest) -> Any:
    return await _interaction(fake, req, "interaction_id").on_callback(req)


@routes.add("POST", "/webhooks/{webhook_id}/{token}", auth=False)
async def create_followup(fake: FakeDiscord, req: RecordedRequest) -> Any:
    message = await _interaction(fake, req, "webhook_id").on_followup(req)
    return message if req.query.get("wait", "").lower() in ("1", "true") else None


@routes.add("GET", "/webhooks/{webhook_id}/{token}/messages/{message_id}", auth=False)
async def get_webhook_message(fake: FakeDiscord, req: RecordedRequest) -> Any:
    return _interaction(fake, req, "webhook_id").message(req.params["message_id"])


@routes.add("PATCH", "/webhooks/{webhook_id}/{token}/messages/{message_id}", auth=False)
async def edit_webhook_message(fake: FakeDiscord, req: RecordedRequest) -> Any:
    return await _interaction(fake, req, "webhook_id").on_edit(req)


@routes.add("DELETE", "/webhooks/{webhook_id}/{token}/messages/{message_id}", auth=False)
async def delete_webhook_message(fake: FakeDiscord, req: RecordedRequest) -> Any:
    inter = _interaction(fake, req, "webhook_id")
    message = inter.message(req.params["message_id"])
    if message is inter.original:
        inter.on_delete_original()
    await fake.delete_message(message)
    return None


# -- channels and messages -------------------------------------------------------


@routes.add("GET", "/channels/{channel_id}")
async def get_channel(fake: FakeDiscord, req: RecordedRequest) -> Any:
    return _channel(fake, req).to_dict()


#: Discord's limit on a forum's tags.
MAX_FORUM_TAGS = 20


@routes.add("PATCH", "/channels/{channel_id}")
async def edit_channel(fake: FakeDiscord, req: RecordedRequest) -> Any:
    """Modify a channel (Manage Channels): name, topic and a forum's ``available_tags``.

    Like Discord, a tag without an id is created (it gets one), a known tag keeps its id, and a
    forum cannot have more than 20 tags (400 50035).
    """
    channel = _channel(fake, req)
    _require(fake, channel, Perm.VIEW_CHANNEL | Perm.MANAGE_CHANNELS)
    payload = req.json or {}
    if "available_tags" in payload:
        if channel.type not in (ChannelType.FORUM, ChannelType.MEDIA):
            raise ApiError(400, 50035)
        tags = payload["available_tags"] or []
        if len(tags) > MAX_FORUM_TAGS:
            raise ApiError(400, 50035, "Must be 20 or fewer in length.")
        known = {t["id"] for t in channel.available_tags}
        stored = []
        for tag in tags:
            tag_id = str(tag["id"]) if tag.get("id") and str(tag["id"]) in known else str(fake.ids.next())
            stored.append({"id": tag_id, "name": tag["name"], "moderated": bool(tag.get("moderated", False)),
                           "emoji_id": tag.get("emoji_id"), "emoji_name": tag.get("emoji_name")})
        channel.available_tags = stored
    for key in ("name", "topic"):
        if key in payload:
            setattr(channel, key, payload[key])
    await fake.gateway.dispatch("CHANNEL_UPDATE", channel.to_dict())
    return channel.to_dict()


@routes.add("POST", "/channels/{channel_id}/typing")
async def trigger_typing(fake: FakeDiscord, req: RecordedRequest) -> Any:
    _channel(fake, req)
    return None


@routes.add("POST", "/channels/{channel_id}/messages")
async def create_message(fake: FakeDiscord, req: RecordedRequest) -> Any:
    """Send a message. A repeated nonce with enforce_nonce returns the first message (Discord dedupes)."""
    channel = _channel(fake, req)
    if channel.type not in ChannelType.MESSAGEABLE:
        raise ApiError(400, 50008)
    send = Perm.SEND_MESSAGES_IN_THREADS if channel.is_thread else Perm.SEND_MESSAGES
    _require(fake, channel, Perm.VIEW_CHANNEL | send | (Perm.ATTACH_FILES if req.files else 0))
    payload = req.json or {}
    enforced = payload.get("enforce_nonce") and payload.get("nonce")
    nonce_key = (channel.id, str(payload["nonce"])) if enforced else None
    if nonce_key in fake.nonces:
        message_id, created = fake.nonces[nonce_key]
        if time.monotonic() - created < NONCE_WINDOW_SECONDS and message_id in fake.state.messages:
            return fake.state.messages[message_id]
    message = fake.state.new_message(channel, fake.bot_user, payload, files=req.files)
    if nonce_key:
        fake.nonces[nonce_key] = (int(message["id"]), time.monotonic())
    await fake.dispatch_message("MESSAGE_CREATE", message)
    return message


@routes.add("GET", "/channels/{channel_id}/messages")
async def list_messages(fake: FakeDiscord, req: RecordedRequest) -> Any:
    channel = _channel(fake, req)
    _require(fake, channel, Perm.VIEW_CHANNEL | Perm.READ_MESSAGE_HISTORY)
    before, after = int(req.query.get("before", 1 << 63)), int(req.query.get("after", 0))
    found = [m for m in fake.messages_in(channel) if after < int(m["id"]) < before]
    limit = int(req.query.get("limit", 50))
    if "after" in req.query and "before" not in req.query:
        found = found[:limit]  # the oldest `limit` after it, returned newest first, like Discord
    return [_as_read(m) for m in reversed(found)][:limit]  # newest first, like Discord


def _as_read(message: dict[str, Any]) -> dict[str, Any]:
    """A message as Discord returns it when read back: the nonce is only echoed on creation."""
    return {k: v for k, v in message.items() if k != "nonce"}


@routes.add("GET", "/channels/{channel_id}/messages/{message_id}")
async def get_message(fake: FakeDiscord, req: RecordedRequest) -> Any:
    return _as_read(_message(fake, _channel(fake, req), req.params["message_id"]))


@routes.add("PATCH", "/channels/{channel_id}/messages/{message_id}")
async def edit_message(fake: FakeDiscord, req: RecordedRequest) -> Any:
    message = _message(fake, _channel(fake, req), req.params["message_id"])
    if message["author"]["id"] != str(fake.bot_user.id) and set(req.json or {}) - {"flags"}:
        raise ApiError(403, 50005, "Cannot edit a message authored by another user")
    fake.state.edit_message(message, req.json or {}, files=req.files)
    await fake.dispatch_message("MESSAGE_UPDATE", message)
    return message


@routes.add("DELETE", "/channels/{channel_id}/messages/{message_id}")
async def delete_message(fake: FakeDiscord, req: RecordedRequest) -> Any:
    channel = _channel(fake, req)
    message = _message(fake, channel, req.params["message_id"])
    if message["author"]["id"] != str(fake.bot_user.id):
        _require(fake, channel, Perm.MANAGE_MESSAGES)
    await fake.delete_message(message)
    return None


# -- threads and forum posts ------------------------------------------------------


@routes.add("POST", "/channels/{channel_id}/messages/{message_id}/threads")
async def thread_from_message(fake: FakeDiscord, req: RecordedRequest) -> Any:
    """Like Discord, the thread's id is the starter message's id."""
    channel = _channel(fake, req)
    message = _message(fake, channel, req.params["message_id"])
    _require(fake, channel, Perm.VIEW_CHANNEL | Perm.CREATE_PUBLIC_THREADS)
    if "thread" in message:
        raise ApiError(400, 160004, "A thread has already been created for this message")
    thread = fake.state.add_thread(channel, req.json["name"], owner=fake.bot_user, thread_id=int(message["id"]))
    message["thread"] = thread.to_dict()
    message["flags"] |= MessageFlag.HAS_THREAD
    await fake.gateway.dispatch("THREAD_CREATE", {**thread.to_dict(), "newly_created": True})
    return thread.to_dict()


@routes.add("POST", "/channels/{channel_id}/threads")
async def create_thread(fake: FakeDiscord, req: RecordedRequest) -> Any:
    """Forum/media channels: a post = thread + starter message (same id). Text channels: empty thread."""
    channel = _channel(fake, req)
    payload = req.json or {}
    is_forum = channel.type in (ChannelType.FORUM, ChannelType.MEDIA)
    _require(fake, channel, Perm.VIEW_CHANNEL | (Perm.SEND_MESSAGES if is_forum else Perm.CREATE_PUBLIC_THREADS))
    if is_forum:
        known_tags = {t["id"] for t in channel.available_tags}
        if any(str(t) not in known_tags for t in payload.get("applied_tags", [])):
            raise ApiError(400, 50035)
        thread = fake.state.add_thread(channel, payload["name"], owner=fake.bot_user,
                                       applied_tags=[int(t) for t in payload.get("applied_tags", [])])
        message = fake.state.new_message(thread, fake.bot_user, payload.get("message") or {},
                                         files=req.files, id=thread.id)
        await fake.gateway.dispatch("THREAD_CREATE", {**thread.to_dict(), "newly_created": True})
        await fake.dispatch_message("MESSAGE_CREATE", message)
        return {**thread.to_dict(), "message": message}
    thread = fake.state.add_thread(channel, payload["name"], owner=fake.bot_user,
                                   type=payload.get("type", ChannelType.PRIVATE_THREAD))
    await fake.gateway.dispatch("THREAD_CREATE", {**thread.to_dict(), "newly_created": True})
    return thread.to_dict()


# -- DMs and guilds ----------------------------------------------------------------


@routes.add("POST", "/users/@me/channels")
async def create_dm(fake: FakeDiscord, req: RecordedRequest) -> Any:
    recipient = int((req.json or {}).get("recipient_id", 0))
    if recipient not in fake.state.users:
        raise ApiError(400, 50033)
    return fake.state.dm_channel(recipient).to_dict()


def _guild(fake: FakeDiscord, req: RecordedRequest):
    guild = fake.state.guilds.get(int(req.params["guild_id"]))
    if guild is None:
        raise ApiError(404, 10004, "Unknown Guild")
    return guild


@routes.add("GET", "/guilds/{guild_id}")
async def get_guild(fake: FakeDiscord, req: RecordedRequest) -> Any:
    guild = _guild(fake, req)
    data = fake.state.guild_dict(guild)
    if req.query.get("with_counts") in ("1", "true"):
        data.update(approximate_member_count=len(guild.members), approximate_presence_count=0)
    return data


@routes.add("GET", "/guilds/{guild_id}/channels")
async def get_guild_channels(fake: FakeDiscord, req: RecordedRequest) -> Any:
    guild = _guild(fake, req)
    return [fake.state.channels[c].to_dict() for c in guild.channel_ids]


@routes.add("GET", "/guilds/{guild_id}/threads/active")
async def get_active_threads(fake: FakeDiscord, req: RecordedRequest) -> Any:
    """The guild's unarchived threads (forum posts included) the bot can see."""
    guild = _guild(fake, req)
    threads = [t for t in fake.state.threads_of(guild) if not t.archived
               and fake.state.permissions_in(t, fake.bot_user.id) & Perm.VIEW_CHANNEL]
    return {"threads": [t.to_dict() for t in threads], "members": []}


@routes.add("GET", "/channels/{channel_id}/threads/archived/public")
async def get_archived_public_threads(fake: FakeDiscord, req: RecordedRequest) -> Any:
    """A channel's (or forum's) archived public threads, newest archived first (here: newest first)."""
    channel = _channel(fake, req)
    _require(fake, channel, Perm.VIEW_CHANNEL | Perm.READ_MESSAGE_HISTORY)
    threads = [t for t in fake.state.channels.values()
               if t.is_thread and t.parent_id == channel.id and t.archived and t.type != ChannelType.PRIVATE_THREAD]
    threads.sort(key=lambda t: t.id, reverse=True)
    return {"threads": [t.to_dict() for t in threads], "members": [], "has_more": False}  # one page is enough here


@routes.add("GET", "/guilds/{guild_id}/roles")
async def get_guild_roles(fake: FakeDiscord, req: RecordedRequest) -> Any:
    return [r.to_dict() for r in _guild(fake, req).roles.values()]


@routes.add("GET", "/guilds/{guild_id}/members/{user_id}")
async def get_guild_member(fake: FakeDiscord, req: RecordedRequest) -> Any:
    guild = _guild(fake, req)
    if int(req.params["user_id"]) not in guild.members:
        raise ApiError(404, 10007, "Unknown Member")
    return guild.members[int(req.params["user_id"])].to_dict()
