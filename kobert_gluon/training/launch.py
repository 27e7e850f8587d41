"""Start a distributed run on this host and watch it: ``kobert-gluon launch``.

    kobert-gluon launch --engine dist_sync -n 2 -- kobert-gluon train --distributed dist_sync ...
    kobert-gluon launch --engine horovod -n 2 -- kobert-gluon train --distributed horovod ...

dist_sync: one scheduler, ``--servers`` servers (``python -c "import mxnet"``: importing mxnet
with DMLC_ROLE=server or scheduler runs that role) and ``-n`` workers running the command, all
bound to 127.0.0.1 with the ``DMLC_*`` variables. MXNet's own tools/launch.py does this too but
fails on Python >= 3.9 (``Thread.isAlive``). horovod: ``horovodrun -np N --gloo -H localhost:N``.

A worker (or any role) that fails or is killed ends the job: the others are stopped and the
error names the process, instead of the survivors waiting for it forever. Several hosts: start
the same roles by hand on each host, as the README's "Distributed fine-tuning" section shows.
This module imports only the standard library, so ``kobert-gluon --help`` stays fast.
"""
import logging
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time

from .. import arguments as _arg
from ..errors import ConfigError, DistributedError

logger = logging.getLogger(__name__)

LAUNCH_ENGINES = ('dist_sync', 'horovod')
LOCALHOST = '127.0.0.1'
POLL_SECONDS = 0.1
STOP_GRACE_SECONDS = 5
# After the last worker finished, the scheduler and servers get this long to shut down.
SERVICE_GRACE_SECONDS = 15


def launch(command, engine='dist_sync', num_workers=2, num_servers=1, port=None, timeout=None):
    """Run ``command`` as ``num_workers`` workers of ``engine``; DistributedError if any process fails."""
    _arg.strings('launch', 'command', command)
    _arg.text('launch', 'engine', engine)
    _arg.integer('launch', 'num_workers', num_workers, minimum=1)
    _arg.integer('launch', 'num_servers', num_servers, minimum=1)
    _arg.integer('launch', 'port', port, minimum=1, maximum=65535, optional=True)
    _arg.real('launch', 'timeout', timeout, 0, None, optional=True)
    if not command:
        raise ConfigError('launch: no command given; put it after --, e.g. -- kobert-gluon train ...')
    if engine not in LAUNCH_ENGINES:
        raise ConfigError(f'launch: engine={engine!r}: expected one of {LAUNCH_ENGINES}')
    if num_workers < 1 or num_servers < 1:
        raise ConfigError(f'launch: need at least one worker and one server (got -n {num_workers}, '
                          f'--servers {num_servers})')
    env = worker_threads_env(num_workers)
    if engine == 'horovod':
        workers = [('horovodrun', start(horovodrun_command(command, num_workers), env))]
        services = []
    else:
        port = port or free_port()
        services = [('scheduler', start(SERVICE_COMMAND, dmlc_env(env, 'scheduler', port, num_workers, num_servers)))]
        services += [(f'server {i}', start(SERVICE_COMMAND, dmlc_env(env, 'server', port, num_workers, num_servers)))
                     for i in range(num_servers)]
        workers = [(f'worker {i}', start(command, dmlc_env(env, 'worker', port, num_workers, num_servers)))
                   for i in range(num_workers)]
    logger.info('%s: %s', engine, ', '.join(f'{name} pid {process.pid}' for name, process in services + workers))
    supervise(workers, services, timeout)


SERVICE_COMMAND = [sys.executable, '-c', 'import mxnet']


def horovodrun_command(command, num_workers):
    # horovodrun sits beside the python that has horovod, which need not be on PATH.
    horovodrun = os.path.join(os.path.dirname(sys.executable), 'horovodrun')
    if not os.path.isfile(horovodrun):
        horovodrun = shutil.which('horovodrun')
    if not horovodrun:
        from ..errors import MissingExtraError
        raise MissingExtraError('horovod', 'horovodrun (horovod)')
    return [horovodrun, '-np', str(num_workers), '--gloo', '-H', f'localhost:{num_workers}',
            '--network-interfaces', 'lo', *command]


def worker_threads_env(num_workers):
    """The CPUs shared out among the workers, unless the user chose a thread count."""
    env = dict(os.environ)
    if 'OMP_NUM_THREADS' not in env:
        cpus = len(os.sched_getaffinity(0)) if hasattr(os, 'sched_getaffinity') else os.cpu_count() or 1
        env['OMP_NUM_THREADS'] = str(max(1, cpus // num_workers))
    return env


def dmlc_env(base, role, port, num_workers, num_servers):
    return {**base, 'DMLC_ROLE': role, 'DMLC_PS_ROOT_URI': LOCALHOST, 'DMLC_PS_ROOT_PORT': str(port),
            'DMLC_NODE_HOST': LOCALHOST, 'DMLC_NUM_WORKER': str(num_workers),
            'DMLC_NUM_SERVER': str(num_servers)}


def free_port():
    with socket.socket() as probe:
        probe.bind((LOCALHOST, 0))
        return probe.getsockname()[1]


def start(command, env):
    # A session of its own, so stopping a role stops whatever it started too.
    try:
        return subprocess.Popen(command, env=env, start_new_session=True)
    except OSError as error:
        raise DistributedError(f'launch: cannot start {command[0]}: {error}') from error


def supervise(workers, services, timeout=None):
    """Wait for the workers; the first failing process stops every other one."""
    deadline = None if timeout is None else time.monotonic() + timeout
    everyone = workers + services
    previous = None
    if threading.current_thread() is threading.main_thread():  # a SIGTERM must stop the roles too
        previous = signal.signal(signal.SIGTERM, raise_terminated)
    try:
        while any(process.poll() is None for _, process in workers):
            for name, process in everyone:
                code = process.poll()
                if code:
                    stop(everyone)
                    raise DistributedError(f'{name} (pid {process.pid}) {describe_exit(code)}; '
                                           f'stopped the other {len(everyone) - 1} processes')
            if deadline is not None and time.monotonic() > deadline:
                stop(everyone)
                raise DistributedError(f'launch: still running after --timeout {timeout:g} s; stopped every process')
            time.sleep(POLL_SECONDS)
        for name, process in workers:
            if process.returncode != 0:
                stop(everyone)
                raise DistributedError(f'{name} (pid {process.pid}) {describe_exit(process.returncode)}; '
                                       f'stopped the other {len(everyone) - 1} processes')
        wait_for_services(services)
    except BaseException:  # Ctrl-C and SIGTERM included: never leave roles behind
        stop(everyone)
        raise
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)


def raise_terminated(signum, frame):
    raise DistributedError('launch: terminated (SIGTERM); stopped every process')


def wait_for_services(services):
    """Scheduler and servers end by themselves once the workers are done; stop stragglers."""
    deadline = time.monotonic() + SERVICE_GRACE_SECONDS
    while any(process.poll() is None for _, process in services) and time.monotonic() < deadline:
        time.sleep(POLL_SECONDS)
    lingering = [name for name, process in services if process.poll() is None]
    if lingering:
        logger.warning('%s still running %d s after the workers finished; stopped', ', '.join(lingering),
                       SERVICE_GRACE_SECONDS)
        stop(services)


def stop(processes):
    """SIGTERM each process group, then SIGKILL what is left after a grace period."""
    running = [process for _, process in processes if process.poll() is None]
    for process in running:
        signal_group(process, signal.SIGTERM)
    deadline = time.monotonic() + STOP_GRACE_SECONDS
    for process in running:
        try:
            process.wait(max(deadline - time.monotonic(), 0.01))
        except subprocess.TimeoutExpired:
            signal_group(process, signal.SIGKILL)
            process.wait()


def signal_group(process, signum):
    try:
        os.killpg(process.pid, signum)
    except ProcessLookupError:
        pass


def describe_exit(code):
    if code < 0:
        try:
            return f'was killed by {signal.Signals(-code).name}'
        except ValueError:
            return f'was killed by signal {-code}'
    return f'exited with status {code}'
