"""Held-out masked-LM scoring (kobert_gluon.training.mlm_eval), checked against MXNet's own loss
and against an identity: a model trained on lines scores them better than its untrained start."""
import json

import mxnet as mx
import numpy as np
import pandas as pd
import pytest

from kobert_gluon.models.config import BertConfig
from kobert_gluon.text.tokenizer import get_vocab
from kobert_gluon.training import pretrain
from kobert_gluon.training.config import PretrainConfig
from kobert_gluon.training.masking import BatchStream, word_start_table
from kobert_gluon.training.mlm_eval import add_batch, evaluate_mlm

TINY = {'num_layers': 1, 'units': 32, 'hidden_size': 64, 'num_heads': 2}


@pytest.fixture(scope='module')
def lines_file(shared_dir, tmp_path_factory):
    frame = pd.read_csv(shared_dir / 'data' / 'nsmc' / 'ratings_train_small.txt', sep='\t', quoting=3,
                        keep_default_na=False, dtype=str)
    path = tmp_path_factory.mktemp('heldout') / 'lines.txt'
    path.write_text('\n'.join(' '.join(t.split()) for t in frame['document'][:300] if t.strip()) + '\n',
                    encoding='utf-8')
    return path


def pretrained(lines_file, spiece, output_dir, num_steps):
    return pretrain.pretrain(PretrainConfig(
        corpus=str(lines_file), output_dir=str(output_dir), tokenizer=spiece, max_len=32, batch_size=16,
        num_steps=num_steps, learning_rate=2e-3, warmup_ratio=0.0, num_procs=0, whole_word_mask=True,
        log_interval=10, ctx='cpu', **TINY))


def test_loss_and_accuracy_equal_mxnets_softmax_ce_on_the_same_batch(lines_file, kobert_dir, tmp_path):
    spiece = str(kobert_dir / 'kobert_news_wiki_ko_cased-1087f8699e.spiece')
    params = pretrained(lines_file, spiece, tmp_path / 'start', 0)
    vocab = get_vocab(spiece)
    model = pretrain.build_pretraining_model(BertConfig(**json.loads((tmp_path / 'start' / 'pretrain.json')
                                                                      .read_text())['bert']), mx.cpu(), params)
    config = PretrainConfig(corpus=str(lines_file), tokenizer=spiece, max_len=32, batch_size=16, num_procs=0,
                            whole_word_mask=True)
    batch, _ = next(BatchStream(config, spiece, vocab, word_start_table(vocab))(
        {'epoch': 0, 'offset': 0, 'unit': 0, 'batch': 0}))
    totals = {'lines': 0, 'masked_pieces': 0, 'loss': 0.0, 'correct': 0}
    add_batch(totals, model, batch, mx.cpu())
    nd = {k: mx.nd.array(v, dtype=v.dtype) for k, v in batch.items()}
    _, _, _, logits = model(nd['token_ids'], nd['segment_ids'], nd['valid_length'], nd['masked_positions'])
    flat = logits.reshape((-1, logits.shape[-1]))
    weights = nd['masked_weights'].reshape((-1, 1))
    reference = mx.gluon.loss.SoftmaxCELoss()(flat, nd['masked_ids'].reshape((-1,)), weights).sum().asscalar()
    assert totals['masked_pieces'] == int(batch['masked_weights'].sum()) > 0
    assert totals['loss'] == pytest.approx(reference, rel=1e-4)
    predicted = flat.argmax(axis=1).asnumpy().astype(int)
    expected_correct = int(((predicted == batch['masked_ids'].reshape(-1)) & (batch['masked_weights'].reshape(-1) > 0)).sum())
    assert totals['correct'] == expected_correct


def test_training_lowers_the_held_out_loss_and_the_score_is_repeatable(lines_file, kobert_dir, tmp_path):
    spiece = str(kobert_dir / 'kobert_news_wiki_ko_cased-1087f8699e.spiece')
    start = pretrained(lines_file, spiece, tmp_path / 'start', 0)
    trained = pretrained(lines_file, spiece, tmp_path / 'trained', 60)
    before, again = evaluate_mlm(start, str(lines_file)), evaluate_mlm(start, str(lines_file))
    after = evaluate_mlm(trained, str(lines_file))
    assert before == again  # same masks, same numbers
    assert before['lines'] == after['lines'] == sum(1 for line in open(lines_file, encoding='utf-8') if line.strip())
    assert before['mlm_loss'] == pytest.approx(np.log(8002), rel=0.05)  # untrained: near-uniform over the vocab
    assert after['mlm_loss'] < before['mlm_loss'] - 1.0
