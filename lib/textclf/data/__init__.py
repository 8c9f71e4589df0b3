"""The data stage: labelled rows in, tokenized Parquet shards and a manifest out.

Owns the sources (local, gs://, DVC, Hub), validation and cleaning (pass one), the split plan
(dedupe, label map, leak-free stratified split; pass two), tokenization, augmentation of the
training split, the shard layout with the one shard reader (`shards.read_split`), data versions
(fingerprints; versions DVC-tracked, pushed and committed: `dvc_versions`), the Dask pipeline that
ties them together (`preprocess`), and the unlabelled texts batch predictions read in shards
(`texts`). It imports the ground floor and `textclf.model` (the backbone's tokenizer), nothing above.
"""
