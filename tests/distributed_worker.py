"""A few fine-tuning steps of a tiny BERT classifier through an Engine; tests/test_distributed.py
runs it as each worker (``python tests/distributed_worker.py ENGINE OUT_DIR [yes]``) and in-process as
the single-process reference.

Every rank starts from weights of its own (seeded with its rank), so only Engine.synchronize
can make them equal: the dist_sync pitfall (rank 0's weights arriving after the first gradient)
would show as weights that differ from the reference.
"""
import json
import os
import sys

import mxnet as mx
import numpy as np
from mxnet import autograd, gluon

from kobert_gluon.training.distributed import check_same_weights, create_engine, gather_rows, shard_batches
from kobert_gluon.inference.metrics import classification_report
from kobert_gluon.models.config import BertConfig
from kobert_gluon.models.heads import build_classifier
from kobert_gluon.training.optim import optimizer_step

TINY = BertConfig.small(num_layers=1, units=32, hidden_size=64, num_heads=2, max_length=16, vocab_size=60,
                         dropout=0.0)
NUM_CLASSES = 3
NUM_TRAIN, NUM_TEST, SEQ_LEN = 52, 23, 12   # 52 = 3 global batches of 16 + 4 (>= 2 workers)
BATCH_SIZE, NUM_EPOCHS = 8, 2
INIT_SEED = 100
# Adam turns gradients that are zero but for rounding (the attention key bias) into whole
# steps; a larger epsilon than KoBERT's 1e-9 keeps summation order from mattering.
OPTIMIZER_PARAMS = {'learning_rate': 1e-3, 'epsilon': 1e-6, 'wd': 0.01}


def make_data(num_samples, seed):
    rng = np.random.RandomState(seed)
    valid_length = rng.randint(2, SEQ_LEN + 1, num_samples)
    token_ids = rng.randint(5, TINY.vocab_size, (num_samples, SEQ_LEN))
    token_ids[np.arange(SEQ_LEN) >= valid_length[:, None]] = 1  # padding
    labels = (token_ids[:, 0] % NUM_CLASSES + rng.randint(0, 2, num_samples)) % NUM_CLASSES
    return [mx.nd.array(a, dtype='int32') for a in (token_ids, np.zeros_like(token_ids), valid_length, labels)]


def build_model(seed):
    mx.random.seed(seed)
    model = build_classifier(TINY, NUM_CLASSES, dropout=0.0)
    token_ids, segment_ids, valid_length, _ = make_data(1, 0)
    model(token_ids, segment_ids, valid_length)  # shapes of the deferred head
    return model


def train_and_evaluate(engine, model, batch_size):
    """Train as kobert_gluon.training.finetune does; returns the aggregated test report."""
    params = model.collect_params()
    params.setattr('grad_req', 'add')
    trainable = [p for p in params.values() if p.grad_req != 'null']
    trainer = engine.make_trainer(params, 'bertadam', OPTIMIZER_PARAMS)
    engine.synchronize(params, trainer)
    train_data, test_data = make_data(NUM_TRAIN, 1), make_data(NUM_TEST, 2)
    loss_function = gluon.loss.SoftmaxCELoss()
    for epoch in range(NUM_EPOCHS):
        np.random.seed(epoch)  # every rank alike, as train() seeds each epoch
        for indices, global_size in shard_batches(NUM_TRAIN, batch_size, engine.rank, engine.num_workers, True):
            token_ids, segment_ids, valid_length, label = (a[mx.nd.array(indices)] for a in train_data)
            with autograd.record():
                loss = loss_function(model(token_ids, segment_ids, valid_length), label).sum()
            loss.backward()
            optimizer_step(trainer, trainable, global_size, max_grad_norm=1.0)
    check_same_weights(engine, params)
    (indices, _), = shard_batches(NUM_TEST, NUM_TEST, engine.rank, engine.num_workers)
    token_ids, segment_ids, valid_length, label = (a[mx.nd.array(indices)] for a in test_data)
    predictions = model(token_ids, segment_ids, valid_length).argmax(axis=1).asnumpy().astype(int)
    rows = gather_rows(engine, {'labels': label.asnumpy().astype(np.int64), 'predictions': predictions})
    return classification_report(rows['labels'], rows['predictions'], NUM_CLASSES)


def set_server_multi_precision(engine):
    """Turn on the dist_sync server's multi-precision flag, as the uninitialised byte behind it
    may already be in MXNet 1.9.1: non-float32 keys are then kept as float32 on the server."""
    from mxnet.kvstore.kvstore import _get_kvstore_server_command_type
    if engine.is_root:
        engine.kvstore._send_command_to_servers(_get_kvstore_server_command_type('kSetMultiPrecision'), '')
    engine.barrier()


def main(engine_name, out_dir, server_multi_precision='no'):
    engine = create_engine(engine_name)
    if server_multi_precision == 'yes':
        set_server_multi_precision(engine)
    model = build_model(INIT_SEED + engine.rank)
    report = train_and_evaluate(engine, model, BATCH_SIZE)
    model.save_parameters(os.path.join(out_dir, f'rank{engine.rank}.params'))
    with open(os.path.join(out_dir, f'rank{engine.rank}.json'), 'w', encoding='utf-8') as out:
        json.dump({'num_workers': engine.num_workers, 'report': report}, out)


if __name__ == '__main__':
    main(*sys.argv[1:])
