"""Which servers this process serves, when the bot runs as several processes ("clusters").

Discord sends a server's events to shard `(guild_id >> 22) % shard_count`; a process
started with some of the shards sees only those servers, so it also posts only to them.
Everything here is pure, so the scheduler and the posters can ask without a connection.
"""

from __future__ import annotations

from dataclasses import dataclass


def shard_of(guild_id: int, shard_count: int) -> int:
    """Discord's rule: the shard that receives `guild_id`'s events."""
    return (guild_id >> 22) % shard_count


def parse_shard_ids(text: str) -> list[int]:
    """'0-3' or '0,2,5' or '0-1,4' -> sorted shard ids; ValueError with the reason otherwise."""
    ids: set[int] = set()
    for part in text.split(","):
        part = part.strip()
        low, dash, high = part.partition("-")
        try:
            first, last = (int(low), int(high)) if dash else (int(part), int(part))
        except ValueError:
            raise ValueError(f"{part!r} is not a shard id or a range like 0-3") from None
        if first < 0 or last < first:
            raise ValueError(f"{part!r} is not a range of shard ids (from low to high, from 0)")
        ids.update(range(first, last + 1))
    return sorted(ids)


@dataclass(frozen=True)
class ShardSet:
    """The shards this process runs: `shard_ids` of `shard_count`, or everything (None)."""

    shard_ids: tuple[int, ...] | None = None
    shard_count: int | None = None

    @classmethod
    def from_settings(cls, discord_settings) -> ShardSet:
        ids = discord_settings.shard_ids
        count = discord_settings.shard_count
        if count is None:
            return cls()
        return cls(tuple(ids) if ids is not None else tuple(range(count)), count)

    @property
    def sharded(self) -> bool:
        return self.shard_count is not None

    def owns_guild(self, guild_id: int) -> bool:
        """Whether this process schedules and posts for the server (always, unsharded)."""
        if self.shard_count is None or self.shard_ids is None:
            return True
        return shard_of(guild_id, self.shard_count) in self.shard_ids

    @property
    def sends_dms(self) -> bool:
        """Subscriber DMs belong to no server: only the process holding shard 0 sends them."""
        return self.shard_ids is None or 0 in self.shard_ids

    @property
    def share(self) -> float:
        """This process's fraction of all shards: its fair part of the global rate limit."""
        if self.shard_count is None or self.shard_ids is None:
            return 1.0
        return len(self.shard_ids) / self.shard_count

    @property
    def label(self) -> str:
        """Short and without spaces, for the HTTP user agent: '2,3/6' (shards 2 and 3 of 6)."""
        if self.shard_count is None or self.shard_ids is None:
            return "all"
        return f"{','.join(map(str, self.shard_ids))}/{self.shard_count}"

    def describe(self) -> str:
        if self.shard_count is None or self.shard_ids is None:
            return "all servers (not sharded)"
        return f"shards {', '.join(map(str, self.shard_ids))} of {self.shard_count}"
