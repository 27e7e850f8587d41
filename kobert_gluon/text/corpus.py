"""A plain-text pretraining corpus streamed from disk, sharded by rank, tokenized in worker processes.

The file is read line by line and never held whole: one sentence per line, or, for
next-sentence pairs, documents separated by blank lines. Units (lines, or documents) are
dealt to ranks round-robin: unit ``i`` belongs to rank ``i % num_workers``. A rank's units are
grouped into chunks; each chunk remembers the reader position it started at (byte offset and
unit index), so a run can restart at any chunk without reading what came before it.

Tokenizing runs in a pool of worker processes over whole chunks, in order, with a bounded
number of chunks in flight (``Pool.imap`` would read the whole file ahead into its queue).
"""
import collections
import dataclasses
import logging
import multiprocessing
import os
from typing import List, Union

import numpy as np

from ..errors import DataError

logger = logging.getLogger(__name__)

IN_FLIGHT_PER_PROCESS = 4  # chunks queued per worker: keeps workers busy, memory bounded


@dataclasses.dataclass
class Position:
    """Where the reader stands: a byte offset in the file and the index of the next unit."""
    offset: int = 0
    unit: int = 0


@dataclasses.dataclass
class Chunk:
    """Consecutive units of one rank; ``start`` re-reads exactly this chunk."""
    start: Position
    units: List[Union[str, List[str]]]


def check_corpus(path):
    if not os.path.isfile(path):
        raise DataError(f'{path}: no such corpus file')
    return path


def read_chunks(path, chunk_lines, rank=0, num_workers=1, documents=False, start=None):
    """Yield this rank's :class:`Chunk` s from ``start`` (a :class:`Position`) to the end of the file.

    A chunk holds ``chunk_lines`` lines, or whole documents adding up to at least that many
    sentence lines. Empty lines are no units (in document mode they end a document).
    """
    start = start or Position()
    units, chunk_start, lines_in_chunk = [], Position(start.offset, start.unit), 0
    for position, unit in _read_units(path, documents, start):
        if position.unit % num_workers == rank:
            units.append(unit)
            lines_in_chunk += len(unit) if documents else 1
        if lines_in_chunk >= chunk_lines:
            yield Chunk(chunk_start, units)
            units, lines_in_chunk = [], 0
            chunk_start = Position(position.next_offset, position.unit + 1)
    if units:
        yield Chunk(chunk_start, units)


@dataclasses.dataclass
class _UnitPosition:
    unit: int
    offset: int
    next_offset: int  # byte offset just after the unit


def _read_units(path, documents, start):
    """(position, unit) for every unit from ``start``: a line's text, or a document's lines."""
    offset, unit_index, document, document_offset = start.offset, start.unit, [], start.offset
    with open(path, 'rb') as source:
        source.seek(start.offset)
        for raw in source:
            line_offset, offset = offset, offset + len(raw)
            text = _decode(raw, path, line_offset)
            if not documents:
                if text:
                    yield _UnitPosition(unit_index, line_offset, offset), text
                unit_index += 1  # every physical line counts, so ranks split by line number
                continue
            if text:
                document.append(text)
            elif document:
                yield _UnitPosition(unit_index, document_offset, offset), document
                unit_index, document = unit_index + 1, []
            if not document:
                document_offset = offset
    if documents and document:
        yield _UnitPosition(unit_index, document_offset, offset), document


def _decode(raw, path, offset):
    try:
        return raw.decode('utf-8').strip()
    except UnicodeDecodeError as error:
        raise DataError(f'{path}: byte {offset + error.start}: not UTF-8 text ({error.reason})') from None


# ---------------------------------------------------------------------------- tokenizing

_worker_tokenizer = None


def _init_worker(tokenizer_path):
    global _worker_tokenizer
    from .tokenizer import get_bert_tokenizer, get_vocab
    _worker_tokenizer = get_bert_tokenizer(tokenizer_path, get_vocab(tokenizer_path))


def encode_units(units):
    """Token ids (no [CLS]/[SEP]) of each line, or of each line of each document."""
    vocab = _worker_tokenizer.vocab

    def encode(text):
        return np.asarray(vocab[_worker_tokenizer(text)], dtype=np.int32)
    return [encode(u) if isinstance(u, str) else [encode(line) for line in u] for u in units]


def tokenized_chunks(chunks, tokenizer_path, num_procs):
    """``(chunk, token ids)`` in order; ``num_procs`` worker processes (0: in this process)."""
    if num_procs == 0:
        _init_worker(tokenizer_path)
        for chunk in chunks:
            yield chunk, encode_units(chunk.units)
        return
    # fork: workers reuse the already imported modules and only ever run sentencepiece.
    context = multiprocessing.get_context('fork' if os.name == 'posix' else 'spawn')
    with context.Pool(num_procs, initializer=_init_worker, initargs=(tokenizer_path,)) as pool:
        pending = collections.deque()
        for chunk in chunks:
            pending.append((chunk, pool.apply_async(encode_units, (chunk.units,))))
            if len(pending) >= num_procs * IN_FLIGHT_PER_PROCESS:
                done, result = pending.popleft()
                yield done, result.get()
        while pending:
            done, result = pending.popleft()
            yield done, result.get()


def sample_lines(path, limit):
    """Up to ``limit`` non-empty lines from the start of the file (to train a tokenizer on)."""
    lines = []
    for _, unit in _read_units(path, False, Position()):
        lines.append(unit)
        if len(lines) >= limit:
            break
    return lines
