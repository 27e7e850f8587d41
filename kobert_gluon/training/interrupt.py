"""Ctrl-C and SIGTERM during training: both raise KeyboardInterrupt in the main thread, never
inside an optimizer step (a step is finished first), so the run can save the state after its
last completed step and say how to continue (:class:`TrainingInterrupted`)."""
import contextlib
import logging
import os
import shlex
import signal
import threading

from . import checkpoint

logger = logging.getLogger(__name__)

SIGNALS = (signal.SIGINT, signal.SIGTERM)


class TrainingInterrupted(KeyboardInterrupt):
    """Training stopped by Ctrl-C or SIGTERM. ``saved``: what the run directory now holds to
    continue from; ``command``: the command that continues it; ``checkpoint_dir``: the newest
    complete checkpoint (None when there is none yet)."""

    def __init__(self, saved, command, checkpoint_dir=None):
        super().__init__(f'{saved}; to continue: {command}')
        self.saved, self.command, self.checkpoint_dir = saved, command, checkpoint_dir


def resume_command(run_dir, command='train'):
    return f'kobert-gluon {command} --output_dir {shlex.quote(str(run_dir))} --resume'


class InterruptGuard:
    """While active (a context manager), SIGINT and SIGTERM raise KeyboardInterrupt, except
    inside :meth:`deferred` blocks, which finish first and raise it at their end (a second
    signal during such a block raises at once)."""

    def __init__(self):
        self.depth = 0
        self.pending = None
        self.previous = {}

    def _handle(self, signum, frame):
        if self.depth and self.pending is None:  # a second Ctrl-C does not wait
            self.pending = signum
            return
        self.pending = None
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


@contextlib.contextmanager
def saving_on_interrupt(run, save):
    """Around an epoch's training and validation: on Ctrl-C, save the state after the last
    completed optimizer step (``save(directory, classifier, trainer, state, settings)``) as a
    mid-epoch checkpoint, then raise :class:`TrainingInterrupted`."""
    try:
        yield
    except KeyboardInterrupt as interrupt:
        if isinstance(interrupt, TrainingInterrupted):
            raise
        raise interrupted(run, save_progress(run, save)) from interrupt


def save_progress(run, save):
    """The checkpoint of ``run.progress`` (None when no step completed since the newest
    checkpoint, or in a distributed run: saving there needs every worker)."""
    progress = run.progress
    if progress is None or not run.engine.is_root or run.engine.num_workers > 1:
        return None
    history = run.state['history']
    state = {**run.state, 'batches_done': progress['batches_done'], 'epoch_totals': progress['totals'],
             'history': {'steps': history['steps'][:progress['steps']], 'epochs': list(history['epochs'])}}
    directory = os.path.join(run.run_dir, 'last')
    save(directory, run.classifier, run.trainer, state, run.settings)
    where = describe(state, run.num_batches)
    logger.info('interrupted: saved a checkpoint in %s (%s)', directory, where)
    return f'saved a checkpoint in {directory} ({where})'


def describe(state, num_batches=None):
    if not state.get('batches_done'):
        return f"after epoch {state['epoch']}, step {state['step']}"
    of = f' of {num_batches}' if num_batches else ''
    return f"epoch {state['epoch'] + 1}, after batch {state['batches_done']}{of}, step {state['step']}"


def interrupted(run, saved=None):
    """The TrainingInterrupted of ``run``: what was saved, else the newest complete checkpoint."""
    last = os.path.join(run.run_dir, 'last')
    if saved is None:
        if os.path.isdir(last) and checkpoint.damage(last) is None:
            saved = f'the newest checkpoint is {last} ({describe(checkpoint.read_state(last))})'
        elif checkpoint.checkpoint_candidates(run.run_dir, 'last'):
            saved = f'--resume continues from the newest complete checkpoint in {run.run_dir}'
        else:
            saved = 'no checkpoint was saved yet: --resume starts again at epoch 1'
            last = None
    return TrainingInterrupted(saved, resume_command(run.run_dir), last)
