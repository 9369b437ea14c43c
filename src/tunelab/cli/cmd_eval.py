"""`tunelab eval cfg.yaml [key=value ...] [--key value ...] [--harness TASKS]`: evaluate a model.

One command, three modes chosen by what the config says:
  --harness TASKS       lm-evaluation-harness tasks on the model (+ adapter)
  task: mmlu_test       a multiple-choice benchmark (MMLU / CMMLU / C-Eval layout)
  eval_dataset: NAME    generation on a data set: BLEU-4, ROUGE, exact match, perplexity
"""

from __future__ import annotations

from tunelab.errors import UserError

USAGE = """usage: tunelab eval CONFIG.yaml [key=value ...] [--key value ...] [--harness TASKS]

Evaluate a model (with its adapter) in one of three modes:
  task: mmlu_test          multiple-choice benchmark; task_dir, n_shot, lang, batch_size, seed, save_dir
                           (task: tunelab_sample_test is a small bundled sample; _zh for Chinese)
  eval_dataset: NAME       generate answers for a data set: BLEU-4, ROUGE-1/2/L, exact match, perplexity;
                           writes generated_predictions.jsonl and predict_results.json to save_dir
  --harness TASKS          run lm-evaluation-harness tasks (comma separated; needs `pip install lm-eval`)
See docs/eval.md."""


def split_harness(argv: list[str]) -> tuple[list[str], str | None]:
    """Take `--harness TASKS` (or `--harness=TASKS`) out of the arguments the config parser reads."""
    rest: list[str] = []
    tasks: str | None = None
    index = 0
    while index < len(argv):
        token = argv[index]
        if token == "--harness":
            if index + 1 >= len(argv) or argv[index + 1].startswith("--"):
                raise UserError("--harness needs task names, e.g. --harness hellaswag,arc_easy")
            tasks = argv[index + 1]
            index += 2
            continue
        if token.startswith("--harness="):
            tasks = token.split("=", 1)[1]
        else:
            rest.append(token)
        index += 1
    return rest, tasks


def main(argv: list[str]) -> int:
    if not argv or argv[0] in ("-h", "--help"):
        print(USAGE)
        return 0 if argv else 2
    from tunelab.config.parser import parse_config

    argv, harness = split_harness(argv)
    config = parse_config(argv)
    if harness is not None:
        from tunelab.eval.harness import parse_tasks, run_harness

        run_harness(config, parse_tasks(harness))
    elif config.evaluation.task:
        from tunelab.eval.benchmark import run_benchmark

        run_benchmark(config)
    elif config.data.eval_dataset or config.data.dataset:
        from tunelab.eval.generation import run_generation_eval

        run_generation_eval(config)
    else:
        raise UserError("nothing to evaluate: set task (e.g. task: mmlu_test), eval_dataset, or pass --harness TASKS.")
    return 0
