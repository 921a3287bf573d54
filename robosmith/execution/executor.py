"""The executor interface: how the agent loop gets candidates trained, wherever they run.

An executor trains every candidate folder it is given (each holds a job.json written by the loop) that has no
result.json yet, and leaves a result.json in each: "ok" with its figures, or how it failed. Folders that
already have one (finished before a kill) are skipped, so a resumed loop never trains them again. The loop
reads the folders afterwards; nothing comes back through the call itself.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Protocol

OnDone = Callable[[Path, dict], None]  # called with a candidate folder and its result.json, as each finishes


class Executor(Protocol):
    name: str

    def run(self, folders: list[Path], on_done: OnDone | None = None) -> None: ...


@contextlib.contextmanager
def every(period_s: float, fn: Callable[[], None]) -> Iterator[None]:
    """Call `fn` every `period_s` seconds from a background thread while the block runs. What `fn` does is a
    convenience (progress shown or sent): its errors are skipped and it is tried again next time."""
    stop = threading.Event()

    def loop() -> None:
        while not stop.wait(period_s):
            with contextlib.suppress(Exception):
                fn()

    thread = threading.Thread(target=loop, daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join()
