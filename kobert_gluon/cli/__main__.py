"""``python -m kobert_gluon.cli``: the ``kobert-gluon`` command."""
import sys

from . import main

sys.exit(main())
