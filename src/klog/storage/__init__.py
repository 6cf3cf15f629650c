"""Storage: a partition's log as ordered segments, with recovery, retention and checkpoints."""
