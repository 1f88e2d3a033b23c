"""``sklearn-cxr evaluate``: the clinical report of a model on a folder."""

from __future__ import annotations

import json

from .._labels import plain_label
from .._report import evaluate_classifier, write_html_report
from ._common import (
    CommandError,
    add_pos_label,
    add_trust_pickle,
    disease_class,
    echo,
    load_data_folder,
    load_model,
    probability,
    set_verbosity,
)

__all__ = ["add_evaluate_command", "run_evaluate"]


def add_evaluate_command(commands, common):
    evaluate = commands.add_parser(
        "evaluate",
        parents=[common],
        help="accuracy, sensitivity, specificity, ROC AUC with 95%% CIs",
        description="Evaluate MODEL on DATA_DIR (its test split when it has "
        "one): accuracy, sensitivity, specificity and ROC AUC with 95% bootstrap "
        "confidence intervals resampled by patient, and the confusion matrix.",
    )
    evaluate.add_argument("model", metavar="MODEL", help="a model saved by train")
    evaluate.add_argument("data_dir", metavar="DATA_DIR", help="the image folder")
    evaluate.add_argument(
        "--report",
        metavar="DIR",
        help="write ROC curve, confusion matrix, Grad-CAM of the most confident "
        "errors (PNG), report.json and index.html (one self-contained page) to DIR",
    )
    evaluate.add_argument(
        "--threshold",
        type=probability,
        default=0.5,
        metavar="T",
        help="probability of disease at which an image is called positive "
        "(default: %(default)s)",
    )
    add_pos_label(evaluate)
    evaluate.add_argument(
        "--n-bootstrap",
        type=int,
        default=1000,
        help="bootstrap resamples (default: %(default)s)",
    )
    evaluate.add_argument(
        "--random-state", type=int, default=0, help="seed of the bootstrap"
    )
    evaluate.add_argument("--json", action="store_true", help="print JSON")
    add_trust_pickle(evaluate)
    evaluate.set_defaults(func=run_evaluate)
    return evaluate


def run_evaluate(args):
    model = load_model(args.model, args.trust_pickle)
    set_verbosity(model, 0 if args.quiet or args.json else 1)
    classes = [plain_label(c) for c in model.classes_]
    if len(classes) == 2:
        positive = disease_class(classes, args.pos_label)
    else:
        # a model of subtypes: the disease is every class but normal, named
        # "PNEUMONIA" unless --pos-label names it otherwise
        positive = args.pos_label
    subtype = bool({str(c).lower() for c in classes} & {"bacterial", "viral"})
    data = load_data_folder(
        args.data_dir, "test", labels="subtype" if subtype else "binary"
    )
    y = data.target_names[data.target]
    unknown = sorted(set(y.tolist()) - set(classes))
    if unknown:
        raise CommandError(
            f"the folder's labels {unknown} are not classes of the model {classes}"
        )
    report = evaluate_classifier(
        model,
        data.paths,
        y,
        groups=data.groups,
        positive_label=positive,
        threshold=args.threshold,
        n_bootstrap=args.n_bootstrap,
        random_state=args.random_state,
        report_dir=args.report,
    )
    if args.report:
        write_html_report(
            args.report, report, model,
            data_description=f"{args.data_dir} ({len(y)} images)",
        )
    if args.json:
        echo(json.dumps(report.to_dict(), indent=2))
    else:
        echo(str(report))
        if args.report:
            files = ", ".join(report.to_dict().get("figures", {}).values())
            echo(f"\nWrote {files}, report.json and index.html to {args.report}")
    return 0
