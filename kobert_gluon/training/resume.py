"""What a ``--resume`` may change, and the learning-rate schedule of an extended run.

A run is resumed with the number of epochs it was started with; ``--extend`` accepts a larger
one. The schedule is then recomputed for the new total so that the rate never jumps up: past
the warmup, linear decay continues from the rate of the last completed step down to 0 at the
new last step (a run that had finished its schedule, whose last rate was 0, continues from the
rate of its last step before that); a run still warming up finishes its warmup (same number of
steps) and then decays linearly to 0 at the new last step. The change is kept in the checkpoint's state
(``lr_schedule``), so a later plain --resume of the extended run follows the same schedule.
"""
import dataclasses
import logging
import os

from ..errors import CheckpointError
from ..fileio import read_json
from ..inference.model_dir import write_model_dir
from . import checkpoint
from .checkpoint import TRAIN_CONFIG_FILE
from .distributed import root_first
from .optim import learning_rate_at

logger = logging.getLogger(__name__)


def recorded_num_epochs(run_dir):
    """num_epochs in the run's train_config.json (None when there is none)."""
    path = os.path.join(run_dir, TRAIN_CONFIG_FILE)
    return read_json(path).get('num_epochs') if os.path.isfile(path) else None


def check_num_epochs(run_dir, recorded, config):
    """Refuse a --resume that changes num_epochs, unless --extend makes it larger."""
    if recorded is None or recorded == config.num_epochs:
        return
    if not config.extend:
        raise CheckpointError(
            f'--resume refused: {run_dir} was started with num_epochs={recorded}, now num_epochs='
            f'{config.num_epochs}; resume with --num_epochs {recorded}, or add --extend to train to '
            f'{config.num_epochs} epochs (the learning rate then decays from its current value to 0 over the new total)')
    if config.num_epochs < recorded:
        raise CheckpointError(f'--extend: num_epochs={config.num_epochs} is fewer than the {recorded} epochs '
                              f'{run_dir} was started with; --extend only makes a run longer')


def rate_at(step, num_train_steps, num_warmup_steps, peak, lr_schedule=None):
    """The learning rate of optimizer step ``step``: the recipe's linear warmup and decay
    (:func:`optim.learning_rate_at`), or an extended run's (``lr_schedule``, see the module)."""
    if not lr_schedule:
        return learning_rate_at(step, num_train_steps, num_warmup_steps, peak)
    decay_from = lr_schedule.get('decay_from')
    if decay_from and step > decay_from[0]:
        start, rate = decay_from
        return max(rate * (num_train_steps - step) / max(num_train_steps - start, 1), 0.0)
    return learning_rate_at(step, num_train_steps, lr_schedule['num_warmup_steps'], peak)


def extended_schedule(state, old_total, new_total, warmup_ratio, peak):
    """The ``lr_schedule`` of a run extended from ``old_total`` to ``new_total`` optimizer
    steps after ``state['step']`` of them."""
    previous = state.get('lr_schedule')
    warmup = previous['num_warmup_steps'] if previous else int(old_total * warmup_ratio)
    step = state['step']
    if step < warmup:
        return {'num_warmup_steps': warmup, 'decay_from': None, 'num_train_steps': new_total}
    rate = rate_at(min(step, old_total - 1), old_total, warmup, peak, previous)
    return {'num_warmup_steps': warmup, 'decay_from': [step, rate], 'num_train_steps': new_total}


def finished(run, test_report_file):
    """All epochs done (or stopped early) and the selected model tested: nothing left to do."""
    state = run.state
    done = state['stopped_early'] or (state['epoch'] >= run.config.num_epochs and not state['batches_done'])
    return bool(done) and os.path.isfile(os.path.join(run.run_dir, test_report_file))


def finished_result(run, test_report_file):
    """The selected model (best/) of a finished run, with its recorded test report."""
    best_dir = os.path.join(run.run_dir, 'best')
    run.model.load_parameters(os.path.join(best_dir, 'model.params'), ctx=run.ctx)
    report = read_json(os.path.join(run.run_dir, test_report_file))
    logger.info('%s is finished (%d epochs%s; the selected model of epoch %s has test accuracy %.4f): nothing '
                'to do. To train longer: --resume --num_epochs N --extend', run.run_dir, run.state['epoch'],
                ', stopped early' if run.state['stopped_early'] else '', report.get('selected_epoch'),
                report['accuracy'])
    classifier = run.classifier
    classifier.history, classifier.run_dir, classifier.test_report = run.state['history'], run.run_dir, report
    return classifier


# ---------------------------------------------------------------------------- a run's checkpoints

def save_checkpoint(directory, classifier, trainer, state, settings):
    """``last/``: a loadable model directory (``model/``) beside the optimizer state and settings."""
    def write_weights(tmp):  # not classifier.save: it would log the temporary path
        write_model_dir(os.path.join(tmp, 'model'), classifier.model, classifier.tokenizer_files,
                        classifier.config_dict())
    checkpoint.save_checkpoint(directory, trainer, state, write_weights, settings)


def load_checkpoint(directory, model, trainer, ctx, allow_pickle=False):
    def load_weights(checkpoint_dir):
        model.load_parameters(os.path.join(checkpoint_dir, 'model', 'model.params'), ctx=ctx)
    return checkpoint.load_checkpoint(directory, trainer, load_weights, allow_pickle=allow_pickle)


def new_state():
    return {'epoch': 0, 'step': 0, 'batches_done': 0, 'epoch_totals': None, 'best': None,
            'epochs_without_improvement': 0, 'stopped_early': None, 'lr_schedule': None,
            'history': {'steps': [], 'epochs': []}}


def settings_of(config):
    """The (resolved) config as written to train_config.json: what to rerun, not what to do to
    the directory."""
    return {**dataclasses.asdict(config), 'resume': False, 'overwrite': False, 'allow_pickle_resume': False,
            'extend': False}


def resume_state(run):
    """A new run's state, or the newest complete checkpoint's on --resume (its learning-rate
    schedule recomputed for a new total with --extend: :mod:`.resume`)."""
    if not run.config.resume:
        return new_state()
    with root_first(run.engine):  # rank 0 repairs an interrupted checkpoint; the others then read it
        checkpoint.restore_interrupted(run.run_dir, 'best')
        newest = checkpoint.newest_checkpoint(run.run_dir, 'last')
    if not newest:
        logger.warning('%s has no complete checkpoint yet: starting at epoch 1', run.run_dir)
        return new_state()
    state = load_checkpoint(newest, run.model, run.trainer, run.ctx, run.config.allow_pickle_resume)
    logger.info('resuming %s after epoch %d, batch %d (step %d)', newest, state['epoch'],
                state['batches_done'], state['step'])
    old_epochs = read_json(os.path.join(newest, checkpoint.TRAIN_CONFIG_FILE)).get('num_epochs')
    if run.config.extend and old_epochs and old_epochs != run.config.num_epochs:
        per_epoch = run.schedule['steps_per_epoch']
        state['lr_schedule'] = extended_schedule(state, per_epoch * old_epochs, per_epoch * run.config.num_epochs,
                                                        run.config.warmup_ratio, run.config.learning_rate)
        logger.info('--extend: %d -> %d epochs; the learning rate decays to 0 at step %d (%s)', old_epochs,
                    run.config.num_epochs, run.schedule['num_train_steps'], state['lr_schedule'])
    return state
