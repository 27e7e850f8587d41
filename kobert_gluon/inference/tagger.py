"""EntityTagger: a token-classification model (``--task token_classification``) with what turns
text into its piece windows and its per-piece outputs into entities with character offsets in
the user's text. ``kg.TextClassifier.load`` of such a model directory gives one, so
``kg.load(path).predict(texts)`` answers entities as it answers labels for a classifier."""
import logging

import numpy as np
from tqdm.auto import tqdm

from ..tasks.entity_decode import decode_entities
from ..tasks.piece_inputs import encode_sentence, merge_windows
from ..text.alignment import PieceAligner, entities_from_piece_tags
from .classifier import TextClassifier, check_batch_size

logger = logging.getLogger(__name__)


class EntityTagger(TextClassifier):
    """A fine-tuned BERT tagger: ``predict(texts)`` gives each text's entities,
    ``[{'entity_group', 'word', 'start', 'end', 'score'}]`` (transformers' token-classification
    pipeline with ``aggregation_strategy='simple'``); ``start``/``end`` index the text as given."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.aligner = PieceAligner.from_tokenizer(self.tokenizer)

    @property
    def stride(self):
        return self.task_settings['stride']

    def pieces(self, text):
        """The text's pieces with their character spans (:class:`~kobert_gluon.text.alignment.Piece`)."""
        return self.aligner.pieces(text)

    def windows(self, texts):
        """``(pieces per text, windows of all texts)``: each window a
        :class:`~kobert_gluon.tasks.piece_inputs.Window` naming its text."""
        pieces = [self.pieces(text) for text, _ in self.inputs(texts)]
        windows = [window for number, items in enumerate(pieces)
                   for window in encode_sentence(self.tokenizer.vocab, items, self.max_len, self.stride, False,
                                                 number)]
        return pieces, windows

    def encode(self, texts):
        return [window.encoded for window in self.windows(texts)[1]]

    def logits(self, texts, batch_size=64):
        """Per text, the head's outputs for each of its pieces (pieces x tags; [CLS] and [SEP]
        left out), windows merged; pieces after a cut (stride 0) get none."""
        check_batch_size(batch_size)
        pieces, windows = self.windows(texts)
        order = sorted(range(len(windows)), key=lambda i: int(windows[i].encoded.valid_length))
        rows = [None] * len(windows)
        batches = self.batches([windows[i].encoded for i in order], batch_size)
        done = 0
        for batch in tqdm(batches, desc='tagging', total=-(-len(windows) // batch_size), leave=False,
                          disable=None, mininterval=1):
            outputs = self.forward(batch)
            for row, length in zip(outputs, batch.valid_length):
                rows[order[done]] = row[1:int(length) - 1]
                done += 1
        by_text = [[] for _ in pieces]
        for window, row in zip(windows, rows):
            by_text[window.sentence].append((window, row))
        return [merge_windows(min(len(items), max(w.end for w, _ in parts)), [w for w, _ in parts],
                              [r for _, r in parts]) for items, parts in zip(pieces, by_text)]

    def predict(self, texts, batch_size=64, threshold=None):
        """Each text's entities (a list per text; an empty list for a blank text)."""
        return [record['entities'] for record in self.predict_records(texts, batch_size)]

    def predict_records(self, texts, batch_size=64, threshold=None):
        """``{'text', 'entities'}`` per input, in input order."""
        texts = [text for text, _ in self.inputs(texts)]
        names = self.label_map.names
        probabilities = self.predict_proba(texts, batch_size)
        records = []
        for text, rows in zip(texts, probabilities):
            pieces = self.pieces(text)[:len(rows)]
            records.append({'text': text, 'entities': decode_entities(text, pieces, rows, names)})
        return records

    def predicted_spans(self, texts, batch_size=64):
        """Each text's entities as character spans, read from the argmax tags as seqeval's
        strict IOB2 reads them (what the metrics score)."""
        names = self.label_map.names
        spans = []
        for text, rows in zip(texts, self.logits(texts, batch_size)):
            tags = [names[int(i)] for i in np.asarray(rows).argmax(axis=-1)] if len(rows) else []
            spans.append([tuple(span) for span in entities_from_piece_tags(self.pieces(text)[:len(tags)], tags)])
        return spans

    def collect_texts(self, texts, gold, batch_size=64):
        """The rows the task's report reads (texts, gold and predicted spans)."""
        return self.task.collect_sentences(texts, gold, self.predicted_spans(list(texts), batch_size))
