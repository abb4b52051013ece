"""Where a node's settings come from: its config file and identity files, with overrides.

One type answers that at start and on every reload, so a reload reads the
same files with the same overrides (environment, then flags) as the start
did, and reports problems the same way: every problem at once, one line each.
"""

from __future__ import annotations

import hashlib
import os
import re
import stat
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from ..errors import InputError
from .config import Config, Override, environment_overrides, load_config
from .identity import Identity, environment_identity, load_identities, load_identity
from .layout import CLASSIC_TYPE

if TYPE_CHECKING:
    from ..equipment import Catalogue

DEFAULT_CONFIG = "config.yaml"
DEFAULT_IDENTITY = "node_identity.json"

# A sensor id put into a file name: letters, digits, '.', '_' and '-', starting with a
# letter or digit, so it can never name a folder above ('..') or another folder ('/').
SAFE_FILE_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")


@dataclass(frozen=True)
class NodeSettings:
    """A validated config and the identities of the node's sensors, in identity order."""

    config: Config
    identities: tuple[tuple[str | None, Identity], ...]  # (file it came from, identity)
    # The equipment catalogue; None when no identity names a model and no catalogue file is
    # configured (a classic node never loads it).
    catalogue: Catalogue | None = None

    def by_file(self) -> dict[str, Identity]:
        """Identities read from files, keyed by path (not the environment's or default one)."""
        return {path: identity for path, identity in self.identities if path is not None}


@dataclass(frozen=True)
class NodeInputs:
    """The files a node reads and the overrides applied on top of them.

    ``identity_paths`` empty means one identity from the environment
    (``SENSOR_ID``…) over the built-in default.
    """

    config_path: str | None = None
    identity_paths: tuple[str, ...] = ()
    config_overrides: tuple[Override, ...] = ()
    identity_overrides: Mapping[str, str] = field(default_factory=dict)

    @classmethod
    def locate(
        cls,
        config: str | None = None,
        identities: Sequence[str] | None = None,
        overrides: Sequence[Override] = (),
        environ: Mapping[str, str] | None = None,
    ) -> NodeInputs:
        """The node's inputs as the CLI and the container image find them.

        Config: ``config``, else ``$CONFIG_FILE``, else ``./config.yaml`` if
        present, else the built-in defaults. Identities: ``identities`` (files
        or folders of ``*.json``), else ``$IDENTITY_FILE``, else
        ``./node_identity.json`` if present. Overrides: the environment's
        (``SIMULATION_SEED``…), then ``overrides`` (the flags), which win.
        """
        env = os.environ if environ is None else environ
        return cls(
            config_path=_config_path(config, env),
            identity_paths=tuple(_identity_paths(identities, env)),
            config_overrides=(*environment_overrides(env), *overrides),
            identity_overrides=environment_identity(env),
        )

    @property
    def files(self) -> list[str]:
        """Every file read, as absolute paths (what a watcher follows)."""
        paths = [self.config_path] if self.config_path else []
        return [os.path.abspath(p) for p in [*paths, *self.identity_paths]]

    def watched_files(self, config: Config) -> list[str]:
        """Every file a reload follows (absolute): the config and identity files, and the
        catalogue files ``config`` names."""
        catalogues = [os.path.abspath(p) for p in config.equipment.catalogues]
        return [*self.files, *catalogues]

    def digests(self, config: Config) -> dict[str, str | None]:
        """``file_digest`` of every watched file: taken right after loading, the state the
        node started with, which a reload watcher started later compares against."""
        return {path: file_digest(path) for path in self.watched_files(config)}

    def load(self) -> NodeSettings:
        """Read and validate everything; raise ``InputError`` listing every problem."""
        problems: list[str] = []
        config: Config | None = None
        identities: list[tuple[str | None, Identity]] = []
        try:
            config = load_config(self.config_path, self.config_overrides)
        except InputError as exc:
            problems.extend(exc.problems)
        try:
            identities = self._load_identities()
        except InputError as exc:
            problems.extend(exc.problems)
        if config is not None and "{sensor_id}" in config.database.path:
            problems.extend(unsafe_file_name_ids(config.database.path, identities))
        catalogue = None
        if config is not None:
            try:
                catalogue = catalogue_for(config, [identity for _, identity in identities])
            except InputError as exc:
                problems.extend(exc.problems)
            else:
                problems.extend(unknown_types(catalogue, identities))
        if problems or config is None:
            raise InputError(problems)
        return NodeSettings(config, tuple(identities), catalogue)

    def _load_identities(self) -> list[tuple[str | None, Identity]]:
        paths = list(self.identity_paths)
        if not paths:
            return [(None, load_identity(None, self.identity_overrides))]
        if len(paths) == 1:
            return [(paths[0], load_identity(paths[0], self.identity_overrides))]
        if "id" in self.identity_overrides:
            raise InputError(
                [
                    "environment SENSOR_ID: cannot give one id to several identity files; "
                    "unset it or pass one identity"
                ]
            )
        return list(zip(paths, load_identities(paths, self.identity_overrides), strict=True))


def file_digest(path: str) -> str | None:
    """Content hash of a regular file (None when unreadable); a FIFO or device is never
    read (it could block for good) but gets a marker, so an edit to one is still seen."""
    try:
        descriptor = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
        with open(descriptor, "rb") as handle:
            mode = os.fstat(handle.fileno()).st_mode
            if not stat.S_ISREG(mode):
                return f"not a regular file: {stat.S_IFMT(mode):o}"
            return hashlib.sha256(handle.read()).hexdigest()
    except OSError:
        return None


def catalogue_for(config: Config, identities: Sequence[Identity]) -> Catalogue | None:
    """The equipment catalogue (built-in merged with ``equipment.catalogues``), or None when
    nothing needs it: a node of classic sensors only never loads the models."""
    wanted = any(identity.type != CLASSIC_TYPE for identity in identities)
    if not wanted and not config.equipment.catalogues:
        return None
    from ..equipment import load_catalogue

    return load_catalogue(config.equipment.catalogues)


def known_types(catalogue: Catalogue | None) -> tuple[str, ...]:
    """Every sensor type an identity may name: the classic one, then the catalogue's."""
    return (CLASSIC_TYPE, *(catalogue.names() if catalogue is not None else ()))


def unknown_types(
    catalogue: Catalogue | None, identities: Sequence[tuple[str | None, Identity]]
) -> list[str]:
    """One problem per identity whose ``type`` is neither classic nor a catalogue model."""
    known = known_types(catalogue)
    return [
        f"{source or 'identity'}: type: unknown sensor type {identity.type!r} "
        f"(known types: {', '.join(known)})"
        for source, identity in identities
        if identity.type not in known
    ]


def unsafe_file_name_ids(
    template: str, identities: Sequence[tuple[str | None, Identity]]
) -> list[str]:
    """One problem per identity whose id is not safe in a ``{sensor_id}`` path."""
    return [
        f"{source or 'identity'}: id: {identity.id!r} is not safe as a file name in "
        f"database.path {template!r}; use letters, digits, '.', '_' and '-', starting with a "
        "letter or digit (at most 128)"
        for source, identity in identities
        if not SAFE_FILE_ID.fullmatch(identity.id)
    ]


def _config_path(flag: str | None, env: Mapping[str, str]) -> str | None:
    if flag:
        return flag
    if env.get("CONFIG_FILE"):
        return env["CONFIG_FILE"]
    return DEFAULT_CONFIG if Path(DEFAULT_CONFIG).is_file() else None


def _identity_paths(flags: Sequence[str] | None, env: Mapping[str, str]) -> list[str]:
    """Identity files from flags or ``$IDENTITY_FILE``, folders expanded to their ``*.json``."""
    chosen = list(flags or ([env["IDENTITY_FILE"]] if env.get("IDENTITY_FILE") else []))
    if not chosen:
        return [DEFAULT_IDENTITY] if Path(DEFAULT_IDENTITY).is_file() else []
    paths: list[str] = []
    for item in chosen:
        if Path(item).is_dir():
            found = sorted(str(p) for p in Path(item).glob("*.json"))
            if not found:
                raise InputError([f"{item}: (folder): no *.json identity files in this folder"])
            paths.extend(found)
        else:
            paths.append(item)
    return paths
