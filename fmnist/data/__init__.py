"""Raw bytes to tensors: the IDX format and its checksums, where the files come from, the splits."""
