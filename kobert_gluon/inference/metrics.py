"""Old import path (before 0.8): the metrics live in :mod:`kobert_gluon.tasks.metrics`."""
from ..tasks.metrics import classification_report, confusion_matrix, format_report  # noqa: F401
