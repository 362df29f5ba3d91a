"""Error kinds. The CLI turns any RankerError into one line on stderr.

An error carries what is at fault so the CLI can name it the way the user gave it:
  where  a file (with :line), a folder or a URL
  key    a setting or parameter: a config key such as "prefilter.keep", or a parameter name such as "date".
         The library never names a command-line flag; the CLI words a key as the flag, the environment
         variable or the ranker.toml entry the value came from.
A message may mention another setting as {key:prefilter.max_tokens} (advice: "use ... or calibrate again"):
str() shows the key, the CLI the flag that sets it.
"""
from __future__ import annotations

import re
from typing import Callable

_MENTION = re.compile(r"\{key:([A-Za-z_][A-Za-z0-9_.]*)\}")


def _same(key: str) -> str:
    return key


class RankerError(Exception):
    """Something the user can fix: bad input, a missing model, a network outage."""

    def __init__(self, message: str, *, where: str | None = None, key: str | None = None):
        self.message = " ".join(str(message).split())
        self.where = where
        self.key = key
        super().__init__(self.render())

    def render(self, name_key: Callable[[str], str] = _same, name_mention: Callable[[str], str] = _same) -> str:
        """One line: '<key as named> <where>: <message>' (the parts that are known), the settings the message
        mentions named by name_mention."""
        label = " ".join(x for x in ((name_key(self.key) if self.key else ""), self.where or "") if x)
        message = _MENTION.sub(lambda m: name_mention(m.group(1)), self.message)
        return f"{label}: {message}" if label else message

    def __str__(self) -> str:
        return self.render()

    def __reduce__(self):
        # picklable whatever a subclass's constructor takes, so an error raised in another process (a Ray
        # worker) comes back as itself
        return (_restore, (type(self), self.args, self.__dict__))


class InputError(RankerError):
    """A file or value we were given is not what it should be."""


class ConfigError(RankerError):
    """The TOML config, a flag or an environment variable is wrong."""


class FetchError(RankerError):
    """The network source could not be read (after retries)."""


class ModelError(RankerError):
    """A model could not be found, prepared or loaded."""


class BackendError(RankerError):
    """A scoring backend failed as a whole (not one paper)."""


class MissingDependency(RankerError):
    """An optional package is not installed; says which extra brings it."""

    def __init__(self, package: str, extra: str, purpose: str = ""):
        hint = f"pip install 'ranker[{extra}]'" if extra else f"pip install {package}"
        what = f" (needed for {purpose})" if purpose else ""
        super().__init__(f"the package '{package}' is not installed{what}; install it with: {hint}")
        self.package = package
        self.extra = extra


def _restore(cls, args, state):
    e = cls.__new__(cls)
    Exception.__init__(e, *args)
    e.__dict__.update(state)
    return e


def where(path, line: int | None = None) -> str:
    return f"{path}:{line}" if line is not None else str(path)
