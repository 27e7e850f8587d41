"""Ctrl-C and SIGTERM during training: both raise KeyboardInterrupt in the main thread, never
inside an optimizer step (a step is finished first), so the run can save the state after its
last completed step and say how to continue (:class:`TrainingInterrupted`)."""
import contextlib
import logging
import shlex
import signal
import threading

logger = logging.getLogger(__name__)

SIGNALS = (signal.SIGINT, signal.SIGTERM)


class TrainingInterrupted(KeyboardInterrupt):
    """Training stopped by Ctrl-C or SIGTERM. ``saved``: what the run directory now holds to
    continue from; ``command``: the command that continues it; ``checkpoint_dir``: the newest
    complete checkpoint (None when there is none yet)."""

    def __init__(self, saved, command, checkpoint_dir=None):
        super().__init__(f'{saved}; to continue: {command}')
        self.saved, self.command, self.checkpoint_dir = saved, command, checkpoint_dir


def resume_command(run_dir):
    return f'kobert-gluon train --output_dir {shlex.quote(str(run_dir))} --resume'


class InterruptGuard:
    """While active (a context manager), SIGINT and SIGTERM raise KeyboardInterrupt, except
    inside :meth:`deferred` blocks, which finish first and raise it at their end."""

    def __init__(self):
        self.depth = 0
        self.pending = None
        self.previous = {}

    def _handle(self, signum, frame):
        if self.depth:
            self.pending = signum
            return
        raise KeyboardInterrupt(signal.Signals(signum).name)

    @contextlib.contextmanager
    def deferred(self):
        self.depth += 1
        try:
            yield
        finally:
            self.depth -= 1
        if not self.depth and self.pending is not None:
            signum, self.pending = self.pending, None
            raise KeyboardInterrupt(signal.Signals(signum).name)

    def __enter__(self):
        # Handlers can only be set from the main thread; elsewhere Python's own Ctrl-C stands.
        if threading.current_thread() is threading.main_thread():
            for signum in SIGNALS:
                self.previous[signum] = signal.signal(signum, self._handle)
        return self

    def __exit__(self, *exc_info):
        for signum, handler in self.previous.items():
            if handler is not None:  # None: a handler not set from Python, which cannot be put back
                signal.signal(signum, handler)
        self.previous.clear()
        return False
