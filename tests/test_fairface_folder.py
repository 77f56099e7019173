"""FairFace reader and the generic folder + CSV reader: labels, splits, resizing, bad input, CLI."""

import io
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from fairlatent.cli import main
from fairlatent.data.dataset import load_dataset
from fairlatent.data.fairface import age_lower_edge, convert_fairface, read_fairface
from fairlatent.data.folder import binarize_column, read_folder
from fairlatent.errors import FairlatentError

SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "fairface"
RACES = ["White", "Black", "Latino_Hispanic", "East Asian", "Southeast Asian", "Indian", "Middle Eastern"]
AGES = ["0-2", "3-9", "10-19", "20-29", "30-39", "40-49", "50-59", "60-69", "more than 70"]


def _png(rng, w, h, mode="RGB") -> bytes:
    arr = rng.integers(0, 256, size=(h, w, 3), dtype=np.uint8)
    img = Image.fromarray(arr)
    if mode != "RGB":
        img = img.convert(mode)
    buf = io.BytesIO()
    img.save(buf, format="PNG")  # lossless, so the expected pixels are known exactly
    return buf.getvalue()


def make_fairface(root: Path, n_train=40, n_val=10, size=32, with_split=True):
    rng = np.random.default_rng(1)
    root.mkdir(parents=True, exist_ok=True)
    rows, files = [], {}
    for split, n in (("train", n_train), ("val", n_val)):
        for i in range(1, n + 1):
            name = f"{split}/{i}.jpg"
            files[name] = _png(rng, size, size)
            rows.append({"file": name, "split": split, "age": AGES[(i * 7) % 9], "gender": ["Male", "Female"][i % 2],
                         "race": RACES[(i * 3) % 7], "service_test": "True"})
    with zipfile.ZipFile(root / "fairface_tiny.zip", "w") as zf:
        for k, v in files.items():
            zf.writestr(f"ff/{k}", v)
    df = pd.DataFrame(rows)
    if with_split:
        df.to_csv(root / "fairface_tiny_labels.csv", index=False)
    else:
        for s in ("train", "val"):
            df[df.split == s].drop(columns="split").to_csv(root / f"fairface_label_{s}.csv", index=False)
    return df, files


def test_age_lower_edge():
    assert [age_lower_edge(a) for a in AGES] == [0, 3, 10, 20, 30, 40, 50, 60, 70]
    assert age_lower_edge("03-Sep") is None


def test_fairface_attributes_and_splits(tmp_path):
    df, files = make_fairface(tmp_path)
    images, table, meta = read_fairface(tmp_path, size=32, val_fraction=0.25, seed=0, progress=False)
    assert table["id"].tolist() == df["file"].tolist()
    assert np.array_equal(table["Male"], (df["gender"] == "Male").astype(int))
    race_cols = [c for c in table.columns if c.startswith("Race_")]
    assert len(race_cols) == 7 and (table[race_cols].sum(axis=1) == 1).all()
    assert np.array_equal(table["Race_East_Asian"], (df["race"] == "East Asian").astype(int))
    lo = df["age"].map(dict(zip(AGES, [0, 3, 10, 20, 30, 40, 50, 60, 70])))
    assert np.array_equal(table["Age_under_30"], (lo < 30).astype(int))
    assert np.array_equal(table["Age_under_20"], (lo < 20).astype(int))
    assert np.array_equal(table["Age_50_plus"], (lo >= 50).astype(int))
    # FairFace val → test; FairFace train → 75 % train / 25 % val.
    assert (table["split"][df["split"] == "val"] == "test").all()
    assert table["split"].value_counts().to_dict() == {"train": 30, "test": 10, "val": 10}
    # 32×32 PNG at size 32: no resampling, exact pixels.
    for row in (0, 45):
        assert np.array_equal(images[row], np.asarray(Image.open(io.BytesIO(files[table["id"][row]]))))
    _, t2, _ = read_fairface(tmp_path, size=16, val_fraction=0.25, seed=0, progress=False)
    assert t2["split"].tolist() == table["split"].tolist()


def test_fairface_official_pair_limit_and_bad_rows(tmp_path):
    make_fairface(tmp_path / "pair", with_split=False)
    images, table, meta = read_fairface(tmp_path / "pair", size=32, limit=20, seed=0, progress=False)
    assert len(meta["files"]["labels"]) == 2 and len(table) == 20
    # Split shares proportional (40 train / 10 val in → 16 / 4 out), then (gender, race) strata within each
    # split get largest-remainder quotas: within one image of their proportional share.
    assert (table["split"] == "test").sum() == 4
    full = pd.concat([pd.read_csv(tmp_path / "pair" / f"fairface_label_{s}.csv") for s in ("train", "val")])
    full["src"] = full["file"].str.split("/").str[0]
    picked = full.set_index("file").loc[table["id"]]
    for (src, g, r), n_all in full.groupby(["src", "gender", "race"]).size().items():
        share = n_all * (16 if src == "train" else 4) / (40 if src == "train" else 10)
        n_got = ((picked["src"] == src) & (picked["gender"] == g) & (picked["race"] == r)).sum()
        assert abs(n_got - share) < 1
    df, _ = make_fairface(tmp_path / "bad")
    df.loc[5, "race"] = "Martian"
    df.to_csv(tmp_path / "bad" / "fairface_tiny_labels.csv", index=False)
    with pytest.raises(FairlatentError, match=r"fairface_tiny_labels.csv: row 7, column 'race': 'Martian'"):
        read_fairface(tmp_path / "bad", progress=False)


@pytest.mark.skipif(not SHARED.is_dir(), reason=f"shared FairFace subset not found at {SHARED}")
def test_shared_fairface_limit(tmp_path):
    path, meta = convert_fairface(tmp_path / "ff", SHARED, size=64, limit=400, seed=0, progress=False)
    ds = load_dataset(path)
    ref = pd.read_csv(SHARED / "fairface_subset_labels.csv").set_index("file").loc[ds.table["id"]]
    assert np.array_equal(ds.table["Male"].to_numpy(), (ref["gender"] == "Male").to_numpy().astype(int))
    assert np.array_equal(ds.table["Race_White"].to_numpy(), (ref["race"] == "White").to_numpy().astype(int))
    assert ((ds.table["split"] == "test") == (ref["split"] == "val").to_numpy()).all()
    assert 0.45 < ds.table["Male"].mean() < 0.6  # 21,161 / 40,000 in train
    with zipfile.ZipFile(SHARED / "fairface_subset_64x64_jpg.zip") as zf:
        name = ds.table["id"][3]
        assert np.array_equal(ds.images[3], np.asarray(Image.open(io.BytesIO(zf.read(f"fairface_64/{name}")))))


# ---------------------------------------------------------------- folder + CSV


def make_folder(root: Path, n=30, sizes=None, rgba=()):
    rng = np.random.default_rng(2)
    (root / "imgs" / "sub").mkdir(parents=True)
    files = {}
    for i in range(n):
        name = f"sub/im{i:03d}.png"
        w, h = (sizes or {}).get(i, (40, 40))
        files[name] = _png(rng, w, h, "RGBA" if i in rgba else "RGB")
        (root / "imgs" / name).write_bytes(files[name])
    df = pd.DataFrame({"file": list(files), "person": np.arange(n) // 3,
                       "Smiling": rng.choice([-1, 1], n), "Hat": rng.integers(0, 2, n)})
    df.to_csv(root / "labels.csv", index=False)
    return df, files


def test_binarize_column_rules():
    assert binarize_column([0, 1, 1], "a", "f").tolist() == [0, 1, 1]
    assert binarize_column(["-1", "1"], "a", "f").tolist() == [0, 1]
    with pytest.raises(FairlatentError, match=r"f: row 4, column 'a': value '2' is not"):
        binarize_column(["1", "0", "2"], "a", "f")
    with pytest.raises(FairlatentError, match=r"mixes -1 \(row 2\) and 0 \(row 4\)"):
        binarize_column(["-1", "1", "0"], "a", "f")
    with pytest.raises(FairlatentError, match=r"row 2, column 'a': value ''"):
        binarize_column([""], "a", "f")


def test_folder_group_split_resize_and_reporting(tmp_path):
    df, files = make_folder(tmp_path, sizes={0: (60, 40)}, rgba=(4,))
    (tmp_path / "imgs" / "sub" / "im005.png").unlink()
    (tmp_path / "imgs" / "stray.png").write_bytes(files["sub/im001.png"])
    with pytest.warns(UserWarning, match=r"converted 1 non-RGB image\(s\) to RGB \(1 RGBA\)"):
        images, table, meta = read_folder(tmp_path / "imgs", tmp_path / "labels.csv", size=20,
                                          group_column="person", fractions=(0.6, 0.2, 0.2), progress=False)
    assert len(table) == 29 and meta["reported"]["labels_without_image"]["examples"] == ["sub/im005.png"]
    assert meta["reported"]["images_without_labels"]["examples"] == ["stray.png"]
    assert table.columns.tolist() == ["id", "split", "group_id", "Smiling", "Hat"]
    expect = df.set_index("file").loc[table["id"]]
    assert np.array_equal(table["Smiling"], (expect["Smiling"] == 1).astype(int))
    by = table.groupby("split")["group_id"].apply(set)
    assert not (by["train"] & by["val"]) and not (by["train"] & by["test"]) and not (by["val"] & by["test"])
    # 60×40 image: centre 40×40 square (columns 10..49), then Lanczos to 20×20 ≈ 2×2 area mean.
    img = Image.open(io.BytesIO(files["sub/im000.png"]))
    assert np.array_equal(images[0], np.asarray(img.crop((10, 0, 50, 40)).resize((20, 20), Image.LANCZOS)))
    assert not np.array_equal(images[0], np.asarray(img.crop((0, 0, 40, 40)).resize((20, 20), Image.LANCZOS)))
    # RGBA image: alpha dropped, colour kept (PNG is lossless; 40×40 → 20×20 Lanczos of the RGB part).
    rgba = Image.open(io.BytesIO(files["sub/im004.png"]))
    assert np.array_equal(images[4], np.asarray(rgba.convert("RGB").resize((20, 20), Image.LANCZOS)))


def test_folder_random_split_attributes_and_errors(tmp_path):
    df, _ = make_folder(tmp_path)
    lab = tmp_path / "labels.csv"
    df.drop(columns="person").to_csv(lab, index=False)
    _, table, meta = read_folder(tmp_path / "imgs", lab, size=16, attributes=["Hat"], seed=5, progress=False)
    assert table.columns.tolist() == ["id", "split", "Hat"]
    # 30 × (0.7, 0.15, 0.15) = 21, 4.5, 4.5 → largest remainder, ties to the first: 21, 5, 4.
    assert table["split"].value_counts().to_dict() == {"train": 21, "val": 5, "test": 4}
    with pytest.raises(FairlatentError, match=r"no attribute column 'Bald'; columns are: Smiling, Hat"):
        read_folder(tmp_path / "imgs", lab, attributes=["Bald"], progress=False)
    bad = df.drop(columns="person").copy()
    bad.loc[3, "Hat"] = 5
    bad.to_csv(lab, index=False)
    with pytest.raises(FairlatentError, match=r"labels.csv: row 5, column 'Hat': value '5'"):
        read_folder(tmp_path / "imgs", lab, progress=False)
    dup = df.drop(columns="person").copy()
    dup.loc[7, "file"] = dup.loc[2, "file"]
    dup.to_csv(lab, index=False)
    with pytest.raises(FairlatentError, match=r"duplicate id 'sub/im002.png' in column 'file' \(rows 4 and 9\)"):
        read_folder(tmp_path / "imgs", lab, progress=False)
    with pytest.raises(FairlatentError, match=r"no split column 'fold'"):
        read_folder(tmp_path / "imgs", lab, split_column="fold", progress=False)


def test_folder_split_column_and_cli(tmp_path, capsys):
    df, _ = make_folder(tmp_path)
    df["split"] = ["train"] * 20 + ["val"] * 5 + ["test"] * 5
    df.to_csv(tmp_path / "labels.csv", index=False)
    out = tmp_path / "ds"
    with pytest.raises(SystemExit) as exc:
        main(["data", "folder", "--images", str(tmp_path / "imgs"), "--labels", str(tmp_path / "labels.csv"),
              "--out", str(out), "--size", "16", "--group-column", "person"])
    assert exc.value.code == 0
    ds = load_dataset(out)
    assert ds.table["split"].tolist() == df["split"].tolist() and ds.image_size == 16
    with pytest.raises(SystemExit) as exc:
        main(["data", "folder", "--images", str(tmp_path / "imgs"), "--labels", str(tmp_path / "labels.csv"),
              "--out", str(tmp_path / "ds2"), "--attributes", "Smiling,Nope"])
    assert exc.value.code == 2
    assert "no attribute column 'Nope'" in capsys.readouterr().err
    assert not (tmp_path / "ds2").exists()


def test_fairface_cli(tmp_path):
    make_fairface(tmp_path / "ff")
    with pytest.raises(SystemExit) as exc:
        main(["data", "fairface", "--root", str(tmp_path / "ff"), "--out", str(tmp_path / "out"), "--size", "32",
              "--limit", "25"])
    assert exc.value.code == 0
    ds = load_dataset(tmp_path / "out")
    assert len(ds) == 25 and "Race_Middle_Eastern" in ds.attribute_names


@pytest.mark.parametrize("mode", ["I;16", "I;16B", "I;16L", "I"])
def test_16bit_grayscale_png_is_scaled_not_clipped(mode):
    """A 16-bit gradient v = 257·x (x = 0..255) is exactly x in 8 bits (v >> 8); Pillow's own conversion
    clips every v > 255 to white."""
    import io

    from PIL import Image

    from fairlatent.data.imageio import decode_rgb

    x = np.tile(np.arange(256, dtype=np.int64), (4, 1))
    v = x * 257
    if mode == "I":
        img = Image.fromarray(v.astype(np.int32), mode="I")
    else:
        dtype = {"I;16": "<u2", "I;16L": "<u2", "I;16B": ">u2"}[mode]
        img = Image.frombytes(mode, (256, 4), v.astype(dtype).tobytes())
    buf = io.BytesIO()
    img.save(buf, format="PNG" if mode == "I;16" else "TIFF")  # Pillow writes the others only as TIFF
    out, seen = decode_rgb(buf.getvalue(), f"gradient.{mode}")
    arr = np.asarray(out)
    assert out.mode == "RGB" and seen.startswith("I")
    assert arr.dtype == np.uint8 and arr.shape == (4, 256, 3)
    np.testing.assert_array_equal(arr, np.repeat(x[..., None], 3, axis=2).astype(np.uint8))


@pytest.mark.parametrize("scale", [1.0, 255.0])
def test_float_image_is_scaled_by_its_convention(scale):
    """A float TIFF (mode F) holding x/255 (the [0, 1] convention) or x (the 0–255 one) decodes to x exactly;
    Pillow's own conversion truncates, so a [0, 1] image came out black."""
    import io

    from PIL import Image

    from fairlatent.data.imageio import decode_rgb

    x = np.tile(np.arange(256, dtype=np.float64), (4, 1))
    buf = io.BytesIO()
    Image.fromarray((x * scale / 255.0).astype(np.float32), mode="F").save(buf, format="TIFF")
    out, seen = decode_rgb(buf.getvalue(), "gradient.tif")
    assert seen == "F"
    np.testing.assert_array_equal(np.asarray(out), np.repeat(x[..., None], 3, axis=2).astype(np.uint8))


@pytest.mark.parametrize("data, reason", [(b"", "an empty file"), (b"hello", "not an image format")])
def test_undecodable_bytes_say_why_without_a_python_repr(data, reason):
    from fairlatent.data.imageio import decode_rgb
    from fairlatent.errors import FairlatentError

    with pytest.raises(FairlatentError, match=reason) as info:
        decode_rgb(data, "x.png")
    assert "BytesIO" not in str(info.value) and str(info.value).startswith("x.png: ")


def test_the_conversion_note_says_only_what_happened():
    from collections import Counter

    from fairlatent.data.imageio import mode_conversion_note

    assert mode_conversion_note(Counter()) is None
    assert mode_conversion_note(Counter({"CMYK": 2})) == "converted 2 non-RGB image(s) to RGB (2 CMYK)"
    assert mode_conversion_note(Counter({"LA": 1, "I;16": 3})) == (
        "converted 4 non-RGB image(s) to RGB (3 I;16, 1 LA); 16-bit and float values scaled to 0–255, "
        "alpha channels dropped")
