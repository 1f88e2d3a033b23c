"""Side-by-side speed of sklearn_cxr against hand-written torch loops.

In one process, with the same backbone object, image size, images and batch
size, alternating ours / hand-written ``--repeats`` times and taking medians:

(a) inference: ``PretrainedFeatures.transform(paths)`` against a plain
    ``torch.inference_mode`` loop over a ``DataLoader`` (PIL decode, torchvision
    v2 resize + normalise); target ratio >= 0.95;
(b) training: one epoch of ``PretrainedCNNClassifier(mode="finetune")``
    (whole network, ``freeze_epochs=0``, no validation split; skorch's own
    epoch duration) against a hand-written AdamW loop over the same network
    and the same training transform; target ratio >= 0.90;
(c) peak memory: the rise of the resident set size during each run, sampled
    every 5 ms by a thread (psutil);
(d) data loading: decoding + preprocessing alone, from JPEG paths against an
    in-memory uint8 array, and ``transform`` on paths against arrays.

    python benchmarks/speed.py --quick          # 64 images, 128 px, 3 repeats
    python benchmarks/speed.py                  # 256 images, 224 px

Ratios are throughput(ours) / throughput(hand-written); > 1 means ours is
faster. The CPU is shared: only the ratios measured side by side mean much.
"""

from __future__ import annotations

import argparse
import json
import logging
import statistics
import sys
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _common  # noqa: E402

logger = logging.getLogger("speed")


class PeakRSS:
    """Peak rise of this process's RSS (MB) while the block runs."""

    def __init__(self, interval=0.005):
        import psutil

        self.process = psutil.Process()
        self.interval = interval

    def __enter__(self):
        self.start = self.process.memory_info().rss
        self.peak = self.start
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()
        return self

    def _sample(self):
        while not self._stop.is_set():
            self.peak = max(self.peak, self.process.memory_info().rss)
            time.sleep(self.interval)

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, self.process.memory_info().rss)
        self.rise_mb = (self.peak - self.start) / 2**20


def timed(fn):
    """Wall seconds, CPU seconds of this process, RSS rise, result."""
    with PeakRSS() as mem:
        start, cpu = time.perf_counter(), time.process_time()
        out = fn()
        seconds = time.perf_counter() - start
        cpu = time.process_time() - cpu
    return seconds, cpu, mem.rise_mb, out


def _epoch_cpu_timer():
    """A skorch callback recording the CPU seconds of each training epoch."""
    from skorch.callbacks import Callback

    class EpochCPUTime(Callback):
        def on_epoch_begin(self, net, **kwargs):
            self._start = time.process_time()

        def on_epoch_end(self, net, **kwargs):
            net.history.record("cpu_dur", time.process_time() - self._start)

    return EpochCPUTime()


def hand_inference(model, paths, image_size, batch_size, mean, std, interp,
                   channels_last=False):
    """The plain loop a torch user writes."""
    import numpy as np
    import torch
    from PIL import Image
    from torchvision.transforms import InterpolationMode, v2

    tf = v2.Compose([
        v2.PILToTensor(),
        v2.Resize((image_size, image_size),
                  interpolation=InterpolationMode(interp), antialias=True),
        v2.ToDtype(torch.float32, scale=True),
        v2.Normalize(mean=list(mean), std=list(std)),
    ])

    class Paths(torch.utils.data.Dataset):
        def __len__(self):
            return len(paths)

        def __getitem__(self, i):
            with Image.open(paths[i]) as im:
                return tf(im.convert("RGB"))

    loader = torch.utils.data.DataLoader(Paths(), batch_size=batch_size)
    model.eval()
    out = []
    with torch.inference_mode():
        for x in loader:
            if channels_last:
                x = x.contiguous(memory_format=torch.channels_last)
            out.append(model(x).numpy())
    return np.concatenate(out)


def hand_train_epoch(module, paths, y, image_size, batch_size, lr, transform,
                     seed=0):
    """One epoch of a hand-written AdamW loop over the same network."""
    import torch
    from PIL import Image

    class Paths(torch.utils.data.Dataset):
        def __len__(self):
            return len(paths)

        def __getitem__(self, i):
            with Image.open(paths[i]) as im:
                x = torch.from_numpy(
                    __import__("numpy").asarray(im.convert("RGB")).copy()
                ).permute(2, 0, 1)
            return transform(x), int(y[i])

    g = torch.Generator().manual_seed(seed)
    loader = torch.utils.data.DataLoader(
        Paths(), batch_size=batch_size, shuffle=True, generator=g
    )
    opt = torch.optim.AdamW(module.parameters(), lr=lr, weight_decay=1e-4)
    loss_fn = torch.nn.CrossEntropyLoss()
    module.train()
    start, cpu = time.perf_counter(), time.process_time()
    for x, t in loader:
        opt.zero_grad()
        loss = loss_fn(module(x), t)
        loss.backward()
        opt.step()
    return time.perf_counter() - start, time.process_time() - cpu


def in_chans_check(args, size, weights):
    """(e) CPU seconds of a forward pass and of a training step, 1 vs 3 channels.

    On grayscale images replicated to RGB the summed 1-channel stem gives
    the same embedding (checked: ``max_abs_diff``), so only speed differs.
    """
    import torch

    from sklearn_cxr._backbones import load_backbone

    bodies = {c: load_backbone(args.backbone, weights, in_chans=c).body
              for c in (1, 3)}
    torch.manual_seed(0)
    x1 = torch.rand(args.batch_size, 1, size, size) * 2 - 1
    xs = {1: x1, 3: x1.expand(-1, 3, -1, -1).contiguous()}
    with torch.inference_mode():
        diff = float((bodies[1].eval()(xs[1]) - bodies[3].eval()(xs[3])).abs().max())
    times = {f"{kind}_c{c}": [] for kind in ("forward", "train_step")
             for c in (1, 3)}
    for _ in range(args.repeats):
        for c in (3, 1):
            body = bodies[c]
            body.eval()
            start = time.process_time()
            with torch.inference_mode():
                body(xs[c])
            times[f"forward_c{c}"].append(time.process_time() - start)
            body.train()
            start = time.process_time()
            body(xs[c]).sum().backward()
            times[f"train_step_c{c}"].append(time.process_time() - start)
            body.zero_grad(set_to_none=True)
    med = {k: median(v) for k, v in times.items()}
    return {
        "cpu_seconds": times, "median_cpu_s": med,
        "forward_speedup_c1_vs_c3": med["forward_c3"] / med["forward_c1"],
        "train_step_speedup_c1_vs_c3": med["train_step_c3"] / med["train_step_c1"],
        "max_abs_diff_embeddings": diff,
    }


def median(values):
    return float(statistics.median(values))


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--n-images", type=int, default=None)
    parser.add_argument("--image-size", type=int, default=None)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--skip-train", action="store_true")
    parser.add_argument("--skip-inference", action="store_true")
    parser.add_argument(
        "--ours-params", default="{}",
        help="JSON of extra PretrainedCNNClassifier parameters for our training "
        'epoch only, e.g. \'{"augment": "acquisition"}\'; the hand-written loop '
        "keeps the default training transform, so their cost is counted",
    )
    parser.add_argument("--only-in-chans", action="store_true",
                        help="only (e): the 1-channel stem against 3 channels")
    parser.add_argument(
        "--backbone", default=_common.BACKBONE,
        help="timm:tf_efficientnet_lite0 (offline weights) or resnet18 (random)",
    )
    _common.add_path_arguments(parser)
    args = parser.parse_args(argv)
    _common.set_paths(args)
    n = args.n_images or (64 if args.quick else 256)
    size = args.image_size or (128 if args.quick else 224)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")

    import numpy as np
    import torch
    from PIL import Image

    from sklearn_cxr import PretrainedCNNClassifier, PretrainedFeatures
    from sklearn_cxr._backbones import (
        CXRNetwork,
        build_head,
        load_backbone,
        probe_features,
    )
    from sklearn_cxr._images import build_transform

    weights = str(_common.WEIGHTS) if args.backbone.startswith("timm:") else None
    data = _common.load_data()
    rng = np.random.RandomState(0)
    idx = np.sort(rng.choice(len(data["paths"]), n, replace=False))
    paths = [str(p) for p in data["paths"][idx]]
    y = data["y"][idx]
    arrays = np.stack([np.asarray(Image.open(p).convert("RGB")) for p in paths])
    result = {
        "machine": _common.machine(),
        "config": {"backbone": args.backbone, "weights": weights, "n_images": n,
                   "image_size": size, "batch_size": args.batch_size,
                   "repeats": args.repeats},
        "command": "python benchmarks/speed.py "
        + " ".join(argv if argv is not None else sys.argv[1:]),
    }

    if args.only_in_chans:
        result["in_chans"] = in_chans_check(args, size, weights)
        path = _common.save_json(f"speed_in_chans_{size}px.json", result)
        logger.info("saved %s: %s", path, result["in_chans"])
        return

    # (a) inference ----------------------------------------------------------
    feats = PretrainedFeatures(backbone=args.backbone, weights=weights,
                               image_size=size, batch_size=args.batch_size,
                               random_state=0).fit()
    model = feats.backbone_
    runs = {k: [] for k in ("ours_paths", "hand", "hand_channels_last",
                            "ours_arrays")}
    mem = {k: [] for k in runs}
    cpu_runs = {k: [] for k in runs}
    outputs = {}
    for rep in range(args.repeats if not args.skip_inference else 0):
        candidates = [
            ("ours_paths", lambda: feats.transform(paths)),
            ("hand", lambda: hand_inference(
                model, paths, size, args.batch_size, feats.mean_, feats.std_,
                feats.interpolation_)),
            ("hand_channels_last", lambda: hand_inference(
                model.to(memory_format=torch.channels_last), paths, size,
                args.batch_size, feats.mean_, feats.std_, feats.interpolation_,
                channels_last=True)),
            ("ours_arrays", lambda: feats.transform(arrays)),
        ]
        # Rotate the order each repeat: the first run of a repeat pays for
        # the allocator's growth, which must not always fall on one side.
        shift = rep % len(candidates)
        for name, fn in candidates[shift:] + candidates[:shift]:
            seconds, cpu, rise, out = timed(fn)
            model.to(memory_format=torch.contiguous_format)
            runs[name].append(seconds)
            cpu_runs[name].append(cpu)
            mem[name].append(rise)
            logger.info("inference rep %d %s: %.2fs wall, %.2fs cpu", rep, name,
                        seconds, cpu)
            outputs[name] = out
        max_diff = float(np.abs(outputs["ours_paths"] - outputs["hand"]).max())
    if not args.skip_inference:
        inf = {k: {"seconds": v, "median_s": median(v),
                   "images_per_s": n / median(v),
                   "cpu_seconds": cpu_runs[k],
                   "images_per_cpu_s": n / median(cpu_runs[k]),
                   "peak_rss_rise_mb": max(mem[k])} for k, v in runs.items()}
        inf["ratio_ours_vs_hand"] = (
            inf["ours_paths"]["images_per_s"] / inf["hand"]["images_per_s"]
        )
        inf["ratio_ours_vs_hand_channels_last"] = (
            inf["ours_paths"]["images_per_s"]
            / inf["hand_channels_last"]["images_per_s"]
        )
        inf["ratio_arrays_vs_paths"] = (
            inf["ours_arrays"]["images_per_s"] / inf["ours_paths"]["images_per_s"]
        )
        inf["cpu_ratio_ours_vs_hand"] = (
            inf["ours_paths"]["images_per_cpu_s"] / inf["hand"]["images_per_cpu_s"]
        )
        inf["cpu_ratio_ours_vs_hand_channels_last"] = (
            inf["ours_paths"]["images_per_cpu_s"]
            / inf["hand_channels_last"]["images_per_cpu_s"]
        )
        inf["max_abs_diff_ours_vs_hand"] = max_diff
        result["inference"] = inf

        # (d) data loading alone -------------------------------------------------
        tf = feats._eval_transform()
        from sklearn_cxr._images import check_images

        load = {"paths": [], "arrays": []}
        for _ in range(args.repeats):
            for name, source in (("paths", paths), ("arrays", arrays)):
                coll = check_images(source)
                start = time.process_time()
                for i in range(len(coll)):
                    tf(coll[i])
                load[name].append(time.process_time() - start)
        result["loading"] = {
            k: {"median_cpu_s": median(v), "images_per_cpu_s": n / median(v)}
            for k, v in load.items()
        }
        result["loading"]["ratio_arrays_vs_paths"] = (
            median(load["paths"]) / median(load["arrays"])
        )

    # (b) training -------------------------------------------------------------
    if not args.skip_train:
        train = {"ours": [], "hand": []}
        tcpu = {"ours": [], "hand": []}
        tmem = {"ours": [], "hand": []}
        yi = (y == "PNEUMONIA").astype(int)

        def ours(rep):
            clf = PretrainedCNNClassifier(
                backbone=args.backbone, weights=weights, image_size=size,
                batch_size=args.batch_size, max_epochs=1, freeze_epochs=0,
                validation_fraction=None, random_state=rep,
                callbacks=[("cpu_timer", _epoch_cpu_timer())],
                **json.loads(args.ours_params),
            )
            clf.fit(paths, y)
            return float(clf.history_[-1, "dur"]), float(
                clf.history_[-1, "cpu_dur"]
            )

        def hand(rep):
            torch.manual_seed(rep)
            spec = load_backbone(args.backbone, weights)
            nfeat = probe_features(spec.body, size, 3)
            module = CXRNetwork(spec.body, build_head(nfeat, 2))
            tf_train = build_transform(size, mean=spec.mean, std=spec.std,
                                       interpolation=spec.interpolation,
                                       train=True)
            return hand_train_epoch(module, paths, yi, size, args.batch_size,
                                    1e-3, tf_train, seed=rep)

        for rep in range(args.repeats):
            # alternate who goes first (allocator growth, caches)
            order = [("ours", ours), ("hand", hand)]
            for name, fn in order if rep % 2 == 0 else order[::-1]:
                # RSS rise covers building the model and the epoch, both sides
                with PeakRSS() as m:
                    seconds, cpu = fn(rep)
                train[name].append(seconds)
                tcpu[name].append(cpu)
                tmem[name].append(m.rise_mb)
                logger.info("train rep %d %s: %.2fs wall, %.2fs cpu, rss +%.0f MB",
                            rep, name, seconds, cpu, m.rise_mb)
        tr = {k: {"epoch_seconds": v, "median_s": median(v),
                  "images_per_s": n / median(v),
                  "cpu_seconds": tcpu[k],
                  "images_per_cpu_s": n / median(tcpu[k]),
                  "peak_rss_rise_mb": max(tmem[k])} for k, v in train.items()}
        tr["ratio_ours_vs_hand"] = (
            tr["ours"]["images_per_s"] / tr["hand"]["images_per_s"]
        )
        tr["cpu_ratio_ours_vs_hand"] = (
            tr["ours"]["images_per_cpu_s"] / tr["hand"]["images_per_cpu_s"]
        )
        result["training"] = tr

    import os

    result["machine"]["load_avg_end"] = os.getloadavg()
    tag = "quick" if args.quick else f"{n}img_{size}px"
    if args.skip_train:
        tag += "_inference_only"
    if args.skip_inference:
        tag += "_training_only"
    if json.loads(args.ours_params):
        tag += "_" + "_".join(
            f"{k}={v}" for k, v in json.loads(args.ours_params).items()
        )
        result["ours_params"] = json.loads(args.ours_params)
    path = _common.save_json(f"speed_{tag}.json", result)
    logger.info("saved %s", path)
    print(_summary(result))


def _summary(r):
    lines = []
    if "inference" not in r:
        inf = None
    else:
        inf = r["inference"]
    lines += [] if inf is None else [
        f"inference ours {inf['ours_paths']['images_per_s']:.2f} img/s, hand "
        f"{inf['hand']['images_per_s']:.2f}, ratio {inf['ratio_ours_vs_hand']:.3f}"
        f" (cpu-time ratio {inf['cpu_ratio_ours_vs_hand']:.3f}; vs hand+channels_last"
        f" {inf['ratio_ours_vs_hand_channels_last']:.3f}, cpu "
        f"{inf['cpu_ratio_ours_vs_hand_channels_last']:.3f})",
        f"transform arrays/paths {inf['ratio_arrays_vs_paths']:.3f}; loading "
        f"arrays/paths {r['loading']['ratio_arrays_vs_paths']:.2f}",
    ]
    if "training" in r:
        tr = r["training"]
        lines.append(
            f"training ours {tr['ours']['images_per_s']:.2f} img/s, hand "
            f"{tr['hand']['images_per_s']:.2f}, ratio {tr['ratio_ours_vs_hand']:.3f}"
            f" (cpu-time ratio {tr['cpu_ratio_ours_vs_hand']:.3f})"
        )
    return "\n".join(lines)


if __name__ == "__main__":
    main()
