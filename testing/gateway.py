"""The gateway websocket: just enough of v10 for a real discord.py client.

Flow: HELLO -> client heartbeats (ACKed) -> IDENTIFY -> READY + one
GUILD_CREATE per guild. Every dispatch is numbered per session and kept, so a
RESUME replays what the client missed and then sends RESUMED, like Discord.

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


@dataclass
class Session:
    """A gateway session outlives connections: it is what RESUME continues."""

    id: str
    intents: int
    seq: int = 0
    events: list[dict[str, Any]] = field(default_factory=list)
    connection: Connection | None = None
    resumes: int = 0


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
        self.current: Session | None = None
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
        session = Session(id=f"fake-session-{next(self._session_ids)}", intents=int(data.get("intents", 0)))
        self.sessions[session.id] = session
        self.current, session.connection, conn.session = session, conn, session
        state = self.fake.state
        ready = {
            "v": 10,
            "user": {**state.bot_user.to_dict(), "verified": True, "mfa_enabled": False, "flags": 0},
            "guilds": [{"id": str(g), "unavailable": True} for g in state.guilds],
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
        await self.dispatch("READY", ready)
        all_members = bool(session.intents & Intent.GUILD_PRESENCES)
        for guild in state.guilds.values():
            await self.dispatch("GUILD_CREATE", state.guild_create_dict(guild, all_members=all_members))

    async def _resume(self, conn: Connection, data: dict[str, Any]) -> None:
        session = self.sessions.get(data.get("session_id"))
        if session is None or (self.fake.token is not None and data.get("token") != self.fake.token):
            await self._send(conn, {"op": Op.INVALID_SESSION, "d": False})
            return
        session.connection, conn.session, self.current = conn, session, session
        session.resumes += 1
        last_seen = data.get("seq") or 0
        for event in session.events:
            if event["s"] > last_seen:
                await self._send(conn, event)
        await self.dispatch("RESUMED", {})

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
        self.sent.append(payload)
        await conn.send(payload)

    # -- what tests call ----------------------------------------------------

    async def dispatch(self, event: str, data: dict[str, Any]) -> None:
        """Send a DISPATCH to the current session, honouring its intents.

        If the client is between connections the event is only stored; a
        RESUME will replay it, so nothing is lost (as on Discord).
        """
        session = self.current
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

    async def send_reconnect(self) -> None:
        """Op 7: the client should close and RESUME on resume_gateway_url."""
        await self._send_op(Op.RECONNECT, None)

    async def send_invalid_session(self, resumable: bool = False) -> None:
        """Op 9: with ``resumable=False`` the client must IDENTIFY from scratch."""
        if not resumable and self.current is not None:
            self.sessions.pop(self.current.id, None)
        await self._send_op(Op.INVALID_SESSION, resumable)

    async def disconnect(self, code: int = 4000) -> None:
        """Drop the current connection from our side, like a network blip or a Discord restart."""
        conn = self.current and self.current.connection
        if conn is not None:
            await conn.ws.close(code=code)

    async def close_all(self) -> None:
        for conn in list(self.connections):
            await conn.ws.close(code=1001)

    async def _send_op(self, op: int, data: Any) -> None:
        conn = self.current and self.current.connection
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
