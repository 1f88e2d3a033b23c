"""simulate_acquisition: every step, determinism, inputs and their errors."""

import numpy as np
import pytest
from PIL import Image

from sklearn_cxr.datasets import make_chest_xrays, simulate_acquisition
from sklearn_cxr.datasets._shift import ACQUISITION_PRESETS, ACQUISITION_STEPS


@pytest.fixture(scope="module")
def images():
    return make_chest_xrays(6, image_size=64, random_state=0).images


@pytest.mark.parametrize("name", sorted(ACQUISITION_STEPS))
@pytest.mark.parametrize("level", [1, 3])
def test_every_step_changes_the_image_and_keeps_uint8(images, name, level):
    out = simulate_acquisition(images, [(name, level)], random_state=0)
    assert len(out) == len(images)
    for before, after in zip(images, out):
        assert after.dtype == np.uint8 and after.ndim == 2
        if name == "aspect":
            assert after.shape[0] == 64 and after.shape[1] < 64
        else:
            assert after.shape == before.shape
    changed = [
        a.shape != b.shape or np.count_nonzero(a != b) > 8
        for a, b in zip(out, images)
    ]
    assert all(changed), f"{name}:{level} left an image unchanged"


def test_levels_grow_in_strength(images):
    diff = []
    for level in (1, 2, 3):
        out = simulate_acquisition(images, [("blur", level)])
        diff.append(np.mean([np.abs(a.astype(int) - b).mean()
                             for a, b in zip(out, images)]))
    assert diff[0] < diff[1] < diff[2]


def test_contrast_low_shrinks_the_grey_range(images):
    out = simulate_acquisition(images, "contrast_low:3")
    assert np.mean([o.std() for o in out]) < 0.6 * np.mean(
        [i.std() for i in images]
    )


def test_deterministic_per_image_whatever_the_batch(images):
    full = simulate_acquisition(images, "severe", random_state=3)
    again = simulate_acquisition(images, "severe", random_state=3)
    one = simulate_acquisition(images[2:3], "severe", random_state=3,
                               keys=["#2"])
    for a, b in zip(full, again):
        np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(full[2], one[0])
    other_seed = simulate_acquisition(images, "severe", random_state=4)
    assert any(not np.array_equal(a, b) for a, b in zip(full, other_seed))


def test_none_is_identity_and_presets_parse(images):
    for a, b in zip(simulate_acquisition(images, "none"), images):
        np.testing.assert_array_equal(a, b)
    for preset in ACQUISITION_PRESETS:
        assert len(simulate_acquisition(images[:1], preset)) == 1


def test_paths_pil_and_rgb_inputs(images, tmp_path):
    rgb = np.repeat(images[0][..., None], 3, axis=-1)
    path = tmp_path / "person1_virus_1.jpeg"
    Image.fromarray(images[0]).save(path, quality=100)
    from_array = simulate_acquisition([images[0]], "noise:2", keys=["k"])[0]
    from_rgb = simulate_acquisition([rgb], "noise:2", keys=["k"])[0]
    from_pil = simulate_acquisition([Image.fromarray(rgb)], "noise:2",
                                    keys=["k"])[0]
    np.testing.assert_array_equal(from_array, from_rgb)
    np.testing.assert_array_equal(from_array, from_pil)
    # a path is keyed by its file name: the same name gives the same noise
    by_path = simulate_acquisition([path], "noise:2")[0]
    by_name = simulate_acquisition(
        [np.asarray(Image.open(path).convert("L"))], "noise:2",
        keys=["person1_virus_1.jpeg"],
    )[0]
    np.testing.assert_array_equal(by_path, by_name)
    floats = simulate_acquisition([images[0].astype(float)], "none")[0]
    np.testing.assert_array_equal(floats, images[0])


@pytest.mark.parametrize(
    "pipeline, match",
    [
        ("bogus", "Unknown acquisition pipeline 'bogus'"),
        ("blur:7", "must be 1, 2 or 3, got 7"),
        ("blur:x", "must be 1, 2 or 3, got 'x'"),
        ("sharpen:1", "Unknown acquisition step 'sharpen'"),
        ([("blur", 0)], "must be 1, 2 or 3, got 0"),
        ([("blur", True)], "must be 1, 2 or 3, got True"),
        (["blur"], r"\(step, level\) pair, got 'blur'"),
    ],
)
def test_bad_pipelines_say_what_is_allowed(images, pipeline, match):
    with pytest.raises(ValueError, match=match):
        simulate_acquisition(images[:1], pipeline)


@pytest.mark.parametrize(
    "bad, match",
    [
        (np.zeros((4, 4), np.uint8), r"images\[0\] has shape \(4, 4\)"),
        (np.zeros((8, 8, 2), np.uint8), r"shape \(8, 8, 2\)"),
        (np.full((16, 16), np.nan), "finite numbers"),
        (np.full((16, 16), 300.0), r"values in \[300.0, 300.0\]"),
        (np.full((16, 16), "a"), "finite numbers"),
    ],
)
def test_bad_images_are_named(bad, match):
    with pytest.raises(ValueError, match=match):
        simulate_acquisition([bad], "blur:1")


def test_bad_keys_and_seed(images):
    with pytest.raises(ValueError, match="keys has 1 entries for 6 images"):
        simulate_acquisition(images, "blur:1", keys=["a"])
    with pytest.raises(ValueError, match="random_state must be an integer"):
        simulate_acquisition(images, "blur:1", random_state=0.5)
    assert simulate_acquisition([], "blur:1") == []
