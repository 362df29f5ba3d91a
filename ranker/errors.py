"""Error kinds. The CLI turns any RankerError into one line on stderr."""
from __future__ import annotations


class RankerError(Exception):
    """Something the user can fix: bad input, a missing model, a network outage."""

    def __init__(self, message: str, *, where: str | None = None):
        self.message = message
        self.where = where
        super().__init__(f"{where}: {message}" if where else message)

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
