"""A pretraining corpus streamed from disk, sharded by rank, tokenized in worker processes.

**What a corpus is.** One file, or several read one after another as one stream: a list of
paths (``['a.txt', 'b.txt.xz']``) or a comma-separated string (``'a.txt,b.txt.xz'``; a string
naming an existing path is that one path, commas and all). An entry that is a folder stands for
its corpus files, recursively, in sorted order of their path relative to the folder (compared
folder name by folder name, so ``AA/wiki_00`` < ``AA/wiki_01`` < ``AB/wiki_00``). In a folder,
hidden files and folders (name starting with ``.``) are skipped, and only files ending in
``.txt``, ``.xz``, ``.lzma``, ``.gz`` or ``.bz2`` (any case) count: a README, LICENSE or
``.json`` beside the text is left out. A file named explicitly is read whatever its name.
Files are not deduplicated: naming one twice reads it twice.

**Files.** UTF-8 text, one sentence per line, or, for next-sentence pairs, documents separated
by blank lines. ``.xz``/``.lzma``, ``.gz`` and ``.bz2`` files are decompressed while they are
read (never held whole); other names are read as plain text, except archive formats this
reader cannot read (``.zip``, ``.zst``, ``.7z``, ``.tar``...), which :func:`check_corpus`
refuses. The end of a file ends its last line and its last document: a document never spans two
files, and a file without a final newline loses nothing.

**Units, ranks, chunks, positions.** Units (lines, or documents) are numbered across the
files and dealt to ranks round-robin: unit ``i`` belongs to rank ``i % num_workers``. A rank's
units are grouped into chunks; each chunk remembers the :class:`Position` it starts at (file
index, byte offset in that file, unit index), so a run can restart at any chunk without reading
what came before it, in that file or in the files before it. For a compressed file the offset
counts decompressed bytes, and restarting there decompresses the file from its start up to the
offset (gzip, lzma and bz2 streams cannot seek otherwise): about a second per 50-100 MB of text
to skip, once per resume. A chunk that would start at the end of a file starts at the beginning
of the next one instead, so a resume never decompresses a file only to skip all of it.

**Over-long lines.** Lines are read at most :data:`MAX_PIECE_BYTES` bytes at a time, so memory
stays bounded for any line length (a 50 MB line without a newline included). A longer line is
cut into pieces of at most that many bytes, at a UTF-8 character boundary, and a warning names
the file and line (once per file). In line mode each piece is a unit of its own (every piece
counts in the unit numbering, as every physical line does); in document mode only a line's
first piece is kept as a sentence, as a document is held whole. Nothing of value is lost:
pretraining truncates each line (or sentence of a pair) to its first ``max_len`` tokens, and
one piece holds a great many more than that.

Tokenizing runs in a pool of worker processes over whole chunks, in order, with a bounded
number of chunks in flight (``Pool.imap`` would read the whole file ahead into its queue).
"""
import bz2
import collections
import dataclasses
import gzip
import hashlib
import logging
import lzma
import multiprocessing
import os
import zlib
from typing import List, Union

import numpy as np

from ..errors import DataError

logger = logging.getLogger(__name__)

IN_FLIGHT_PER_PROCESS = 4  # chunks queued per worker: keeps workers busy, memory bounded
MAX_PIECE_BYTES = 2 ** 20  # longest piece of a line read at once; longer lines are cut
COMPRESSED = {'.xz': lzma.open, '.lzma': lzma.open, '.gz': gzip.open, '.bz2': bz2.open}
FOLDER_SUFFIXES = ('.txt',) + tuple(COMPRESSED)  # the files a folder contributes
UNSUPPORTED = ('.zip', '.zst', '.zstd', '.7z', '.rar', '.lz4', '.br', '.tar', '.tgz', '.tbz2', '.txz')
_READ_ERRORS = (OSError, EOFError, lzma.LZMAError, zlib.error)  # corrupt or truncated files
_MD5_BLOCK = 2 ** 20
_warned_long_lines = set()  # files whose over-long lines were already reported


@dataclasses.dataclass
class Position:
    """Where the reader stands: a byte offset in file number ``file`` of the corpus (in its
    decompressed text, for a compressed file) and the index of the next unit, counted across
    files. ``file`` defaults to 0, so ``Position(**{'offset': o, 'unit': u})`` from a checkpoint of
    a single-file corpus still means what it meant."""
    offset: int = 0
    unit: int = 0
    file: int = 0


@dataclasses.dataclass
class Chunk:
    """Consecutive units of one rank; ``start`` re-reads exactly this chunk."""
    start: Position
    units: List[Union[str, List[str]]]


# ---------------------------------------------------------------------------- the files

def corpus_files(corpus):
    """The files of ``corpus`` (a path, comma-separated paths, or a list; folders expanded) in
    reading order. Only lists them: :func:`check_corpus` also checks that each can be read."""
    return [path for path, _ in _entries(corpus)]


def check_corpus(corpus):
    """The list of files of ``corpus`` (see :func:`corpus_files`), each checked: it exists, is a
    regular file, can be opened and, if compressed, starts as a valid stream of its kind.
    :class:`DataError` names the first file that fails (the first 4 KiB are read, no more)."""
    entries = _entries(corpus)
    if not entries:
        raise DataError(f'{corpus!r}: no corpus file given')
    for path, _ in entries:
        if not os.path.exists(path):
            raise DataError(f'{path}: no such corpus file')
        if not os.path.isfile(path):
            raise DataError(f'{path}: not a regular file')
        if _suffix(path) in UNSUPPORTED or path.lower().endswith(('.tar.gz', '.tar.bz2', '.tar.xz')):
            raise DataError(f'{path}: archives cannot be read as a corpus: give plain UTF-8 text, or text '
                            f'compressed with xz, gzip or bzip2 (.xz, .gz, .bz2)')
        with _open(path) as source:
            try:
                source.read(4096)
            except _READ_ERRORS as error:
                raise DataError(f'{path}: cannot be read{_kind(path)} ({error})') from None
    return [path for path, _ in entries]


def corpus_fingerprint(corpus):
    """What the run record keeps of the corpus, to tell later whether a corpus is the same one.

    ``{'file', 'md5', 'bytes', 'files'}``: ``files`` lists ``{'file', 'md5', 'bytes'}`` of each
    file as stored (compressed files: md5 and size of the compressed file; a name relative to its
    folder's parent for files found in a folder, else the base name); ``md5`` is the md5 of the
    one file of a single-file corpus, else the md5 of the lines ``'<md5> <bytes>\\n'`` of the
    files in reading order (so it changes when a file is added, removed, reordered or edited,
    not when one is renamed); ``bytes`` their total size; ``file`` the base names of the corpus
    entries as given, comma-separated. For one file, ``file``/``md5``/``bytes`` are what records
    held before corpora could be several files. md5s are computed streaming, 1 MiB at a time."""
    check_corpus(corpus)
    files = []
    for path, name in _entries(corpus):
        digest, size = _md5_and_size(path)
        files.append({'file': name, 'md5': digest, 'bytes': size})
    if len(files) == 1:
        combined = files[0]['md5']
    else:
        combined = hashlib.md5(''.join(f"{f['md5']} {f['bytes']}\n" for f in files).encode('ascii')).hexdigest()
    label = ','.join(os.path.basename(os.path.normpath(spec)) for spec in _specs(corpus))
    return {'file': label, 'md5': combined, 'bytes': sum(f['bytes'] for f in files), 'files': files}


def _specs(corpus):
    if corpus is None:
        return []
    if isinstance(corpus, (str, os.PathLike)):
        text = os.fspath(corpus)
        items = [text] if ',' not in text or os.path.exists(text) else text.split(',')
    else:
        items = [os.fspath(item) for item in corpus]
    return [item.strip() for item in items if item.strip()]


def _entries(corpus):
    """(path, name for the record) of every file, in reading order."""
    entries = []
    for spec in _specs(corpus):
        if not os.path.isdir(spec):
            entries.append((spec, os.path.basename(spec)))
            continue
        found = sorted(_folder_files(spec))
        if not found:
            raise DataError(f'{spec}: no corpus files in this folder (files ending in '
                            f'{", ".join(FOLDER_SUFFIXES)}; hidden ones are skipped)')
        base = os.path.basename(os.path.normpath(spec))
        entries += [(os.path.join(spec, *parts), '/'.join((base,) + parts)) for parts in found]
    return entries


def _folder_files(top):
    """Relative paths, as tuples of names, of the corpus files under ``top``."""
    def refuse(error):
        raise DataError(f'{error.filename}: cannot list this corpus folder ({error.strerror})')
    for folder, subfolders, names in os.walk(top, onerror=refuse):
        subfolders[:] = [name for name in subfolders if not name.startswith('.')]
        relative = os.path.relpath(folder, top)
        parts = () if relative == os.curdir else tuple(relative.split(os.sep))
        for name in names:
            if (not name.startswith('.') and name.lower().endswith(FOLDER_SUFFIXES)
                    and os.path.isfile(os.path.join(folder, name))):
                yield parts + (name,)


def _suffix(path):
    return os.path.splitext(path)[1].lower()


def _kind(path):
    suffix = _suffix(path)
    return f' as {suffix} compressed data' if suffix in COMPRESSED else ''


def _open(path):
    opener = COMPRESSED.get(_suffix(path), open)
    try:
        return opener(path, 'rb')
    except OSError as error:
        raise DataError(f'{path}: cannot open the corpus file ({error.strerror or error})') from None


def _md5_and_size(path):
    digest, size = hashlib.md5(), 0
    try:
        with open(path, 'rb') as source:
            for block in iter(lambda: source.read(_MD5_BLOCK), b''):
                digest.update(block)
                size += len(block)
    except OSError as error:
        raise DataError(f'{path}: cannot read the corpus file ({error.strerror or error})') from None
    return digest.hexdigest(), size


# ---------------------------------------------------------------------------- reading

def read_chunks(corpus, chunk_lines, rank=0, num_workers=1, documents=False, start=None):
    """Yield this rank's :class:`Chunk` s from ``start`` (a :class:`Position`) to the end of the corpus.

    A chunk holds ``chunk_lines`` lines, or whole documents adding up to at least that many
    sentence lines. Empty lines are no units (in document mode they end a document).
    """
    start = start or Position()
    units, chunk_start, lines_in_chunk = [], Position(start.offset, start.unit, start.file), 0
    for position, unit in _read_units(corpus, documents, start):
        if unit is None:  # the next file begins: an empty chunk may as well start there
            if not units:
                chunk_start = Position(0, position.unit, position.file)
            continue
        if position.unit % num_workers == rank:
            units.append(unit)
            lines_in_chunk += len(unit) if documents else 1
        if lines_in_chunk >= chunk_lines:
            yield Chunk(chunk_start, units)
            units, lines_in_chunk = [], 0
            chunk_start = Position(position.next_offset, position.unit + 1, position.file)
    if units:
        yield Chunk(chunk_start, units)


@dataclasses.dataclass
class _UnitPosition:
    unit: int
    offset: int
    next_offset: int  # byte offset just after the unit
    file: int = 0


def _read_units(corpus, documents, start):
    """(position, unit) for every unit from ``start``: a line's text, or a document's lines; and
    (position of the file's start, None) when a file after the first one read begins."""
    files = corpus_files(corpus)
    if not 0 <= start.file < len(files):
        raise DataError(f'{corpus}: the position to resume from is in file {start.file + 1}, but the '
                        f'corpus has {len(files)} (not the corpus the run started with?)')
    unit_index = start.unit
    for file_index in range(start.file, len(files)):
        path = files[file_index]
        offset = start.offset if file_index == start.file else 0
        if file_index != start.file:
            yield _UnitPosition(unit_index, 0, 0, file_index), None
        document, document_offset, at_line_start = [], offset, True
        for piece_offset, offset, text, ends_line in _pieces(path, offset):
            if not documents:
                if text:
                    yield _UnitPosition(unit_index, piece_offset, offset, file_index), text
                unit_index += 1  # every physical line (piece) counts, so ranks split by line number
                continue
            # Document positions are always at a line's start: after a blank line, or a file's start.
            line_start, at_line_start = at_line_start, ends_line
            if text and line_start:  # an over-long line gives its first piece only
                document.append(text)
            elif not text and line_start and ends_line and document:
                yield _UnitPosition(unit_index, document_offset, offset, file_index), document
                unit_index, document = unit_index + 1, []
            if not document:
                document_offset = offset
        if documents and document:  # a file's end ends its last document
            yield _UnitPosition(unit_index, document_offset, offset, file_index), document
            unit_index += 1


def _pieces(path, offset):
    """(offset, offset after, text, whether it ends a line) of each line from ``offset``, lines
    longer than MAX_PIECE_BYTES cut into pieces of at most that many bytes at character starts."""
    limit, line_number = MAX_PIECE_BYTES, 1 if offset == 0 else None
    with _open(path) as source:
        try:
            if offset:
                source.seek(offset)
            readline, carry = source.readline, b''
            while True:
                raw = carry + readline(limit - len(carry)) if carry else readline(limit)
                if not raw:
                    return
                carry, ends_line = b'', len(raw) < limit or raw[-1] == 10  # b'\n'
                if not ends_line:
                    cut = _character_boundary(raw)
                    raw, carry = raw[:cut], raw[cut:]
                    _warn_long_line(path, line_number, offset)
                elif line_number:
                    line_number += 1
                piece_offset, offset = offset, offset + len(raw)
                yield piece_offset, offset, _decode(raw, path, piece_offset), ends_line
        except _READ_ERRORS as error:
            raise DataError(f'{path}: near byte {offset}: cannot be read{_kind(path)} ({error})') from None


def _character_boundary(raw):
    """The length of ``raw`` without a UTF-8 character its end cuts in two."""
    end = start = len(raw)
    while start > max(0, end - 4):
        start -= 1
        if raw[start] & 0xC0 != 0x80:  # the last character's first byte
            break
    lead = raw[start]
    need = 2 if lead >> 5 == 0b110 else 3 if lead >> 4 == 0b1110 else 4 if lead >> 3 == 0b11110 else 1
    return end if start + need <= end or start == 0 else start


def _warn_long_line(path, line_number, offset):
    key = os.path.abspath(path)
    if key in _warned_long_lines:
        return
    _warned_long_lines.add(key)
    where = f'line {line_number}' if line_number else f'the line around byte {offset}'
    logger.warning('%s: %s is longer than %d bytes: cut into pieces of at most that size (lines mode: each '
                   'piece is a line; documents mode: the first piece is kept); further long lines of this '
                   'file are not reported', path, where, MAX_PIECE_BYTES)


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


def sample_lines(corpus, limit):
    """Up to ``limit`` non-empty lines (pieces of over-long ones) from the start of the corpus
    (to train a tokenizer on)."""
    lines = []
    for _, unit in _read_units(corpus, False, Position()):
        if unit is None:
            continue
        lines.append(unit)
        if len(lines) >= limit:
            break
    return lines
