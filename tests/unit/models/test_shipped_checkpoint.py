"""The pretrained BERT shipped in the package (kobert_gluon/resources/pretrained/): it loads, fits
the bert_12_768_12 layout, matches the md5s its record names, is small, carries its licences, and
the demo and --bert small runs start from it (--init_from none does not)."""
import json
import logging
import os

import mxnet as mx
import numpy as np
import pytest

import kobert_gluon as kg
from kobert_gluon.models.bert import build_bert
from kobert_gluon.models.config import BertConfig
from kobert_gluon.models.params import check_bert_layout
from kobert_gluon.models.pretrained import fine_tuning_start, read_record, record_tokenizer_path, shipped_params
from kobert_gluon.training.config import TrainConfig
from kobert_gluon.training.finetune import train

MAX_BYTES = 12 * 1024 * 1024


@pytest.fixture
def packaged(monkeypatch):
    monkeypatch.delenv('KOBERT_GLUON_NO_PACKAGED')  # conftest turns the packaged files off


def test_shipped_checkpoint_loads_fits_and_matches_its_record():
    path = shipped_params()
    record = read_record(path)  # checks the md5 of bert.params and of its tokenizer against pretrain.json
    assert record['format'] == 'kobert_gluon.pretrained_bert'
    assert os.path.getsize(path) <= MAX_BYTES
    config = BertConfig(**record['bert'])
    bert = build_bert(config, use_pooler=True, use_decoder=True, use_classifier=True)
    bert.initialize(ctx=mx.cpu())
    check_bert_layout(bert, path)
    saved = mx.nd.load(path)
    assert {array.dtype for array in saved.values()} == {np.float16}  # stored as float16, loaded as float32
    tokenizer = record_tokenizer_path(path, record)
    assert len(kg.get_vocab(tokenizer)) == config.vocab_size == 8002
    for key in ('command', 'corpus', 'steps', 'final_mlm_loss', 'heldout', 'history'):
        assert record[key], key
    assert 0 < record['heldout']['masked_accuracy'] < 1 and record['heldout']['lines'] > 1000
    notice = os.path.join(os.path.dirname(path), 'NOTICE')
    assert 'CC BY-SA 4.0' in open(notice, encoding='utf-8').read()


def test_demo_and_small_runs_start_from_it_and_init_from_none_does_not(packaged, tmp_path, caplog):
    caplog.set_level(logging.INFO, logger='kobert_gluon')
    assert fine_tuning_start(None, shipped=True)[0] == shipped_params()
    demo = train(TrainConfig(num_epochs=1, output_dir=str(tmp_path / 'demo'), log_interval=1000))
    assert 'the pretrained checkpoint shipped in the package' in caplog.text
    assert demo.bert_config == BertConfig(**read_record(shipped_params())['bert'])
    caplog.clear()
    scratch = train(TrainConfig(num_epochs=1, init_from='none', output_dir=str(tmp_path / 'none'), log_interval=1000))
    assert 'random weights (--init_from none' in caplog.text
    assert scratch.bert_config == BertConfig.small(vocab_size=8002)  # the small size, not the checkpoint's
    shipped = mx.nd.load(shipped_params())['word_embed.0.weight'].astype('float32').asnumpy()
    assert demo.bert_config.units == shipped.shape[1] != scratch.bert_config.units
    with open(tmp_path / 'demo' / 'train_config.json', encoding='utf-8') as source:
        assert json.load(source)['bert'] == 'small'
