"""Run plumbing every stage shares: resume and atomic checkpoints, callbacks, and what a run leaves behind."""
