"""``kobert-gluon serve``: :mod:`.batcher` (dynamic batching, no web framework) and :mod:`.app`
(the FastAPI application; importing it needs the ``serve`` extra). Nothing is imported here."""
