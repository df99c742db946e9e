"""Train and evaluate a HouseX classifier.

    accelerate launch -q trainer/run.py trainer/configs/cpu.yaml --dataset_name housex-v2 --output_dir runs/cpu
    accelerate launch -q -m housex.trainer.run CONFIG.yaml ...   # the same as a module (an installed package too)
    accelerate launch --multi_gpu --num_processes 2 trainer/run.py trainer/configs/cpu.yaml ...   # 2-process DDP
    python trainer/run.py trainer/configs/paper.yaml --release_dirs release/ --output_dir runs/paper
    python trainer/run.py --help

The first argument may be a YAML or JSON file of argument values; ``--name value`` flags after it
override the file.  Arguments: ``ModelArguments``/``DataTrainingArguments`` in
``housex.trainer.arguments`` plus every ``transformers.TrainingArguments`` field, and
``--step_lr_step_size``/``--step_lr_gamma`` for the paper's StepLR schedule.
An error is one line on stderr, ``trainer/run.py: error: ...``, and exit status 2;
``--debug_traceback`` shows the full traceback.  Under ``accelerate launch`` pass ``-q``
(``--quiet``): without it the launcher prints the error again inside its own traceback.

Several CPU processes: with accelerate 1.15 ``accelerate launch --cpu --num_processes 2`` starts
a single process (its multi-CPU mode expects mpirun); ``--multi_gpu --num_processes 2`` starts
them through torchrun, and with ``use_cpu: true`` (cpu.yaml) they train with DDP on gloo.
"""

from __future__ import annotations

import sys


def main(argv: list[str] | None = None) -> int:
    from housex.dataset_script.console import progress_bars_on_terminal_only

    bars = progress_bars_on_terminal_only()  # before transformers and datasets are imported
    from housex.dataset_script.librosa_import import import_librosa

    import_librosa()  # one process at a time (accelerate's processes, then the data workers only read numba's cache)
    from housex.trainer.train import cli

    argv = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug_traceback" in argv
    argv = [a for a in argv if a != "--debug_traceback"]
    if not bars and not any(a.split("=")[0] == "--disable_tqdm" for a in argv):
        argv += ["--disable_tqdm", "true"]  # the Trainer's own bar (it ignores the libraries' switches)
    try:
        return cli(argv)
    except (ValueError, OSError, RuntimeError) as e:
        # Our errors name the file/field; a traceback would only hide the message.
        if debug:
            raise
        print(f"trainer/run.py: error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
