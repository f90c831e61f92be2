"""Parts of the tau-decay simulator; ``simulators.tau_decay`` is its public front."""
