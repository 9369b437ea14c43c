"""Evaluation: multiple-choice benchmarks (MMLU / CMMLU / C-Eval layout), generation metrics on a data
set, and a bridge to lm-evaluation-harness. `tunelab eval` (cli/cmd_eval.py) is the entry point.

Modules, one concept each: `questions` (the row type), `local_task` / `hub_task` / `tasks` (where task
data comes from), `prompts` (few-shot prompt text), `scoring` (letters from next-token logits),
`accuracy` (aggregation, table, JSON), `benchmark` (the run), `perplexity`, `generation`, `harness`.
"""
