"""Make the chest X-ray sample embedded in sklearn_cxr (issue 14).

Picks whole patients at random (seeded) from the training split of Kermany
et al. (2018), in three strata so that both kinds of normal file names and
both pneumonia subtypes are present, and writes every image of each chosen
patient as a 128 px grayscale JPEG, plus ``sample.csv`` (file name, label,
patient, subtype) and the licence, into
``sklearn_cxr/datasets/data/chest_xray_sample``.

Run from the repository root::

    python tools/make_sample.py /path/to/chest_xray/train

The data are licensed CC BY 4.0 (Kermany, Zhang and Goldbaum, Mendeley
Data, doi:10.17632/rscbjbr9sj); the sample keeps the original file names.
"""

from __future__ import annotations

import argparse
import csv
import shutil
from pathlib import Path

import numpy as np
from PIL import Image

from sklearn_cxr.datasets import load_chest_xray

OUT = Path("sklearn_cxr/datasets/data/chest_xray_sample")

#: images wanted per stratum; whole patients are added until it is reached
STRATA = {"IM-": 100, "NORMAL2-IM-": 100, "person": 200}

LICENSE = """\
The images in this folder are a downsized sample (128x128 pixels, grayscale
JPEG) of the training split of:

    Kermany, Daniel; Zhang, Kang; Goldbaum, Michael (2018), "Labeled Optical
    Coherence Tomography (OCT) and Chest X-Ray Images for Classification",
    Mendeley Data, V2, doi:10.17632/rscbjbr9sj.2

described in:

    Kermany D. S. et al. (2018). Identifying Medical Diagnoses and Treatable
    Diseases by Image-Based Deep Learning. Cell 172(5), 1122-1131.
    doi:10.1016/j.cell.2018.02.010

licensed under the Creative Commons Attribution 4.0 International licence
(CC BY 4.0, https://creativecommons.org/licenses/by/4.0/).

Changes: a random subset of patients was chosen (seed {seed}), every image
of a chosen patient was converted to grayscale and resized to 128x128
pixels (Lanczos) from a 224x224 copy, and saved as JPEG (quality {quality}).
The file names are the originals. sample.csv lists each file with its label,
patient and subtype. Made by tools/make_sample.py of sklearn_cxr.
"""


def _stratum(group):
    for prefix in ("NORMAL2-IM-", "IM-", "person"):
        if group.startswith(prefix):
            return prefix
    raise ValueError(f"unexpected patient id {group!r}")


def choose(groups, seed):
    """Indices of all images of patients drawn per stratum."""
    rng = np.random.RandomState(seed)
    keep = []
    for prefix, wanted in STRATA.items():
        patients = sorted({g for g in groups if _stratum(g) == prefix})
        rng.shuffle(patients)
        count = 0
        for patient in patients:
            if count >= wanted:
                break
            images = np.flatnonzero(groups == patient)
            keep.extend(images.tolist())
            count += len(images)
    return np.sort(np.array(keep))


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("train_dir", help="the Kermany training split folder")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--size", type=int, default=128)
    parser.add_argument("--quality", type=int, default=90)
    args = parser.parse_args(argv)

    data = load_chest_xray(args.train_dir, return_paths=True)
    keep = choose(data.groups, args.seed)
    if OUT.exists():
        shutil.rmtree(OUT)
    rows = []
    for i in keep:
        label = data.target_names[data.target[i]]
        source = Path(data.paths[i])
        target = OUT / label / source.name
        target.parent.mkdir(parents=True, exist_ok=True)
        with Image.open(source) as image:
            small = image.convert("L").resize(
                (args.size, args.size), Image.Resampling.LANCZOS
            )
        small.save(target, "JPEG", quality=args.quality, optimize=True)
        rows.append([f"{label}/{source.name}", label, data.groups[i], data.subtype[i]])
    with open(OUT / "sample.csv", "w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(["filename", "label", "patient", "subtype"])
        writer.writerows(rows)
    (OUT / "LICENSE.txt").write_text(
        LICENSE.format(seed=args.seed, quality=args.quality), encoding="utf-8"
    )
    size = sum(p.stat().st_size for p in OUT.rglob("*") if p.is_file())
    labels = [r[1] for r in rows]
    subtypes = [r[3] for r in rows]
    print(
        f"{len(rows)} images of {len({r[2] for r in rows})} patients "
        f"(NORMAL {labels.count('NORMAL')}, PNEUMONIA {labels.count('PNEUMONIA')}; "
        f"bacteria {subtypes.count('bacteria')}, virus {subtypes.count('virus')}), "
        f"{size / 1e6:.2f} MB in {OUT}"
    )


if __name__ == "__main__":
    main()
