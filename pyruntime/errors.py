"""The exceptions that end a command with one clear line on stderr (and in --log) and exit 1."""


class RuntimeFailure(Exception):
    """A user-facing failure: its message is the whole explanation, no traceback is shown."""

    exit_code = 1  # `exec` fails with 255 (runc's code), so a caller tells it from the process's own
    errno: int | None = None  # the failed syscall's errno, when the message stands for one


def os_failure(step: str, e: OSError) -> RuntimeFailure:
    """One clear line for an OSError: the step, the path, the cause ("cannot create the state
    directory: /run/x/id: permission denied"), never a Python exception name."""
    cause = (e.strerror or str(e)).lower()
    path = f": {e.filename}" if e.filename is not None else ""
    return RuntimeFailure(f"{step}{path}: {cause}")


class ConfigError(RuntimeFailure):
    """config.json (or a process.json) is not acceptable; the message names the file and JSON path."""

    def __init__(self, file: str, path: str, cause: str) -> None:
        if not path.isprintable():  # a key with a newline (linux.sysctl, annotations...): still one line
            path = path.encode("unicode_escape").decode("ascii")
        super().__init__(f"{file}: {path}: {cause}" if path else f"{file}: {cause}")
        self.file, self.path, self.cause = file, path, cause


class NotFound(RuntimeFailure):
    """The container ID does not exist (podman matches the words "does not exist")."""

    def __init__(self, container_id: str) -> None:
        super().__init__(f"container {container_id!r} does not exist")
        self.container_id = container_id


class AlreadyExists(RuntimeFailure):
    """The container ID is taken under this --root."""

    def __init__(self, container_id: str) -> None:
        super().__init__(f"container {container_id!r} already exists")
        self.container_id = container_id
