"""The gateway websocket: just enough of v10 for a real discord.py client.

Flow: HELLO -> client heartbeats (ACKed) -> IDENTIFY -> READY + one
GUILD_CREATE per guild. Every dispatch is numbered per session and kept, so a
RESUME replays what the client missed and then sends RESUMED, like Discord.

Shards: an IDENTIFY with ``shard: [shard_id, shard_count]`` opens a session for
that shard only. Like Discord, it gets READY and GUILD_CREATE for the guilds with
``(guild_id >> 22) % shard_count == shard_id``, every later event of a guild goes
to the session of the guild's shard, and events outside any guild (DMs) go to
shard 0. Several clients (processes) holding different shards can connect at once.

We always send uncompressed JSON text frames. discord.py asks for
``compress=zlib-stream`` in the query string, but only decompresses *binary*
frames, so text frames are accepted as-is.
"""

from __future__ import annotations

import itertools
import json
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from aiohttp import WSMsgType, web

if TYPE_CHECKING:
    from .server import FakeDiscord


class Op:
    DISPATCH = 0
    HEARTBEAT = 1
    IDENTIFY = 2
    PRESENCE_UPDATE = 3
    RESUME = 6
    RECONNECT = 7
    REQUEST_GUILD_MEMBERS = 8
    INVALID_SESSION = 9
    HELLO = 10
    HEARTBEAT_ACK = 11


class Intent:
    GUILDS = 1 << 0
    GUILD_MEMBERS = 1 << 1
    GUILD_PRESENCES = 1 << 8
    GUILD_MESSAGES = 1 << 9
    DIRECT_MESSAGES = 1 << 12


#: Which intent an event needs; events not listed are always delivered.
EVENT_INTENTS = {
    "GUILD_CREATE": Intent.GUILDS, "GUILD_UPDATE": Intent.GUILDS, "GUILD_DELETE": Intent.GUILDS,
    "CHANNEL_CREATE": Intent.GUILDS, "CHANNEL_UPDATE": Intent.GUILDS, "CHANNEL_DELETE": Intent.GUILDS,
    "THREAD_CREATE": Intent.GUILDS, "THREAD_UPDATE": Intent.GUILDS, "THREAD_DELETE": Intent.GUILDS,
    "GUILD_MEMBER_ADD": Intent.GUILD_MEMBERS, "GUILD_MEMBER_UPDATE": Intent.GUILD_MEMBERS,
    "GUILD_MEMBER_REMOVE": Intent.GUILD_MEMBERS,
}
MESSAGE_EVENTS = {"MESSAGE_CREATE", "MESSAGE_UPDATE", "MESSAGE_DELETE"}
#: Events whose payload is the guild itself (its id is ``id``, not ``guild_id``).
GUILD_EVENTS = {"GUILD_CREATE", "GUILD_UPDATE", "GUILD_DELETE"}


def event_guild_id(event: str, data: dict[str, Any]) -> int | None:
    """The guild an event belongs to (it decides the shard), or None for DMs and the like."""
    raw = data.get("id") if event in GUILD_EVENTS else data.get("guild_id")
    return int(raw) if raw is not None else None


@dataclass
class Session:
    """A gateway session outlives connections: it is what RESUME continues."""

    id: str
    intents: int
    #: (shard_id, shard_count) from IDENTIFY; an unsharded client is shard 0 of 1.
    shard: tuple[int, int] = (0, 1)
    seq: int = 0
    events: list[dict[str, Any]] = field(default_factory=list)
    connection: Connection | None = None
    resumes: int = 0

    @property
    def shard_id(self) -> int:
        return self.shard[0]

    def owns_guild(self, guild_id: int) -> bool:
        """Discord's rule for which shard receives a guild's events."""
        shard_id, shard_count = self.shard
        return (guild_id >> 22) % shard_count == shard_id


@dataclass
class Connection:
    ws: web.WebSocketResponse
    url: str
    query: dict[str, str]
    session: Session | None = None

    async def send(self, payload: dict[str, Any]) -> None:
        if not self.ws.closed:
            await self.ws.send_str(json.dumps(payload))


class Gateway:
    """Serves ``/gateway`` (identify) and ``/gateway/resume`` (READY's resume_gateway_url)."""

    def __init__(self, fake: FakeDiscord, *, heartbeat_interval_ms: int = 41_250) -> None:
        self.fake = fake
        self.heartbeat_interval_ms = heartbeat_interval_ms
        #: Set False to stop ACKing heartbeats (zombie-connection tests).
        self.ack_heartbeats = True
        self.sessions: dict[str, Session] = {}
        #: The session that identified or resumed last (the only one, for an unsharded bot).
        self.current: Session | None = None
        #: The live session of each shard id: where that shard's events go.
        self.shards: dict[int, Session] = {}
        self.connections: list[Connection] = []
        #: Every payload the client sent, in order, with the URL it came in on.
        self.received: list[dict[str, Any]] = []
        #: Every payload we sent (HELLO, ACKs, dispatches...), in order.
        self.sent: list[dict[str, Any]] = []
        self._session_ids = itertools.count(1)

    # -- the websocket handler ------------------------------------------------

    async def handle(self, request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse(max_msg_size=0)
        await ws.prepare(request)
        conn = Connection(ws=ws, url=f"ws://{request.host}{request.path_qs}", query=dict(request.query))
        self.connections.append(conn)
        try:
            await self._send(conn, {"op": Op.HELLO, "d": {"heartbeat_interval": self.heartbeat_interval_ms}})
            async for msg in ws:
                if msg.type is WSMsgType.TEXT:
                    payload = json.loads(msg.data)
                    self.received.append({**payload, "url": conn.url})
                    self.fake.changes.notify()
                    await self._on_payload(conn, payload)
                elif msg.type is WSMsgType.ERROR:
                    break
        finally:
            self.connections.remove(conn)
            if conn.session and conn.session.connection is conn:
                conn.session.connection = None
        return ws

    async def _on_payload(self, conn: Connection, payload: dict[str, Any]) -> None:
        op, data = payload.get("op"), payload.get("d")
        if op == Op.HEARTBEAT:
            if self.ack_heartbeats:
                await self._send(conn, {"op": Op.HEARTBEAT_ACK, "d": None})
        elif op == Op.IDENTIFY:
            await self._identify(conn, data)
        elif op == Op.RESUME:
            await self._resume(conn, data)
        elif op == Op.REQUEST_GUILD_MEMBERS:
            await self._request_members(data)

    async def _identify(self, conn: Connection, data: dict[str, Any]) -> None:
        if self.fake.token is not None and data.get("token") != self.fake.token:
            await conn.ws.close(code=4004, message=b"Authentication failed.")
            return
        shard = self._valid_shard(data.get("shard"))
        if shard is None:
            await conn.ws.close(code=4010, message=b"Invalid shard.")
            return
        session = Session(id=f"fake-session-{next(self._session_ids)}", intents=int(data.get("intents", 0)),
                          shard=shard)
        self.sessions[session.id] = session
        self._make_live(session, conn)
        state = self.fake.state
        guilds = [guild for guild in state.guilds.values() if session.owns_guild(guild.id)]
        ready = {
            "v": 10,
            "user": {**state.bot_user.to_dict(), "verified": True, "mfa_enabled": False, "flags": 0},
            "guilds": [{"id": str(g.id), "unavailable": True} for g in guilds],
            "session_id": session.id,
            "session_type": "normal",
            "resume_gateway_url": self.fake.resume_gateway_url,
            "application": {"id": str(self.fake.application_id), "flags": 0},
            "private_channels": [],
            "relationships": [],
            "presences": [],
            "guild_join_requests": [],
            "geo_ordered_rtc_regions": [],
            "auth_session_id_hash": "fake",
            "user_settings": {},
        }
        if "shard" in data:
            ready["shard"] = data["shard"]
        await self._dispatch_to(session, "READY", ready)
        all_members = bool(session.intents & Intent.GUILD_PRESENCES)
        for guild in guilds:
            await self._dispatch_to(session, "GUILD_CREATE", state.guild_create_dict(guild, all_members=all_members))

    @staticmethod
    def _valid_shard(shard: Any) -> tuple[int, int] | None:
        """IDENTIFY's ``[shard_id, shard_count]`` (absent: shard 0 of 1); None when Discord would refuse it (4010)."""
        if shard is None:
            return 0, 1
        if (not isinstance(shard, list) or len(shard) != 2
                or not all(isinstance(n, int) and not isinstance(n, bool) for n in shard)):
            return None
        shard_id, shard_count = shard
        return (shard_id, shard_count) if 0 <= shard_id < shard_count else None

    def _make_live(self, session: Session, conn: Connection) -> None:
        self.current, session.connection, conn.session = session, conn, session
        self.shards[session.shard_id] = session

    async def _resume(self, conn: Connection, data: dict[str, Any]) -> None:
        session = self.sessions.get(data.get("session_id"))
        if session is None or (self.fake.token is not None and data.get("token") != self.fake.token):
            await self._send(conn, {"op": Op.INVALID_SESSION, "d": False})
            return
        self._make_live(session, conn)
        session.resumes += 1
        last_seen = data.get("seq") or 0
        for event in session.events:
            if event["s"] > last_seen:
                await self._send(conn, event)
        await self._dispatch_to(session, "RESUMED", {})

    async def _request_members(self, data: dict[str, Any]) -> None:
        guild = self.fake.state.guilds.get(int(data["guild_id"]))
        if guild is None:
            return
        wanted = {int(u) for u in data.get("user_ids") or []}
        members = [m.to_dict() for m in guild.members.values() if not wanted or m.user.id in wanted]
        chunk = {"guild_id": str(guild.id), "members": members, "chunk_index": 0, "chunk_count": 1, "not_found": []}
        if data.get("nonce"):
            chunk["nonce"] = data["nonce"]
        await self.dispatch("GUILD_MEMBERS_CHUNK", chunk)

    async def _send(self, conn: Connection, payload: dict[str, Any]) -> None:
        payload = {"op": payload["op"], "d": payload.get("d"), "s": payload.get("s"), "t": payload.get("t")}
        self.sent.append({**payload, "shard": conn.session.shard_id if conn.session else None})
        await conn.send(payload)

    # -- what tests call ----------------------------------------------------

    async def dispatch(self, event: str, data: dict[str, Any]) -> None:
        """Send a DISPATCH to the session of the event's shard, honouring its intents.

        A guild's events go to the shard owning the guild, anything else to
        shard 0. If the client is between connections the event is only
        stored; a RESUME will replay it, so nothing is lost (as on Discord).
        """
        await self._dispatch_to(self.session_for(event_guild_id(event, data)), event, data)

    def session_for(self, guild_id: int | None) -> Session | None:
        """The live session receiving events of ``guild_id`` (None: events outside guilds, i.e. shard 0)."""
        if guild_id is None:
            return self.shards.get(0)
        return next((s for s in self.shards.values() if s.owns_guild(guild_id)), None)

    async def _dispatch_to(self, session: Session | None, event: str, data: dict[str, Any]) -> None:
        if session is None or not self._wanted(session, event, data):
            return
        session.seq += 1
        payload = {"op": Op.DISPATCH, "d": data, "s": session.seq, "t": event}
        session.events.append(payload)
        if session.connection is not None:
            await self._send(session.connection, payload)
        self.fake.changes.notify()

    @staticmethod
    def _wanted(session: Session, event: str, data: dict[str, Any]) -> bool:
        if event in MESSAGE_EVENTS:
            needed = Intent.GUILD_MESSAGES if data.get("guild_id") else Intent.DIRECT_MESSAGES
        else:
            needed = EVENT_INTENTS.get(event)
        return needed is None or bool(session.intents & needed)

    async def send_reconnect(self, *, shard_id: int | None = None) -> None:
        """Op 7: the client should close and RESUME on resume_gateway_url."""
        await self._send_op(Op.RECONNECT, None, shard_id)

    async def send_invalid_session(self, resumable: bool = False, *, shard_id: int | None = None) -> None:
        """Op 9: with ``resumable=False`` the client must IDENTIFY from scratch."""
        session = self._target(shard_id)
        if not resumable and session is not None:
            self.sessions.pop(session.id, None)
        await self._send_op(Op.INVALID_SESSION, resumable, shard_id)

    async def disconnect(self, code: int = 4000, *, shard_id: int | None = None) -> None:
        """Drop a connection (the current one, or that of ``shard_id``) from our side, like a network blip."""
        session = self._target(shard_id)
        conn = session and session.connection
        if conn is not None:
            await conn.ws.close(code=code)

    async def close_all(self) -> None:
        for conn in list(self.connections):
            await conn.ws.close(code=1001)

    def _target(self, shard_id: int | None) -> Session | None:
        return self.current if shard_id is None else self.shards.get(shard_id)

    async def _send_op(self, op: int, data: Any, shard_id: int | None = None) -> None:
        session = self._target(shard_id)
        conn = session and session.connection
        if conn is None:
            raise RuntimeError("no gateway connection to send to (has the bot connected?)")
        await self._send(conn, {"op": op, "d": data})

    # -- reading back ---------------------------------------------------------

    def ops(self, op: int) -> list[dict[str, Any]]:
        return [p for p in self.received if p.get("op") == op]

    async def wait_for_op(self, op: int, *, count: int = 1, timeout: float = 2.0) -> dict[str, Any]:
        """Wait until the client has sent ``count`` payloads with ``op``; returns the last one."""
        found = await self.fake.wait_for(lambda: len(self.ops(op)) >= count and self.ops(op)[count - 1],
                                         timeout=timeout, what=f"gateway op {op} (#{count}) from the client")
        return found

    async def wait_for_dispatch(self, event: str, *, count: int = 1, timeout: float = 2.0) -> dict[str, Any]:
        """Wait until we have *sent* ``count`` dispatches named ``event`` (e.g. "RESUMED")."""
        def sent() -> Any:
            events = [p for p in self.sent if p.get("t") == event]
            return len(events) >= count and events[count - 1]
        return await self.fake.wait_for(sent, timeout=timeout, what=f"{event} dispatch #{count}")
