"""Augmentation matched to acquisition shifts, and test-time augmentation views.

Radiographs of one patient look different from one hospital to the next:
other exposure and gamma curves, unsharp masking or smoothing, detector
noise, JPEG re-compression. :func:`acquisition_augmentation` draws such
changes at random while training (``augment="acquisition"``);
:func:`framing_augmentation` adds burned-in markers and collimation borders
at random places (``augment="framing"``), so that a network cannot learn
where one hospital prints its letters.
:func:`tta_views` gives the views that ``tta=`` averages at predict time.
"""

from __future__ import annotations

from numbers import Real

import torch

__all__ = [
    "AUGMENT_OPTIONS",
    "AugmentedCopies",
    "CenterZoom",
    "Chain",
    "ViewCollection",
    "RandomBorder",
    "RandomGamma",
    "RandomJPEG",
    "RandomMarkers",
    "acquisition_augmentation",
    "framing_augmentation",
    "photometric_augmentation",
    "resolve_augment_copies",
    "check_tta",
    "tta_views",
]

#: Accepted string values of ``augment`` (besides True, False and callables).
AUGMENT_OPTIONS = ("geometric", "acquisition", "framing")

#: Centre-crop fractions averaged by ``tta=True``.
DEFAULT_TTA_SCALES = (1.0, 0.9)


class RandomGamma(torch.nn.Module):
    """Raise a float image in [0, 1] to a random power (a display gamma curve).

    Parameters
    ----------
    gamma : tuple of float, default=(0.7, 1.4)
        Range of the exponent, drawn log-uniformly.
    p : float, default=0.5
        Probability of applying it.
    """

    def __init__(self, gamma=(0.7, 1.4), p=0.5):
        super().__init__()
        self.gamma = gamma
        self.p = p

    def forward(self, image):
        if torch.rand(()) >= self.p:
            return image
        low, high = (torch.log(torch.tensor(float(g))) for g in self.gamma)
        gamma = torch.exp(low + (high - low) * torch.rand(())).item()
        return image.clamp(0, 1).pow(gamma)

    def extra_repr(self):
        return f"gamma={self.gamma}, p={self.p}"


class RandomJPEG(torch.nn.Module):
    """Re-compress a float image in [0, 1] as JPEG at a random quality.

    Encoded and decoded with Pillow (torchvision's own JPEG codec is
    deprecated), one or three channels.

    Parameters
    ----------
    quality : tuple of int, default=(30, 90)
        Range of the JPEG quality, drawn uniformly.
    p : float, default=0.3
        Probability of applying it.
    """

    def __init__(self, quality=(30, 90), p=0.3):
        super().__init__()
        self.quality = quality
        self.p = p

    def forward(self, image):
        if torch.rand(()) >= self.p:
            return image
        from io import BytesIO

        import numpy as np
        from PIL import Image

        low, high = self.quality
        quality = int(torch.randint(int(low), int(high) + 1, ()).item())
        array = (image.clamp(0, 1) * 255).round().to(torch.uint8).numpy()
        pil = Image.fromarray(array[0] if len(array) == 1 else array.transpose(1, 2, 0))
        buffer = BytesIO()
        pil.save(buffer, format="JPEG", quality=quality)
        buffer.seek(0)
        with Image.open(buffer) as decoded:
            out = np.asarray(decoded.convert(pil.mode), dtype=np.float32) / 255
        out = out[None] if out.ndim == 2 else out.transpose(2, 0, 1)
        return torch.from_numpy(np.ascontiguousarray(out)).to(image.dtype)

    def extra_repr(self):
        return f"quality={self.quality}, p={self.p}"


#: Texts of the burned-in markers drawn by :class:`RandomMarkers`.
MARKER_TEXTS = ("L", "R", "AP", "PA", "SUPINE", "PORTABLE", "ERECT")


class RandomMarkers(torch.nn.Module):
    """Burn one to three marker texts into a float image in [0, 1].

    Laterality letters and technician's notes ("R", "AP", "PORTABLE", ...)
    in the top or bottom sixth of the image, at a random horizontal place and
    size, bright (as lead letters show) or dark. Drawn with Pillow's default
    font on a mask, so every channel gets the same text.

    Parameters
    ----------
    p : float, default=0.3
        Probability of applying it.
    size : tuple of float, default=(0.05, 0.12)
        Range of the text height as a fraction of the image height.
    """

    def __init__(self, p=0.3, size=(0.05, 0.12)):
        super().__init__()
        self.p = p
        self.size = size

    def forward(self, image):
        if torch.rand(()) >= self.p:
            return image
        import numpy as np
        from PIL import Image, ImageDraw, ImageFont

        height, width = image.shape[-2:]
        low, high = self.size
        size = max(6, round(height * (low + (high - low) * torch.rand(()).item())))
        try:
            font = ImageFont.load_default(size=size)
        except TypeError:  # Pillow < 10.1: one fixed size
            font = ImageFont.load_default()
        mask = Image.new("L", (width, height), 0)
        draw = ImageDraw.Draw(mask)
        for _ in range(int(torch.randint(1, 4, ()).item())):
            text = MARKER_TEXTS[int(torch.randint(len(MARKER_TEXTS), ()).item())]
            left, top, right, bottom = draw.textbbox((0, 0), text, font=font)
            text_w = min(right - left, width - 1)
            text_h = min(bottom - top, height - 1)
            x = int(torch.randint(0, max(1, width - text_w), ()).item())
            band = max(1, height // 6 - text_h)
            y = int(torch.randint(0, band, ()).item())
            if torch.rand(()) < 0.5:  # bottom band instead of top
                y = height - text_h - 1 - y
            draw.text((x - left, max(0, y) - top), text, fill=255, font=font)
        ink = torch.from_numpy(np.asarray(mask, dtype=bool).copy())
        if not ink.any():
            return image
        value = 1.0 if torch.rand(()) < 0.7 else 0.0
        out = image.clone()
        out[..., ink] = value
        return out

    def extra_repr(self):
        return f"p={self.p}, size={self.size}"


class RandomBorder(torch.nn.Module):
    """Collimation borders: bright or dark bands on one to four sides.

    Parameters
    ----------
    p : float, default=0.2
        Probability of applying it.
    fraction : tuple of float, default=(0.02, 0.10)
        Range of each band's width as a fraction of that side.
    """

    def __init__(self, p=0.2, fraction=(0.02, 0.10)):
        super().__init__()
        self.p = p
        self.fraction = fraction

    def forward(self, image):
        if torch.rand(()) >= self.p:
            return image
        height, width = image.shape[-2:]
        value = 1.0 if torch.rand(()) < 0.5 else 0.0
        low, high = self.fraction
        out = image.clone()
        sides = torch.randperm(4)[: int(torch.randint(1, 5, ()).item())].tolist()
        for side in sides:
            length = height if side < 2 else width
            n = max(1, round(length * (low + (high - low) * torch.rand(()).item())))
            if side == 0:
                out[..., :n, :] = value
            elif side == 1:
                out[..., -n:, :] = value
            elif side == 2:
                out[..., :, :n] = value
            else:
                out[..., :, -n:] = value
        return out

    def extra_repr(self):
        return f"p={self.p}, fraction={self.fraction}"


def framing_augmentation():
    """:func:`acquisition_augmentation`, then random markers and borders.

    Item 4 of the generalisation work: a network that reads where one
    hospital burns in its laterality letters, or how it collimates, will not
    transfer to another. Drawing such marks at random places on both classes
    takes away their value as a clue.

    Returns
    -------
    transform : torchvision.transforms.v2.Compose
    """
    from torchvision.transforms import v2

    return v2.Compose(
        [acquisition_augmentation(), RandomMarkers(p=0.3), RandomBorder(p=0.2)]
    )


def acquisition_augmentation():
    """Random photometric changes of another acquisition pipeline.

    Applied to the float image in [0, 1] after the geometric augmentation:
    brightness and contrast, a gamma curve, either smoothing (Gaussian blur)
    or edge enhancement (sharpening), detector noise and JPEG
    re-compression, each with its own probability so that some images pass
    unchanged.

    Returns
    -------
    transform : torchvision.transforms.v2.Compose
    """
    from torchvision.transforms import v2

    return v2.Compose(
        [
            v2.ColorJitter(brightness=0.3, contrast=0.3),
            RandomGamma(gamma=(0.7, 1.4), p=0.5),
            v2.RandomApply(
                [
                    v2.RandomChoice(
                        [
                            v2.GaussianBlur(kernel_size=5, sigma=(0.3, 1.2)),
                            v2.RandomAdjustSharpness(sharpness_factor=3.0, p=1.0),
                        ]
                    )
                ],
                p=0.4,
            ),
            v2.RandomApply([v2.GaussianNoise(sigma=0.02)], p=0.3),
            RandomJPEG(quality=(30, 90), p=0.3),
        ]
    )


def photometric_augmentation(augment):
    """The photometric part of ``augment``: the last step of fine-tuning's
    training transform, and what feature mode's copies draw.

    ``"acquisition"`` and ``"framing"`` give the transforms of those names;
    True or ``"geometric"`` the brightness and contrast jitter of the
    geometric augmentation; a callable is returned as it is; False or None
    give None. The geometric moves are left out: a frozen network's
    embedding of a shifted crop teaches the final estimator little about
    another hospital.
    """
    from torchvision.transforms import v2

    if augment is None or augment is False:
        return None
    if augment == "acquisition":
        return acquisition_augmentation()
    if augment == "framing":
        return framing_augmentation()
    if augment is True or augment == "geometric":
        return v2.ColorJitter(brightness=0.2, contrast=0.2)
    return augment


def resolve_augment_copies(augment_copies, augment):
    """Feature mode's number of augmented copies of each training image:
    ``augment_copies``, or 0 when ``augment`` is off."""
    if augment is None or augment is False:
        return 0
    return int(augment_copies)


class AugmentedCopies:
    """``copies`` augmented versions of every image of a collection.

    Item ``i`` is copy ``i // n`` of image ``i % n`` (``n`` images), drawn
    by ``transform`` on the image as floats in [0, 1] and returned as the
    collection gives it (uint8 stays uint8). Each item is drawn under its own
    seed, from ``seed``, the copy and the position, so that the same call
    gives the same copies whatever the data loader's order.

    Parameters
    ----------
    images : ImageCollection
    transform : callable
        Maps a float ``(C, H, W)`` tensor in [0, 1] to one of the same shape.
    copies : int
    seed : int
    """

    def __init__(self, images, transform, copies, seed):
        self.images = images
        self.transform = transform
        self.copies = copies
        self.seed = seed

    def __len__(self):
        return self.copies * len(self.images)

    def __getitem__(self, index):
        copy, position = divmod(index, len(self.images))
        image = self.images[position]
        is_uint8 = image.dtype == torch.uint8
        x = image.float() / 255 if is_uint8 else image
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(
                (self.seed * 1_000_003 + copy * 2_000_029 + position) % (2**62)
            )
            x = self.transform(x).clamp(0, 1)
        return (x * 255).round().to(torch.uint8) if is_uint8 else x


class CenterZoom(torch.nn.Module):
    """Keep the central ``scale`` fraction of each side of a ``(C, H, W)`` image.

    Parameters
    ----------
    scale : float
        In (0, 1]; 1 returns the image unchanged.
    """

    def __init__(self, scale):
        super().__init__()
        self.scale = scale

    def forward(self, image):
        if self.scale >= 1:
            return image
        height, width = image.shape[-2:]
        crop_h = max(1, int(round(height * self.scale)))
        crop_w = max(1, int(round(width * self.scale)))
        top, left = (height - crop_h) // 2, (width - crop_w) // 2
        return image[..., top : top + crop_h, left : left + crop_w]

    def extra_repr(self):
        return f"scale={self.scale}"


def check_tta(tta):
    """Validate ``tta``; return the centre-crop scales, or () when off."""
    if tta is None or tta is False:
        return ()
    if tta is True:
        return DEFAULT_TTA_SCALES
    try:
        scales = tuple(tta)
    except TypeError:
        scales = None
    if (
        scales
        and all(isinstance(s, Real) and not isinstance(s, bool) for s in scales)
        and all(0.5 <= s <= 1 for s in scales)
    ):
        return tuple(float(s) for s in scales)
    raise ValueError(
        "tta must be False, True (centre crops "
        f"{list(DEFAULT_TTA_SCALES)}) or a non-empty sequence of centre-crop "
        f"fractions in [0.5, 1], got {tta!r}."
    )


def tta_views(tta):
    """The view transforms averaged by ``tta``, applied before the resize."""
    return [CenterZoom(scale) for scale in check_tta(tta)]


class Chain:
    """Apply ``first`` then ``then`` (picklable, for DataLoader workers)."""

    def __init__(self, first, then):
        self.first = first
        self.then = then

    def __call__(self, image):
        return self.then(self.first(image))


class ViewCollection:
    """An image collection seen through a test-time view (feature mode)."""

    def __init__(self, images, view):
        self.images = images
        self.view = view

    def __len__(self):
        return len(self.images)

    def __getitem__(self, index):
        return self.view(self.images[index])
