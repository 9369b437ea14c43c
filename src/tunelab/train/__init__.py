"""Stage trainers (subclasses of transformers.Trainer), their callbacks and the training recipe."""
