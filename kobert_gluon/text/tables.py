"""Reading a workbook (.xlsx through openpyxl, .xls through pandas) into the rows a TSV gives.

One rule per case, each logged:

- **which sheet**: ``sheet`` names it (hidden or not). Without it the visible sheets holding data
  are looked at: exactly one is read; several are refused, naming them (``--sheet NAME``). Hidden
  sheets are skipped without ``sheet``: what a spreadsheet shows is what is read.
- **merged cells**: every cell of a merged range holds the range's top-left value (a label
  merged over 100 rows is the label of each of them, not 1 label and 99 empty rows).
- **missing values**: only an empty cell is missing. ``NA``, ``N/A``, ``null``, ``nan`` and
  ``None`` typed into a cell are text, as in a TSV or CSV file.
- every cell becomes text as the CSV reader gives it (1.0 is ``1``); rows with no value at all
  are skipped, as blank lines of a TSV.
"""
import logging

from ..errors import DataError

logger = logging.getLogger(__name__)


def read_workbook(path, sheet=None):
    """(header, rows) of one sheet of ``path``: the raw cell values (None: an empty cell)."""
    if path.lower().endswith('.xls'):
        return _read_xls(path, sheet)
    import openpyxl
    try:
        # Not read_only: merged ranges are known only to a fully loaded sheet. data_only: the
        # values a formula last computed, as pandas reads them.
        book = openpyxl.load_workbook(path, data_only=True)
    except Exception as error:
        raise DataError(f'{path}: cannot read as an Excel file ({error})') from error
    named = {ws.title: ws for ws in book.worksheets}
    chosen = _choose(path, sheet, [(ws.title, ws.sheet_state != 'visible', _has_data(ws)) for ws in book.worksheets])
    return _table(path, chosen, _cells(path, named[chosen]))


def _has_data(ws):
    return any(value is not None for row in ws.iter_rows(values_only=True) for value in row)


def _choose(path, sheet, sheets):
    """The sheet to read of ``sheets``: (title, hidden, has data) each, in workbook order."""
    titles = [title for title, _, _ in sheets]
    if sheet is not None:
        if sheet not in titles:
            raise DataError(f'{path}: no sheet {sheet!r} (--sheet); the sheets are {titles}')
        return sheet
    hidden = [title for title, is_hidden, data in sheets if is_hidden and data]
    if hidden:
        logger.warning('%s: hidden sheet(s) %s skipped (pass --sheet NAME to read one)', path, hidden)
    full = [title for title, is_hidden, data in sheets if data and not is_hidden]
    if len(full) > 1:
        raise DataError(f'{path}: {len(full)} sheets hold data ({full}); name the one to read with --sheet '
                        '(sheet= in Python)')
    if not full:
        where = f'; the hidden sheet(s) {hidden} do: pass --sheet NAME' if hidden else ''
        raise DataError(f'{path}: no header row and no data (no visible sheet holds data{where})')
    if len(titles) > 1:
        logger.info('%s: reading sheet %r (the only visible sheet with data of %d)', path, full[0], len(titles))
    return full[0]


def _cells(path, ws):
    """The sheet's values, each merged range filled with its top-left value."""
    grid = [list(row) for row in ws.iter_rows(values_only=True)]
    filled = 0
    for merged in ws.merged_cells.ranges:
        value = ws.cell(merged.min_row, merged.min_col).value
        for row in range(merged.min_row - 1, min(merged.max_row, len(grid))):
            for col in range(merged.min_col - 1, min(merged.max_col, len(grid[row]))):
                if grid[row][col] is None:
                    grid[row][col] = value
                    filled += 1
    if filled:
        logger.info('%s: %d cells of %d merged ranges in sheet %r hold their range\'s top-left value', path,
                    filled, len(ws.merged_cells.ranges), ws.title)
    return grid


def _read_xls(path, sheet):
    import pandas as pd
    try:
        sheets = pd.read_excel(path, dtype=object, header=None, sheet_name=None, na_filter=False)
    except Exception as error:
        raise DataError(f'{path}: cannot read as an Excel file ({error})') from error
    # na_filter=False gives '' for an empty cell: None, as openpyxl's
    grids = {title: [[None if value == '' else value for value in row] for row in frame.itertuples(index=False)]
             for title, frame in sheets.items()}
    chosen = _choose(path, sheet, [(title, False, any(v is not None for row in grid for v in row))
                                   for title, grid in grids.items()])
    return _table(path, chosen, grids[chosen])


def _table(path, title, grid):
    rows = [row for row in grid if any(value is not None for value in row)]
    if not rows:
        raise DataError(f'{path}: no header row and no data (sheet {title!r} is empty)')
    # Formatting alone extends a sheet's columns: only columns holding a value are kept.
    width = max((col + 1 for row in rows for col, value in enumerate(row) if value is not None), default=0)
    rows = [(row + [None] * width)[:width] for row in rows]
    logger.debug('%s: sheet %r, %d data rows', path, title, len(rows) - 1)
    return rows[0], rows[1:]
