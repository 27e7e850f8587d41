"""Tests for kobert_gluon.training.plots: headless PNGs whose Korean labels are real glyphs, not boxes."""
import logging
import os
import sys
import warnings

import matplotlib
import numpy as np
import pytest
from matplotlib import font_manager
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.image import imread

from kobert_gluon.tasks import registry
from kobert_gluon.training import plots

LABELS = ['공포', '놀람', '분노', '슬픔', '중립', '행복', '혐오']
PNG_MAGIC = b'\x89PNG\r\n\x1a\n'
EXPECTED = ['loss_lr.png', 'accuracy.png', 'confusion_matrix.png']


def synthetic_history(n_epochs=3, steps_per_epoch=20, n_classes=len(LABELS), seed=0):
    """A run's history as train() keeps it: steps, and per epoch train and validation metrics
    (no test: the test set is scored once, on the selected model; see synthetic_test_report)."""
    rng = np.random.default_rng(seed)
    steps = [{'step': s, 'epoch': 1 + (s - 1) // steps_per_epoch,
              'loss': float(2.0 * np.exp(-s / 30) + 0.05 * rng.random()),
              'lr': 5e-5 * min(1.0, s / 10)}
             for s in range(1, n_epochs * steps_per_epoch + 1)]
    epochs = [{'epoch': e, 'train_accuracy': 0.4 + 0.15 * e, 'train_loss': 1.5 / e,
               'valid': {'accuracy': 0.35 + 0.15 * e, 'macro_f1': 0.3 + 0.15 * e}}
              for e in range(1, n_epochs + 1)]
    return {'steps': steps, 'epochs': epochs}


def synthetic_test_report(n_classes=len(LABELS), seed=0):
    """The selected model's test report, with a class absent from the test set."""
    rng = np.random.default_rng(seed)
    matrix = rng.integers(0, 5, size=(n_classes, n_classes)) + np.eye(n_classes, dtype=int) * 20
    matrix[-1] = 0  # a class absent from the test set: its row must not divide by zero
    return {'accuracy': 0.8, 'macro_f1': 0.75, 'precision': [0.5] * n_classes, 'recall': [0.5] * n_classes,
            'f1': [0.5] * n_classes, 'support': matrix.sum(axis=1).tolist(), 'confusion_matrix': matrix.tolist()}


def classifier_figures(label_names, selected_epoch=None):
    """plot_training's test arguments for a classifier's synthetic test report, as train() passes them."""
    report = synthetic_test_report()
    return {'figures': registry.get('classification').figures(report, None, label_names, selected_epoch),
            'test_point': (selected_epoch, report['accuracy']) if selected_epoch is not None else None}


@pytest.fixture
def fresh_font_cache():
    plots.hangul_font.cache_clear()
    yield
    plots.hangul_font.cache_clear()


def glyph_warnings(records):
    return [str(w.message) for w in records if 'missing from font' in str(w.message)]


def render_text(text, font_properties, size=(120, 60)):
    """Grey-scale pixels of ``text`` drawn alone on a small Agg canvas."""
    figure = Figure(figsize=(size[0] / 100, size[1] / 100), dpi=100)
    canvas = FigureCanvasAgg(figure)
    figure.text(0.5, 0.5, text, fontproperties=font_properties, fontsize=28,
                ha='center', va='center')
    canvas.draw()
    rgba = np.asarray(canvas.buffer_rgba(), dtype=float)
    return rgba[..., :3].mean(axis=2) / 255.0


# ------------------------------------------------------------------------ font choice

def test_hangul_font_covers_every_label_character():
    path = plots.hangul_font()
    assert path is not None, 'no Hangul font: pip install koreanize-matplotlib'
    font = font_manager.get_font(path)
    missing = [ch for label in LABELS for ch in label if font.get_char_index(ord(ch)) == 0]
    assert not missing


def test_default_font_is_bundled_nanum_without_importing_it(monkeypatch, fresh_font_cache):
    monkeypatch.delenv(plots.FONT_ENV_VAR, raising=False)
    already_imported = 'koreanize_matplotlib' in sys.modules
    path = plots.hangul_font()
    assert path.endswith(os.path.join('koreanize_matplotlib', 'fonts', 'NanumGothic.ttf'))
    assert plots.font_family()[0] == 'NanumGothic'
    if not already_imported:
        assert 'koreanize_matplotlib' not in sys.modules


def test_family_name_resolves_to_the_chosen_file():
    # Labels are styled by family name, so the name must lead back to our file.
    family = plots.font_family()
    found = font_manager.findfont(font_manager.FontProperties(family=family[0]),
                                  fallback_to_default=False)
    assert os.path.samefile(found, plots.hangul_font())


def test_env_var_font_wins(monkeypatch, fresh_font_cache):
    bundled = plots._bundled_font()
    monkeypatch.setenv(plots.FONT_ENV_VAR, bundled)
    monkeypatch.setattr(plots, '_bundled_font', lambda: None)
    assert plots.hangul_font() == bundled


def test_env_var_font_without_hangul_is_ignored(monkeypatch, fresh_font_cache, caplog):
    dejavu = font_manager.findfont('DejaVu Sans')
    monkeypatch.setenv(plots.FONT_ENV_VAR, dejavu)
    with caplog.at_level(logging.WARNING, logger=plots.__name__):
        path = plots.hangul_font()
    assert path != dejavu and path is not None
    assert 'no Hangul glyphs' in caplog.text


def test_no_font_warns_once_and_still_plots(monkeypatch, fresh_font_cache, caplog, tmp_path):
    for finder in ('_env_font', '_bundled_font', '_system_font'):
        monkeypatch.setattr(plots, finder, lambda: None)
    with caplog.at_level(logging.WARNING, logger=plots.__name__), warnings.catch_warnings():
        warnings.simplefilter('ignore')  # DejaVu draws boxes here, by design of this test
        assert plots.hangul_font() is None
        history = {'epochs': synthetic_history(n_epochs=1)['epochs']}
        paths = plots.plot_training(history, str(tmp_path), **classifier_figures(LABELS))
    font_warnings = [r for r in caplog.records if 'No Hangul font' in r.getMessage()]
    assert len(font_warnings) == 1
    assert 'koreanize-matplotlib' in font_warnings[0].getMessage()
    assert 'fonts-nanum' in font_warnings[0].getMessage()
    assert [os.path.basename(p) for p in paths] == EXPECTED[1:]


# ------------------------------------------------------------------------ tofu check

def test_hangul_renders_as_glyphs_not_boxes():
    ours = font_manager.FontProperties(fname=plots.hangul_font())
    dejavu = font_manager.FontProperties(family='DejaVu Sans')
    with warnings.catch_warnings(record=True) as records:
        warnings.simplefilter('always')
        ours_happy, ours_fear = render_text('행복', ours), render_text('공포', ours)
        assert not glyph_warnings(records)
        tofu_happy, tofu_fear = render_text('행복', dejavu), render_text('공포', dejavu)
    assert glyph_warnings(records), 'DejaVu Sans was expected to lack Hangul'
    # Both fonts put ink on the canvas ...
    assert (ours_happy < 0.5).sum() > 50 and (tofu_happy < 0.5).sum() > 50
    # ... but the real glyphs differ substantially from the boxes,
    assert np.abs(ours_happy - tofu_happy).mean() > 0.02
    # and distinct words look distinct, whereas boxes are all alike.
    assert np.abs(ours_happy - ours_fear).mean() > 0.02
    assert np.abs(tofu_happy - tofu_fear).mean() < 1e-6


# ------------------------------------------------------------------------ plot_training

def test_plot_training_writes_three_valid_pngs_without_missing_glyphs(tmp_path):
    rc_before = dict(matplotlib.rcParams)
    with warnings.catch_warnings(record=True) as records:
        warnings.simplefilter('always')
        paths = plots.plot_training(synthetic_history(), str(tmp_path), **classifier_figures(LABELS, selected_epoch=2))
    assert not glyph_warnings(records)
    assert [os.path.basename(p) for p in paths] == EXPECTED
    for path in paths:
        with open(path, 'rb') as handle:
            assert handle.read(8) == PNG_MAGIC
        image = imread(path)
        assert image.ndim == 3 and image.shape[0] > 100 and image.shape[1] > 100
        assert image[..., :3].std() > 0.01  # not a blank canvas
    # Atomic writes leave no temp files behind, and global rcParams are untouched.
    assert sorted(os.listdir(tmp_path)) == sorted(EXPECTED)
    assert dict(matplotlib.rcParams) == rc_before


def test_confusion_plot_uses_hangul_font_for_label_names():
    history = synthetic_history(n_epochs=2)
    figure_holder = {}

    def keep(figure, path):
        figure_holder['figure'] = figure
        return path

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(plots, '_save', keep)
        plots.plot_training({'epochs': history['epochs']}, '.', **classifier_figures(LABELS, selected_epoch=2))
        figure = figure_holder['figure']
        with matplotlib.rc_context(plots._font_rc()):
            figure.canvas.draw()
    axes = figure.axes[0]
    shown = [t.get_text() for t in axes.get_xticklabels()]
    assert shown == LABELS and [t.get_text() for t in axes.get_yticklabels()] == LABELS
    tick_font = font_manager.findfont(axes.get_xticklabels()[0].get_fontproperties())
    assert os.path.samefile(tick_font, plots.hangul_font())
    # Cells hold counts and row percentages; the empty last row stays at 0 %.
    cell_texts = [t.get_text() for t in axes.texts]
    assert len(cell_texts) == len(LABELS) ** 2
    assert cell_texts[-1] == '0\n0.0%'
    assert '2' in axes.get_title() and 'selected model' in axes.get_title()  # best/'s epoch, not the last


def test_row_normalised_handles_empty_rows():
    percent = plots.row_normalised([[1, 3], [0, 0]])
    np.testing.assert_allclose(percent, [[25.0, 75.0], [0.0, 0.0]])


def test_empty_epochs_only_loss_plot(tmp_path):
    history = synthetic_history(n_epochs=1)
    paths = plots.plot_training({'steps': history['steps'], 'epochs': []}, str(tmp_path))
    assert [os.path.basename(p) for p in paths] == ['loss_lr.png']


def test_empty_steps_and_missing_test_report(tmp_path):
    history = synthetic_history(n_epochs=2)
    paths = plots.plot_training({'steps': [], 'epochs': history['epochs']}, str(tmp_path))
    assert [os.path.basename(p) for p in paths] == ['accuracy.png']
    assert plots.plot_training({'steps': [], 'epochs': []}, str(tmp_path / 'empty')) == []


def test_label_count_mismatch_falls_back_to_indices(tmp_path, caplog):
    history = {'epochs': synthetic_history(n_epochs=1)['epochs']}
    with caplog.at_level(logging.WARNING, logger=plots.__name__):
        paths = plots.plot_training(history, str(tmp_path), **classifier_figures(LABELS[:3]))
    assert os.path.basename(paths[-1]) == 'confusion_matrix.png'
    assert 'label names' in caplog.text
