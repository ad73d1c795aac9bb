"""FakeDiscord: the aiohttp server tying state, REST routes, faults and the gateway together."""

from __future__ import annotations

import asyncio
import time
import datetime as dt
import logging
from contextlib import contextmanager
from typing import Any, Callable, Iterator

from aiohttp import web

from .faults import ApiError, Fault, RateLimiter, Reply
from .gateway import Gateway
from .interactions import Interaction, InteractionType, command_options, envelope, find_command
from .rest import Handler, RecordedRequest, read_request, routes
from .spec import SpecViolation, check_body, form_errors
from .state import DEFAULT_START, Channel, Guild, Member, MessageFlag, Role, Snowflakes, State, User, _id

log = logging.getLogger(__name__)


class Changes:
    """Lets tests await "something happened" instead of sleeping.

    Every recorded request and gateway payload calls ``notify()``; waiters
    re-check their predicate each time.
    """

    def __init__(self) -> None:
        self._event = asyncio.Event()

    @property
    def event(self) -> asyncio.Event:
        """Set at the next change; grab it *before* checking a condition so no change is missed."""
        return self._event

    def notify(self) -> None:
        self._event.set()
        self._event = asyncio.Event()


class FakeDiscord:
    """A small Discord for the real discord.py client to talk to over HTTP and a websocket.

    Build the world (``add_guild`` & co.) before starting the bot; inject
    interactions and faults while it runs; read ``requests`` afterwards.
    """

    def __init__(self, *, token: str | None = "test-token", bot_name: str = "Paperbot",
                 start_time: dt.datetime = DEFAULT_START, heartbeat_interval_ms: int = 41_250,
                 check_spec: bool = True, shard_count: int = 1) -> None:
        #: The token the bot must present (``None`` accepts anything).
        self.token = token
        #: The shard count GET /gateway/bot recommends (what an AutoShardedBot without one uses).
        self.shard_count = shard_count
        self.ids = Snowflakes(start_time)
        self.state = State(self.ids)
        self.bot_user = self.state.bot_user = self.state.add_user(bot_name, bot=True)
        self.application_id = self.bot_user.id  # true for every modern Discord app
        self.owner = self.state.add_user("app-owner")
        self.router = routes.copy()
        self.gateway = Gateway(self, heartbeat_interval_ms=heartbeat_interval_ms)
        self.changes = Changes()
        #: Every REST request, in arrival order (including 404s and injected failures).
        self.requests: list[RecordedRequest] = []
        self.faults: list[Fault] = []
        self.rate_limiter: RateLimiter | None = None
        #: Synced application commands: {guild_id or None: {name: command}}.
        self.commands: dict[int | None, dict[str, dict[str, Any]]] = {}
        self.interactions: dict[int, Interaction] = {}
        self.interactions_by_token: dict[str, Interaction] = {}
        self.nonces: dict[tuple[int, str], tuple[int, float]] = {}
        #: Exceptions raised by the fake's own handlers (bugs in the fake); see ``check()``.
        self.errors: list[BaseException] = []
        #: Request bodies Discord's OpenAPI schema rejects (answered 400 50035); see ``check()``.
        self.check_spec = check_spec
        self.spec_violations: list[SpecViolation] = []
        self._watched: list[asyncio.Task[Any]] = []
        self._runner: web.AppRunner | None = None
        self.port: int | None = None

    # -- lifecycle ---------------------------------------------------------------

    async def start(self) -> FakeDiscord:
        app = web.Application()
        app.router.add_route("*", r"/api/v{version:\d+}/{tail:.*}", self._handle_rest)
        app.router.add_get("/gateway", self.gateway.handle)
        app.router.add_get("/gateway/resume", self.gateway.handle)
        app.router.add_get("/attachments/{attachment_id}/{filename}", self._handle_attachment)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.port = self._runner.addresses[0][1]
        self.state.cdn_base = self.api_base_url
        return self

    async def stop(self) -> None:
        if self._runner is not None:
            await self.gateway.close_all()
            await self._runner.cleanup()
            self._runner = None

    async def __aenter__(self) -> FakeDiscord:
        return await self.start()

    async def __aexit__(self, *exc: Any) -> None:
        await self.stop()

    @property
    def api_base_url(self) -> str:
        """What goes in config ``discord.api_base_url`` (discord.py appends /api/v10)."""
        return f"http://127.0.0.1:{self.port}"

    @property
    def api_url(self) -> str:
        return f"{self.api_base_url}/api/v10"

    @property
    def gateway_url(self) -> str:
        """What goes in config ``discord.gateway_url``."""
        return f"ws://127.0.0.1:{self.port}/gateway"

    @property
    def resume_gateway_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/gateway/resume"

    # -- building the world (thin shortcuts to ``state``) ------------------------------

    def add_guild(self, name: str = "Test Guild", *, channels: tuple[str, ...] = ("general",),
                  shard: tuple[int, int] | None = None) -> Guild:
        """A server; ``shard=(shard_id, shard_count)`` gives it an id on that shard (Discord's sharding key)."""
        if shard is None:
            return self.state.add_guild(name, channels=channels)
        owner = self.state.add_user(f"{name} owner")
        shard_id, shard_count = shard
        self.ids.skip_until(lambda snowflake: (snowflake >> 22) % shard_count == shard_id)
        return self.state.add_guild(name, owner=owner, channels=channels)

    def add_user(self, username: str, **kwargs: Any) -> User:
        return self.state.add_user(username, **kwargs)

    def add_member(self, guild: Guild | int, user: User | int, *, roles: list[Role | int] = (),
                   nick: str | None = None) -> Member:
        return self.state.add_member(guild, user, roles=roles, nick=nick)

    def add_role(self, guild: Guild | int, name: str, permissions: int = 0) -> Role:
        return self.state.add_role(guild, name, permissions)

    def add_text_channel(self, guild: Guild | int, name: str, **kwargs: Any) -> Channel:
        return self.state.add_channel(guild, name, **kwargs)

    def add_forum_channel(self, guild: Guild | int, name: str, *, tags: tuple[str, ...] = ()) -> Channel:
        return self.state.add_forum_channel(guild, name, tags=tags)

    def set_channel_permissions(self, channel: Channel | int, target: Any, *, allow: int = 0, deny: int = 0) -> None:
        """A permission overwrite, visible to discord.py too (it is in GUILD_CREATE/GET channel)."""
        self.state.set_overwrite(channel, target, allow=allow, deny=deny)

    async def create_text_channel(self, guild: Guild | int, name: str, **kwargs: Any) -> Channel:
        """A channel created while the bot runs: the bot hears CHANNEL_CREATE."""
        channel = self.state.add_channel(guild, name, **kwargs)
        await self.gateway.dispatch("CHANNEL_CREATE", channel.to_dict())
        return channel

    async def change_channel_permissions(self, channel: Channel | int, target: Any, *, allow: int = 0,
                                         deny: int = 0) -> None:
        """An overwrite changed while the bot runs: the bot hears CHANNEL_UPDATE."""
        self.state.set_overwrite(channel, target, allow=allow, deny=deny)
        await self.gateway.dispatch("CHANNEL_UPDATE", self.state.channel(channel).to_dict())

    async def delete_channel(self, channel: Channel | int) -> None:
        """The channel disappears: REST answers 404 10003 from now on and the bot hears CHANNEL_DELETE."""
        removed = self.state.remove_channel(channel)
        await self.gateway.dispatch("THREAD_DELETE" if removed.is_thread else "CHANNEL_DELETE", removed.to_dict())

    def messages_in(self, channel: Channel | int) -> list[dict[str, Any]]:
        """Visible (non-ephemeral) messages in a channel, oldest first."""
        cid = str(_id(channel))
        return [m for m in self.state.messages.values()
                if m["channel_id"] == cid and not m["flags"] & MessageFlag.EPHEMERAL]

    # -- routes and faults ------------------------------------------------------

    def add_route(self, method: str, template: str, handler: Handler, *, auth: bool = True) -> None:
        """Add or override a REST route for this fake only."""
        self.router.add(method, template, handler, auth=auth, first=True)

    def fail_next(self, method: str | None = None, path: str | None = None, *, status: int = 500,
                  times: int | None = 1, **kwargs: Any) -> Fault:
        """Make the next ``times`` matching requests fail (see :class:`Fault` for the knobs)."""
        fault = Fault(method=method, path=path, status=status, times=times, **kwargs)
        self.faults.append(fault)
        return fault

    def fail_always(self, method: str | None = None, path: str | None = None, *, status: int = 500,
                    **kwargs: Any) -> Fault:
        return self.fail_next(method, path, status=status, times=None, **kwargs)

    def answer_lost(self, method: str | None = None, path: str | None = None, *, status: int = 503,
                    times: int | None = 1, **kwargs: Any) -> Fault:
        """The next ``times`` matching requests are carried out, but answered ``status`` (lost answer)."""
        return self.fail_next(method, path, status=status, times=times, after_handling=True, **kwargs)

    def forget_nonces(self, *, older_than: float = 0.0) -> None:
        """Discord's nonce window has passed for nonces seen more than `older_than` seconds ago:
        repeating one creates a second message again."""
        now = time.monotonic()
        self.nonces = {key: seen for key, seen in self.nonces.items() if now - seen[1] < older_than}

    def set_channel_forbidden(self, channel: Channel | int, *, code: int = 50013) -> Fault:
        """Every request touching this channel gets 403 (50013 Missing Permissions)."""
        return self.fail_always(channel_id=_id(channel), status=403, code=code)

    def set_dm_closed(self, user: User | int) -> Fault:
        """The user blocks DMs: opening the DM works, sending gets 403 50007 (as on Discord)."""
        channel = self.state.dm_channel(user)
        return self.fail_always("POST", "/channels/{channel_id}/messages", channel_id=channel.id,
                                status=403, code=50007)

    def add_latency(self, seconds: float, method: str | None = None, path: str | None = None,
                    *, times: int | None = None) -> Fault:
        return self.fail_next(method, path, status=None, delay=seconds, times=times)

    def enable_rate_limits(self, **kwargs: Any) -> RateLimiter:
        """Turn on Discord-like buckets (defaults: 5 per 5 s per route+channel, 50/s global)."""
        self.rate_limiter = RateLimiter(**kwargs)
        return self.rate_limiter

    def clear_faults(self) -> None:
        self.faults.clear()
        self.rate_limiter = None

    # -- reading back ------------------------------------------------------------

    def requests_to(self, method: str | None = None, path: str | None = None) -> list[RecordedRequest]:
        """Recorded requests by method and concrete path or route template."""
        return [r for r in self.requests if r.matches(method, path)]

    def last_request(self, method: str | None = None, path: str | None = None) -> RecordedRequest:
        found = self.requests_to(method, path)
        if not found:
            seen = [(r.method, r.path) for r in self.requests]
            raise LookupError(f"no {method or ''} {path or ''} request recorded; got {seen}")
        return found[-1]

    async def wait_for_request(self, method: str | None = None, path: str | None = None, *, count: int = 1,
                               timeout: float = 2.0) -> RecordedRequest:
        """Wait until ``count`` matching requests have been *answered*; returns the last of them."""
        def answered() -> RecordedRequest | None:
            done = [r for r in self.requests_to(method, path) if r.status is not None]
            return done[count - 1] if len(done) >= count else None
        return await self.wait_for(answered, timeout=timeout, what=f"{method or ''} {path or ''} request #{count}")

    def watch(self, task: asyncio.Task[Any]) -> None:
        """Waits fail fast with this task's exception if it dies (used for the bot's task)."""
        self._watched.append(task)

    async def wait_for(self, predicate: Callable[[], Any], *, timeout: float = 2.0, what: str = "condition") -> Any:
        """Return the first truthy ``predicate()``, re-checked whenever the fake sees traffic."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            self._raise_if_watched_task_died()
            changed = self.changes.event
            result = predicate()
            if result:
                return result
            remaining = deadline - loop.time()
            if remaining <= 0:
                raise TimeoutError(f"fake Discord: timed out after {timeout}s waiting for {what}")
            try:
                await asyncio.wait_for(changed.wait(), min(remaining, 0.05))
            except asyncio.TimeoutError:
                pass

    def _raise_if_watched_task_died(self) -> None:
        for task in self._watched:
            if task.done() and not task.cancelled() and task.exception() is not None:
                raise RuntimeError(f"the bot's task {task.get_name()!r} died") from task.exception()

    def check(self) -> None:
        """Raise the first exception the fake's handlers hit (a bug in the fake, not the bot), or the
        request bodies Discord's schema rejected (a bug in the bot)."""
        if self.errors:
            raise RuntimeError(f"fake Discord had {len(self.errors)} internal error(s)") from self.errors[0]
        if self.spec_violations:
            shown = "\n  ".join(str(v) for v in self.spec_violations[:10])
            raise AssertionError(f"{len(self.spec_violations)} request(s) that Discord's API schema rejects:\n  {shown}")

    # -- gateway shortcuts ----------------------------------------------------------

    async def dispatch(self, event: str, data: dict[str, Any]) -> None:
        await self.gateway.dispatch(event, data)

    async def dispatch_message(self, event: str, message: dict[str, Any]) -> None:
        """MESSAGE_CREATE/UPDATE as Discord sends them: guild messages carry ``member``; ephemeral ones aren't sent."""
        if message["flags"] & MessageFlag.EPHEMERAL:
            return
        data = dict(message)
        guild = self.state.guilds.get(int(message.get("guild_id", 0)))
        author_id = int(message["author"]["id"])
        if guild is not None and author_id in guild.members:
            data["member"] = {k: v for k, v in guild.members[author_id].to_dict().items() if k != "user"}
        await self.gateway.dispatch(event, data)

    async def delete_message(self, message: dict[str, Any]) -> None:
        self.state.messages.pop(int(message["id"]), None)
        data = {"id": message["id"], "channel_id": message["channel_id"]}
        if "guild_id" in message:
            data["guild_id"] = message["guild_id"]
        if not message["flags"] & MessageFlag.EPHEMERAL:
            await self.gateway.dispatch("MESSAGE_DELETE", data)

    async def send_user_message(self, channel: Channel | int, user: User | int, content: str = "",
                                **payload: Any) -> dict[str, Any]:
        """A human posts a message (MESSAGE_CREATE reaches the bot)."""
        message = self.state.new_message(self.state.channel(channel), self.state.user(user),
                                         {"content": content, **payload})
        await self.dispatch_message("MESSAGE_CREATE", message)
        return message

    # -- interactions ---------------------------------------------------------------

    async def send_slash_command(self, guild: Guild | int | None, channel: Channel | int | None, user: User | int,
                                 name: str, *, subcommand: str | None = None,
                                 options: dict[str, Any] | list | None = None, locale: str = "en-US") -> Interaction:
        """Invoke ``/name [subcommand] options...`` as ``user``.

        ``options`` is ``{"query": "x"}`` (types come from the synced schema)
        or a raw Discord option list. ``channel=None`` means the user's DM.
        """
        guild, channel, user = self._where(guild, channel, user)
        command = find_command(self, name, guild)
        data = self._command_data(command, subcommand, options, guild)
        return await self._inject(InteractionType.APPLICATION_COMMAND, data, guild, channel, user, locale=locale)

    async def send_autocomplete(self, guild: Guild | int | None, channel: Channel | int | None, user: User | int,
                                name: str, *, focused: str, value: str = "", subcommand: str | None = None,
                                options: dict[str, Any] | None = None, locale: str = "en-US") -> Interaction:
        """The user is typing ``value`` into option ``focused``; ``options`` are the already-filled ones."""
        guild, channel, user = self._where(guild, channel, user)
        command = find_command(self, name, guild)
        values = {**(options or {}), focused: value}
        opts, resolved = command_options(self, command, subcommand, values, guild, focused=focused)
        data = self._command_data(command, None, opts, guild, resolved)
        return await self._inject(InteractionType.AUTOCOMPLETE, data, guild, channel, user, locale=locale)

    async def click_button(self, message: dict[str, Any] | int, custom_id: str, user: User | int,
                           **kwargs: Any) -> Interaction:
        return await self.send_component(message, custom_id, user, component_type=2, **kwargs)

    async def send_component(self, message: dict[str, Any] | int, custom_id: str, user: User | int, *,
                             component_type: int = 2, values: list[str] | None = None,
                             locale: str = "en-US") -> Interaction:
        """A component interaction on ``message`` (2 button, 3 string select with ``values``...)."""
        message = self.state.messages[_id(message)]
        channel = self.state.channel(int(message["channel_id"]))
        data: dict[str, Any] = {"custom_id": custom_id, "component_type": component_type}
        if values is not None:
            data["values"] = values
        return await self._inject(InteractionType.MESSAGE_COMPONENT, data, self.state.guild_of(channel), channel,
                                  self.state.user(user), message=dict(message), locale=locale)

    def _where(self, guild: Any, channel: Any, user: Any) -> tuple[Guild | None, Channel, User]:
        user = self.state.user(user)
        channel = self.state.channel(channel) if channel is not None else self.state.dm_channel(user)
        channel_guild = self.state.guild_of(channel)
        if guild is not None and (channel_guild is None or channel_guild.id != _id(guild)):
            raise ValueError(f"channel {channel.name or channel.id} is not in guild {_id(guild)}")
        return channel_guild, channel, user

    def _command_data(self, command: dict[str, Any], subcommand: str | None, options: Any, guild: Guild | None,
                      resolved: dict[str, Any] | None = None) -> dict[str, Any]:
        if isinstance(options, list):
            opts = options
        else:
            opts, resolved = command_options(self, command, subcommand, options or {}, guild)
        data: dict[str, Any] = {"id": command["id"], "name": command["name"], "type": command.get("type", 1)}
        if opts:
            data["options"] = opts
        if resolved:
            data["resolved"] = resolved
        if command.get("guild_id"):
            data["guild_id"] = command["guild_id"]
        return data

    async def _inject(self, itype: int, data: dict[str, Any], guild: Guild | None, channel: Channel, user: User,
                      *, message: dict[str, Any] | None = None, locale: str) -> Interaction:
        if self.gateway.current is None:
            raise RuntimeError("no gateway session to deliver the interaction to; is the bot running?")
        payload = envelope(self, itype, data, guild, channel, user, message=message, locale=locale)
        inter = Interaction(fake=self, id=int(payload["id"]), token=payload["token"], type=itype,
                            payload=payload, channel=channel, user=user)
        self.interactions[inter.id] = inter
        self.interactions_by_token[inter.token] = inter
        await self.gateway.dispatch("INTERACTION_CREATE", payload)
        return inter

    # -- HTTP handlers -----------------------------------------------------------------

    async def _handle_rest(self, request: web.Request) -> web.Response:
        path = request.path[len(f"/api/v{request.match_info['version']}"):] or "/"
        req = await read_request(request, path)
        route, req.params, path_known = self.router.match(req.method, path)
        req.route = route.template if route else None
        self.requests.append(req)
        self.changes.notify()
        reply = await self._reply(req, route, path_known)
        req.status, req.response = reply.status, reply.body
        self.changes.notify()
        return reply.to_web()

    async def _reply(self, req: RecordedRequest, route: Any, path_known: bool) -> Reply:
        late_fault: Fault | None = None
        for fault in self.faults:
            if fault.matches(req):
                if fault.after_handling:
                    late_fault = late_fault or fault
                    continue
                injected = await fault.apply(req)
                if injected is not None:
                    return injected
        reply = await self._route_reply(req, route, path_known)
        if late_fault is not None and reply.status < 300:
            injected = await late_fault.apply(req)
            if injected is not None:
                return injected
        return reply

    async def _route_reply(self, req: RecordedRequest, route: Any, path_known: bool) -> Reply:
        if route is None:
            status = 405 if path_known else 404
            return ApiError(status, 0, f"{status}: {'Method Not Allowed' if path_known else 'Not Found'}").reply()
        if route.auth and self.token is not None and req.headers.get("Authorization") != f"Bot {self.token}":
            return ApiError(401, 0, "401: Unauthorized").reply()
        headers: dict[str, str] = {}
        if self.rate_limiter is not None:
            limited, headers = self.rate_limiter.check(req)
            if limited is not None:
                return limited
        if self.check_spec:
            violations = check_body(req.method, req.path, req.json)
            if violations:
                self.spec_violations += violations
                return Reply(400, {"message": "Invalid Form Body", "code": 50035, "errors": form_errors(violations)})
        try:
            result = await route.handler(self, req)
        except ApiError as exc:
            reply = exc.reply()
        except Exception as exc:  # a bug in the fake: make it loud, and not a (retried, slow) 500
            log.exception("fake Discord handler crashed on %s %s", req.method, req.path)
            self.errors.append(exc)
            reply = Reply(400, {"message": f"fake Discord bug: {exc!r}", "code": 0})
        else:
            reply = result if isinstance(result, Reply) else Reply(204 if result is None else 200, result)
        reply.headers = {**headers, **reply.headers}
        return reply

    async def _handle_attachment(self, request: web.Request) -> web.Response:
        data = self.state.attachments.get(int(request.match_info["attachment_id"]))
        return web.Response(body=data) if data is not None else web.Response(status=404)


@contextmanager
def point_discordpy_at(fake: FakeDiscord) -> Iterator[FakeDiscord]:
    """Point discord.py's REST base and default gateway at ``fake``; restore them afterwards.

    These two class attributes are what Paperbot sets from config
    (``discord.api_base_url`` / ``discord.gateway_url``); interaction
    callbacks and webhook follow-ups are built from ``Route.BASE`` too.
    """
    import discord.gateway
    import discord.http
    import yarl

    saved = discord.http.Route.BASE, discord.gateway.DiscordWebSocket.DEFAULT_GATEWAY
    discord.http.Route.BASE = fake.api_url
    discord.gateway.DiscordWebSocket.DEFAULT_GATEWAY = yarl.URL(fake.gateway_url)
    try:
        yield fake
    finally:
        discord.http.Route.BASE, discord.gateway.DiscordWebSocket.DEFAULT_GATEWAY = saved
