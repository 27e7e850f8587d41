"""Dynamic batching for ``kobert-gluon serve``, with no web framework in it.

Requests that arrive within ``max_wait_ms`` of each other are merged into one forward pass of
at most ``max_batch`` sentences by :class:`Batcher`, whose one thread is the only one that ever
calls the model: MXNet's engine and a hybridized block are not re-entered from two threads.
:class:`Limits` holds those two settings and what one request may ask.
"""
import collections
import concurrent.futures
import dataclasses
import logging
import queue
import threading
import time

from ..errors import ConfigError

logger = logging.getLogger(__name__)


@dataclasses.dataclass
class Limits:
    """What one request may ask, and how requests are merged into forward passes."""
    max_batch: int = 64
    max_wait_ms: float = 5.0
    batching: bool = True
    max_texts: int = 256
    max_body_bytes: int = 1 << 20

    def __post_init__(self):
        for name in ('max_batch', 'max_texts', 'max_body_bytes'):
            if getattr(self, name) < 1:
                raise ConfigError(f'--{name} {getattr(self, name)}: must be at least 1')
        if self.max_wait_ms < 0:
            raise ConfigError(f'--max_wait_ms {self.max_wait_ms}: must not be negative')


Job = collections.namedtuple('Job', 'texts future arrived')
STOP = object()


class Batcher:
    """Runs ``classifier.predict_records`` in one thread on batches merged from many requests.

    A batch starts with the oldest waiting request and takes the next ones while they fit in
    ``max_batch`` texts and arrived within ``max_wait_ms`` of it (requests queued while the
    model was busy join at once). One request larger than ``max_batch`` runs alone, split into
    forward passes of ``max_batch``. With ``batching=False`` each request is its own batch.
    """

    def __init__(self, classifier, limits):
        self.classifier = classifier
        self.limits = limits
        self.batches = 0
        self.sentences = 0
        self._jobs = queue.Queue()
        self._thread = threading.Thread(target=self._work, name='kobert-gluon-model', daemon=True)

    def start(self):
        self._thread.start()

    def stop(self):
        """Finish the batches already queued, then end the thread."""
        self._jobs.put(STOP)
        self._thread.join()

    def submit(self, texts):
        """A concurrent.futures.Future of ``texts``' records, in order; safe from any thread."""
        future = concurrent.futures.Future()
        self._jobs.put(Job(list(texts), future, time.monotonic()))
        return future

    def _work(self):
        waiting = None
        while True:
            first = waiting or self._jobs.get()
            if first is STOP:
                return
            jobs, waiting = self._collect(first) if self.limits.batching else ([first], None)
            self._run(jobs)

    def _collect(self, first):
        """``(jobs of one batch, the job that did not fit or None)``."""
        jobs, size = [first], len(first.texts)
        deadline = first.arrived + self.limits.max_wait_ms / 1000
        while size < self.limits.max_batch:
            remaining = deadline - time.monotonic()
            try:
                job = self._jobs.get(timeout=remaining) if remaining > 0 else self._jobs.get_nowait()
            except queue.Empty:
                break
            if job is STOP or size + len(job.texts) > self.limits.max_batch:
                return jobs, job
            jobs.append(job)
            size += len(job.texts)
        return jobs, None

    def _run(self, jobs):
        jobs = [job for job in jobs if job.future.set_running_or_notify_cancel()]  # clients that left
        texts = [text for job in jobs for text in job.texts]
        if not texts:
            return
        try:
            records = self.classifier.predict_records(texts, self.limits.max_batch)
        except Exception as error:  # a failed batch fails its requests, not the server
            logger.exception('batch of %d texts failed', len(texts))
            for job in jobs:
                job.future.set_exception(error)
            return
        self.batches += 1
        self.sentences += len(texts)
        start = 0
        for job in jobs:
            job.future.set_result(records[start:start + len(job.texts)])
            start += len(job.texts)
