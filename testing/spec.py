"""Discord's own OpenAPI spec as the fake's referee: every request body is checked against it.

A hand-written fake only rejects what its author thought of; Discord's published schema knows every
length, item count and enum of every route. `check_body` finds the spec's route for a
request and validates its JSON body (or a multipart body's ``payload_json``) against that route's
request schema, so a payload real Discord would refuse fails the test that sent it.

Validators are compiled once per (method, route) and shared by every FakeDiscord in the process.
"""

from __future__ import annotations

import functools
import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from jsonschema import Draft202012Validator, validators
from jsonschema import _keywords, _utils
from jsonschema.exceptions import ValidationError, relevance
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012

#: Discord's official spec (github.com/discord/discord-api-spec, MIT; licence beside it).
SPEC_PATH = Path(__file__).resolve().parent.parent / "tests" / "data" / "discord-api-spec" / "openapi.json"
_SPEC_URI = "urn:discord-api-spec"


def _patch_known_omissions(spec: dict[str, Any]) -> None:
    """Where the spec is stricter than Discord itself. The ONE place such differences are patched.

    - ``ChannelTypes`` lacks 16 (GUILD_MEDIA), which Discord documents and sends (media channels).
    - ``SnowflakeType`` is a string, but Discord also takes a snowflake as a JSON integer, and
      discord.py sends some that way (``recipient_id`` when it opens a DM, ``applied_tags``...).
    """
    schemas = spec["components"]["schemas"]
    channel_types = schemas["ChannelTypes"]["oneOf"]
    if not any(option.get("const") == 16 for option in channel_types):
        channel_types.append({"title": "GUILD_MEDIA", "description": "Channel that can only contain threads, "
                              "similar to GUILD_FORUM channels (Discord's docs; missing from the spec)", "const": 16})
    snowflake = schemas["SnowflakeType"]
    schemas["SnowflakeType"] = {"oneOf": [snowflake, {"type": "integer", "minimum": 0}]}


@functools.cache
def _spec() -> dict[str, Any]:
    spec = json.loads(SPEC_PATH.read_text(encoding="utf-8"))
    _patch_known_omissions(spec)
    return spec


@functools.cache
def _registry() -> Registry:
    return Registry().with_resource(_SPEC_URI, Resource.from_contents(_spec(), default_specification=DRAFT202012))


def _pointer(*parts: str) -> str:
    return "/".join(p.replace("~", "~0").replace("/", "~1") for p in parts)


@dataclass(frozen=True)
class _SpecRoute:
    template: str
    pattern: re.Pattern[str]
    literal_segments: int  # more literal segments wins: `/messages/@original` over `/messages/{id}`


@functools.cache
def _routes() -> tuple[_SpecRoute, ...]:
    routes = []
    for template in _spec()["paths"]:
        segments = template.strip("/").split("/")
        regex = "/".join("[^/]+" if s.startswith("{") else re.escape(s) for s in segments)
        literal = sum(not s.startswith("{") for s in segments)
        routes.append(_SpecRoute(template, re.compile(f"^/{regex}$"), literal))
    return tuple(sorted(routes, key=lambda r: -r.literal_segments))


def _one_of(validator, one_of, instance, schema):
    """`oneOf`, faster and with the same result: branches whose `type` discriminator (a const or
    enum) differs from the instance's are invalid anyway and skipped, the others are checked by
    short-circuiting `is_valid`; errors are listed (slowly) only when the instance is invalid."""
    if _all_consts(one_of):  # an enum written as a oneOf of consts (channel types, component types...)
        if sum(_utils.equal(branch["const"], instance) for branch in one_of) == 1:
            return
        yield from _keywords.oneOf(validator, one_of, instance, schema)
        return
    kind = instance.get("type") if isinstance(instance, dict) else None
    candidates = [branch for branch in one_of
                  if kind is None or isinstance(kind, bool) or _accepts(_discriminator(branch), kind)]
    if sum(validator.evolve(schema=branch).is_valid(instance) for branch in candidates) == 1:
        return
    yield from _keywords.oneOf(validator, one_of, instance, schema)


_CONST_ONLY = {"const", "title", "description"}


def _all_consts(one_of: list) -> bool:
    return all(isinstance(b, dict) and "const" in b and set(b) <= _CONST_ONLY for b in one_of)


def _accepts(allowed: tuple | None, kind: Any) -> bool:
    return allowed is None or kind in allowed


_DISCRIMINATORS: dict[int, tuple[Any, tuple | None]] = {}


def _discriminator(branch: Any) -> tuple | None:
    """The `type` values a branch allows (its `properties.type` const or enum), None if it does not say."""
    known = _DISCRIMINATORS.get(id(branch))
    if known is None or known[0] is not branch:  # branches live as long as the cached spec
        known = _DISCRIMINATORS[id(branch)] = (branch, _discriminator_of(branch))
    return known[1]


def _discriminator_of(branch: Any) -> tuple | None:
    while isinstance(branch, dict) and set(branch) == {"$ref"} and branch["$ref"].startswith("#/"):
        node: Any = _spec()
        for part in branch["$ref"][2:].split("/"):
            node = node[part.replace("~1", "/").replace("~0", "~")]
        branch = node
    kind = (branch.get("properties") or {}).get("type") if isinstance(branch, dict) else None
    if not isinstance(kind, dict):
        return None
    if "const" in kind:
        return (kind["const"],)
    if isinstance(kind.get("enum"), list):
        return tuple(kind["enum"])
    return None


#: Draft 2020-12, with the faster `oneOf` (same results).
_Validator = validators.extend(Draft202012Validator, {"oneOf": _one_of})


@functools.cache
def _validator(template: str, method: str) -> Draft202012Validator | None:
    """The compiled validator for a route's JSON request body, or None when the route takes none."""
    operation = _spec()["paths"][template].get(method.lower())
    body = (operation or {}).get("requestBody", {}).get("content", {})
    if "application/json" not in body:
        return None
    ref = f"{_SPEC_URI}#/" + _pointer("paths", template, method.lower(), "requestBody", "content",
                                      "application/json", "schema")
    return _Validator({"$ref": ref}, registry=_registry())


def spec_route(path: str) -> str | None:
    """The spec's template for a concrete API path (``/channels/1/messages``), or None."""
    for route in _routes():
        if route.pattern.match(path):
            return route.template
    return None


@dataclass(frozen=True)
class SpecViolation:
    """A request body Discord's schema rejects."""

    method: str
    path: str
    route: str
    where: str  # JSON path into the body, e.g. "embeds.0.description"
    message: str

    def __str__(self) -> str:
        return f"{self.method} {self.path} ({self.route}): {self.where or '<body>'}: {self.message}"


def _where(error: ValidationError) -> str:
    return ".".join(str(p) for p in error.absolute_path)


def check_body(method: str, path: str, body: Any) -> list[SpecViolation]:
    """What the spec finds wrong with ``body`` sent as ``method path``; empty when Discord would take it.

    Routes the spec does not describe, and bodies of routes without a JSON schema, are not checked.
    """
    template = spec_route(path)
    if template is None:
        return []
    validator = _validator(template, method)
    if validator is None or body is None:
        return []
    errors = list(validator.iter_errors(body))
    if errors:
        error = _deepest(max(errors, key=relevance))
        return [SpecViolation(method, path, template, _where(error), _describe(error))]
    return [SpecViolation(method, path, template, where, message) for where, message in _beyond_the_schema(body)]


#: Discord's documented limit on all embeds of one message together, which no schema can express.
MAX_EMBED_TOTAL = 6000


def _beyond_the_schema(body: Any) -> list[tuple[str, str]]:
    """Rules Discord documents and enforces (400 50035) that the schema cannot state: the embeds of one
    message hold at most 6,000 characters in all (titles, descriptions, field names and values,
    footers, author names)."""
    problems = []
    for where, embeds in _embed_lists(body):
        total = sum(_embed_chars(e) for e in embeds if isinstance(e, dict))
        if total > MAX_EMBED_TOTAL:
            problems.append((where, f"Embed size exceeds maximum size of {MAX_EMBED_TOTAL} (got {total})."))
    return problems


def _embed_lists(body: Any) -> list[tuple[str, list]]:
    found = []
    if isinstance(body, dict):
        if isinstance(body.get("embeds"), list):
            found.append(("embeds", body["embeds"]))
        for key in ("data", "message"):  # interaction callbacks, forum posts
            if isinstance(body.get(key), dict) and isinstance(body[key].get("embeds"), list):
                found.append((f"{key}.embeds", body[key]["embeds"]))
    return found


def _embed_chars(embed: dict[str, Any]) -> int:
    size = len(embed.get("title") or "") + len(embed.get("description") or "")
    size += sum(len(f.get("name") or "") + len(f.get("value") or "") for f in embed.get("fields") or [])
    size += len((embed.get("footer") or {}).get("text") or "") + len((embed.get("author") or {}).get("name") or "")
    return size


def _deepest(error: ValidationError) -> ValidationError:
    """For a failed ``oneOf``/``anyOf``, the branch error furthest into the body: the likely culprit."""
    while error.context:
        branches: dict[Any, list[ValidationError]] = {}
        for sub in error.context:
            branches.setdefault(sub.relative_schema_path[0], []).append(sub)
        # A branch whose discriminator (`type`) already disagrees is not the one the sender meant.
        meant = [errors for errors in branches.values()
                 if not any(list(e.relative_path) == ["type"] for e in errors)] or list(branches.values())
        error = max((e for errors in meant for e in errors), key=lambda e: len(e.absolute_path))
    return error


def _describe(error: ValidationError) -> str:
    """Discord-like wording, without echoing a long value back."""
    value, instance = error.validator_value, error.instance
    if error.validator in ("maxLength", "maxItems"):
        return f"Must be {value} or fewer in length (got {len(instance)})."
    if error.validator in ("minLength", "minItems"):
        return f"Must be {value} or more in length (got {len(instance)})."
    if error.validator in ("maximum", "minimum"):
        return f"Must be {'at most' if error.validator == 'maximum' else 'at least'} {value} (got {instance!r})."
    message = error.message
    return message if len(message) <= 300 else message[:297] + "..."


def form_errors(violations: list[SpecViolation]) -> dict[str, Any]:
    """Discord's 50035 ``errors`` object: nested by JSON path, ``_errors`` at the leaf."""
    errors: dict[str, Any] = {}
    for violation in violations:
        node = errors
        for part in violation.where.split(".") if violation.where else []:
            node = node.setdefault(part, {})
        node.setdefault("_errors", []).append({"code": "SPEC_VIOLATION", "message": violation.message})
    return errors
