"""Every pruning method as one kind: a registered PruneStep (see `secateur.methods.base`)."""
