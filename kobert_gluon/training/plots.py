"""Training plots (loss/lr, the metric per epoch, and the task's test figures: a confusion
matrix, per-label bars, a scatter of scores) rendered headless, Hangul included.

Figures are built with ``matplotlib.figure.Figure`` + ``FigureCanvasAgg`` rather than
pyplot, so nothing needs a display and no global figure registry is touched.

Korean label names need a font with Hangul glyphs; matplotlib's default DejaVu Sans has
none and draws boxes ("tofu"). The font is chosen in this order:

1. ``$KOBERT_GLUON_FONT`` (path to a .ttf/.otf),
2. NanumGothic bundled inside the ``koreanize-matplotlib`` package (located, not
   imported: importing it rewrites the global rcParams),
3. an installed system font named Nanum*/Noto Sans CJK*/Noto Sans KR*,
4. none: a single warning says how to fix it.
"""
import functools
import importlib.util
import logging
import os
import threading

import numpy as np
from matplotlib import font_manager, rc_context
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from ..fileio import atomic_path

logger = logging.getLogger(__name__)

FONT_ENV_VAR = 'KOBERT_GLUON_FONT'
SYSTEM_FONT_HINTS = ('nanum', 'noto sans cjk', 'noto sans kr')
# NanumGothic has no U+2212 MINUS SIGN; DejaVu Sans supplies it and any other glyph missing.
FALLBACK_FAMILY = 'DejaVu Sans'
# A syllable every Hangul font has; a font without it is not a Hangul font.
_HANGUL_PROBE = '한'
LOSS_LR_PNG = 'loss_lr.png'
ACCURACY_PNG = 'accuracy.png'
CONFUSION_PNG = 'confusion_matrix.png'
# rc_context mutates the process-wide rcParams for its duration; serialising our own
# renders keeps two plotting threads from seeing each other's settings.
_RENDER_LOCK = threading.Lock()


# ----------------------------------------------------------------------------- fonts

def has_glyphs(font_path, text):
    """True when the font file maps every character of ``text`` to a real glyph."""
    try:
        font = font_manager.get_font(font_path)
    except (OSError, RuntimeError, ValueError):
        return False
    return all(font.get_char_index(ord(ch)) != 0 for ch in text if not ch.isspace())


def _env_font():
    path = os.environ.get(FONT_ENV_VAR)
    if not path:
        return None
    if not os.path.isfile(path):
        logger.warning('%s=%r is not a file; ignoring it', FONT_ENV_VAR, path)
        return None
    if not has_glyphs(path, _HANGUL_PROBE):
        logger.warning('%s=%r has no Hangul glyphs; ignoring it', FONT_ENV_VAR, path)
        return None
    return path


def _bundled_font_dir():
    """The fonts/ folder of koreanize-matplotlib, found without importing the package."""
    try:
        spec = importlib.util.find_spec('koreanize_matplotlib')
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.submodule_search_locations:
        return None
    for location in spec.submodule_search_locations:
        fonts = os.path.join(location, 'fonts')
        if os.path.isdir(fonts):
            return fonts
    return None


def _bundled_font():
    fonts = _bundled_font_dir()
    if fonts is None:
        return None
    path = os.path.join(fonts, 'NanumGothic.ttf')
    return path if os.path.isfile(path) and has_glyphs(path, _HANGUL_PROBE) else None


def _system_font():
    """An installed Hangul font, preferring a regular weight so body text is not bold."""
    candidates = [entry for entry in font_manager.fontManager.ttflist
                  if any(hint in entry.name.lower() for hint in SYSTEM_FONT_HINTS)]
    candidates.sort(key=lambda entry: (entry.style != 'normal', abs(_weight(entry) - 400),
                                       entry.fname))
    for entry in candidates:
        if has_glyphs(entry.fname, _HANGUL_PROBE):
            return entry.fname
    return None


def _weight(entry):
    weight = entry.weight
    if isinstance(weight, str):
        return font_manager.weight_dict.get(weight, 400)
    return weight


def _register(path):
    """Make the font (and, for the bundled one, its bold face) findable by family name.

    Our files go first in matplotlib's list: with Debian's fonts-nanum installed, the same
    family name would otherwise resolve to the system's copy, not the file we chose."""
    paths = [path]
    bold = os.path.join(os.path.dirname(path), 'NanumGothicBold.ttf')
    if os.path.basename(path) == 'NanumGothic.ttf' and os.path.isfile(bold):
        paths.append(bold)
    manager = font_manager.fontManager
    for font in paths:
        manager.addfont(font)
    ours = [entry for entry in manager.ttflist if entry.fname in paths]
    manager.ttflist = ours + [entry for entry in manager.ttflist if entry.fname not in paths]


@functools.lru_cache(maxsize=None)
def hangul_font():
    """Path of the Hangul-capable font used for our figures, or None (warned once).

    Cached: call ``hangul_font.cache_clear()`` after changing ``$KOBERT_GLUON_FONT``.
    """
    for source, find in (('env', _env_font), ('koreanize-matplotlib', _bundled_font),
                         ('system', _system_font)):
        path = find()
        if path:
            _register(path)
            logger.debug('Hangul font from %s: %s', source, path)
            return path
    logger.warning(
        'No Hangul font found: Korean labels in plots may render as boxes. Fix: '
        '`pip install koreanize-matplotlib`, or `apt-get install fonts-nanum`, '
        'or set %s to a .ttf/.otf with Hangul glyphs.', FONT_ENV_VAR)
    return None


def font_family():
    """Font family list for rcParams: the Hangul font first, DejaVu Sans as fallback."""
    path = hangul_font()
    if path is None:
        return [FALLBACK_FAMILY]
    return [font_manager.FontProperties(fname=path).get_name(), FALLBACK_FAMILY]


def _font_rc():
    # unicode_minus off: the ASCII hyphen exists in every font, U+2212 often does not.
    return {'font.family': font_family(), 'axes.unicode_minus': False}


# ----------------------------------------------------------------------------- saving

def new_figure(width, height):
    """A pyplot-free figure with an Agg canvas attached."""
    figure = Figure(figsize=(width, height), dpi=100)
    FigureCanvasAgg(figure)
    return figure


def _save(figure, path):
    with atomic_path(path) as tmp:
        # The temp name ends in .tmp, so the format must be explicit.
        figure.savefig(tmp, format='png', dpi=100)
    return path


def _render(draw, path):
    """Build and save one figure with the Hangul font active only while we render."""
    with _RENDER_LOCK, rc_context(_font_rc()):
        figure = draw()
        return _save(figure, path)


# ----------------------------------------------------------------------------- plots

def _draw_loss_lr(steps):
    figure = new_figure(8, 6)
    loss_axes, lr_axes = figure.subplots(2, 1, sharex=True)
    x = [row['step'] for row in steps]
    loss_axes.plot(x, [row.get('loss', np.nan) for row in steps], color='tab:blue', linewidth=1)
    loss_axes.set_ylabel('손실 (loss)')
    loss_axes.set_title('학습 손실과 학습률 (training loss & learning rate)')
    loss_axes.grid(alpha=0.3)
    lr = [np.nan if row.get('lr') is None else row['lr'] for row in steps]
    lr_axes.plot(x, lr, color='tab:orange', linewidth=1)
    lr_axes.set_ylabel('학습률 (learning rate)')
    lr_axes.set_xlabel('스텝 (step)')
    lr_axes.ticklabel_format(axis='y', style='sci', scilimits=(-2, 3))
    lr_axes.grid(alpha=0.3)
    figure.tight_layout()
    return figure


def _split_metric(epoch, split, key):
    report = epoch.get(split) or {}
    value = report.get(key)
    return np.nan if value is None else value


# The Korean (and English) name of each running metric on the per-epoch plot's axis.
METRIC_NAMES = {'accuracy': '정확도 (accuracy)', 'mse': '평균제곱오차 (MSE)', 'exact_match': '완전 일치율 (exact match)',
                'token_accuracy': '토큰 정확도 (token accuracy)', 'piece_accuracy': '조각 정확도 (piece accuracy)'}
BOUNDED_METRICS = ('accuracy', 'exact_match', 'token_accuracy', 'piece_accuracy')  # in [0, 1]


def metric_png(metric):
    return ACCURACY_PNG if metric == 'accuracy' else f'{metric}.png'


def _draw_accuracy(epochs, test_point=None, metric='accuracy'):
    """Train and validation ``metric`` per epoch; ``test_point`` (epoch, value): the selected
    model's one test score, drawn as a single marker."""
    figure = new_figure(7, 4.5)
    axes = figure.subplots()
    x = [row['epoch'] for row in epochs]
    train = [row.get(f'train_{metric}', np.nan) for row in epochs]
    axes.plot(x, train, marker='o', label='학습 (train)')
    values = [_split_metric(row, 'valid', metric) for row in epochs]
    if not np.all(np.isnan(values)):
        axes.plot(x, values, marker='^', label='검증 (validation)')
    if test_point is not None and test_point[1] is not None:
        axes.plot([test_point[0]], [test_point[1]], marker='*', markersize=14, linestyle='none',
                  label='평가, 선택된 모델 (test, selected model)')
    name = METRIC_NAMES.get(metric, metric)
    axes.set_xlabel('에폭 (epoch)')
    axes.set_ylabel(name)
    axes.set_title(f'에폭별 {name.split(" (")[0]} ({metric.replace("_", " ")} per epoch)')
    if metric in BOUNDED_METRICS:
        axes.set_ylim(0, 1.02)
    # Whole epochs only, without crowding the axis on long runs.
    axes.xaxis.set_major_locator(MaxNLocator(integer=True))
    axes.grid(alpha=0.3)
    axes.legend()
    figure.tight_layout()
    return figure


MAX_FIGURE_INCHES = 24.0
MAX_ANNOTATED_CLASSES = 30  # cells with numbers, axes with label names


def row_normalised(matrix):
    """Each row as percentages of its total; an empty row stays all zero."""
    matrix = np.asarray(matrix, dtype=float)
    totals = matrix.sum(axis=1, keepdims=True)
    return np.divide(matrix * 100.0, totals, out=np.zeros_like(matrix), where=totals > 0)


def _axis_labels(label_names, size):
    if label_names is not None and len(label_names) == size:
        return [str(name) for name in label_names]
    logger.warning('Got %d label names for a %dx%d confusion matrix; using class indices',
                   0 if label_names is None else len(label_names), size, size)
    return [str(index) for index in range(size)]


def _draw_confusion(matrix, label_names, title, column_names=None):
    """``column_names``: the predicted side's names where they differ from the rows' (entity
    types: rows end with 'spurious', columns with 'missed')."""
    counts = np.asarray(matrix, dtype=int)
    percent = row_normalised(counts)
    size = counts.shape[0]
    labels = _axis_labels(label_names, size)
    # 0.9 inch a class, at most MAX_FIGURE_INCHES: 500 classes would be a 45,000-pixel square
    # (8 GB of pixels) with 250,000 texts, which is what got a 500-class run killed for memory.
    side = min(max(5.0, 0.9 * size + 2.5), MAX_FIGURE_INCHES)
    figure = new_figure(side + 1, side)
    axes = figure.subplots()
    image = axes.imshow(percent, cmap='Blues', vmin=0, vmax=100)
    colorbar = figure.colorbar(image, ax=axes, fraction=0.046, pad=0.04)
    colorbar.set_label('행 기준 비율 (row %)')
    if size <= MAX_ANNOTATED_CLASSES:
        _annotate_cells(axes, counts, percent)
        ticks = np.arange(size)
        axes.set_xticks(ticks)
        columns = labels if column_names is None else _axis_labels(column_names, size)
        axes.set_xticklabels(columns, rotation=45, ha='right')
        axes.set_yticks(ticks)
        axes.set_yticklabels(labels)
    else:
        logger.info('confusion matrix of %d classes: drawn without numbers and label names (over %d); the JSON '
                    'report holds every count', size, MAX_ANNOTATED_CLASSES)
    axes.set_xlabel('예측 (predicted)')
    axes.set_ylabel('정답 (true)')
    axes.set_title(title)
    figure.tight_layout()
    return figure


def _annotate_cells(axes, counts, percent):
    fontsize = 9 if counts.shape[0] <= 10 else 6
    for row in range(counts.shape[0]):
        for column in range(counts.shape[1]):
            # White on dark cells, black on light ones, so every number stays legible.
            color = 'white' if percent[row, column] > 50 else 'black'
            axes.text(column, row, '%d\n%.1f%%' % (counts[row, column], percent[row, column]),
                      ha='center', va='center', color=color, fontsize=fontsize)


def _draw_bars(values, labels, title, xlabel):
    """One horizontal bar per label (per-label or per-type F1), the value written beside it."""
    values = [0.0 if value is None else float(value) for value in values]
    figure = new_figure(7, min(max(3.0, 0.28 * len(values) + 1.5), 80.0))  # bounded: 500 labels fit in 8,000 px
    axes = figure.subplots()
    positions = np.arange(len(values))
    axes.barh(positions, values, color='tab:blue')
    axes.set_yticks(positions)
    axes.set_yticklabels([str(label) for label in labels], fontsize=9 if len(values) <= 20 else 7)
    axes.invert_yaxis()  # the first label on top
    for position, value in zip(positions, values):
        axes.text(min(value + 0.01, 0.98), position, f'{value:.2f}', va='center', fontsize=7)
    axes.set_xlim(0, 1.05)
    axes.set_xlabel(xlabel)
    axes.set_title(title)
    axes.grid(alpha=0.3, axis='x')
    figure.tight_layout()
    return figure


def _draw_scatter(x, y, title, xlabel, ylabel):
    """Predicted against gold scores, with the diagonal a perfect model would lie on."""
    figure = new_figure(6, 6)
    axes = figure.subplots()
    axes.scatter(x, y, s=8, alpha=0.4, color='tab:blue')
    if len(x):
        low, high = min(min(x), min(y)), max(max(x), max(y))
        axes.plot([low, high], [low, high], color='tab:orange', linewidth=1, label='y = x')
        axes.legend()
    axes.set_xlabel(xlabel)
    axes.set_ylabel(ylabel)
    axes.set_title(title)
    axes.grid(alpha=0.3)
    figure.tight_layout()
    return figure


CHARTS = {'confusion': lambda data: _draw_confusion(data['matrix'], data['labels'], data['title'],
                                                   data.get('columns')),
          'bars': lambda data: _draw_bars(data['values'], data['labels'], data['title'], data['xlabel']),
          'scatter': lambda data: _draw_scatter(data['x'], data['y'], data['title'], data['xlabel'], data['ylabel'])}


def plot_training(history, run_dir, running_metric='accuracy', figures=(), test_point=None):
    """Write loss_lr.png and the per-epoch plot of ``running_metric`` (accuracy.png for
    classification) into ``run_dir``, and the task's test ``figures`` (``[(file name, chart kind,
    data)]`` of :meth:`Task.figures`: 'confusion', 'bars' or 'scatter'); ``test_point`` (the
    selected epoch, its test value of the metric) is marked on the per-epoch plot.

    A plot whose data is missing (no steps, no epochs, an empty figure) is skipped.
    Returns the paths written.
    """
    os.makedirs(run_dir, exist_ok=True)
    steps = list(history.get('steps') or [])
    epochs = list(history.get('epochs') or [])
    written = []
    if steps:
        written.append(_render(lambda: _draw_loss_lr(steps), os.path.join(run_dir, LOSS_LR_PNG)))
    if epochs:
        written.append(_render(lambda: _draw_accuracy(epochs, test_point, running_metric),
                               os.path.join(run_dir, metric_png(running_metric))))
    for name, kind, data in figures:
        if data and any(len(value) for value in data.values() if isinstance(value, (list, tuple))):
            written.append(_render(lambda: CHARTS[kind](data), os.path.join(run_dir, name)))
    return written
