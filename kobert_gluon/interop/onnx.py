"""A fine-tuned classifier as an ONNX file that onnxruntime serves without kobert_gluon or mxnet.

The exporter: the classifier's weights go into the equivalent transformers
``BertForSequenceClassification`` (``models/torch_bert.py``, a renaming: the networks compute
the same function), which ``torch.onnx.export`` traces (TorchScript exporter, eager
attention, opset 17, dynamic batch and length). MXNet 1.9.1's own ``mx.onnx`` does not
know gluonnlp's fused attention operators. The file is run in onnxruntime on sample
sentences and compared with the live model before the directory appears.

Layout of an ONNX export directory::

    model.onnx            inputs input_ids, token_type_ids, attention_mask (int64, batch x length); output logits
    export.json           inputs, labels, max_len, special token ids, file names (format 'onnx')
    tokenizer.json        our tokenization for the ``tokenizers`` library (no kobert_gluon needed)
    tokenizer/            the SentencePiece model and vocab.json, as in the MXNet export

``docs/interop.md`` has the ten lines that serve it.
"""
import logging
import os

import numpy as np

from .. import arguments as _arg
from ..errors import ConfigError, ConversionError, MissingExtraError
from ..extras import require_extra
from ..fileio import atomic_directory, owned_output, write_json
from ..inference.export import (EXPORT_FILE, VERIFY_TOLERANCE, _as_classifier, _check_name, _trace,
                                _write_tokenizer, manifest, output_shape, real_positions, sample_inputs)
from ..models.hf_weights import require

logger = logging.getLogger(__name__)

ONNX_INPUTS = ('input_ids', 'token_type_ids', 'attention_mask')
ONNX_OUTPUT = 'logits'
OPSET = 17
HF_TOKENIZER_FILE = 'tokenizer.json'


def require_onnxruntime():
    try:
        import onnxruntime
    except ImportError:
        raise MissingExtraError('onnx', 'onnxruntime') from None
    return onnxruntime


def onnx_inputs(token_ids, segment_ids, valid_length):
    """ONNX inputs (int64) from the (token_ids, segment_ids, valid_length) kobert_gluon batches."""
    token_ids, segment_ids, valid_length = (_arg.integers('onnx_inputs', name, value) for name, value in
                                             (('token_ids', token_ids), ('segment_ids', segment_ids), ('valid_length', valid_length)))
    width = token_ids.shape[1]
    mask = (np.arange(width)[None, :] < np.asarray(valid_length)[:, None]).astype(np.int64)
    return {'input_ids': token_ids.astype(np.int64), 'token_type_ids': segment_ids.astype(np.int64),
            'attention_mask': mask}


def export_torch_onnx(module, example_inputs, path, input_names, output_names, dynamic_axes):
    """``torch.onnx.export`` of ``module`` in eval mode, offline (the TorchScript exporter)."""
    import warnings

    torch = require('torch')
    module = module.eval()  # export restores the mode it found: a module left in train mode turns dropout on
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter('ignore')  # TracerWarnings about Python control flow on shapes
        torch.onnx.export(module, tuple(torch.from_numpy(value) for value in example_inputs), path,
                          input_names=list(input_names), output_names=list(output_names),
                          dynamic_axes=dynamic_axes, opset_version=OPSET, dynamo=False)
    return path


def _logits_module(classifier):
    torch = require('torch')
    from ..models.torch_bert import torch_classifier

    model = torch_classifier(classifier)
    model.config._attn_implementation = 'eager'  # traces to plain MatMul/Softmax; no SDPA mask shapes baked in

    class Logits(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.model = model

        def forward(self, input_ids, token_type_ids, attention_mask):
            return self.model(input_ids=input_ids, token_type_ids=token_type_ids, attention_mask=attention_mask,
                              return_dict=False)[0]

    return Logits()


def export_onnx(classifier_or_model_dir, output_dir, name='model', ctx=None, overwrite=False):
    """Write an ONNX export directory (atomically) and return the paths of what it holds.

    Replaces ``output_dir`` on the terms of the MXNet export (``inference.export.export``).
    """
    _arg.model_or_dir('export_onnx', 'classifier_or_model_dir', classifier_or_model_dir)
    require_extra('onnx', 'by export --format onnx')
    _arg.path('export_onnx', 'output_dir', output_dir)
    _arg.text('export_onnx', 'name', name)
    _arg.flag('export_onnx', 'overwrite', overwrite)
    _check_name(name)
    ort = require_onnxruntime()
    output_dir = os.path.abspath(os.fspath(output_dir))
    with owned_output(output_dir, 'export', overwrite, ConfigError):
        return _export_onnx(_as_classifier(classifier_or_model_dir, ctx), output_dir, name, ort)


def _export_onnx(classifier, output_dir, name, ort):
    arrays = sample_inputs(classifier)
    inputs = onnx_inputs(*arrays)
    expected = real_positions(_trace(classifier.model, arrays, classifier.ctx), classifier, arrays.valid_length)
    dynamic = {input_name: {0: 'batch', 1: 'length'} for input_name in ONNX_INPUTS}
    output_axes = {0: 'batch', 1: 'length'} if classifier.task.per_piece else {0: 'batch'}
    with atomic_directory(output_dir) as tmp:
        onnx_path = os.path.join(tmp, f'{name}.onnx')
        export_torch_onnx(_logits_module(classifier), [inputs[n] for n in ONNX_INPUTS], onnx_path, ONNX_INPUTS,
                          [ONNX_OUTPUT], {**dynamic, ONNX_OUTPUT: output_axes})
        tokenizer_files = _write_tokenizer(classifier, tmp)
        hf_tokenizer = _write_hf_tokenizer(classifier, tmp)
        write_json(os.path.join(tmp, EXPORT_FILE), onnx_manifest(classifier, name, tokenizer_files, hf_tokenizer))
        session = ort.InferenceSession(onnx_path, providers=['CPUExecutionProvider'])
        actual = real_positions(session.run([ONNX_OUTPUT], inputs)[0], classifier, arrays.valid_length)
        if not np.allclose(actual, expected, atol=VERIFY_TOLERANCE, rtol=VERIFY_TOLERANCE):
            raise ConversionError(f'{output_dir}: not written: onnxruntime gives other logits than kobert_gluon '
                                  f'(max difference {np.abs(actual - expected).max():.3g})')
    paths = {'directory': output_dir, 'onnx': os.path.join(output_dir, f'{name}.onnx'),
             'manifest': os.path.join(output_dir, EXPORT_FILE)}
    if hf_tokenizer:
        paths['tokenizer_json'] = os.path.join(output_dir, HF_TOKENIZER_FILE)
    paths.update({role: os.path.join(output_dir, entry['file']) for role, entry in tokenizer_files.items()})
    logger.info('exported ONNX to %s', output_dir)
    return paths


def _write_hf_tokenizer(classifier, directory):
    """tokenizer.json checked against ours; None (with a warning) when it cannot be made exact."""
    from ..text.tokenizer import get_bert_tokenizer
    from .hf_tokenizer import verify_hf_tokenizer, write_hf_tokenizer

    spiece = os.fspath(classifier.tokenizer_files['tokenizer'])
    vocab = classifier.tokenizer.vocab
    try:
        paths = write_hf_tokenizer(spiece, vocab, directory, classifier.max_len)
        verify_hf_tokenizer(directory, get_bert_tokenizer(spiece, vocab), classifier.max_len)
    except (ConversionError, MissingExtraError) as error:
        logger.warning('no tokenizer.json in the ONNX export (use tokenizer/ with kobert_gluon): %s', error)
        for path in os.listdir(directory):
            if path in ('tokenizer.json', 'tokenizer_config.json', 'special_tokens_map.json'):
                os.remove(os.path.join(directory, path))
        return None
    for extra in set(paths) - {HF_TOKENIZER_FILE}:  # only tokenizer.json is needed without transformers
        os.remove(paths[extra])
    return HF_TOKENIZER_FILE


def onnx_manifest(classifier, name, tokenizer_files, hf_tokenizer):
    data = manifest(classifier, name, tokenizer_files)
    for key in ('symbol', 'params'):
        data.pop(key, None)
    data.update({'format': 'kobert_gluon.export.onnx', 'onnx': f'{name}.onnx', 'opset': OPSET,
                 'inputs': [{'name': input_name, 'dtype': 'int64', 'shape': ['batch', 'length']}
                            for input_name in ONNX_INPUTS],
                 'output': {'name': ONNX_OUTPUT, 'dtype': 'float32', 'shape': output_shape(classifier)},
                 'tokenizer_json': hf_tokenizer})
    return data
