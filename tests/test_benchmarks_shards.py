"""The clusters benchmark at toy size: its correctness figures, never its timings."""

from __future__ import annotations

from pathlib import Path

import pytest

from benchmarks import shards


@pytest.mark.redis
@pytest.mark.parametrize("shared_library", [False, True])
async def test_cluster_processes_post_every_message_once_from_the_shard_owner(
    tmp_path: Path, redis_url: str, shared_library: bool
) -> None:
    figures = await shards.measure(6, processes=2, mode="shared", redis_url=redis_url, latency=0.0,
                                   shared_library=shared_library, workdir=tmp_path)

    assert figures["pacers"] == ["RedisPacer"] and figures["redis_fallbacks"] == 0
    assert figures["ledger"] == {"done": 6}
    assert figures["planned_messages"] == 6 * 3  # the benchmark's day is three compact messages
    assert (figures["duplicates"], figures["misses"], figures["posted_by_another_process"]) == (0, 0, 0)
    assert figures["other_errors"] == 0
    assert "## Clusters" in shards.markdown([figures])


@pytest.mark.redis
@pytest.mark.postgres
async def test_cluster_processes_on_one_postgresql_library_post_every_message_once(
    tmp_path: Path, redis_url: str, postgres_url: str
) -> None:
    from settings import DatabaseSettings

    if "url" not in DatabaseSettings.model_fields:
        pytest.skip("this Paperbot has no [database] url yet: bots cannot be pointed at PostgreSQL")
    figures = await shards.measure(6, processes=2, mode="shared", redis_url=redis_url, latency=0.0,
                                   postgres_url=postgres_url, workdir=tmp_path)

    assert figures["backend"] == "postgresql"
    assert figures["pacers"] == ["RedisPacer"] and figures["redis_fallbacks"] == 0
    assert figures["ledger"] == {"done": 6}
    assert (figures["duplicates"], figures["misses"], figures["posted_by_another_process"]) == (0, 0, 0)
    assert figures["other_errors"] == 0
    assert "## Clusters on PostgreSQL" in shards.markdown([figures])
