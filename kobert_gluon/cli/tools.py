"""``kobert-gluon export``, ``convert`` and ``serve``: a trained model in other forms and places."""
import argparse
import os

from ..inference.classifier import CALIBRATION_SENTENCES, calibration_sample
from ..inference.export import DEFAULT_NAME, export
from .options import MODEL_HELP, add_inference_arguments, add_switch, in_precision, load_classifier, positive_int


def add_export_arguments(parser):
    parser.add_argument('--model', required=True, help=f'{MODEL_HELP}, to export')
    parser.add_argument('--output', required=True,
                        help='export directory (new, empty or a previous export); it receives '
                             'NAME-symbol.json, NAME-0000.params, export.json and tokenizer/ (--format onnx: '
                             'NAME.onnx, export.json, tokenizer.json and tokenizer/)')
    parser.add_argument('--name', default=DEFAULT_NAME, help='file name prefix of the graph and parameters')
    parser.add_argument('--format', choices=('mxnet', 'onnx'), default='mxnet',
                        help="'mxnet': a SymbolBlock graph (serving needs mxnet); 'onnx': an ONNX file that "
                             'onnxruntime serves (the onnx extra: torch, transformers, onnx, onnxruntime)')
    parser.add_argument('--ctx', default='cpu', help="device for the traced forward pass: 'cpu', 'gpu', ...")
    parser.add_argument('--overwrite', action='store_true',
                        help='replace the model files of a model or output in --output that export did not write')


def run_export(args):
    classifier = load_classifier(args)
    if getattr(args, 'format', 'mxnet') == 'onnx':
        from ..interop.onnx import export_onnx  # torch and onnxruntime load only here

        paths = export_onnx(classifier, args.output, name=args.name, overwrite=args.overwrite)
    else:
        paths = export(classifier, args.output, name=args.name, overwrite=args.overwrite)
    for role, path in paths.items():
        print(f'{role}\t{path}')


def add_convert_arguments(parser):
    direction = parser.add_mutually_exclusive_group(required=True)
    direction.add_argument('--from-transformers', '--from_transformers', dest='from_transformers', metavar='DIR',
                           help='transformers BertModel, BertForSequenceClassification or '
                                'BertForTokenClassification directory to convert')
    direction.add_argument('--to-transformers', '--to_transformers', dest='to_transformers', metavar='MODEL',
                           help='model directory, or a BERT params file in the bert_12_768_12 layout')
    parser.add_argument('--output', required=True,
                        help='model directory (classifier) or BERT directory to write; with --to-transformers '
                             'the transformers directory')
    parser.add_argument('--tokenizer', help='SentencePiece file (.spiece, or the v0.1 .model with --vocab-json); '
                                            'default: the one in the source, else KoBERT\'s')
    parser.add_argument('--vocab-json', '--vocab_json', dest='vocab_json', help='v0.1 vocab json for --tokenizer')
    parser.add_argument('--kobert-dir', '--kobert_dir', dest='kobert_dir', help='where KoBERT\'s files are')
    parser.add_argument('--max-len', '--max_len', dest='max_len', type=positive_int,
                        help='max_len of the converted classifier (default: recorded in DIR, else 64)')
    add_switch(parser, 'pair', '--from-transformers: the classifier reads sentence pairs (default: what its '
                               'kobert_gluon.json records, else single sentences)')
    parser.add_argument('--num-heads', '--num_heads', dest='num_heads', type=positive_int,
                        help='attention heads of a params file (it does not record them; default 12)')
    parser.add_argument('--overwrite', action='store_true',
                        help='replace the model files of a model or output in --output that convert did not write')


def run_convert(args):
    from ..interop import transformers as convert  # safetensors/torch/transformers only when converting

    if args.from_transformers:
        convert.from_transformers(args.from_transformers, args.output, tokenizer=args.tokenizer,
                                  vocab_json=args.vocab_json, max_len=args.max_len, kobert_dir=args.kobert_dir,
                                  overwrite=args.overwrite, pair=getattr(args, 'pair', None))
    else:
        convert.to_transformers(args.to_transformers, args.output, tokenizer=args.tokenizer,
                                vocab_json=args.vocab_json, num_heads=args.num_heads, overwrite=args.overwrite)
    print(os.path.abspath(args.output))


def add_serve_arguments(parser):
    add_inference_arguments(parser)
    parser.add_argument('--max-batch', '--max_batch', dest='batch_size', metavar='N', type=positive_int,
                        default=argparse.SUPPRESS,
                        help='same as --batch_size: the most sentences merged from concurrent requests '
                             'into one forward pass')
    parser.add_argument('--max-wait-ms', '--max_wait_ms', dest='max_wait_ms', type=float, default=5.0,
                        help='how long the first request of a batch waits for others to join it')
    add_switch(parser, 'batching', 'merge concurrent requests into shared forward passes (default: on; '
                                   '--no-batching: one request per pass, the serve benchmark\'s baseline)')
    parser.add_argument('--host', default='127.0.0.1', help="address to listen on; '0.0.0.0' opens it to the network")
    parser.add_argument('--port', type=int, default=8000, help='TCP port; 0 picks a free one (logged at start)')
    parser.add_argument('--max-texts', '--max_texts', dest='max_texts', type=positive_int, default=256,
                        help='most texts in one request (more: HTTP 413)')
    parser.add_argument('--max-body-bytes', '--max_body_bytes', dest='max_body_bytes', type=positive_int,
                        default=1 << 20, help='largest request body in bytes (more: HTTP 413)')
    parser.epilog = (f'int8 without --calibration calibrates on the first {CALIBRATION_SENTENCES} sentences of '
                     'the embedded demo set. '
                     'SIGTERM lets requests in flight finish, then exits 0.')


def run_serve(args):
    from ..serve import app as serve  # starlette and uvicorn load only here; without them: MissingExtraError

    limits = serve.Limits(args.batch_size, args.max_wait_ms, getattr(args, 'batching', True), args.max_texts,
                          args.max_body_bytes)
    classifier = in_precision(load_classifier(args), args, calibration_sample())
    serve.run(classifier, args.host, args.port, limits)
