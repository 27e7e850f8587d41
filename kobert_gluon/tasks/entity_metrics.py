"""Named-entity metrics from counts that add up over batches and workers (no seqeval or sklearn).

- :class:`EntityCounts`: entity-level precision, recall and F1, micro, macro and per type. An
  entity is right when its start, end and type all equal a gold entity's. On IOB2 tag
  sequences (:meth:`EntityCounts.add_tags`) entities are read as seqeval's strict IOB2 mode
  reads them, so the report equals ``seqeval.metrics.classification_report(gold, predicted,
  mode='strict', scheme=IOB2)``.
- :class:`CharacterCounts`: KLUE-NER's character-level macro F1 (``klue_ner_char_macro_f1`` in
  KLUE's baseline): scikit-learn's macro F1 over the characters' IOB2 tags, space characters
  left out, every tag of the label list averaged, O included (although the baseline's docstring
  says "except O tag", its label list has all 13 tags), a tag absent from both sides scoring 1
  (``zero_division=True``). The baseline also scores the [CLS] and [SEP] positions of every
  sentence as two more correct ``O``; ``boundaries=True`` does the same.
- :class:`EntityConfusion`: entities by gold and predicted type, for a confusion matrix.

Each has ``to_dict`` / ``from_dict`` (JSON) and ``+``, so workers send counts, not sequences.
"""
from collections import Counter

from ..text.entities import OUTSIDE, EntitySpan, spans_from_tags, tags_from_spans

SPURIOUS = 'spurious'  # EntityConfusion's row: predicted entities that match no gold span
MISSED = 'missed'  # EntityConfusion's column: gold entities that no prediction matches


def _spans(spans):
    return {EntitySpan(*span) for span in spans}


def precision_recall_f1(true_positives, predicted, gold):
    """As seqeval and scikit-learn compute them (an undefined ratio is 0)."""
    precision = true_positives / predicted if predicted else 0.0
    recall = true_positives / gold if gold else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return precision, recall, f1


class EntityCounts:
    """Per type: true positives (exact start, end and type), predicted and gold entities."""

    FIELDS = ('true_positives', 'predicted', 'gold')

    def __init__(self, true_positives=None, predicted=None, gold=None):
        self.true_positives = Counter(true_positives or {})
        self.predicted = Counter(predicted or {})
        self.gold = Counter(gold or {})

    def add(self, gold_spans, predicted_spans):
        """One sentence's entities, as ``(start, end, label)`` spans."""
        gold, predicted = _spans(gold_spans), _spans(predicted_spans)
        self.gold.update(span.label for span in gold)
        self.predicted.update(span.label for span in predicted)
        self.true_positives.update(span.label for span in gold & predicted)
        return self

    def add_tags(self, gold_tags, predicted_tags):
        """One sentence as two IOB2 tag sequences of one length (pieces or characters)."""
        if len(gold_tags) != len(predicted_tags):
            raise ValueError(f'{len(gold_tags)} gold tags but {len(predicted_tags)} predicted ones')
        return self.add(spans_from_tags(gold_tags), spans_from_tags(predicted_tags))

    def __add__(self, other):
        return EntityCounts(*(getattr(self, name) + getattr(other, name) for name in self.FIELDS))

    def to_dict(self):
        return {name: dict(sorted(getattr(self, name).items())) for name in self.FIELDS}

    @classmethod
    def from_dict(cls, counts):
        return cls(*(counts.get(name) for name in cls.FIELDS))

    def types(self):
        return sorted(set(self.gold) | set(self.predicted))

    def report(self, types=None):
        """``precision``, ``recall``, ``f1`` (micro), ``macro_f1`` and ``per_type`` (each with its
        ``precision``, ``recall``, ``f1``, ``support`` = gold count, ``predicted``). ``types``
        defaults to the types seen on either side, as seqeval's; naming more adds zero rows."""
        types = sorted(set(types) | set(self.types())) if types is not None else self.types()
        per_type = {}
        for label in types:
            scores = precision_recall_f1(self.true_positives[label], self.predicted[label], self.gold[label])
            per_type[label] = dict(zip(('precision', 'recall', 'f1'), scores), support=self.gold[label],
                                   predicted=self.predicted[label])
        totals = [sum(counts[label] for label in types) for counts in (self.true_positives, self.predicted,
                                                                         self.gold)]
        precision, recall, f1 = precision_recall_f1(*totals)
        macro = sum(row['f1'] for row in per_type.values()) / len(per_type) if per_type else 0.0
        return {'precision': precision, 'recall': recall, 'f1': f1, 'macro_f1': macro,
                'support': totals[2], 'predicted': totals[1], 'true_positives': totals[0], 'per_type': per_type}


class CharacterCounts:
    """Per IOB2 tag: characters tagged so in gold and predicted, and in both (KLUE's char F1)."""

    FIELDS = ('true_positives', 'predicted', 'gold')

    def __init__(self, true_positives=None, predicted=None, gold=None, boundaries=True):
        self.true_positives = Counter(true_positives or {})
        self.predicted = Counter(predicted or {})
        self.gold = Counter(gold or {})
        self.boundaries = boundaries

    def add_tags(self, text, gold_tags, predicted_tags):
        """One sentence: a tag per character of ``text`` on each side; spaces are not scored."""
        if not len(text) == len(gold_tags) == len(predicted_tags):
            raise ValueError(f'{len(text)} characters, {len(gold_tags)} gold and {len(predicted_tags)} '
                             'predicted tags')
        pairs = [(gold, predicted) for char, gold, predicted in zip(text, gold_tags, predicted_tags) if char != ' ']
        if self.boundaries:
            pairs += [(OUTSIDE, OUTSIDE)] * 2  # KLUE's [CLS] and [SEP]
        self.gold.update(gold for gold, _ in pairs)
        self.predicted.update(predicted for _, predicted in pairs)
        self.true_positives.update(gold for gold, predicted in pairs if gold == predicted)
        return self

    def add(self, text, gold_spans, predicted_spans):
        """One sentence from character spans (each entity ``B-X`` then ``I-X`` on its characters)."""
        return self.add_tags(text, tags_from_spans(len(text), gold_spans), tags_from_spans(len(text), predicted_spans))

    def __add__(self, other):
        return CharacterCounts(*(getattr(self, name) + getattr(other, name) for name in self.FIELDS),
                               boundaries=self.boundaries)

    def to_dict(self):
        return {name: dict(sorted(getattr(self, name).items())) for name in self.FIELDS}

    @classmethod
    def from_dict(cls, counts, boundaries=True):
        return cls(*(counts.get(name) for name in cls.FIELDS), boundaries=boundaries)

    def f1(self, label):
        """``2 tp / (2 tp + fp + fn)``; 1.0 for a tag neither side has (scikit-learn's zero_division=True)."""
        true_positives = self.true_positives[label]
        errors = self.predicted[label] + self.gold[label] - 2 * true_positives
        if not true_positives and not errors:
            return 1.0
        return precision_recall_f1(true_positives, self.predicted[label], self.gold[label])[2]

    def macro_f1(self, labels):
        """The mean of :meth:`f1` over ``labels``: every IOB2 tag of the task, ``O`` included
        (KLUE: B-/I- of PS, LC, OG, DT, TI, QT and O)."""
        labels = list(labels)
        return sum(self.f1(label) for label in labels) / len(labels) if labels else 0.0


def iob2_labels(types):
    """KLUE's label list for ``types``: ``B-T``, ``I-T`` for each type in order, then ``O``."""
    return [f'{prefix}-{label}' for label in types for prefix in 'BI'] + [OUTSIDE]


class EntityConfusion:
    """Entities by ``(gold type, predicted type)``, matched by exact span (start and end).

    A gold entity whose span some prediction has exactly counts under (its type, that
    prediction's type): the diagonal is :class:`EntityCounts`' true positives, off it the right
    span with the wrong type. A gold entity no prediction spans exactly counts under (its type,
    :data:`MISSED`); a prediction that spans no gold entity under (:data:`SPURIOUS`, its type).
    So row T sums to T's gold entities and column T to T's predicted ones.
    """

    def __init__(self, counts=None):
        self.counts = Counter(counts or {})

    def add(self, gold_spans, predicted_spans):
        gold = {(span.start, span.end): span.label for span in _spans(gold_spans)}
        predicted = {(span.start, span.end): span.label for span in _spans(predicted_spans)}
        for span, label in gold.items():
            self.counts[label, predicted.get(span, MISSED)] += 1
        for span, label in predicted.items():
            if span not in gold:
                self.counts[SPURIOUS, label] += 1
        return self

    def __add__(self, other):
        return EntityConfusion(self.counts + other.counts)

    def to_dict(self):
        return {'counts': [[gold, predicted, count] for (gold, predicted), count in sorted(self.counts.items())]}

    @classmethod
    def from_dict(cls, data):
        return cls({(gold, predicted): count for gold, predicted, count in data['counts']})

    def matrix(self, types=None):
        """``(rows, columns, table)``: rows are gold types then :data:`SPURIOUS`, columns predicted
        types then :data:`MISSED`; ``table[i][j]`` counts entities."""
        seen = {label for pair in self.counts for label in pair} - {SPURIOUS, MISSED}
        types = sorted(seen | set(types or ()))
        rows, columns = types + [SPURIOUS], types + [MISSED]
        return rows, columns, [[self.counts[row, column] for column in columns] for row in rows]
