"""Old import path ``kobert_gluon.convert`` (docs/interop.md before 0.6): the converters now live
in :mod:`kobert_gluon.interop.transformers`, the tensor mapping in :mod:`kobert_gluon.models.hf_weights`
and the exact token ids in :mod:`kobert_gluon.text.token_ids`."""
from .interop.transformers import check_output_dir, from_transformers, to_transformers  # noqa: F401
from .models.hf_weights import (bert_name_pairs, classifier_name_pairs, load_transformers_bert,  # noqa: F401
                                read_tensors, read_transformers_config)
from .text.token_ids import TokenIds, basic_tokenize  # noqa: F401
