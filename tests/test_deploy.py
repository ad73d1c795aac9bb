"""The deployment files: systemd units that systemd accepts, the container image and compose file
where Docker can build them, the pinned versions, .env.example, the licence and the version."""

from __future__ import annotations

import re
import shutil
import subprocess
import tomllib
from pathlib import Path

import pytest

from settings import unknown_variables

REPO = Path(__file__).parent.parent
DEPLOY = REPO / "deploy"
UNITS = sorted([*DEPLOY.glob("*.service"), *DEPLOY.glob("*.timer")])


def unit_settings(path: Path) -> dict[str, list[str]]:
    """`Key=value` lines per key, in order (sections flattened)."""
    found: dict[str, list[str]] = {}
    for line in path.read_text().splitlines():
        if "=" in line and not line.lstrip().startswith(("#", ";", "[")):
            key, value = line.split("=", 1)
            found.setdefault(key.strip(), []).append(value)
    return found


def test_systemd_accepts_the_units(tmp_path: Path) -> None:
    if shutil.which("systemd-analyze") is None:
        pytest.skip("systemd-analyze is not installed here")
    for unit in UNITS:  # pointed at this checkout, whose .venv/bin/paperbot exists
        (tmp_path / unit.name).write_text(unit.read_text().replace("/opt/paperbot", str(REPO)))
    assert (REPO / ".venv" / "bin" / "paperbot").exists()
    result = subprocess.run(["systemd-analyze", "verify", *[u.name for u in UNITS]], cwd=tmp_path,
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0 and result.stderr.strip() == "", result.stderr


def test_the_service_waits_for_the_network_runs_as_its_own_user_and_installs() -> None:
    service = DEPLOY / "paperbot.service"
    text, settings = service.read_text(), unit_settings(service)
    assert "[Install]" in text and settings["WantedBy"] == ["multi-user.target"]
    assert settings["After"] == ["network-online.target"] and settings["Wants"] == ["network-online.target"]
    assert settings["User"] == ["paperbot"] and settings["Group"] == ["paperbot"]
    assert settings["Restart"] == ["on-failure"] and settings["StateDirectory"] == ["paperbot"]
    assert settings["ExecStart"][0].startswith("/opt/paperbot/.venv/bin/paperbot run")


def test_no_unit_value_carries_a_comment() -> None:
    """systemd reads `EnvironmentFile=/etc/x # note` as the path "/etc/x # note"."""
    for unit in UNITS:
        for key, values in unit_settings(unit).items():
            assert not any("#" in value for value in values), f"{unit.name}: {key}={values}"


def test_the_image_is_slim_unprivileged_keeps_the_library_on_a_volume_and_checks_health() -> None:
    text = (REPO / "Dockerfile").read_text()
    assert re.search(r"^FROM python:3\.\d+-slim$", text, re.MULTILINE)
    assert "RUN pip install --requirement requirements.lock" in text
    assert 'VOLUME ["/data"]' in text and "PAPERBOT_DATABASE__URL=sqlite:////data/library.db" in text
    assert re.search(r"^USER paperbot$", text, re.MULTILINE)
    assert text.index("USER paperbot") < text.index("CMD [")
    assert 'HEALTHCHECK' in text and 'CMD ["paperbot", "health"]' in text
    assert text.rstrip().endswith('CMD ["paperbot", "run"]')


def test_the_compose_file_uses_the_env_file_the_volume_and_the_config() -> None:
    text = (REPO / "compose.yaml").read_text()
    for needed in ("build: .", "env_file: .env", "paperbot-data:/data", "./config.toml:/app/config.toml:ro",
                   "restart: unless-stopped"):
        assert needed in text


def compose_services() -> dict[str, str]:
    """Each service's block of compose.yaml, as text (no YAML parser among the dependencies)."""
    text = (REPO / "compose.yaml").read_text()
    body = text.split("\nservices:\n", 1)[1].split("\nvolumes:\n", 1)[0]
    return {m.group(1): m.group(2) for m in re.finditer(r"^  ([a-z0-9-]+):\n((?:(?:    .*)?\n)*)", body, re.MULTILINE)}


def test_the_default_compose_service_is_one_bot_on_sqlite() -> None:
    services = compose_services()
    assert "profiles:" not in services["paperbot"]
    assert all("profiles: [cluster]" in block for name, block in services.items() if name != "paperbot")


def test_the_cluster_profile_runs_postgresql_redis_and_bots_covering_every_shard_once() -> None:
    services = compose_services()
    assert {"postgres", "redis"} <= set(services)
    assert "image: postgres:15" in services["postgres"] and "pg_isready" in services["postgres"]
    assert "POSTGRES_PASSWORD: ${POSTGRES_PASSWORD}" in services["postgres"]
    assert "redis-cli" in services["redis"]
    bots = {name: block for name, block in services.items() if name.startswith("bot-")}
    assert len(bots) >= 2
    shards, counts, volumes = [], set(), set()
    for name, block in bots.items():
        command = re.search(r'command: \["paperbot", "run", "--config", "/app/config.toml", '
                            r'"--shards", "(\d+)-(\d+)", "--shard-count", "(\d+)"\]', block)
        assert command, f"{name}: runs `paperbot run --shards a-b --shard-count n`"
        first, last, count = map(int, command.groups())
        shards += range(first, last + 1)
        counts.add(count)
        assert ("PAPERBOT_DATABASE__URL: postgresql://paperbot:${POSTGRES_PASSWORD}@postgres:5432/paperbot"
                in block), f"{name}: the shared library, its password from .env"
        assert "PAPERBOT_DISCORD__RATE_LIMIT_REDIS_URL: redis://redis:6379/" in block, f"{name}: the shared limit"
        assert re.search(r"postgres:\n\s+condition: service_healthy", block)
        assert re.search(r"redis:\n\s+condition: service_healthy", block)
        assert "env_file: .env" in block and "./config.toml:/app/config.toml:ro" in block
        assert 'test: ["CMD", "paperbot", "health", "--config", "/app/config.toml"]' in block
        volumes.add(re.search(r"- ([a-z0-9-]+):/data", block).group(1))
    assert len(counts) == 1 and sorted(shards) == list(range(counts.pop())), "every shard in exactly one process"
    assert len(volumes) == len(bots), "each process its own heartbeat volume"
    text = (REPO / "compose.yaml").read_text()
    assert all(f"  {volume}:" in text.split("\nvolumes:\n", 1)[1] for volume in volumes | {"postgres-data"})


def test_the_smoke_script_checks_both_compose_profiles() -> None:
    script = (DEPLOY / "smoke.sh").read_text()
    assert "docker compose config --quiet" in script
    assert "--profile cluster config --quiet" in script and "--profile cluster config --services" in script


def test_env_example_leaves_the_postgres_password_empty() -> None:
    lines = (REPO / ".env.example").read_text().splitlines()
    assert "POSTGRES_PASSWORD=" in lines


def test_docker_builds_and_runs_the_image_and_compose_file() -> None:
    """deploy/smoke.sh, which exits 77 with the reason where Docker cannot run here."""
    result = subprocess.run(["bash", str(DEPLOY / "smoke.sh")], cwd=REPO, capture_output=True, text=True,
                            timeout=1800)
    if result.returncode == 77:
        pytest.skip(result.stdout.strip().splitlines()[-1])
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.strip().endswith("ok")


def locked() -> dict[str, str]:
    pins = {}
    for line in (REPO / "requirements.lock").read_text().splitlines():
        match = re.match(r"^([A-Za-z0-9._-]+)==([^\s;]+)", line)
        if match:
            pins[match.group(1).lower().replace("_", "-").replace(".", "-")] = match.group(2)
    return pins


def test_the_lock_pins_every_dependency_exactly() -> None:
    pins = locked()
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    for requirement in project["dependencies"]:
        name = re.match(r"[A-Za-z0-9._-]+", requirement).group(0).lower().replace("_", "-").replace(".", "-")
        assert name in pins, f"{name} is not pinned in requirements.lock (run `make lock`)"
    text = (REPO / "requirements.lock").read_text()
    assert "make lock" in text, "the lock says how it is refreshed"
    assert not re.search(r"^[A-Za-z0-9._-]+\s*(>=|<=|~=|>|<)", text, re.MULTILINE), "every line is =="
    makefile = (REPO / "Makefile").read_text()
    assert re.search(r"^lock:", makefile, re.MULTILINE) and "--output-file requirements.lock pyproject.toml" in makefile


def test_env_example_names_the_token_and_only_real_settings() -> None:
    lines = (REPO / ".env.example").read_text().splitlines()
    assignments = [line.lstrip("# ").split("=", 1)[0] for line in lines
                   if re.match(r"^#?\s*[A-Z][A-Z0-9_]*=", line)]
    assert "DISCORD_TOKEN=" in lines, "the token, empty: a secret is never committed"
    assert unknown_variables({name: "" for name in assignments if name.startswith("PAPERBOT_")}) == []
    assert not any(re.match(r"^[A-Z_]+=.+#", line) for line in lines), "no trailing comments"


def test_the_licence_and_the_version_live_in_one_place_each() -> None:
    licence = (REPO / "LICENSE").read_text()
    assert licence.startswith("MIT License") and "THE SOFTWARE IS PROVIDED \"AS IS\"" in licence
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    assert project["license"] == "MIT"
    hard_coded = subprocess.run(["git", "grep", "-n", "-E", f"__version__|['\"]{re.escape(project['version'])}['\"]",
                                 "--", "*.py", ":!tests/test_deploy.py"], cwd=REPO, capture_output=True, text=True).stdout
    assert hard_coded == "", f"the version is read from the package metadata, not written in code:\n{hard_coded}"
    assert (REPO / "CHANGELOG.md").read_text().startswith("# Changelog")


def test_make_bench_runs_the_documented_smoke_benchmark() -> None:
    makefile = (REPO / "Makefile").read_text()
    assert re.search(r"^bench: .*\n\t\$\(BIN\)/python -m benchmarks.run --smoke", makefile, re.MULTILINE)
    assert "--smoke" in (REPO / "benchmarks" / "README.md").read_text()
    assert "10-second" not in (REPO / "benchmarks" / "README.md").read_text()
