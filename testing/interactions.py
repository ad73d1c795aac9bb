"""Injecting interactions (slash commands, autocomplete, components) and reading back the bot's answers.

Payloads follow Discord's INTERACTION_CREATE shape closely because
discord.py trusts them: a missing ``member.permissions`` silently fails
permission checks, a missing ``attachment_size_limit`` raises a KeyError, and
the command id/name must match what the bot synced.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from .faults import ApiError
from .state import Channel, Guild, MessageFlag, User, _id

if TYPE_CHECKING:
    from .rest import RecordedRequest
    from .server import FakeDiscord


class InteractionType:
    PING = 1
    APPLICATION_COMMAND = 2
    MESSAGE_COMPONENT = 3
    AUTOCOMPLETE = 4
    MODAL_SUBMIT = 5


class ResponseType:
    CHANNEL_MESSAGE = 4
    DEFERRED_CHANNEL_MESSAGE = 5
    DEFERRED_UPDATE_MESSAGE = 6
    UPDATE_MESSAGE = 7
    AUTOCOMPLETE_RESULT = 8
    MODAL = 9


#: Which callback types Discord accepts for each interaction type.
ALLOWED_RESPONSES = {
    InteractionType.APPLICATION_COMMAND: {4, 5, 9},
    InteractionType.MESSAGE_COMPONENT: {4, 5, 6, 7, 9},
    InteractionType.AUTOCOMPLETE: {8},
    InteractionType.MODAL_SUBMIT: {4, 5, 6, 7},
}

ATTACHMENT_SIZE_LIMIT = 10 * 1024 * 1024
SUBCOMMAND, SUBCOMMAND_GROUP = 1, 2
STRING, INTEGER, BOOLEAN, USER, CHANNEL, ROLE, MENTIONABLE, NUMBER = 3, 4, 5, 6, 7, 8, 9, 10


@dataclass
class Interaction:
    """Handle for one injected interaction; await what the bot answered.

    ``callback`` is the JSON body of the bot's ``/callback`` POST, ``original``
    the message it created or updated (``@original``), ``followups`` the
    messages sent through the interaction webhook and ``edits`` the payloads
    PATCHed onto ``@original``.
    """

    fake: FakeDiscord = field(repr=False)
    id: int
    token: str
    type: int
    payload: dict[str, Any] = field(repr=False)
    channel: Channel = field(repr=False)
    user: User
    callback: dict[str, Any] | None = None
    original: dict[str, Any] | None = None
    followups: list[dict[str, Any]] = field(default_factory=list)
    edits: list[dict[str, Any]] = field(default_factory=list)
    #: What replaced a deferral's "thinking…" (first follow-up or @original edit), as a type-4 callback.
    answers: list[dict[str, Any]] = field(default_factory=list)
    _loading_pending: bool = field(default=False, repr=False)  # a thinking defer's first follow-up replaces it
    _answered_by_followup: bool = field(default=False, repr=False)  # "thinking…" was deleted unanswered

    @property
    def label(self) -> str:
        data = self.payload.get("data", {})
        return data.get("name") or data.get("custom_id") or str(self.id)

    # -- awaiting the bot ---------------------------------------------------------

    async def response(self, timeout: float = 2.0) -> dict[str, Any]:
        """The callback body, e.g. ``{"type": 4, "data": {"content": ...}}``."""
        return await self.fake.wait_for(lambda: self.callback, timeout=timeout,
                                        what=f"the response to interaction {self.label!r}")

    async def answer(self, timeout: float = 5.0) -> dict[str, Any]:
        """What the member sees as the answer, shaped like a type-4 callback.

        The callback itself when the bot answered at once; after a deferral (type 5), the body of
        the follow-up or ``@original`` edit that replaced "thinking…", with the resulting message's
        ``flags`` (a follow-up keeps the deferral's ephemeral flag, as on Discord).
        """
        callback = await self.response(timeout)
        if callback.get("type") != ResponseType.DEFERRED_CHANNEL_MESSAGE:
            return callback
        return await self.fake.wait_for(lambda: self.answers and self.answers[0], timeout=timeout,
                                        what=f"the answer after deferring interaction {self.label!r}")

    async def followup(self, index: int = 0, timeout: float = 2.0) -> dict[str, Any]:
        """The ``index``-th follow-up message object."""
        return await self.fake.wait_for(lambda: len(self.followups) > index and self.followups[index],
                                        timeout=timeout, what=f"follow-up #{index} of interaction {self.label!r}")

    async def edit(self, index: int = 0, timeout: float = 2.0) -> dict[str, Any]:
        """The ``index``-th payload PATCHed onto ``@original``."""
        return await self.fake.wait_for(lambda: len(self.edits) > index and self.edits[index],
                                        timeout=timeout, what=f"edit #{index} of interaction {self.label!r}")

    # -- REST side (called from rest.py) --------------------------------------------

    def message(self, message_id: str) -> dict[str, Any]:
        """Resolve ``@original`` or a follow-up id belonging to this interaction."""
        if message_id == "@original":
            if self.original is None:
                raise ApiError(404, 10008)
            return self.original
        for message in [self.original, *self.followups]:
            if message is not None and message["id"] == message_id:
                return message
        raise ApiError(404, 10008)

    async def on_callback(self, req: RecordedRequest) -> dict[str, Any]:
        if self.callback is not None:
            raise ApiError(400, 40060)
        body = req.json or {}
        rtype, data = body.get("type"), body.get("data") or {}
        if rtype not in ALLOWED_RESPONSES[self.type]:
            raise ApiError(400, 50035, f"Invalid Form Body (callback type {rtype} for interaction type {self.type})")
        fake, state = self.fake, self.fake.state
        result: dict[str, Any] = {"interaction": {"id": str(self.id), "type": self.type}}
        resource: dict[str, Any] = {"type": rtype}
        if rtype in (ResponseType.CHANNEL_MESSAGE, ResponseType.DEFERRED_CHANNEL_MESSAGE):
            flags = int(data.get("flags") or 0)
            payload = data if rtype == ResponseType.CHANNEL_MESSAGE else {"flags": flags | MessageFlag.LOADING}
            self._loading_pending = rtype == ResponseType.DEFERRED_CHANNEL_MESSAGE
            self.original = state.new_message(self.channel, fake.bot_user, payload, files=req.files,
                                              type=20 if self.type == InteractionType.APPLICATION_COMMAND else 0,
                                              **self._message_extras())
            await fake.dispatch_message("MESSAGE_CREATE", self.original)
            resource["message"] = self.original
            result["interaction"].update(response_message_id=self.original["id"],
                                         response_message_loading=self._loading_pending,
                                         response_message_ephemeral=bool(flags & MessageFlag.EPHEMERAL))
        elif rtype in (ResponseType.DEFERRED_UPDATE_MESSAGE, ResponseType.UPDATE_MESSAGE):
            message = state.messages.get(int(self.payload.get("message", {}).get("id", 0)))
            if message is None:
                raise ApiError(404, 10008)
            if rtype == ResponseType.UPDATE_MESSAGE:
                state.edit_message(message, data, files=req.files)
                await fake.dispatch_message("MESSAGE_UPDATE", message)
                resource["message"] = message
            self.original = message  # @original now means the component's message
            result["interaction"]["response_message_id"] = message["id"]
        self.callback = body
        result["resource"] = resource
        return result

    async def on_followup(self, req: RecordedRequest) -> dict[str, Any]:
        if self.callback is None:
            raise ApiError(404, 10015)  # Discord: the webhook exists only after the initial response
        payload = req.json or {}
        if self._loading_pending and self.original is not None:
            # Discord: the first follow-up after a thinking defer *becomes* the deferred message,
            # keeping the defer's ephemeral flag.
            self._loading_pending = False
            message = self.original
            asked = int(payload.get("flags") or 0)
            flags = (message["flags"] & MessageFlag.EPHEMERAL) | (asked & ~MessageFlag.EPHEMERAL)
            self.fake.state.edit_message(message, {**payload, "flags": flags}, files=req.files)
            message["edited_timestamp"] = None
            await self.fake.dispatch_message("MESSAGE_UPDATE", message)
            self.answers.append({"type": ResponseType.CHANNEL_MESSAGE, "data": {**payload, "flags": message["flags"]}})
        else:
            message = self.fake.state.new_message(self.channel, self.fake.bot_user, payload, files=req.files,
                                                  type=20 if self.type == InteractionType.APPLICATION_COMMAND else 0,
                                                  **self._message_extras())
            await self.fake.dispatch_message("MESSAGE_CREATE", message)
            if self._answered_by_followup:
                self._answered_by_followup = False
                self.answers.append({"type": ResponseType.CHANNEL_MESSAGE,
                                     "data": {**payload, "flags": message["flags"]}})
        self.followups.append(message)
        return message

    def on_delete_original(self) -> None:
        """``@original`` was deleted. If it was still "thinking…", the next follow-up is a new message
        (it may then be ephemeral) and is what the member sees as the answer."""
        self.original = None
        if self._loading_pending:
            self._loading_pending = False
            self._answered_by_followup = True

    async def on_edit(self, req: RecordedRequest) -> dict[str, Any]:
        message = self.message(req.params["message_id"])
        payload = req.json or {}
        answering = req.params["message_id"] == "@original" and bool(message["flags"] & MessageFlag.LOADING)
        if answering:
            self._loading_pending = False
            payload = {**payload, "flags": message["flags"] & ~MessageFlag.LOADING}
        self.fake.state.edit_message(message, payload, files=req.files)
        if answering:
            self.answers.append({"type": ResponseType.CHANNEL_MESSAGE, "data": {**payload, "flags": message["flags"]}})
        if message is self.original:
            self.edits.append(req.json or {})
        await self.fake.dispatch_message("MESSAGE_UPDATE", message)
        return message

    def _message_extras(self) -> dict[str, Any]:
        user = self.user.to_dict()
        metadata = {"id": str(self.id), "type": self.type, "user": user,
                    "authorizing_integration_owners": self.payload["authorizing_integration_owners"]}
        if self.type == InteractionType.MESSAGE_COMPONENT:
            metadata["interacted_message_id"] = self.payload["message"]["id"]
        return {
            "webhook_id": str(self.fake.application_id),
            "application_id": str(self.fake.application_id),
            "interaction_metadata": metadata,
            "interaction": {"id": str(self.id), "type": self.type, "name": self.label, "user": user},
        }


# -- building INTERACTION_CREATE payloads ------------------------------------------


def envelope(fake: FakeDiscord, itype: int, data: dict[str, Any], guild: Guild | None, channel: Channel,
             user: User, *, message: dict[str, Any] | None = None, locale: str = "en-US") -> dict[str, Any]:
    """Fields every interaction carries, in Discord's shape."""
    state = fake.state
    interaction_id = fake.ids.next()
    payload: dict[str, Any] = {
        "id": str(interaction_id),
        "application_id": str(fake.application_id),
        "type": itype,
        "data": data,
        "channel_id": str(channel.id),
        "channel": {**channel.to_dict(), "permissions": str(state.permissions_in(channel, user.id))},
        "token": f"fake-interaction-token-{interaction_id}",
        "version": 1,
        "locale": locale,
        "app_permissions": str(state.permissions_in(channel, fake.bot_user.id)),
        "entitlements": [],
        "entitlement_sku_ids": [],
        "attachment_size_limit": ATTACHMENT_SIZE_LIMIT,
    }
    if guild is not None:
        if user.id not in guild.members:
            raise KeyError(f"user {user.username!r} is not a member of guild {guild.name!r}; add_member() first")
        payload.update(
            guild_id=str(guild.id),
            guild={"id": str(guild.id), "locale": guild.locale, "features": []},
            guild_locale=guild.locale,
            member=state.member_dict(guild, user.id, channel=channel),
            authorizing_integration_owners={"0": str(guild.id)},
            context=0,  # GUILD
        )
    else:
        payload.update(user=user.to_dict(), authorizing_integration_owners={"0": "0"}, context=1)  # BOT_DM
    if message is not None:
        payload["message"] = message
    return payload


def find_command(fake: FakeDiscord, name: str, guild: Guild | None) -> dict[str, Any]:
    """The synced command called ``name``: guild commands shadow global ones, as on Discord."""
    for scope in ([guild.id] if guild else []) + [None]:
        command = fake.commands.get(scope, {}).get(name)
        if command is not None:
            return command
    synced = sorted({n for cmds in fake.commands.values() for n in cmds})
    raise LookupError(f"no synced command {name!r} (synced: {synced}); did the bot call tree.sync()?")


def command_options(fake: FakeDiscord, command: dict[str, Any], subcommand: str | None, values: dict[str, Any],
                    guild: Guild | None, *, focused: str | None = None) -> tuple[list[dict], dict[str, Any]]:
    """Turn ``{"query": "x"}`` into Discord's typed, nested option list (+ ``resolved`` data).

    Types come from the synced schema so tests only pass plain values.
    ``subcommand`` is "sub" or "group sub".
    """
    schema, path = command.get("options") or [], []
    for name in (subcommand or "").split():
        option = _schema_option(schema, name, command["name"])
        if option["type"] not in (SUBCOMMAND, SUBCOMMAND_GROUP):
            raise ValueError(f"{name!r} is not a subcommand of /{command['name']}")
        path.append(option)
        schema = option.get("options") or []
    resolved: dict[str, dict] = {}
    leaf = [_typed_option(fake, _schema_option(schema, name, command["name"]), value, guild, resolved,
                          focused=name == focused) for name, value in values.items()]
    for option in reversed(path):
        leaf = [{"name": option["name"], "type": option["type"], "options": leaf}]
    return leaf, resolved


def _schema_option(schema: list[dict], name: str, command: str) -> dict[str, Any]:
    for option in schema:
        if option["name"] == name:
            return option
    raise KeyError(f"/{command} has no option {name!r} (has {[o['name'] for o in schema]})")


def _typed_option(fake: FakeDiscord, schema: dict[str, Any], value: Any, guild: Guild | None,
                  resolved: dict[str, dict], *, focused: bool) -> dict[str, Any]:
    otype = schema["type"]
    option: dict[str, Any] = {"name": schema["name"], "type": otype}
    if focused:  # autocomplete: the partial text the user typed, always as typed
        option.update(value=value, focused=True)
        return option
    state = fake.state
    if otype in (USER, CHANNEL, ROLE, MENTIONABLE):
        object_id = _id(value)
        option["value"] = str(object_id)
        if object_id in state.users:
            resolved.setdefault("users", {})[str(object_id)] = state.users[object_id].to_dict()
            if guild is not None and object_id in guild.members:
                member = state.member_dict(guild, object_id)
                member.pop("user")
                resolved.setdefault("members", {})[str(object_id)] = member
        elif object_id in state.channels:
            channel = state.channels[object_id]
            resolved.setdefault("channels", {})[str(object_id)] = {
                **channel.to_dict(), "permissions": str(state.permissions_in(channel, fake.bot_user.id))}
        elif guild is not None and object_id in guild.roles:
            resolved.setdefault("roles", {})[str(object_id)] = guild.roles[object_id].to_dict()
    elif otype == INTEGER:
        option["value"] = int(value)
    elif otype == NUMBER:
        option["value"] = float(value)
    elif otype == BOOLEAN:
        option["value"] = bool(value)
    else:
        option["value"] = value
    return option
