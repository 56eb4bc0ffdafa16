"""PACS nodes the user has added, kept in `user_config_dir()/pacs.json`.

A node is either a DICOMweb service (base URL, optional basic/bearer auth, optional CA file
for TLS) or a DIMSE peer (called AE title, host, port). Passwords and tokens are stored in
that file only (created with owner-only permissions), or read from an environment variable
when the secret is written `env:NAME`; they never appear in `repr`, in `public()` output or
in log files (each secret is registered with the log redaction of `mama_core.logging_setup`).
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

from mama_core.errors import ConfigError
from mama_core.logging_setup import note_identifiers

NODES_FILE = "pacs.json"
KINDS = ("dicomweb", "dimse")
AUTHS = ("none", "basic", "bearer")
RETRIEVE_MODES = ("get", "move")
_AE_RE = re.compile(r"^[\x20-\x5b\x5d-\x7e]{1,16}$")  # PS3.5 AE VR: 16 chars, no backslash
_NAME_RE = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")


def _check_ae(value: str, what: str) -> None:
    if not value or not _AE_RE.match(value) or value.strip() != value or not value.strip():
        raise ConfigError(f"{value!r} is not a valid AE title (1-16 printable characters, no backslash)", field=what)


@dataclass
class PacsNode:
    """One server. `secret` is the password (basic) or token (bearer), or `env:NAME`."""

    name: str
    kind: str
    url: str | None = None
    auth: str = "none"
    username: str | None = None
    secret: str | None = field(default=None, repr=False)
    ca_file: str | None = None
    aet: str | None = None
    host: str | None = None
    port: int | None = None
    calling_aet: str = "MAMA"
    retrieve: str = "get"  # DIMSE: C-GET, or C-MOVE to our own storage SCP
    move_port: int = 11113  # DIMSE C-MOVE: the port our SCP listens on (the PACS must know it)
    timeout_s: float = 30.0

    def __post_init__(self) -> None:
        if not _NAME_RE.match(self.name or ""):
            raise ConfigError(f"node name {self.name!r}: use 1-64 letters, digits, '.', '_' or '-'", field="name")
        if self.kind not in KINDS:
            raise ConfigError(f"kind must be one of {KINDS}, got {self.kind!r}", field="kind")
        if self.auth not in AUTHS:
            raise ConfigError(f"auth must be one of {AUTHS}, got {self.auth!r}", field="auth")
        if self.retrieve not in RETRIEVE_MODES:
            raise ConfigError(f"retrieve must be one of {RETRIEVE_MODES}, got {self.retrieve!r}", field="retrieve")
        if not (isinstance(self.timeout_s, (int, float)) and self.timeout_s > 0):
            raise ConfigError(f"timeout must be positive, got {self.timeout_s!r}", field="timeout_s")
        self._check_kind()
        if self.secret and not self.secret.startswith("env:"):
            note_identifiers(self.secret)  # an env: secret is noted when it is read

    def _check_kind(self) -> None:
        if self.kind == "dicomweb":
            if not self.url or not re.match(r"^https?://", self.url):
                raise ConfigError(f"a DICOMweb node needs an http(s):// URL, got {self.url!r}", field="url")
            if self.auth == "basic" and not (self.username and self.secret):
                raise ConfigError("basic auth needs a user name and a password", field="auth")
            if self.auth == "bearer" and not self.secret:
                raise ConfigError("bearer auth needs a token", field="auth")
            if self.ca_file and not Path(self.ca_file).is_file():
                raise ConfigError("CA file not found", field="ca_file")
            return
        if not self.host:
            raise ConfigError("a DIMSE node needs a host", field="host")
        _check_ae(self.aet or "", "aet")
        _check_ae(self.calling_aet, "calling_aet")
        for what in ("port", "move_port"):
            value = getattr(self, what)
            if not isinstance(value, int) or not 0 < value < 65536:
                raise ConfigError(f"{what} must be an integer in 1-65535, got {value!r}", field=what)

    def resolved_secret(self) -> str | None:
        """The secret itself: `env:NAME` reads the environment variable NAME at use time."""
        if self.secret and self.secret.startswith("env:"):
            var = self.secret[4:]
            value = os.environ.get(var)
            if value is None:
                raise ConfigError(f"environment variable {var} (the secret of node {self.name}) is not set", field="secret")
            note_identifiers(value)
            return value
        return self.secret

    def public(self) -> dict:
        """The node without its secret (for listings and logs)."""
        data = asdict(self)
        if data.pop("secret"):
            data["secret"] = "env" if self.secret.startswith("env:") else "stored"
        if self.kind == "dicomweb":
            for key in ("aet", "host", "port", "calling_aet", "retrieve", "move_port"):
                data.pop(key)
        else:
            for key in ("url", "auth", "username", "ca_file"):
                data.pop(key)
        return data

    def describe(self) -> str:
        return self.url if self.kind == "dicomweb" else f"{self.aet}@{self.host}:{self.port}"


@dataclass
class PacsSettings:
    """Everything in pacs.json: the nodes and the retrieval preferences."""

    nodes: dict[str, PacsNode] = field(default_factory=dict)
    auto_priors: bool = False  # fetch every prior of the patient along with a study

    def node(self, name: str) -> PacsNode:
        if name not in self.nodes:
            known = ", ".join(sorted(self.nodes)) or "none"
            raise ConfigError(f"no PACS node named {name!r} (known: {known}); add it with `mama pacs add`", field="server")
        return self.nodes[name]


def settings_path() -> Path:
    from mama_core.paths import user_config_dir

    return user_config_dir() / NODES_FILE


def _node_from(data: dict, path: Path) -> PacsNode:
    known = {f.name for f in fields(PacsNode)}
    if not isinstance(data, dict) or set(data) - known:
        raise ConfigError(f"unexpected node entry {sorted(set(data) - known) if isinstance(data, dict) else data!r}",
                          field=str(path))
    return PacsNode(**data)


def load_settings(path: Path | None = None) -> PacsSettings:
    path = path or settings_path()
    if not path.is_file():
        return PacsSettings()
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ConfigError(f"cannot read PACS settings: {exc}", field=str(path)) from None
    nodes = {name: _node_from(entry, path) for name, entry in (data.get("nodes") or {}).items()}
    return PacsSettings(nodes=nodes, auto_priors=bool(data.get("auto_priors", False)))


def save_settings(settings: PacsSettings, path: Path | None = None) -> Path:
    """Write pacs.json atomically, readable by the owner only (it may hold passwords)."""
    from mama_core.pacs.storage import write_bytes_atomic

    path = path or settings_path()
    data = {"auto_priors": settings.auto_priors, "nodes": {n: asdict(node) for n, node in sorted(settings.nodes.items())}}
    write_bytes_atomic(path, json.dumps(data, indent=2).encode("utf-8"), mode=0o600)  # it may hold passwords or tokens
    return path


def add_node(node: PacsNode, replace: bool = False) -> PacsSettings:
    settings = load_settings()
    if node.name in settings.nodes and not replace:
        raise ConfigError(f"a node named {node.name!r} exists; remove it first or pass --replace", field="name")
    settings.nodes[node.name] = node
    save_settings(settings)
    return settings


def remove_node(name: str) -> PacsSettings:
    settings = load_settings()
    settings.node(name)
    del settings.nodes[name]
    save_settings(settings)
    return settings
