"""Synthetic frontal chest radiographs, in the spirit of ``make_classification``."""

from __future__ import annotations

from numbers import Integral, Real

import numpy as np
from scipy.special import expit as _sigmoid
from sklearn.utils import Bunch, check_random_state
from threadpoolctl import threadpool_limits

__all__ = ["make_chest_xrays"]

_SUBTYPES = np.array(["normal", "bacteria", "virus"])
_CHUNK = 128  # images rendered at once: bounds the memory of the float fields

DESCR = """\
.. _synthetic_chest_xrays:

Synthetic chest radiographs
---------------------------

Frontal radiographs drawn from a simple anatomical model: a soft-tissue
thorax, two dark lung fields, the heart and mediastinum shadow with the spine,
posterior ribs over the lungs, normal vascular markings, a random exposure
(gain, gamma, offset, a tilted bias field), a small rotation and shift, and
quantum noise. Pneumonia images carry either a focal lobar consolidation in
one lung (bacterial: a dense, irregular opacity filling part of an upper or
lower lobe) or a diffuse, perihilar interstitial (reticulonodular) pattern in
both lungs (viral). Each synthetic patient has one to
``max_images_per_patient`` images with the same anatomy and disease, taken
with a different exposure and position; ``groups`` names the patient.

The disease signal is local and its position varies, while the exposure varies
globally, so that a linear model on raw pixels does much worse than a
convolutional network. These images are for tests, documentation and
tutorials; they are not a substitute for real radiographs.
"""


def _fourier_upsampler(m, size):
    """Matrix ``(size, m)`` that resamples a band-limited signal of ``m`` samples."""
    if m == size:
        return np.eye(size, dtype=np.float32)
    spectrum = np.fft.rfft(np.eye(m), axis=0)
    return (np.fft.irfft(spectrum, n=size, axis=0) * (size / m)).astype(np.float32)


def _smooth_noise(rng, n, size, periods):
    """Band-limited Gaussian noise fields with unit std, ``(n, k, size, size)``.

    ``periods`` are the dominant wavelengths as fractions of the image side.
    The fields are drawn on a coarse grid, just fine enough for the shortest
    period, and resampled exactly (Fourier interpolation) to ``size``.
    """
    periods = np.asarray(periods, dtype=np.float64)
    m = min(size, 2 * int(np.ceil(1.5 / periods.min())))
    white = rng.standard_normal((n, periods.size, m, m)).astype(np.float32)
    spectrum = np.fft.rfft2(white)
    fy = np.fft.fftfreq(m)[:, None]
    fx = np.fft.rfftfreq(m)[None, :]
    radius = np.sqrt(fx**2 + fy**2) * m  # cycles per image side
    centre = (1.0 / periods).reshape(1, -1, 1, 1)
    band = np.exp(-0.5 * ((radius[None, None] - centre) / (0.5 * centre)) ** 2)
    fields = np.fft.irfft2(spectrum * band.astype(np.float32), s=(m, m))
    upsample = _fourier_upsampler(m, size)
    # many small products: BLAS threads only contend (10x slower on a busy box)
    with threadpool_limits(limits=1, user_api="blas"):
        fields = upsample @ fields.astype(np.float32) @ upsample.T
    fields -= fields.mean(axis=(2, 3), keepdims=True)
    fields /= fields.std(axis=(2, 3), keepdims=True) + 1e-6
    return fields


def _ellipse_mask(u, v, x0, y0, a, b, edge):
    """Soft mask of an ellipse, 1 inside, 0 outside, ``edge`` wide border."""
    r = np.sqrt(((u - x0) / a) ** 2 + ((v - y0) / b) ** 2)
    return _sigmoid((1.0 - r) / edge)


def _draw_parameters(rng, n_patients, images_per_patient, subtype_codes):
    """Per-image parameters, as ``(n_images, 1, 1)`` float arrays."""
    patient = np.repeat(np.arange(n_patients), images_per_patient)
    n = patient.size

    def per_patient(low, high):
        return rng.uniform(low, high, n_patients)[patient]

    def per_image(low, high):
        return rng.uniform(low, high, n)

    p = {
        # anatomy: one body per patient, a little repositioning per image
        "cx": per_patient(-0.06, 0.06) + per_image(-0.03, 0.03),
        "cy": per_patient(-0.05, 0.05) + per_image(-0.03, 0.03),
        "scale": per_patient(0.88, 1.06) * per_image(0.97, 1.03),
        "angle": np.deg2rad(per_image(-5.0, 5.0)),
        "lung_dx": per_patient(0.34, 0.40),
        "lung_a": per_patient(0.26, 0.31),
        "lung_b": per_patient(0.55, 0.66),
        "heart_a": per_patient(0.26, 0.34),
        "heart_b": per_patient(0.20, 0.27),
        "heart_dx": per_patient(0.08, 0.16),
        "rib_spacing": per_patient(0.15, 0.19),
        "rib_phase": per_patient(0.0, 1.0),
        "rib_curve": per_patient(0.5, 0.9),
        "rib_level": per_patient(0.05, 0.11),
        "vessels": per_patient(0.02, 0.05),
        "lung_depth": per_patient(0.27, 0.43) + per_image(-0.02, 0.02),
        # acquisition: new at every image
        "gain": per_image(0.70, 1.25),
        "gamma": per_image(0.70, 1.40),
        "offset": per_image(-0.06, 0.10),
        "bias": per_image(0.0, 0.12),
        "bias_dir": per_image(0.0, 2 * np.pi),
    }
    code = subtype_codes[patient]
    bacterial = code == 1
    viral = code == 2
    # bacterial: one lung, one lobe (upper or lower), a dense opacity
    p["cons_amp"] = np.where(bacterial, per_patient(0.14, 0.30), 0.0) * per_image(
        0.8, 1.2
    )
    p["cons_side"] = np.where(per_patient(0, 1) < 0.5, -1.0, 1.0)
    p["cons_lower"] = np.where(per_patient(0, 1) < 0.65, 1.0, -1.0)
    p["cons_y"] = per_patient(-0.45, 0.30)
    p["cons_level"] = p["cons_y"] - p["cons_lower"] * per_patient(0.05, 0.20)
    p["cons_tilt"] = per_patient(-0.5, 0.5)
    p["cons_dx"] = per_patient(-0.10, 0.10)
    p["cons_r"] = per_patient(0.16, 0.28)
    # viral: both lungs, reticulonodular texture densest near the hila
    p["int_amp"] = np.where(viral, per_patient(0.05, 0.10), 0.0) * per_image(
        0.85, 1.15
    )
    return patient, {k: v.astype(np.float32)[:, None, None] for k, v in p.items()}


def _render(rng, size, p, noise):
    """Render the images described by ``p`` (all arrays ``(n, 1, 1)``)."""
    n = p["cx"].shape[0]
    axis = np.linspace(-1.0, 1.0, size, dtype=np.float32)
    v0, u0 = np.meshgrid(axis, axis, indexing="ij")
    cos, sin = np.cos(p["angle"]), np.sin(p["angle"])
    # image coordinates -> body coordinates (rotate, shift, scale)
    u = (cos * u0 + sin * v0 - p["cx"]) / p["scale"]
    v = (-sin * u0 + cos * v0 - p["cy"]) / p["scale"]
    edge = np.float32(0.03 * 64 / size + 0.02)

    fields = _smooth_noise(rng, n, size, periods=(0.09, 0.35, 0.07))
    reticular, blotch, vessels = fields[:, 0], fields[:, 1], fields[:, 2]

    # soft-tissue trunk with square shoulders (a superellipse) and the neck
    trunk = (np.abs(u / 0.93) ** 2.6 + np.abs((v - 0.42) / 1.42) ** 2.6) ** (1 / 2.6)
    body = np.maximum(
        _sigmoid((1.0 - trunk) / edge),
        _sigmoid((0.19 - np.abs(u)) / edge) * _sigmoid((-0.55 - v) / edge),
    )
    image = 0.06 + 0.50 * body
    # two lung fields, narrow at the apex and wide at the base; the right
    # hemidiaphragm (image left) sits higher, above the liver
    lung = np.zeros_like(u)
    lungs = []
    for side, lift in ((-1.0, 0.04), (1.0, 0.0)):
        x0 = side * p["lung_dx"]
        widen = 1.0 + 0.3 * np.clip((v + 0.08) / p["lung_b"], -1.0, 1.0)
        mask = _ellipse_mask(
            u, v, x0, -0.08 - lift, p["lung_a"] * widen, p["lung_b"], edge
        )
        lungs.append(mask)
        lung = np.maximum(lung, mask)
    image = image - p["lung_depth"] * lung
    # heart (to the patient's left = image right), mediastinum and spine
    heart = _ellipse_mask(u, v, p["heart_dx"], 0.33, p["heart_a"], p["heart_b"], edge)
    mediastinum = _sigmoid((0.12 - np.abs(u)) / edge) * _sigmoid((0.4 - v) / edge)
    spine = _sigmoid((0.05 - np.abs(u)) / edge) * body
    image = image + 0.30 * np.maximum(heart, mediastinum) * lung + 0.08 * spine
    # clavicles
    au = np.abs(u)
    clavicle = np.exp(-(((v + 0.66 - 0.35 * (au - 0.45) ** 2) / 0.035) ** 2))
    clavicle = clavicle * _sigmoid((0.8 - au) / edge) * _sigmoid((au - 0.08) / edge)
    image = image + 0.12 * clavicle
    # posterior ribs: curved bands, plain over the lungs, faint elsewhere
    phase = (v + p["rib_curve"] * u**2) / p["rib_spacing"] + p["rib_phase"]
    ribs = np.clip(np.cos(2 * np.pi * phase), 0.0, 1.0) ** 2
    image = image + p["rib_level"] * ribs * (0.8 * lung + 0.2 * body)
    # normal vascular markings, denser near the hila
    hilum = np.exp(-((np.abs(u) - 0.2) ** 2 + (v + 0.05) ** 2) / 0.18)
    image = image + p["vessels"] * np.abs(vessels) * hilum * lung

    # bacterial pneumonia: lobar consolidation bounded by a fissure
    side_lung = np.where(p["cons_side"] < 0, lungs[0], lungs[1])
    fissure = p["cons_lower"] * (v - p["cons_level"] - p["cons_tilt"] * u)
    centre_u = p["cons_side"] * (p["lung_dx"] + p["cons_dx"])
    focus = _ellipse_mask(u, v, centre_u, p["cons_y"], p["cons_r"], p["cons_r"], 0.2)
    lobe = _sigmoid(fissure / (2 * edge)) * side_lung * focus
    patchy = _sigmoid(1.5 * blotch + 1.0)
    image = image + p["cons_amp"] * lobe * patchy
    # viral pneumonia: bilateral perihilar interstitial pattern
    # zero-mean: the lungs get coarser, not brighter on average
    texture = reticular * (0.4 + 0.6 * hilum)
    image = image + p["int_amp"] * texture * lung

    # acquisition: exposure, bias field, quantum noise
    ramp = np.cos(p["bias_dir"]) * u0 + np.sin(p["bias_dir"]) * v0
    image = np.clip(image, 0.0, 1.0) ** p["gamma"] * p["gain"] + p["offset"]
    image = image + p["bias"] * ramp
    image = image + noise * rng.standard_normal(image.shape).astype(np.float32)
    return np.round(np.clip(image, 0.0, 1.0) * 255.0).astype(np.uint8)


def make_chest_xrays(
    n_samples=100,
    *,
    image_size=128,
    labels="binary",
    class_balance=(0.5, 0.25, 0.25),
    noise=0.04,
    max_images_per_patient=4,
    random_state=None,
    return_X_y=False,
):
    """Generate synthetic frontal chest X-rays with and without pneumonia.

    Each image shows a thorax, two lung fields, the heart and mediastinum
    shadow, ribs and noise under a random exposure. Pneumonia images carry
    either a focal lobar consolidation in one lung (bacterial) or a diffuse
    interstitial pattern in both lungs (viral). Several images belong to each
    synthetic patient (``groups``), as in the real data, so that grouped
    cross-validation can be practised. Rendering is vectorised: a few hundred
    128-pixel images take well under a second.

    Read more in :ref:`datasets`.

    Parameters
    ----------
    n_samples : int, default=100
        Number of images.
    image_size : int, default=128
        Side of the square images in pixels (at least 16).
    labels : {"binary", "subtype"}, default="binary"
        ``"binary"``: 0 = NORMAL, 1 = PNEUMONIA. ``"subtype"``: 0 = normal,
        1 = bacterial, 2 = viral.
    class_balance : float or tuple of 3 floats, default=(0.5, 0.25, 0.25)
        Probabilities of a patient being normal, bacterial or viral; a float
        is the probability of pneumonia, shared equally by the two kinds.
    noise : float, default=0.04
        Standard deviation of the pixel noise, on a 0-1 intensity scale.
    max_images_per_patient : int, default=4
        Each patient has between 1 and this many images.
    random_state : int, RandomState instance or None, default=None
        Seed for reproducible output.
    return_X_y : bool, default=False
        Return ``(images, target)`` instead of a Bunch.

    Returns
    -------
    data : :class:`~sklearn.utils.Bunch`
        Dictionary-like object with attributes:

        images : ndarray of shape (n_samples, image_size, image_size)
            Grayscale uint8 images.
        target : ndarray of shape (n_samples,)
            Integer class codes.
        target_names : ndarray of str
            ``["NORMAL", "PNEUMONIA"]`` or ``["normal", "bacterial", "viral"]``.
        subtype : ndarray of str
            ``"normal"``, ``"bacteria"`` or ``"virus"``.
        groups : ndarray of int
            The synthetic patient of each image.
        DESCR : str
            Description of the generator.

    (images, target) : tuple if ``return_X_y`` is True

    See Also
    --------
    load_chest_xray : the real radiographs of Kermany et al. (2018).

    Examples
    --------
    >>> from sklearn_cxr.datasets import make_chest_xrays
    >>> data = make_chest_xrays(20, image_size=32, random_state=0)
    >>> data.images.shape, data.images.dtype
    ((20, 32, 32), dtype('uint8'))
    >>> sorted(set(data.target_names[data.target].tolist()))
    ['NORMAL', 'PNEUMONIA']
    """
    if isinstance(n_samples, bool) or not isinstance(n_samples, Integral):
        raise TypeError(f"n_samples must be an int, got {n_samples!r}.")
    if n_samples < 1:
        raise ValueError(f"n_samples must be >= 1, got {n_samples}.")
    if (
        isinstance(image_size, bool)
        or not isinstance(image_size, Integral)
        or image_size < 16
    ):
        raise ValueError(f"image_size must be an integer >= 16, got {image_size!r}.")
    if labels not in ("binary", "subtype"):
        raise ValueError(f"labels must be 'binary' or 'subtype', got {labels!r}.")
    if isinstance(noise, bool) or not isinstance(noise, Real) or noise < 0:
        raise ValueError(f"noise must be a float >= 0, got {noise!r}.")
    if (
        isinstance(max_images_per_patient, bool)
        or not isinstance(max_images_per_patient, Integral)
        or max_images_per_patient < 1
    ):
        raise ValueError(
            "max_images_per_patient must be an integer >= 1, got "
            f"{max_images_per_patient!r}."
        )
    balance = _check_class_balance(class_balance)
    rng = check_random_state(random_state)

    counts = rng.randint(1, max_images_per_patient + 1, size=n_samples)
    n_patients = int(np.searchsorted(np.cumsum(counts), n_samples) + 1)
    counts = counts[:n_patients]
    counts[-1] -= counts.sum() - n_samples
    subtype_codes = rng.choice(3, size=n_patients, p=balance)
    patient, params = _draw_parameters(rng, n_patients, counts, subtype_codes)

    images = np.empty((n_samples, image_size, image_size), dtype=np.uint8)
    for start in range(0, n_samples, _CHUNK):
        stop = min(start + _CHUNK, n_samples)
        chunk = {k: v[start:stop] for k, v in params.items()}
        images[start:stop] = _render(rng, image_size, chunk, np.float32(noise))

    order = rng.permutation(n_samples)
    images, patient = images[order], patient[order]
    codes = subtype_codes[patient]
    if labels == "binary":
        target = (codes > 0).astype(int)
        target_names = np.array(["NORMAL", "PNEUMONIA"])
    else:
        target = codes.astype(int)
        target_names = np.array(["normal", "bacterial", "viral"])
    if return_X_y:
        return images, target
    return Bunch(
        images=images,
        target=target,
        target_names=target_names,
        subtype=_SUBTYPES[codes],
        groups=patient.astype(np.int64),
        DESCR=DESCR,
    )


def _check_class_balance(class_balance):
    if isinstance(class_balance, Real) and not isinstance(class_balance, bool):
        if not 0.0 <= class_balance <= 1.0:
            raise ValueError(
                f"class_balance as a float is the share of pneumonia and must lie "
                f"in [0, 1], got {class_balance!r}."
            )
        share = float(class_balance)
        return np.array([1.0 - share, share / 2, share / 2])
    balance = np.asarray(class_balance, dtype=float)
    if (
        balance.shape != (3,)
        or (balance < 0).any()
        or not np.isclose(balance.sum(), 1.0)
    ):
        raise ValueError(
            "class_balance must be a float in [0, 1] or three non-negative "
            "probabilities (normal, bacterial, viral) summing to 1, got "
            f"{class_balance!r}."
        )
    return balance / balance.sum()
