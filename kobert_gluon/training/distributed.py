"""Several processes fine-tuning one model: Horovod, or MXNet's parameter-server kvstore.

An :class:`Engine` hides which one runs. It has ``rank``, ``num_workers`` and ``is_root``, and

- ``make_trainer``: a ``gluon.Trainer`` whose ``allreduce_grads()`` leaves in every gradient the
  SUM over all workers, and whose ``update(n)`` divides by ``n``; train() passes the global
  number of sentences, so the step equals one process's step on the union of the batches;
- ``synchronize``: every rank holds rank 0's weights before the first step;
- ``allreduce_sum``: a small numpy array summed over the ranks (metrics, counts);
- ``barrier``.

Engines: ``none`` (one process, today's path), ``horovod`` (``horovod.mxnet``: Gloo on CPU,
NCCL on GPU, started by ``horovodrun``) and ``dist_sync`` (MXNet's kvstore with scheduler,
server and worker processes started with the ``DMLC_*`` variables, see launch.py).

Each rank reads its own part of every global batch (:func:`shard_batches`), and evaluation
gathers every rank's per-row outputs before the task's report is built (:func:`gather_rows`),
so metrics equal one process's.
"""
import contextlib
import logging
import os

import mxnet as mx
import numpy as np
from mxnet import gluon

from .. import arguments as _arg
from ..errors import ConfigError, DataError, DistributedError, MissingExtraError

logger = logging.getLogger(__name__)

ENGINES = ('none', 'horovod', 'dist_sync')
DMLC_VARIABLES = ('DMLC_ROLE', 'DMLC_PS_ROOT_URI', 'DMLC_PS_ROOT_PORT', 'DMLC_NUM_SERVER', 'DMLC_NUM_WORKER')
# Environment a launcher sets in every worker: a worker that forgot --distributed would
# otherwise train alone and race the others for the run directory.
LAUNCHED_MARKERS = {'dist_sync': 'DMLC_ROLE', 'horovod': 'HOROVOD_RANK'}


class Engine:
    """One process: what train() always did."""
    name = 'none'
    rank = 0
    num_workers = 1
    local_rank = 0

    @property
    def is_root(self):
        """Only the root logs, draws progress bars and writes files."""
        return self.rank == 0

    def devices(self, ctx):
        """The devices this rank trains on, of the ``ctx`` list asked for."""
        return ctx

    def make_trainer(self, params, optimizer, optimizer_params):
        return gluon.Trainer(params, optimizer, optimizer_params, update_on_kvstore=False)

    def synchronize(self, params, trainer):
        """Give every rank rank 0's weights; call once, before the first step."""

    def allreduce_sum(self, name, array):
        """``array`` summed over the ranks; ``name`` must be the same on every rank."""
        return np.array(array, dtype=np.float64)

    def barrier(self):
        """Return once every rank has called it."""

    def rank_seed(self, seed):
        """``seed`` on rank 0, another one on each other rank (dropout masks of their own)."""
        return seed + 7919 * self.rank

    def __repr__(self):
        return f'{type(self).__name__}(rank={self.rank}, num_workers={self.num_workers})'


class HorovodEngine(Engine):
    name = 'horovod'

    def __init__(self):
        try:
            import horovod.mxnet as hvd
        except ImportError as error:
            raise MissingExtraError('horovod', f'horovod with MXNet support ({error})') from error
        if LAUNCHED_MARKERS['horovod'] not in os.environ:
            raise DistributedError('--distributed horovod must run under horovodrun, e.g. '
                                   'kobert-gluon launch --engine horovod -n 2 -- kobert-gluon train ...')
        hvd.init()
        self.hvd = hvd
        self.rank, self.num_workers, self.local_rank = hvd.rank(), hvd.size(), hvd.local_rank()
        self._calls = 0

    def devices(self, ctx):
        # One device per process: DistributedTrainer reduces only the first device's gradients.
        return [mx.gpu(self.local_rank)] if ctx[0].device_type == 'gpu' else ctx[:1]

    def make_trainer(self, params, optimizer, optimizer_params):
        trainer = self.hvd.DistributedTrainer(params, optimizer, optimizer_params)
        # DistributedTrainer divides its scale by the number of workers so that update(the
        # per-worker batch) averages. train() passes update() the global batch instead (the
        # ranks' last batches may differ by a sentence), so the gradients stay plain sums.
        trainer._scale *= self.num_workers
        return trainer

    def synchronize(self, params, trainer):
        self.hvd.broadcast_parameters(params, root_rank=0)
        self.barrier()

    def allreduce_sum(self, name, array):
        self._calls += 1  # names must be unique among operations in flight, and equal across ranks
        total = self.hvd.allreduce(mx.nd.array(array, dtype='float64'), average=False,
                                   name=f'kobert_gluon.{name}.{self._calls}')
        return total.asnumpy()

    def barrier(self):
        self.allreduce_sum('barrier', np.zeros(1))


class KVStoreEngine(Engine):
    """MXNet's ``dist_sync`` kvstore; the servers sum the gradients, the workers update."""
    name = 'dist_sync'
    # The Trainer uses keys 0..number of parameters-1; metrics get keys far above them.
    FIRST_METRIC_KEY = 1 << 24

    def __init__(self, kvstore_type='dist_sync'):
        missing = [name for name in DMLC_VARIABLES if not os.environ.get(name)]
        if missing:
            raise DistributedError(f'--distributed {kvstore_type} needs {", ".join(missing)} set, as a launcher '
                                   f'does: kobert-gluon launch --engine {kvstore_type} -n 2 -- kobert-gluon train ...')
        if os.environ['DMLC_ROLE'] != 'worker':
            raise DistributedError(f"DMLC_ROLE={os.environ['DMLC_ROLE']}: only workers train; "
                                   'schedulers and servers run `python -c "import mxnet"`')
        self.kvstore = mx.kv.create(kvstore_type)
        self.rank, self.num_workers = self.kvstore.rank, self.kvstore.num_workers
        self._metric_keys = {}

    def make_trainer(self, params, optimizer, optimizer_params):
        return gluon.Trainer(params, optimizer, optimizer_params, kvstore=self.kvstore, update_on_kvstore=False)

    def synchronize(self, params, trainer):
        # The known pitfall: with update_on_kvstore=False the Trainer initialises the kvstore
        # lazily inside the first allreduce_grads(), where rank 0's weights are pushed and
        # pulled back by the other ranks while the first gradients are pushed too. A rank
        # whose pull is served after the servers summed the gradients (they keep the sum in
        # place of the weights) starts from gradients, not weights. Seen here: rank 1 pulled
        # zeros for the weights when the first push was zero gradients. So initialise the
        # kvstore now (there is no public call for it), wait until every rank holds the
        # pulled weights, and only then let anyone push.
        if not trainer._kv_initialized:
            trainer._init_kvstore()
        trainer._init_params()
        for param in params.values():
            param.data().wait_to_read()
        self.barrier()

    def allreduce_sum(self, name, array):
        # float32 on the wire: MXNet 1.9.1's server never initialises its multi_precision_ flag,
        # and in a process where that byte happens to be non-zero it keeps every non-float32
        # key as float32 and answers float64 sums rounded to float32 (seen in CI: each rank got
        # rank 0's weight sums back rounded). float32 keys are never converted. Counts stay
        # exact below 2**24 per key element.
        value = mx.nd.array(array, dtype='float32')
        key = self._metric_keys.get((name, value.shape))
        if key is None:
            key = self._metric_keys[name, value.shape] = self.FIRST_METRIC_KEY + len(self._metric_keys)
            self.kvstore.init(key, mx.nd.zeros_like(value))
        total = mx.nd.zeros_like(value)
        self.kvstore.pushpull(key, value, out=total)
        return total.asnumpy().astype(np.float64)

    def barrier(self):
        self.kvstore._barrier()


def synchronize_start(engine, model, trainer, max_len, ctx):
    """Give every rank rank 0's weights before the first step.

    The classifier head learns its input size on the first forward pass, so one pass on a
    dummy sentence comes first: a deferred parameter would be broadcast later, racing the
    first gradients. Every engine does it, so one process draws the same random numbers (the
    head's initial weights) as a distributed run.
    """
    _arg.instance('synchronize_start', 'engine', engine, Engine, 'an Engine (create_engine)')
    _arg.instance('synchronize_start', 'model', model, gluon.Block, 'a Gluon block')
    _arg.instance('synchronize_start', 'trainer', trainer, gluon.Trainer, 'a gluon.Trainer')
    _arg.integer('synchronize_start', 'max_len', max_len, minimum=1)
    token_ids = mx.nd.ones((1, max_len), ctx=ctx, dtype='int32')
    with mx.autograd.pause():
        model(token_ids, mx.nd.zeros_like(token_ids), mx.nd.array([max_len], ctx=ctx, dtype='int32'))
    engine.synchronize(model.collect_params(), trainer)


@contextlib.contextmanager
def root_first(engine):
    """The block runs on rank 0 first, then on the other ranks, which find what rank 0 wrote."""
    if not engine.is_root:
        engine.barrier()
    yield
    if engine.is_root:
        engine.barrier()


def create_engine(name):
    """The engine ``name`` (one of ENGINES); the distributed ones join their peers here."""
    _arg.one_of('create_engine', 'name', name, ENGINES)
    if name not in ENGINES:
        raise ConfigError(f'distributed={name!r}: expected one of {ENGINES}')
    if name == 'none':
        launched = [engine for engine, marker in LAUNCHED_MARKERS.items() if marker in os.environ]
        if launched:
            raise ConfigError(f'this process was launched as a {launched[0]} worker but distributed is none: '
                              f'add --distributed {launched[0]}')
        return Engine()
    engine = HorovodEngine() if name == 'horovod' else KVStoreEngine(name)
    logger.info('%s: rank %d of %d workers', name, engine.rank, engine.num_workers)
    if not engine.is_root:  # only rank 0 logs; warnings and errors still come from every rank
        logging.getLogger('kobert_gluon').setLevel(logging.WARNING)
    return engine


# ---------------------------------------------------------------------------- data

def shard_batches(num_samples, batch_size, rank=0, num_workers=1, shuffle=False):
    """This rank's batches of one epoch: ``(indices, global_size)`` for each step.

    The epoch's order is ``np.random.permutation`` from numpy's global generator (exactly the
    order of a shuffling gluon DataLoader; every rank must have seeded numpy alike), or the
    file order. It is cut into global batches of ``batch_size * num_workers`` sentences; rank r
    takes every ``num_workers``-th sentence of each, starting at r. So the shards are disjoint
    and cover the set, every rank has the same number of batches (no collective waits for a
    rank that ran out), and one process with ``batch_size * num_workers`` sees exactly the
    union of the ranks' batches. A last global batch too small to give each rank a sentence
    joins the one before it.
    """
    if num_samples < num_workers:
        raise DataError(f'{num_samples} sentences cannot be shared among {num_workers} workers')
    order = np.random.permutation(num_samples) if shuffle else np.arange(num_samples)
    global_size = batch_size * num_workers
    starts = list(range(0, num_samples, global_size))
    if num_samples - starts[-1] < num_workers:
        starts.pop()
    ends = starts[1:] + [num_samples]
    return [(order[start:end][rank::num_workers].tolist(), end - start) for start, end in zip(starts, ends)]


def global_batch_sizes(num_samples, batch_size, num_workers):
    """The sentences of all ranks together in each step of :func:`shard_batches`."""
    return [global_size for _, global_size in shard_batches(num_samples, batch_size, 0, num_workers)]


# ---------------------------------------------------------------------------- metrics

def gather_rows(engine, collected):
    """Every rank's rows of ``collected`` (a task's per-row arrays, :meth:`Task.collect`), rank 0's
    first: what one process collects over all of them, so the report built from it is one
    process's report. Each rank writes its rows into its own slice of a zero array of all rows,
    and the slices are summed (allreduce_sum carries float32 exactly: labels, ids below 2**24,
    scores and probabilities the model computed in float32)."""
    if engine.num_workers == 1 or not collected:
        return collected
    rows = len(next(iter(collected.values())))
    counts = np.zeros(engine.num_workers)
    counts[engine.rank] = rows
    counts = np.rint(engine.allreduce_sum('row_counts', counts)).astype(np.int64)
    start = int(counts[:engine.rank].sum())
    gathered = {}
    for name in sorted(collected):
        array = np.asarray(collected[name])
        whole = np.zeros((int(counts.sum()),) + array.shape[1:], dtype=np.float64)
        whole[start:start + rows] = array
        total = engine.allreduce_sum(f'rows.{name}', whole)
        gathered[name] = (total if array.dtype.kind == 'f' else np.rint(total)).astype(array.dtype)
    return gathered


def sum_over_ranks(engine, counts):
    """A dict of numbers (loss, correct, seen, ...) summed over the ranks; ints stay ints."""
    names = sorted(counts)
    totals = engine.allreduce_sum('counts', [counts[name] for name in names])
    return {name: type(counts[name])(total) for name, total in zip(names, totals)}


def check_same_weights(engine, params):
    """DistributedError unless every rank holds rank 0's weights (compared by per-parameter sums,
    rounded to float32: what every engine's allreduce_sum carries exactly)."""
    if engine.num_workers == 1:
        return
    names = sorted(params.keys())
    sums = np.array([params[name].data().asnumpy().astype(np.float64).sum() for name in names])
    sums = sums.astype(np.float32).astype(np.float64)
    root_sums = engine.allreduce_sum('weight_sums', sums if engine.is_root else np.zeros_like(sums))
    differing = [name for name, own, root in zip(names, sums, root_sums) if own != root]
    if differing:
        raise DistributedError(f'rank {engine.rank} holds other weights than rank 0 '
                               f'({len(differing)} parameters differ, first {differing[0]})')
