"""Errors users and operators should see, kept apart from bugs.

`Kap12Error` and its subclasses carry a message meant for the person running the bot; anything else
is a bug and is logged with its traceback.
"""


class Kap12Error(Exception):
    """A problem the operator or user can fix; the message says how."""


class ConfigError(Kap12Error):
    """A setting has a bad value."""


class DocumentError(Kap12Error):
    """A knowledge file cannot be read."""

    def __init__(self, path, problem: str):
        self.path = str(path)
        self.problem = problem
        super().__init__(f"{self.path}: {problem}")


class EmptyKnowledgeError(Kap12Error):
    """The knowledge folder holds no documents."""


class IndexMissingError(Kap12Error):
    """No usable index: run `kap12 index`."""


class EmbedderMismatchError(Kap12Error):
    """The index was built with another embedder."""


class EmbedderUnavailableError(Kap12Error):
    """The configured embedding model cannot be loaded."""


class FlowError(Kap12Error):
    """A flow file is invalid."""

    def __init__(self, path, step: str | None, problem: str):
        self.path = str(path)
        self.step = step
        self.problem = problem
        where = f"{self.path}" + (f", step '{step}'" if step else "")
        super().__init__(f"{where}: {problem}")
