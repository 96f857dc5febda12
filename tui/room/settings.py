"""The control room's own settings: a small JSON file in the user's config dir.

    ~/.config/tower/settings.json   (platformdirs: the platform's usual place)
    {"theme": "catppuccin-latte", "desktop_notifications": "auto"}

Only what a person chooses in the room lives here (today: the theme, and
whether to send desktop notifications), never anything about a store. A
missing, unreadable or damaged file means the defaults; a file that cannot be
written is reported once and the room goes on.
"""

from __future__ import annotations

import json
import os
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path

NOTIFY_CHOICES = ("auto", "osc9", "osc777", "off")


def default_path() -> Path:
    import platformdirs

    return platformdirs.user_config_path("tower", appauthor=False) / "settings.json"


@dataclass
class Settings:
    theme: str | None = None
    desktop_notifications: str = "auto"

    @classmethod
    def load(cls, path: Path | None) -> Settings:
        if path is None:
            return cls()
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return cls()
        if not isinstance(data, dict):
            return cls()
        theme = data.get("theme")
        notify = data.get("desktop_notifications")
        return cls(
            theme=theme if isinstance(theme, str) and theme else None,
            desktop_notifications=notify if notify in NOTIFY_CHOICES else "auto",
        )

    def save(self, path: Path | None) -> None:
        """Write atomically (a crash leaves the old file or the new one, never half of one)."""
        if path is None:
            return
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=".settings-", dir=path.parent)
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as fh:
                json.dump(asdict(self), fh, indent=2)
                fh.write("\n")
            os.replace(tmp, path)
        except BaseException:
            try:
                os.unlink(tmp)
            except OSError:
                pass
            raise
