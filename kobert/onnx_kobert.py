"""KoBERT's ``kobert.onnx_kobert``: ``get_onnx_kobert_model`` and ``make_dummy_input``.

``get_onnx_kobert_model(cachedir)`` returns the path of SKT's ONNX KoBERT
(``kobert.onnx1.8.0.onnx``), looked up like every KoBERT file and md5-checked, as SKT's did.
With ``model_file=`` (ours: Gluon weights in the ``bert_12_768_12`` layout) it writes an ONNX
BertModel of those weights instead, with the inputs of SKT's file (``input_ids``,
``token_type_ids``, ``input_mask``, ``position_ids``, int64) and the outputs
``sequence_output``, ``pooled_output``; that needs the ``onnx`` extra.
"""
import os

from kobert_gluon.legacy import ONNX_HINT, download, fetch_entry, onnx_kobert  # noqa: F401  (SKT's names)

ONNX_INPUTS = ('input_ids', 'token_type_ids', 'input_mask', 'position_ids')
ONNX_OUTPUTS = ('sequence_output', 'pooled_output')

__all__ = ('get_onnx_kobert_model', 'make_dummy_input')


def get_onnx_kobert_model(cachedir=None, model_file=None, kobert_dir=None, config=None):
    """Path of an ONNX KoBERT: SKT's file, or (``model_file``) one made from Gluon weights."""
    if model_file is None:
        return fetch_entry(onnx_kobert, cachedir, hint=ONNX_HINT)[0]
    from kobert_gluon.assets import md5sum

    from .pytorch_kobert import get_pytorch_kobert_model

    folder = os.path.abspath(os.path.expanduser(cachedir or '.cache'))
    os.makedirs(folder, exist_ok=True)
    path = os.path.join(folder, f'kobert_{md5sum(os.fspath(model_file))[:10]}.onnx')
    model, _ = get_pytorch_kobert_model(model_file=model_file, kobert_dir=kobert_dir, config=config,
                                        cachedir=cachedir)
    _export(model, path)
    return path


def _export(model, path):
    import numpy as np
    import torch

    from kobert_gluon.fileio import atomic_path
    from kobert_gluon.interop.onnx import export_torch_onnx

    model.config._attn_implementation = 'eager'

    class Outputs(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.model = model

        def forward(self, input_ids, token_type_ids, input_mask, position_ids):
            return self.model(input_ids=input_ids, attention_mask=input_mask, token_type_ids=token_type_ids,
                              position_ids=position_ids.unsqueeze(0).expand_as(input_ids), return_dict=False)

    example = [np.array(value, dtype=np.int64) for value in make_dummy_input(8)]
    axes = {name: {0: 'batch', 1: 'length'} for name in ONNX_INPUTS[:3]}
    axes.update({'position_ids': {0: 'length'}, 'sequence_output': {0: 'batch', 1: 'length'},
                 'pooled_output': {0: 'batch'}})
    with atomic_path(path) as tmp:
        export_torch_onnx(Outputs(), example, tmp, ONNX_INPUTS, ONNX_OUTPUTS, axes)
    return path


def make_dummy_input(max_seq_len):
    """SKT's dummy batch: ``(input_ids, token_type_ids, input_mask, position_ids)`` as lists."""
    def do_pad(x, max_seq_len, pad_id):
        return [_x + [pad_id] * (max_seq_len - len(_x)) for _x in x]

    input_ids = do_pad([[31, 51, 99], [15, 5]], max_seq_len, pad_id=1)
    token_type_ids = do_pad([[0, 0, 0], [0, 0]], max_seq_len, pad_id=0)
    input_mask = do_pad([[1, 1, 1], [1, 1]], max_seq_len, pad_id=0)
    position_ids = list(range(max_seq_len))
    return (input_ids, token_type_ids, input_mask, position_ids)
