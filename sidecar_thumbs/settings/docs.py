"""The settings documented: one :class:`SettingDoc` a field, and the text of ``.env.example``."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

from sidecar_thumbs.settings.fields import Settings, _env, _setting_fields, _show

__all__ = ["SettingDoc", "env_example_text", "iter_setting_docs"]


@dataclass(frozen=True)
class SettingDoc:
    """Documentation of one setting, for ``.env.example`` and the ``config`` command."""

    name: str
    env: str
    default: str  # as written in a .env file; "" for computed defaults
    help: str
    group: str
    default_doc: str  # describes a computed default, else ""


def iter_setting_docs() -> Iterator[SettingDoc]:
    """Yield the documentation of every setting, in declaration (and ``.env.example``) order."""
    defaults = Settings()
    for f in _setting_fields():
        computed = bool(f.metadata["default_doc"])
        yield SettingDoc(
            name=f.name,
            env=_env(f),
            default="" if computed else _show(f.name, getattr(defaults, f.name)),
            help=f.metadata["help"],
            group=f.metadata["group"],
            default_doc=f.metadata["default_doc"],
        )


def env_example_text() -> str:
    """The text of ``.env.example``: every setting commented out, with its help and default."""
    lines = [
        "# sidecar-thumbs settings. Copy what you need to .env (or .env.local, which wins over .env)",
        "# and uncomment it. Precedence: command-line flags > environment > .env.local > .env > defaults.",
        "# An empty value means the default. Booleans: 1/0, true/false, yes/no, on/off.",
    ]
    group = None
    for doc in iter_setting_docs():
        if doc.group != group:
            group = doc.group
            lines += ["", f"# === {group} ==="]
        default = doc.default_doc or doc.default or "empty"
        lines += ["", f"# {doc.help} (default: {default})", f"# {doc.env}={doc.default}"]
    return "\n".join(lines) + "\n"
