"""Process-level CPU settings that must be in place before mxnet is first imported.

MXNet reads ``OMP_NUM_THREADS`` once, when its OpenMP runtime loads; unset, mxnet 1.9.1
runs its operators on one thread (1.8x slower here on 2 cores). The OpenMP wait policy is
read then too (see WAIT_POLICY). oneDNN reads
``DNNL_MAX_CPU_ISA`` once too, and Linux kills a process that touches AMX tiles without
first asking for them (arch_prctl ARCH_REQ_XCOMP_PERM), so both happen at import time.
Nothing here imports mxnet. A value the user already set always wins.
"""
import ctypes
import logging
import os
import sys

logger = logging.getLogger(__name__)

_ARCH_REQ_XCOMP_PERM = 0x1023
_XFEATURE_XTILEDATA = 18
_SYS_ARCH_PRCTL = 158  # x86_64

THREAD_VARIABLES = ('OMP_NUM_THREADS', 'MKL_NUM_THREADS', 'OPENBLAS_NUM_THREADS')
# mxnet 1.9.1 runs its operators on GNU OpenMP (libgomp). Its threads spin between operators
# by default; on a machine where other processes want the CPUs, the spinning threads take the
# CPUs from them and small operators wait for descheduled threads: gluonnlp's batchify ops ran
# 5x slower at 2 threads than at 1. Threads that sleep at once cost nothing measurable on large
# operators and keep small ones near the one-thread speed (benchmarks/threads.py, README).
WAIT_POLICY = {'OMP_WAIT_POLICY': 'PASSIVE'}
WAIT_VARIABLES = ('OMP_WAIT_POLICY', 'GOMP_SPINCOUNT')
# Thread pinning is left to the user (not set here). OMP_PROC_BIND=close OMP_PLACES=cores on the
# 2-core AVX-512 machine, shared with other jobs, halved KoBERT inference (fp32 8.1-8.4 -> 4.1-4.3,
# bf16 14.3-14.6 -> 6.3-6.5 samples/s, alternated processes): a pinned thread waits for its busy
# core instead of moving. KMP_AFFINITY is Intel OpenMP's; mxnet 1.9.1 uses GNU OpenMP, which ignores it.


def cpu_count() -> int:
    """CPUs this process may run on (respects taskset/cgroups affinity)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def cpu_flags() -> set:
    try:
        with open('/proc/cpuinfo', encoding='utf-8') as cpuinfo:
            for line in cpuinfo:
                if line.startswith('flags'):
                    return set(line.split(':', 1)[1].split())
    except OSError:
        pass
    return set()


def has_bf16() -> bool:
    """True when oneDNN can run bfloat16 natively (avx512_bf16 or AMX)."""
    flags = cpu_flags()
    return 'avx512_bf16' in flags or 'amx_bf16' in flags


def has_vnni() -> bool:
    """True when oneDNN has int8 dot-product instructions (avx512_vnni, avx_vnni or AMX-INT8)."""
    flags = cpu_flags()
    return bool(flags & {'avx512_vnni', 'avx_vnni', 'amx_int8'})


def request_amx_permission() -> bool:
    """Ask Linux for AMX tile state; True when granted (or already granted)."""
    if sys.platform != 'linux' or os.uname().machine != 'x86_64':
        return False
    if 'amx_tile' not in cpu_flags():
        return False
    libc = ctypes.CDLL(None, use_errno=True)
    return libc.syscall(_SYS_ARCH_PRCTL, _ARCH_REQ_XCOMP_PERM, _XFEATURE_XTILEDATA) == 0


def mxnet_already_loaded() -> bool:
    return 'mxnet' in sys.modules


def configure_cpu() -> dict:
    """Set thread and oneDNN defaults for this process; return what was decided."""
    decided = {}
    if mxnet_already_loaded():
        logger.debug('mxnet was imported before kobert_gluon; CPU defaults not applied')
        return decided
    threads = str(cpu_count())
    for name in THREAD_VARIABLES:
        if name not in os.environ:
            os.environ[name] = threads
            decided[name] = threads
    if not any(name in os.environ for name in WAIT_VARIABLES):  # a user's spin setting wins
        os.environ.update(WAIT_POLICY)
        decided.update(WAIT_POLICY)
    # oneDNN only uses AMX when told to, and a process only survives it after the permission
    # call. The permission is per process and lost on exec while the variable is inherited,
    # so ask whenever the CPU has AMX, also when a parent set the variable.
    if os.environ.get('KOBERT_GLUON_AMX', '1') != '0' and request_amx_permission():
        if 'DNNL_MAX_CPU_ISA' not in os.environ:
            os.environ['DNNL_MAX_CPU_ISA'] = 'AVX512_CORE_AMX'
            decided['DNNL_MAX_CPU_ISA'] = 'AVX512_CORE_AMX'
    return decided
