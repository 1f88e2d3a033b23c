"""``sklearn-cxr demo``: the main job end to end on the embedded X-rays."""

from __future__ import annotations

import json
import os

from .._quickstart import run_quickstart
from ._common import (
    CommandError,
    add_model_options,
    check_names,
    check_output_file,
    echo,
    positive_int,
    save_model,
)

__all__ = ["add_demo_command", "run_demo"]


def add_demo_command(commands, common):
    demo = commands.add_parser(
        "demo",
        parents=[common],
        help="train and evaluate on the embedded real chest X-rays",
        description="The main job end to end, offline: the 407 real chest "
        "X-rays shipped with the package (Kermany et al. 2018, CC BY 4.0) split "
        "by patient, a classifier on ImageNet EfficientNet-Lite0 features, the "
        "clinical report with 95%% confidence intervals on the held-out "
        "patients, and a Grad-CAM figure. Without the weights package "
        "(sklearn-cxr[weights]) it falls back to random weights and says so.",
    )
    data_source = demo.add_mutually_exclusive_group()
    data_source.add_argument(
        "--data",
        metavar="DIR",
        default=None,
        help="a folder in the Kermany layout instead of the embedded sample",
    )
    data_source.add_argument(
        "--synthetic",
        action="store_true",
        help="synthetic radiographs (make_chest_xrays) instead of the sample",
    )
    add_model_options(demo, mode_default="features", epochs_default=3,
                      size_default=128, backbone_default="timm:tf_efficientnet_lite0",
                      weights_default="IMAGENET")
    demo.add_argument(
        "--n-samples",
        type=positive_int,
        default=400,
        help="with --synthetic: number of images (default: %(default)s)",
    )
    demo.add_argument(
        "--max-images",
        type=positive_int,
        default=None,
        help="use a random subset of about this many images (whole patients)",
    )
    demo.add_argument(
        "--report",
        metavar="DIR",
        default="sklearn-cxr-demo",
        help="write the figures (Grad-CAM, ROC curve, confusion matrix) and "
        "report.json to DIR (default: %(default)s); 'none' writes nothing",
    )
    demo.add_argument(
        "--n-bootstrap",
        type=int,
        default=1000,
        help="bootstrap resamples (default: %(default)s)",
    )
    demo.add_argument(
        "--quick",
        action="store_true",
        help="tiny images, few samples, one epoch: a smoke test in seconds",
    )
    demo.add_argument("--out", metavar="MODEL", help="also save the model here")
    demo.add_argument("--json", action="store_true", help="print JSON")
    demo.set_defaults(func=run_demo)
    return demo


def _check_names_or_fallback(args):
    """Unknown names fail now; missing optional weights are the demo's fallback."""
    try:
        check_names(args)
    except ImportError:
        if args.weights not in ("IMAGENET", "DEFAULT"):
            raise


def run_demo(args):
    if args.out:
        check_output_file(args.out)
    report_dir = None if args.report.lower() == "none" else args.report
    if report_dir is not None and os.path.isfile(report_dir):
        raise CommandError(f"--report {report_dir} is a file; give a folder")
    _check_names_or_fallback(args)
    result = run_quickstart(
        args.data,
        synthetic=args.synthetic,
        backbone=args.backbone,
        weights=args.weights,
        mode=args.mode,
        n_samples=args.n_samples,
        image_size=args.image_size,
        max_epochs=args.epochs,
        max_images=args.max_images,
        device=args.device,
        batch_size=args.batch_size,
        n_bootstrap=args.n_bootstrap,
        random_state=args.random_state,
        report_dir=report_dir,
        verbose=0 if args.quiet or args.json else 1,
        quick=args.quick,
    )
    if args.out:
        save_model(result.estimator, args.out, False)
    if args.json:
        out = {
            "summary": result.summary,
            "source": result.source,
            "weights": None if result.weights is None else str(result.weights),
            "fallback": result.fallback,
            "backbone": str(result.estimator.backbone),
            "mode": result.estimator.mode,
            "image_size": result.estimator.image_size,
            "n_train": result.n_train,
            "n_test": result.n_test,
            "fit_seconds": result.fit_seconds,
            **result.report.to_dict(),
            "figures": result.figures,
            "report_dir": report_dir,
        }
        echo(json.dumps(out, indent=2))
        return 0
    echo(f"\n{result.summary}")
    echo(
        f"Trained on {result.n_train} images in {result.fit_seconds:.1f} s; "
        f"tested on {result.n_test} images of other patients:\n"
    )
    echo(str(result.report))
    if result.fallback:
        echo(
            "\nThis was the FALLBACK without pretrained weights; for the real "
            "demo: pip install 'sklearn-cxr[weights]'"
        )
    if result.figures:
        echo(
            f"\nWrote {', '.join(result.figures.values())} and report.json to "
            f"{report_dir}"
        )
    if args.out:
        echo(f"Saved the model to {args.out}")
    return 0
