"""A small reader for docker-compose.yaml: YAML (with anchors and merge keys) plus Compose's
``${VAR:-default}`` interpolation, evaluated with defaults only — what a fresh checkout gets."""

from __future__ import annotations

import re
from pathlib import Path

import yaml

_VARIABLE = re.compile(r"\$\$|\$\{(?P<name>[A-Za-z_][A-Za-z0-9_]*)(?:(?P<op>:?[-?])(?P<arg>[^}]*))?\}")


class ComposeError(AssertionError):
    """The compose file is inconsistent; the message names the service and the field."""


def interpolate(text: str, env: dict[str, str]) -> str:
    """Replace ``${VAR}``, ``${VAR:-default}``, ``${VAR-default}``, ``${VAR:?message}`` and ``$$``."""

    def replace(match: re.Match[str]) -> str:
        if match.group(0) == "$$":
            return "$"
        name, op, arg = match.group("name"), match.group("op"), match.group("arg") or ""
        value = env.get(name)
        if op == ":-":
            return value if value else arg
        if op == "-":
            return arg if value is None else value
        if op in (":?", "?"):
            if not value:
                raise ComposeError(f"variable {name} is required: {arg}")
            return value
        return value or ""

    return _VARIABLE.sub(replace, text)


def _interpolate_tree(node: object, env: dict[str, str]) -> object:
    if isinstance(node, str):
        return interpolate(node, env)
    if isinstance(node, list):
        return [_interpolate_tree(item, env) for item in node]
    if isinstance(node, dict):
        return {key: _interpolate_tree(value, env) for key, value in node.items()}
    return node


def load_compose(path: Path, env: dict[str, str] | None = None) -> dict:
    """Parse and interpolate a compose file (extension fields ``x-*`` are dropped, as Compose does)."""
    raw = yaml.safe_load(path.read_text())
    if not isinstance(raw, dict) or "services" not in raw:
        raise ComposeError(f"{path}: no top-level `services`")
    data = {key: value for key, value in raw.items() if not key.startswith("x-")}
    return _interpolate_tree(data, env or {})


def env_of(service: dict) -> dict[str, str]:
    """A service's environment as a dict (Compose allows a mapping or a list of KEY=VALUE)."""
    env = service.get("environment") or {}
    if isinstance(env, list):
        return dict(item.split("=", 1) if "=" in item else (item, "") for item in env)
    return {key: "" if value is None else str(value) for key, value in env.items()}


def command_of(service: dict) -> list[str]:
    """Entrypoint + command as one argument list (strings are split on whitespace)."""
    parts: list[str] = []
    for key in ("entrypoint", "command"):
        value = service.get(key)
        if isinstance(value, str):
            parts += value.split()
        elif value:
            parts += [str(item) for item in value]
    return parts


def flag_value(args: list[str], flag: str) -> str | None:
    """The value after ``flag`` (or in ``flag=value``) in an argument list."""
    for index, arg in enumerate(args):
        if arg == flag and index + 1 < len(args):
            return args[index + 1]
        if arg.startswith(flag + "="):
            return arg.split("=", 1)[1]
    return None


def depends_on(service: dict) -> dict[str, str]:
    """{service: condition} for list and mapping forms of depends_on."""
    deps = service.get("depends_on") or {}
    if isinstance(deps, list):
        return {name: "service_started" for name in deps}
    return {name: (spec or {}).get("condition", "service_started") for name, spec in deps.items()}


def bind_mounts(service: dict, *, include_created: bool = True) -> list[tuple[str, str]]:
    """(source, target) of each host-path volume in short (``src:dst[:mode]``) or long form.

    ``include_created=False`` leaves out long-form binds with ``create_host_path: true``, whose
    source Compose creates when it is missing."""
    mounts = []
    for volume in service.get("volumes") or []:
        if isinstance(volume, str):
            source, _, rest = volume.partition(":")
            target = rest.split(":")[0]
            if source.startswith((".", "/", "~")):
                mounts.append((source, target))
        elif volume.get("type") == "bind":
            created = bool((volume.get("bind") or {}).get("create_host_path"))
            if include_created or not created:
                mounts.append((volume["source"], volume["target"]))
    return mounts


def named_volumes(service: dict) -> list[str]:
    names = []
    for volume in service.get("volumes") or []:
        if isinstance(volume, str):
            source = volume.partition(":")[0]
            if ":" in volume and not source.startswith((".", "/", "~")):
                names.append(source)
        elif volume.get("type") == "volume":
            names.append(volume["source"])
    return names
