"""Token classification (named entities, KLUE-NER style): an IOB2 tag per piece, read from every
position of BERT's sequence output (:class:`~kobert_gluon.models.heads.BERTTagger`), as
transformers' ``BertForTokenClassification``.

- Data are entity files (KLUE's character TSV, CoNLL columns, JSONL spans:
  :func:`~kobert_gluon.text.entities.read_entity_file`); a row's raw label is its tuple of
  character spans.
- Tags: ``O`` then ``B-T``, ``I-T`` for every entity type of the training rows, sorted.
- Targets per piece by the first-character rule (:mod:`.piece_inputs`); the loss is softmax
  cross-entropy summed over the pieces of a sentence, [CLS], [SEP] and padding left out.
- Scored on the sentences' own characters: the predicted entities (seqeval's strict IOB2 reading
  of the argmax tags, placed on characters) against the gold spans: entity precision, recall and
  F1 (micro, macro, per type), KLUE's character macro F1 and a type confusion.
- A prediction is transformers' token-classification pipeline answer with
  ``aggregation_strategy='simple'`` (:func:`~.entity_decode.decode_entities`).
"""
import json
from typing import List, Optional

try:  # pydantic (the server's API documentation) reads typing_extensions' TypedDict before Python 3.12
    from typing_extensions import TypedDict
except ImportError:  # pragma: no cover
    from typing import TypedDict

import gluonnlp as nlp
import numpy as np
from mxnet import gluon

from ..errors import ConfigError, DataError
from ..models.heads import build_tagger
from ..text.alignment import PieceAligner
from ..text.entities import OUTSIDE, EntitySpan, read_entity_file, spans_from_tags
from .entity_decode import decode_entities
from .entity_metrics import CharacterCounts, EntityConfusion, EntityCounts, iob2_labels
from .inputs import EncodedDataset
from .piece_inputs import IGNORE, encode_tagged
from .registry import Task, register


class EntityAnswer(TypedDict):
    """One entity of a prediction (the pipeline's keys)."""
    entity_group: str
    word: str
    start: int
    end: int
    score: float


class MaskedSoftmaxCELoss(gluon.loss.Loss):
    """Softmax cross-entropy of every piece whose target is not IGNORE, summed per sentence."""

    def __init__(self, **kwargs):
        super().__init__(weight=None, batch_axis=0, **kwargs)

    def hybrid_forward(self, F, pred, label):
        log_probabilities = F.log_softmax(pred, axis=-1)
        label = F.cast(label, 'float32')  # the loader's int32 targets; MXNet's arithmetic keeps one dtype
        # pick() needs a valid index everywhere: IGNORE positions pick tag 0, then weigh 0
        picked = F.pick(log_probabilities, F.relu(label), axis=-1)
        return -F.sum(picked * (label >= 0), axis=1)


def _objects(values):
    array = np.empty(len(values), dtype=object)
    array[:] = values
    return array


def type_of(tag):
    return tag[2:] if tag != OUTSIDE else None


def tag_names(types):
    """``O`` first, then ``B-T``, ``I-T`` per type (KLUE's tag order, ``O`` moved to id 0)."""
    return [OUTSIDE] + iob2_labels(sorted(types))[:-1]


def entity_types(label_names):
    return sorted({type_of(name) for name in label_names} - {None})


class TokenClassification(Task):
    name = 'token_classification'
    aliases = ('ner',)
    description = 'an entity tag per piece (IOB2; KLUE TSV, CoNLL or JSONL entity files)'
    hf_architecture = 'BertForTokenClassification'
    hf_pipeline = 'token-classification'
    hf_pipeline_arguments = "aggregation_strategy='simple'"
    select_metrics = ('entity_f1', 'char_f1')
    summary_metrics = ('entity_f1', 'char_f1')
    running_metric = 'piece_accuracy'
    default_settings = {'stride': 0}
    pairs = False
    prediction_fields = ('entities',)
    min_labels = 3  # O and one type's B- and I-
    per_piece = True  # outputs per piece; scored on the texts (score_sentences)

    # ---------------------------------------------------------------- labels
    def read_rows(self, path, columns):
        sentences = read_entity_file(path)
        return [s.text for s in sentences], [None] * len(sentences), [tuple(s.entities) for s in sentences]

    def read_labels(self, frame, columns, source):
        raise DataError(f'{source}: --task {self.name} reads entity files (KLUE TSV, CoNLL, JSONL), not tables')

    def read_label(self, value, row, columns, source):
        """One text's entities (the Python API's): ``(start, end, type)`` items or JSONL's dicts."""
        try:
            spans = [EntitySpan(int(item['start']), int(item['end']), str(item['label'])) if isinstance(item, dict)
                     else EntitySpan(int(item[0]), int(item[1]), str(item[2])) for item in value]
        except (KeyError, IndexError, TypeError, ValueError):
            raise DataError(f'{source}: row {row}: {value!r} is not a list of entities (start, end, type) or '
                            '{"start", "end", "label"}') from None
        return tuple(sorted(spans))

    def label_names(self, raw_labels, columns):
        return tag_names({entity.label for entities in raw_labels for entity in entities})

    def encode_labels(self, label_names, raw_labels, source):
        unknown = self.unknown_labels(label_names, raw_labels)
        if unknown:
            raise DataError(f'{source}: entity type(s) {unknown} never occur in the training sentences')
        return list(raw_labels)

    def unknown_labels(self, label_names, raw_labels):
        known = set(entity_types(label_names))
        return sorted({entity.label for entities in raw_labels for entity in entities} - known)

    def label_text(self, raw_label):
        return ';'.join(f'{start}:{end}:{label}' for start, end, label in raw_label)

    def label_batchify(self):
        return nlp.data.batchify.Pad(axis=0, pad_val=IGNORE, dtype='int32', round_to=8)

    def encode_examples(self, examples, tokenizer, max_len, pad, pair, label_names, settings, source=''):
        index = {name: i for i, name in enumerate(label_names)}
        windows, targets, truncation = encode_tagged(
            PieceAligner.from_tokenizer(tokenizer), tokenizer.vocab, [e.text for e in examples],
            [e.label for e in examples], index, max_len, settings['stride'], pad)
        truncation.log(max_len, source)
        dataset = EncodedDataset([window.encoded for window in windows], targets)
        dataset.truncation = truncation.to_dict()
        return dataset

    # ---------------------------------------------------------------- model
    def build_model(self, bert_config, num_outputs, dropout, ctx, bert_params=None):
        return build_tagger(bert_config, num_outputs, dropout, ctx, bert_params)

    def loss(self):
        return MaskedSoftmaxCELoss()

    def running(self, outputs, labels):
        labels = np.asarray(labels)
        scored = labels != IGNORE
        return int(((np.asarray(outputs).argmax(axis=-1) == labels) & scored).sum()), int(scored.sum())

    # ---------------------------------------------------------------- metrics
    def collect_sentences(self, texts, gold, predicted):
        """The rows :meth:`report` reads: each sentence's text, gold and predicted spans (object
        arrays, so that they concatenate as every task's collected rows do)."""
        return {'text': _objects(list(texts)), 'gold': _objects([tuple(map(tuple, spans)) for spans in gold]),
                'predicted': _objects([tuple(map(tuple, spans)) for spans in predicted])}

    def collect(self, outputs, labels):
        """A batch's rows scored on pieces (what collect_batches gives; training and evaluate score
        characters, :meth:`collect_sentences`): each row's gold and argmax tag ids of its pieces."""
        labels, predicted = np.asarray(labels), np.asarray(outputs).argmax(axis=-1)
        rows = {'gold_tags': np.empty(len(labels), dtype=object), 'predicted_tags': np.empty(len(labels), dtype=object)}
        for row, (gold, guess) in enumerate(zip(labels, predicted)):
            scored = gold != IGNORE
            rows['gold_tags'][row], rows['predicted_tags'][row] = tuple(gold[scored]), tuple(guess[scored])
        return rows

    def scored_rows(self, collected, label_names):
        """``(text, gold spans, predicted spans)`` per row: characters of sentences, or pieces."""
        if 'text' in collected:
            return zip(collected['text'], collected['gold'], collected['predicted'])

        def spans(ids):
            return spans_from_tags([label_names[int(i)] for i in ids])
        return (('x' * len(gold), spans(gold), spans(guess))  # a piece per 'character', none a space
                for gold, guess in zip(collected['gold_tags'], collected['predicted_tags']))

    def report(self, collected, label_names, settings):
        types = entity_types(label_names)
        entities, characters, confusion = EntityCounts(), CharacterCounts(), EntityConfusion()
        for text, gold, predicted in self.scored_rows(collected, label_names):
            entities.add(gold, predicted)
            characters.add(text, gold, predicted)
            confusion.add(gold, predicted)
        scores = entities.report(types)
        rows, columns, matrix = confusion.matrix(types)
        return {'entity_precision': scores['precision'], 'entity_recall': scores['recall'],
                'entity_f1': scores['f1'], 'entity_macro_f1': scores['macro_f1'],
                'char_f1': characters.macro_f1(iob2_labels(types)),
                'scored_on': 'characters' if 'text' in collected else 'pieces',
                'sentences': len(next(iter(collected.values()))),
                'support': scores['support'], 'predicted': scores['predicted'], 'per_type': scores['per_type'],
                'confusion': {'rows': rows, 'columns': columns, 'matrix': matrix}}

    def format_report(self, report, label_names):
        lines = [f"{'type':<8}{'precision':>10}{'recall':>10}{'f1':>10}{'support':>9}{'predicted':>10}"]
        for label, row in report['per_type'].items():
            lines.append(f"{label:<8}{row['precision']:>10.4f}{row['recall']:>10.4f}{row['f1']:>10.4f}"
                         f"{row['support']:>9d}{row['predicted']:>10d}")
        lines.append(f"{'micro':<8}{report['entity_precision']:>10.4f}{report['entity_recall']:>10.4f}"
                     f"{report['entity_f1']:>10.4f}{report['support']:>9d}{report['predicted']:>10d}")
        lines.append(f"entity macro F1 {report['entity_macro_f1']:.4f}, KLUE character macro F1 "
                     f"{report['char_f1']:.4f} ({report['sentences']} sentences)")
        return '\n'.join(lines)

    def figures(self, report, collected, label_names, selected_epoch):
        epoch = '' if selected_epoch is None else f', 에폭 {selected_epoch}'
        per_type = report['per_type']
        confusion = report['confusion']
        return [('entity_f1.png', 'bars', {
            'values': [row['f1'] for row in per_type.values()], 'labels': list(per_type), 'xlabel': 'F1',
            'title': f"유형별 개체 F1 (per-type entity F1, test): micro {report['entity_f1']:.3f}"}),
            ('entity_confusion.png', 'confusion', {
                'matrix': confusion['matrix'], 'labels': confusion['rows'], 'columns': confusion['columns'],
                'title': f'개체 유형 혼동 행렬 (entity type confusion, test){epoch}'})]

    # ---------------------------------------------------------------- prediction
    def probabilities(self, outputs):
        return [super(TokenClassification, self).probabilities(rows) for rows in outputs]

    def prediction(self, probabilities, label_names, settings, text='', pieces=()):
        """``{'entities': [...]}`` of one text from its pieces' probabilities (``pieces``: the text's
        pieces with their spans, as many as rows of probabilities)."""
        return {'entities': decode_entities(text, pieces, probabilities, label_names)}

    def blank_prediction(self, label_names):
        return {'entities': []}

    def table_columns(self, prediction, label_names):
        return {'entities': json.dumps(prediction['entities'], ensure_ascii=False)}

    hf_function = 'softmax'

    def hf_answer(self, prediction, label_names, top_k=None):
        return prediction['entities']

    def hf_answer_type(self, label_type):
        return EntityAnswer

    def prediction_schema(self, label_type):
        return {'entities': (Optional[List[EntityAnswer]],
                             "the entities found, as transformers' token-classification pipeline answers with "
                             "aggregation_strategy='simple': entity_group, word, start, end (character offsets into "
                             'the text, end exclusive) and score (the mean tag probability of its pieces)')}

    def check_settings(self, settings, where):
        settings = super().check_settings(settings, where)
        stride = settings['stride']
        if not isinstance(stride, int) or isinstance(stride, bool) or stride < 0:
            raise ConfigError(f'{where}: stride={stride!r} must be an integer of 0 or more')
        return settings


TOKEN_CLASSIFICATION = register(TokenClassification())
