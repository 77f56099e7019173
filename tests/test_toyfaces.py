"""ToyFaces: determinism, exact skew, label noise, part masks that localise each attribute."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.ndimage import binary_dilation

from fairlatent.data.dataset import load_dataset
from fairlatent.data.show import phi_coefficient
from fairlatent.data.toyfaces import (
    ATTRIBUTE_PARTS,
    ATTRIBUTES,
    BASE_RATES,
    PARTS,
    _split_sizes,
    assign_labels,
    cell_counts,
    make_toyfaces,
    render_faces,
    render_toyfaces,
)
from fairlatent.errors import FairlatentError


def test_same_seed_identical_bytes_different_seed_differs(tmp_path, toyfaces_small):
    again = make_toyfaces(tmp_path / "again", n=600, size=32, seed=0, progress=False)
    for name in ("images.npy", "masks.npy", "attributes.csv", "meta.json"):
        assert (again / name).read_bytes() == (toyfaces_small / name).read_bytes(), name
    other = render_toyfaces(n=600, size=32, seed=1, masks=False)
    base = load_dataset(toyfaces_small)
    assert not np.array_equal(other.images, np.asarray(base.images))
    assert not other.table.drop(columns="id").equals(base.table.drop(columns="id"))


def test_rendering_does_not_depend_on_chunking():
    data = render_toyfaces(n=80, size=32, seed=4, masks=True)
    images, masks = render_faces(data.params, 32, chunk=7)
    np.testing.assert_array_equal(images, data.images)
    np.testing.assert_array_equal(masks, data.masks)


@pytest.mark.parametrize("skews", [(0.9, 0.9, 0.9), (0.7, 0.5, 0.95), (1.0, 0.0, 0.33)])
def test_realised_skew_at_20k_is_exact(skews):
    """Labels for n = 20,000 (computed without pixels): P(g = t) within 1/(2n) per split, marginals 0.5."""
    sizes = _split_sizes(20000, (0.7, 0.15, 0.15), None)
    assert sizes == {"train": 14000, "val": 3000, "test": 3000, "test_balanced": 3000}
    want = dict(zip(("train", "val", "test"), skews), test_balanced=0.5)
    labels = assign_labels(sizes, target="Smiling", protected="Pale_Skin", skews=want, seed=11)
    for split, n in sizes.items():
        block = labels[labels["split"] == split]
        assert len(block) == n
        t, g = block["Smiling"].to_numpy(), block["Pale_Skin"].to_numpy()
        assert abs(np.mean(t == g) - want[split]) <= 0.5 / n + 1e-12  # far inside the required ±0.01
        assert abs(t.mean() - 0.5) <= 1 / n and abs(g.mean() - 0.5) <= 1 / n
        for attr in ("Bangs", "No_Beard", "Wearing_Hat"):  # other attributes: exact base rate
            assert block[attr].sum() == round(BASE_RATES[attr] * n)
    train = labels[labels["split"] == "train"]
    # the other attributes are placed independently of t: their correlation with it is sampling noise only
    for attr in ("Bangs", "Eyeglasses", "Blond_Hair"):
        counts = np.zeros((2, 2))
        np.add.at(counts, (train["Smiling"].to_numpy(), train[attr].to_numpy()), 1)
        assert abs(phi_coefficient(counts)) < 0.04  # 4.7 standard errors at n = 14,000


@pytest.mark.parametrize("n", [1, 2, 3, 7, 101, 999])
@pytest.mark.parametrize("skew", [0.0, 0.1, 0.5, 0.77, 1.0])
def test_cell_counts_small_n(n, skew):
    cells = cell_counts(n, skew)
    assert sum(cells.values()) == n and min(cells.values()) >= 0
    assert abs((cells[1, 1] + cells[0, 0]) / n - skew) <= 0.5 / n + 1e-12


def test_written_skew_and_splits(toyfaces_small):
    ds = load_dataset(toyfaces_small)
    assert ds.meta["splits"] == {"train": 420, "val": 90, "test": 90, "test_balanced": 90}
    for split, want in (("train", 0.9), ("val", 0.9), ("test", 0.9), ("test_balanced", 0.5)):
        idx = ds.split_indices(split)
        t, g = ds.labels("Wearing_Hat", idx), ds.labels("Eyeglasses", idx)
        assert abs(np.mean(t == g) - want) <= 0.5 / len(idx) + 1e-12
        assert ds.meta["skew"][split]["skew_clean"] == pytest.approx(np.mean(t == g))
    assert ds.meta["source"] == "toyfaces" and ds.meta["seed"] == 0
    assert ds.meta["target"] == "Wearing_Hat" and ds.meta["protected"] == "Eyeglasses"
    assert ds.attribute_names == list(ATTRIBUTES) and ds.part_names == list(PARTS)
    assert ds.meta["params"]["skew"] == 0.9 and ds.meta["params"]["size"] == 32


def test_val_and_test_skews_are_their_own():
    data = render_toyfaces(n=400, size=32, target="Bangs", protected="Smiling", skew=0.8, val_skew=0.6,
                           test_skew=0.2, seed=2, masks=False)
    got = {s: v["skew_clean"] for s, v in data.meta["skew"].items()}
    assert got == {"train": 0.8, "val": 0.6, "test": 0.2, "test_balanced": 0.5}


def test_label_noise_rate_realised_and_images_unchanged():
    clean = render_toyfaces(n=1000, size=32, seed=5, masks=False)
    noisy = render_toyfaces(n=1000, size=32, seed=5, masks=False, label_noise={"Smiling": 0.1, "Bangs": 0.25})
    np.testing.assert_array_equal(noisy.images, clean.images)  # labels flipped, pixels not
    pd_clean = noisy.clean_labels
    assert pd_clean[list(ATTRIBUTES)].equals(clean.table[list(ATTRIBUTES)])
    split = noisy.table["split"].to_numpy()
    for attr, rate in (("Smiling", 0.1), ("Bangs", 0.25), ("Blond_Hair", 0.0)):
        flipped = noisy.table[attr].to_numpy() != pd_clean[attr].to_numpy()
        for s in ("train", "val"):
            n = int((split == s).sum())
            assert flipped[split == s].sum() == round(rate * n), (attr, s)
        assert not flipped[(split == "test") | (split == "test_balanced")].any()
    assert noisy.meta["label_noise_flipped"] == {"Smiling": {"train": 70, "val": 15},
                                                "Bangs": {"train": 175, "val": 38}}
    everything = render_toyfaces(n=200, size=32, seed=5, masks=False, label_noise=0.05)
    train = everything.table["split"] == "train"
    flips = (everything.table.loc[train, list(ATTRIBUTES)] != everything.clean_labels.loc[train, list(ATTRIBUTES)])
    assert (flips.sum(axis=0) == 7).all()  # round(0.05 * 140) for every attribute


def _toggle_report(params, size, attr):
    base_img, base_masks = render_faces(params, size)
    flipped = params.copy()
    flipped[attr] = 1 - flipped[attr]
    img, masks = render_faces(flipped, size)
    k = PARTS.index(ATTRIBUTE_PARTS[attr])
    changed = np.abs(img.astype(np.int16) - base_img).max(axis=-1) > 0
    part = base_masks[:, k] | masks[:, k]  # the part as drawn with the attribute on (and off)
    near = binary_dilation(part, structure=np.ones((1, 3, 3), bool))  # dilated by 1 px
    return changed, part, near


@pytest.mark.parametrize("size, n", [(32, 200), (64, 60)])
def test_each_attribute_changes_pixels_only_in_its_own_part(size, n):
    params = render_toyfaces(n=n, size=size, seed=8, masks=False).params
    for attr in ATTRIBUTES:
        changed, part, near = _toggle_report(params, size, attr)
        inside = (changed & near).sum() / changed.sum()
        assert inside >= 0.95, f"{attr}: only {inside:.3f} of changed pixels near its {ATTRIBUTE_PARTS[attr]} mask"
        # visible in every single face: at 32 px even earrings (two ~3 px dots) change several pixels
        per_face = changed.sum(axis=(1, 2))
        assert per_face.min() >= (4 if size == 32 else 12), f"{attr} invisible in some face"
        # and the change fills a good part of the mask (not a 1-pixel edge effect); bangs are only the
        # forehead share of the hair part, so they are held to a lower bar
        assert (changed & part).sum() / part.sum() > (0.3 if attr == "Bangs" else 0.5), attr


def test_masks_cover_the_image_and_match_the_geometry(toyfaces_small):
    ds = load_dataset(toyfaces_small)
    masks = ds.masks()
    assert masks.shape == (690, len(PARTS), 32, 32)
    assert masks.any(axis=1).all()  # every pixel belongs to some part
    labels = {a: ds.labels(a).astype(bool) for a in ATTRIBUTES}
    for attr, part in ATTRIBUTE_PARTS.items():
        if part in ("face", "hair", "mouth"):
            continue  # present whatever the label
        has_part = masks[:, PARTS.index(part)].any(axis=(1, 2))
        expected = ~labels[attr] if attr == "No_Beard" else labels[attr]
        np.testing.assert_array_equal(has_part, expected, err_msg=attr)
    # away from the (antialiased) edges of the foreground parts, the image is exactly the background colour
    images = np.asarray(ds.images).astype(np.int16)
    corner = images[:, 0, 0]  # corners are background in every face
    assert masks[:, 0, 0, 0].all()
    same_as_corner = np.abs(images - corner[:, None, None]).max(axis=-1) == 0
    foreground = masks[:, 1:].any(axis=1)
    far_from_foreground = ~binary_dilation(foreground, structure=np.ones((1, 3, 3), bool))
    assert far_from_foreground.sum() > 0.3 * far_from_foreground.size
    assert same_as_corner[far_from_foreground].all()
    assert masks[:, 0][far_from_foreground].all()
    # and inside the foreground parts the image is not the background colour
    assert (~same_as_corner[foreground & ~masks[:, 0]]).mean() > 0.99


def test_nuisance_varies_and_attributes_are_not_the_only_signal():
    data = render_toyfaces(n=300, size=32, seed=3, masks=False)
    p = data.params
    for col in ("center_x", "center_y", "scale", "bg_r", "skin_tone", "hair_length"):
        assert p[col].std() > 0, col
    # two faces with identical labels still differ in pixels (nuisance is real)
    labels = data.clean_labels[list(ATTRIBUTES)].astype(str).agg("".join, axis=1)
    value = labels[labels.duplicated()].iloc[0]
    first, second = labels.index[labels == value][:2]
    assert labels[first] == labels[second]
    assert not np.array_equal(data.images[first], data.images[second])


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(target="Bald"), r"unknown target attribute 'Bald'; ToyFaces attributes are: Wearing_Hat, Eyeglasses"),
        (dict(protected="Male"), r"unknown protected attribute 'Male'"),
        (dict(target="Smiling", protected="Smiling"), r"must differ"),
        (dict(skew=1.2), r"skew must be in \[0, 1\], got 1.2"),
        (dict(test_skew=-0.1), r"test skew must be in \[0, 1\]"),
        (dict(size=8), r"image size 8 is not supported"),
        (dict(n=0), r"n must be a positive integer"),
        (dict(label_noise={"Bald": 0.1}), r"unknown label-noise attribute 'Bald'"),
        (dict(label_noise=2.0), r"label noise rate must be in \[0, 1\]"),
        (dict(split_fractions=(0.5, 0.5)), r"split_fractions must be three"),
    ],
)
def test_bad_arguments_raise_user_errors(kwargs, message):
    with pytest.raises(FairlatentError, match=message):
        render_toyfaces(**{"n": 20, "masks": False, **kwargs})


def test_make_refuses_existing_directory(toyfaces_small):
    with pytest.raises(FairlatentError, match="already exists"):
        make_toyfaces(toyfaces_small, n=10, progress=False)


def test_faint_share_is_exact_and_independent_of_labels():
    from fairlatent.data.toyfaces import FAINT_RANGE, assign_labels, sample_face_params

    sizes = {"train": 4000, "val": 500, "test": 500, "test_balanced": 500}
    clean = assign_labels(sizes, target="Wearing_Hat", protected="Eyeglasses",
                          skews={"train": 0.9, "val": 0.9, "test": 0.9, "test_balanced": 0.5}, seed=3)
    bold = sample_face_params(clean, 3)
    params = sample_face_params(clean, 3, {"Wearing_Hat": 0.5})
    sal = params["salience_Wearing_Hat"].to_numpy()
    faint = sal < 1
    assert faint.sum() == round(0.5 * len(clean))
    assert sal[faint].min() >= FAINT_RANGE[0] and sal[faint].max() <= FAINT_RANGE[1]
    # chosen independently of the labels: the faint share is about the same among positives with and
    # without the protected attribute (a biased choice would itself create the correlation)
    t, g = clean["Wearing_Hat"].to_numpy(), clean["Eyeglasses"].to_numpy()
    shares = [faint[(t == 1) & (g == b)].mean() for b in (0, 1)]
    assert abs(shares[0] - shares[1]) < 0.08
    # adding faintness changes no other nuisance draw
    for col in bold.columns:
        assert np.array_equal(bold[col].to_numpy(), params[col].to_numpy()), col


def test_faint_attribute_changes_fewer_pixels_and_salience_scales_the_change():
    from fairlatent.data.toyfaces import render_faces, sample_face_params

    n = 24
    attrs = {a: np.zeros(n, np.int8) for a in __import__("fairlatent.data.toyfaces", fromlist=["ATTRIBUTES"]).ATTRIBUTES}
    params = sample_face_params(attrs, 0)
    off, _ = render_faces(params, 32, masks=False)
    on = params.copy()
    on["Wearing_Hat"] = 1
    bold, _ = render_faces(on, 32, masks=False)
    on["salience_Wearing_Hat"] = np.float32(0.2)
    faint, _ = render_faces(on, 32, masks=False)
    on["salience_Wearing_Hat"] = np.float32(0.0)
    invisible, _ = render_faces(on, 32, masks=False)
    d_bold = np.abs(bold.astype(int) - off).sum()
    d_faint = np.abs(faint.astype(int) - off).sum()
    assert np.array_equal(invisible, off)  # salience 0: the hat does not show at all
    assert 0.1 * d_bold < d_faint < 0.3 * d_bold  # 20 % opacity ≈ 20 % of the colour change


def test_faint_cli_and_bad_share(tmp_path):
    import subprocess
    import sys

    from fairlatent.data.dataset import load_dataset

    r = subprocess.run([sys.executable, "-m", "fairlatent.cli", "data", "toyfaces", "--out", str(tmp_path / "f"),
                        "--n", "200", "--faint", "Wearing_Hat=0.5"], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert load_dataset(tmp_path / "f").meta["params"]["faint"] == {"Wearing_Hat": 0.5}
    r = subprocess.run([sys.executable, "-m", "fairlatent.cli", "data", "toyfaces", "--out", str(tmp_path / "g"),
                        "--n", "200", "--faint", "Wearing_Hat=1.5"], capture_output=True, text=True)
    assert r.returncode == 2 and "faint share of Wearing_Hat" in r.stderr
