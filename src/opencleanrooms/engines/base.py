"""The engine contract: what the runner hands an engine, and what it gets back.

Engine-neutral on purpose (no DuckDB or Spark types): the policy layer produces SQL over internal relation names
(`t0`, `t1`, ...), the runner resolves each name to a `TableScan` (local files from the catalog plus the columns a
configured table allows), and an engine runs the SQL against exactly those relations under `Limits`, returning an
Arrow table. Failures are `EngineError`s whose `code` is a ProtectedQueryError code and whose `message` is safe to
show a member: no server path, no data value, no traceback.
"""

from __future__ import annotations

import contextlib
import re
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol, runtime_checkable

from opencleanrooms.errors import QueryFailure

if TYPE_CHECKING:
    import pyarrow

    from opencleanrooms.catalog import Scan

# ProtectedQueryError codes an engine may report.
MALFORMED_QUERY = "MALFORMED_QUERY"
INSUFFICIENT_COMPUTE = "INSUFFICIENT_COMPUTE"
INVALID_RESOURCE = "INVALID_RESOURCE"
INTERNAL_ERROR = "INTERNAL_ERROR"

_RELATION_NAME = re.compile(r"[a-z_][a-z0-9_]{0,62}")


@dataclass(frozen=True)
class TableScan:
    """One relation the SQL may read: `name` is a safe identifier, `columns` the only columns exposed (lower case,
    the configured table's allowed columns), with the types `catalog.read_schema` reports."""

    name: str
    scan: Scan
    columns: tuple[str, ...]
    label: str | None = None  # how messages name the table to a member (e.g. the configured table's name)
    # Every column of the data in file order, (lower-case name, Glue type), as `catalog.read_schema` reports them.
    # Engines that read the files with their own reader (Spark) need it to type columns as the catalog does.
    schema: tuple[tuple[str, str], ...] | None = None

    def __post_init__(self) -> None:
        if not _RELATION_NAME.fullmatch(self.name):
            raise ValueError(f"relation name {self.name!r} is not a safe identifier")
        if not self.columns:
            raise ValueError(f"relation {self.name} exposes no columns")
        if any(c != c.lower() for c in self.columns) or len(set(self.columns)) != len(self.columns):
            raise ValueError(f"relation {self.name}: columns must be distinct and lower case")

    @property
    def display(self) -> str:
        return self.label or self.name


@dataclass(frozen=True)
class Limits:
    """Per-query resource limits. Memory is the engine's working memory (DuckDB spills past it where it can)."""

    timeout_seconds: float = 300.0
    memory_limit_mb: int = 1024
    threads: int = 2
    # A query's computeConfiguration (`{"worker": {"type": "CR.1X", "number": 16}}`): hints for engines that can
    # size a query (Spark); engines that cannot ignore them.
    resource_hints: dict | None = None

    def __post_init__(self) -> None:
        if not self.timeout_seconds > 0:
            raise ValueError("timeout_seconds must be positive")
        if int(self.memory_limit_mb) < 16:
            raise ValueError("memory_limit_mb must be at least 16")
        if int(self.threads) < 1:
            raise ValueError("threads must be at least 1")


class CancelToken:
    """Cancellation shared between the runner (which calls `cancel()` from any thread) and an engine (which
    registers a callback that interrupts its work). Callbacks run once, on the cancelling thread, or at once when
    registered after cancellation."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._cancelled = False
        self._callbacks: dict[int, Callable[[], None]] = {}
        self._next = 0

    @property
    def cancelled(self) -> bool:
        return self._cancelled

    def cancel(self) -> None:
        with self._lock:
            if self._cancelled:
                return
            self._cancelled = True
            callbacks = list(self._callbacks.values())
            self._callbacks.clear()
        for callback in callbacks:
            try:
                callback()
            except Exception:  # noqa: BLE001 - one engine's failure must not stop the others' interrupts
                pass

    def register(self, callback: Callable[[], None]) -> Callable[[], None]:
        """Call `callback` on cancellation; returns a function that unregisters it."""
        with self._lock:
            if not self._cancelled:
                key = self._next
                self._next += 1
                self._callbacks[key] = callback

                def unregister() -> None:
                    with self._lock:
                        self._callbacks.pop(key, None)

                return unregister
        callback()
        return lambda: None


class EngineUnavailable(RuntimeError):
    """An engine cannot be used on this machine (a missing package); the message is one line saying what to
    install."""


class EngineError(QueryFailure):
    """A query that failed in the engine; each kind has its default code."""

    default_code = INTERNAL_ERROR

    def __init__(self, message: str, code: str | None = None, *, retryable: bool = False) -> None:
        super().__init__(message, code or self.default_code, retryable=retryable)


class QueryTimedOut(EngineError):
    """The query ran past `Limits.timeout_seconds`."""

    default_code = INSUFFICIENT_COMPUTE

    def __init__(self, message: str = "The query did not finish within its time limit", code: str | None = None,
                 *, retryable: bool = False) -> None:
        super().__init__(message, code, retryable=retryable)


class QueryCancelled(EngineError):
    """The query was cancelled through its CancelToken."""

    def __init__(self, message: str = "The query was cancelled", code: str | None = None, *,
                 retryable: bool = False) -> None:
        super().__init__(message, code, retryable=retryable)


@runtime_checkable
class Engine(Protocol):
    """Runs one SQL statement over the given relations. Implementations must be safe to call from several threads
    at once, and must expose nothing but `tables` to the SQL."""

    name: str

    def execute(self, sql: str, tables: Sequence[TableScan], limits: Limits,
                cancel: CancelToken) -> pyarrow.Table: ...

    def close(self) -> None: ...


def check_request(tables: Sequence[TableScan], cancel: CancelToken, closed: bool) -> None:
    """What every engine checks before it starts a query: it is open, the relation names are distinct, and the
    query is not already cancelled."""
    if closed:
        raise EngineError("The query engine has been shut down", INTERNAL_ERROR, retryable=True)
    names = [t.name for t in tables]
    if len(set(names)) != len(names):
        raise ValueError("relation names must be distinct")
    if cancel.cancelled:
        raise QueryCancelled()


class Interrupter:
    """The time limit and cancellation of one query: fires once (timeout or cancel), then calls `interrupt()`
    every `every` seconds until stopped, so that an interrupt that lands between two operations is not lost.
    Subclasses say what to interrupt (DuckDB connections, a Spark session) and how to release it in `stop()`."""

    every = 0.1
    thread_name = "engine-interrupt"

    def __init__(self) -> None:
        self.reason: str | None = None
        self._lock = threading.Lock()
        self._stopped = threading.Event()

    def interrupt(self) -> None:
        raise NotImplementedError

    def fire(self, reason: str) -> None:
        with self._lock:
            if self.reason is not None or self._stopped.is_set():
                return
            self.reason = reason
        threading.Thread(target=self._run, name=self.thread_name, daemon=True).start()

    def _run(self) -> None:
        while not self._stopped.is_set():
            self.interrupt()
            self._stopped.wait(self.every)

    def stop(self) -> None:
        self._stopped.set()

    def check(self, limits: Limits) -> None:
        if self.reason:
            raise self.error(limits)

    def error(self, limits: Limits) -> EngineError:
        if self.reason == "timeout":
            return QueryTimedOut(f"The query did not finish within its time limit of {limits.timeout_seconds:g} "
                                 f"seconds")
        return QueryCancelled()

    def failure(self, exc: BaseException, limits: Limits, map_error: Callable[[BaseException], EngineError]):
        """The EngineError to raise for `exc`: the timeout or cancellation if one fired (whatever the engine
        reported as it was interrupted), else `exc` itself if it is one, else `map_error(exc)`."""
        if self.reason:
            return self.error(limits)
        return exc if isinstance(exc, EngineError) else map_error(exc)

    @contextlib.contextmanager
    def armed(self, limits: Limits, cancel: CancelToken):
        """Fire on the time limit or on `cancel` while the block runs; then stop (releasing what was attached)."""
        timer = threading.Timer(limits.timeout_seconds, self.fire, args=("timeout",))
        timer.daemon = True
        unregister = cancel.register(lambda: self.fire("cancel"))
        timer.start()
        try:
            yield self
        finally:
            timer.cancel()
            unregister()
            self.stop()


def first_line(text: str, tables: Sequence[TableScan], pathish: re.Pattern) -> str:
    """An engine message fit to show a member: its first line, the tables' files named by the tables' labels,
    any other path (as `pathish` matches the engine's paths) replaced by `<path>`, at most 500 characters."""
    line = text.strip().splitlines()[0] if text.strip() else "The query is not valid"
    for table in tables:
        for path in table.scan.files:
            line = line.replace(path, table.display)
    return pathish.sub("<path>", line)[:500]
