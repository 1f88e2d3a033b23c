"""
Fine-tuning on several GPUs or machines with Accelerate
=======================================================

``accelerator=True`` makes :class:`~sklearn_cxr.PretrainedCNNClassifier`
train under Hugging Face Accelerate (skorch's ``AccelerateMixin``). Start
this script once per device with ``accelerate launch``: every process fits on
the same images, each takes its own share of every batch, the gradients are
averaged across processes (PyTorch DistributedDataParallel), and all
processes end with the same weights. The validation ROC AUC, and so early
stopping, is computed on the predictions gathered from all processes.

On one machine with 4 GPUs::

    accelerate launch --multi_gpu --num_processes 4 \\
        examples/distributed/train_accelerate.py \\
        --data-dir chest_xray/train --image-size 224 --weights DEFAULT

On two CPU processes (how the test suite runs it; ``--cpu`` sets
``accelerator={"cpu": True}``)::

    accelerate launch --multi_gpu --num_processes 2 \\
        --num_cpu_threads_per_process 1 \\
        examples/distributed/train_accelerate.py --cpu

Several machines and a SLURM job are described in :ref:`distributed`. The
main process saves the fitted model with joblib; it loads and predicts on any
machine, without Accelerate.

This example needs ``accelerate launch``; it is shown here, not run.
"""

import argparse
import json
import logging
import os
from pathlib import Path

import joblib
import numpy as np
import torch

from sklearn_cxr import PretrainedCNNClassifier
from sklearn_cxr.datasets import load_chest_xray, make_chest_xrays

logger = logging.getLogger("train_accelerate")


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[1])
    parser.add_argument("--data-dir", help="folder with NORMAL/ and PNEUMONIA/")
    parser.add_argument("--n-images", type=int, default=64,
                        help="synthetic images when --data-dir is not given")
    parser.add_argument("--image-size", type=int, default=64)
    parser.add_argument("--backbone", default="resnet18")
    parser.add_argument("--weights", default="none",
                        help="'DEFAULT', a state-dict path, or 'none'")
    parser.add_argument("--max-epochs", type=int, default=2)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--mixed-precision", default="no",
                        choices=["no", "fp16", "bf16"])
    parser.add_argument("--cpu", action="store_true",
                        help="train on CPU processes (gloo), not GPUs")
    parser.add_argument("--output", default="model_accelerate.joblib")
    parser.add_argument("--report-dir",
                        help="write one JSON report per process here")
    return parser.parse_args(argv)


def load_data(args):
    if args.data_dir:
        data = load_chest_xray(args.data_dir, return_paths=True)
        return list(data.paths), data.target_names[data.target], data.groups
    data = make_chest_xrays(
        args.n_images, image_size=args.image_size, random_state=0
    )
    return data.images, data.target_names[data.target], data.groups


def main(argv=None):
    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO)
    X, y, groups = load_data(args)
    weights = None if args.weights.lower() == "none" else args.weights
    clf = PretrainedCNNClassifier(
        backbone=args.backbone,
        weights=weights,
        image_size=args.image_size,
        max_epochs=args.max_epochs,
        batch_size=args.batch_size,
        validation_fraction=0.25,
        random_state=0,
        accelerator={"cpu": args.cpu, "mixed_precision": args.mixed_precision},
    )
    clf.fit(X, y, groups=groups)
    accelerator = clf.net_.accelerator
    proba = clf.predict_proba(X)
    accelerator.print(
        f"{accelerator.num_processes} processes, validation ROC AUC per epoch: "
        f"{clf.history_[:, 'valid_auc']}"
    )
    if accelerator.is_main_process:
        joblib.dump(clf, args.output)
        logger.info("Saved the model to %s", args.output)
    if args.report_dir:
        # What each process saw and ended with, for the test suite.
        images_per_epoch = [
            int(sum(batch["train_batch_size"] for batch in epoch["batches"]
                    if "train_batch_size" in batch))
            for epoch in clf.history_
        ]
        report = {
            "rank": accelerator.process_index,
            "num_processes": accelerator.num_processes,
            "distributed_type": str(accelerator.distributed_type),
            "pid": os.getpid(),
            "n_train_images_seen": images_per_epoch,
            "weights_sum": float(
                sum(p.double().sum() for p in clf.module_.parameters())
            ),
            "valid_auc": [float(v) for v in clf.history_[:, "valid_auc"]],
            "proba": np.round(proba, 6).tolist(),
            "classes": [str(c) for c in clf.classes_],
        }
        path = Path(args.report_dir) / f"rank{accelerator.process_index}.json"
        path.write_text(json.dumps(report))
    accelerator.wait_for_everyone()
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        torch.distributed.destroy_process_group()


if __name__ == "__main__":
    main()
