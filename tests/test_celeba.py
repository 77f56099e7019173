"""CelebA reader: official layout (folder or zip, plain or .gz), face crop, splits, reporting, bad input, CLI."""

import gzip
import io
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from fairlatent.cli import main
from fairlatent.data.celeba import convert_celeba, face_crop_box, read_attribute_file, read_celeba
from fairlatent.data.dataset import load_dataset
from fairlatent.errors import FairlatentError

SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "celeba"
ATTRS = ["Male", "Smiling", "Young"]


def _jpeg(rng, w, h, mode="RGB") -> bytes:
    # Smooth gradient plus noise: compresses small but every pixel differs.
    yy, xx = np.mgrid[0:h, 0:w]
    base = np.stack([xx * 255 // w, yy * 255 // h, (xx + yy) * 255 // (w + h)], -1)
    arr = np.clip(base + rng.integers(-30, 30, size=(h, w, 3)), 0, 255).astype(np.uint8)
    img = Image.fromarray(arr)
    if mode != "RGB":
        img = img.convert(mode)
    buf = io.BytesIO()
    img.save(buf, format="JPEG", quality=90)
    return buf.getvalue()


def make_celeba(root: Path, *, n=20, size=(89, 109), zipped=True, gz=False, partition=None, extra_image=True,
                corrupt=None, odd_size=None, gray=()):
    """Write a tiny CelebA in official layout; returns the true labels (0/1) and identities."""
    rng = np.random.default_rng(0)
    root.mkdir(parents=True, exist_ok=True)
    names = [f"{i:06d}.jpg" for i in range(1, n + 1)]
    labels = rng.integers(0, 2, size=(n, len(ATTRS)))
    ident = np.repeat(np.arange(100, 100 + n // 2), 2)[:n]
    files = {}
    # Image 000002 is missing (label row without image); 9999xx has no label row.
    for i, name in enumerate(names):
        if i == 1:
            continue
        w, h = size
        if odd_size and name == odd_size[2]:
            w, h = odd_size[0], odd_size[1]
        files[name] = _jpeg(rng, w, h, "L" if name in gray else "RGB")
    if corrupt:
        files[corrupt] = files[corrupt][: len(files[corrupt]) // 2]
    if extra_image:
        files["999901.jpg"] = _jpeg(rng, *size)
    if zipped:
        with zipfile.ZipFile(root / "celeba_imgs.zip", "w") as zf:
            for k, v in files.items():
                zf.writestr(f"img_align_celeba_small/{k}", v)
    else:
        (root / "img_align_celeba").mkdir()
        for k, v in files.items():
            (root / "img_align_celeba" / k).write_bytes(v)
    vals = np.where(labels == 1, " 1", "-1")
    attr_txt = "202599\n" + " ".join(ATTRS) + "\n" + "".join(
        f"{name} " + " ".join(v) + "\n" for name, v in zip(names, vals))
    part = partition if partition is not None else [0] * n
    part_txt = "".join(f"{name} {p}\n" for name, p in zip(names, part))
    id_txt = "".join(f"{name} {g}\n" for name, g in zip(names, ident))
    for fname, text in (("list_attr_celeba.txt", attr_txt), ("list_eval_partition.txt", part_txt),
                        ("identity_CelebA.txt", id_txt)):
        if gz and fname != "list_attr_celeba.txt":
            with gzip.open(root / (fname + ".gz"), "wt") as fh:
                fh.write(text)
        else:
            (root / fname).write_text(text)
    return names, labels, ident, files


def test_face_crop_box_is_the_paper_crop_scaled():
    # gan-debiasing crops img[121-64:121+64, 89-64:89+64] from 178×218 → Pillow box (25, 57, 153, 185).
    assert face_crop_box(178, 218) == (25, 57, 153, 185)
    # Half resolution: the README's np.asarray(img)[28:92, 12:76].
    assert face_crop_box(89, 109) == (12, 28, 76, 92)
    assert face_crop_box(356, 436) == (50, 114, 306, 370)


def test_zip_half_resolution_exact_crop_labels_and_reporting(tmp_path):
    names, labels, ident, files = make_celeba(tmp_path, zipped=True)
    images, table, meta = read_celeba(tmp_path, size=64, fractions=(0.5, 0.25, 0.25), progress=False)
    kept = [n for n in names if n != "000002.jpg"]
    assert table["id"].tolist() == kept
    # No resampling at 64: bytes equal numpy slicing of the decoded JPEG.
    for row, name in enumerate(kept):
        ref = np.asarray(Image.open(io.BytesIO(files[name])).convert("RGB"))[28:92, 12:76]
        assert np.array_equal(images[row], ref)
    idx = [names.index(n) for n in kept]
    assert np.array_equal(table[ATTRS].to_numpy(), labels[idx])
    assert np.array_equal(table["group_id"].to_numpy(), ident[idx])
    rep = meta["reported"]
    assert rep["labels_without_image"] == {"count": 1, "examples": ["000002.jpg"]}
    assert rep["images_without_labels"] == {"count": 1, "examples": ["999901.jpg"]}
    assert meta["label_rows_in_file"] == 20 and meta["preprocessing"]["resampled"] is False
    # Identity split: no identity in two splits.
    by = table.groupby("split")["group_id"].apply(set)
    assert set(by.index) == {"train", "val", "test"}
    assert not (by["train"] & by["val"]) and not (by["train"] & by["test"]) and not (by["val"] & by["test"])


def test_folder_with_gz_equals_zip_with_plain(tmp_path):
    make_celeba(tmp_path / "a", zipped=True, gz=False)
    make_celeba(tmp_path / "b", zipped=False, gz=True)
    ia, ta, _ = read_celeba(tmp_path / "a", fractions="0.5,0.25,0.25", seed=3, progress=False)
    ib, tb, mb = read_celeba(tmp_path / "b", fractions="0.5,0.25,0.25", seed=3, progress=False)
    assert np.array_equal(ia, ib)
    pd.testing.assert_frame_equal(ta, tb)
    assert mb["files"]["identity"].endswith("identity_CelebA.txt.gz")


def test_full_resolution_crop_then_antialiased_resize(tmp_path):
    names, _, _, files = make_celeba(tmp_path, n=6, size=(178, 218), extra_image=False)
    images, table, meta = read_celeba(tmp_path, size=64, fractions=(0.34, 0.33, 0.33), progress=False)
    assert meta["preprocessing"]["crop_rows_cols"] == "[57:185, 25:153]"
    for row, name in enumerate(table["id"]):
        crop = np.asarray(Image.open(io.BytesIO(files[name])).convert("RGB"))[57:185, 25:153].astype(float)
        box_mean = crop.reshape(64, 2, 64, 2, 3).mean(axis=(1, 3))  # 2×2 area average: a closed-form downsample
        # Lanczos differs from the box filter only by its sharper kernel: close on average, far from a wrong box.
        assert np.abs(images[row] - box_mean).mean() < 8
        wrong = np.asarray(Image.open(io.BytesIO(files[name])).convert("RGB"))[45:173, 25:153].astype(float)
        assert np.abs(images[row] - wrong.reshape(64, 2, 64, 2, 3).mean(axis=(1, 3))).mean() > 8


def test_no_crop_and_other_sizes(tmp_path):
    make_celeba(tmp_path, n=6, extra_image=False)
    images, _, meta = read_celeba(tmp_path, size=32, crop=False, fractions=(0.34, 0.33, 0.33), progress=False)
    assert images.shape == (5, 32, 32, 3) and meta["preprocessing"]["crop"] is False
    images, _, _ = read_celeba(tmp_path, size=128, fractions=(0.34, 0.33, 0.33), progress=False)
    assert images.shape == (5, 128, 128, 3)


def test_official_split_maps_partition_and_rejects_empty(tmp_path):
    part = [0] * 10 + [1] * 5 + [2] * 5
    names, _, _, _ = make_celeba(tmp_path / "ok", partition=part)
    _, table, _ = read_celeba(tmp_path / "ok", split="official", progress=False)
    expect = {n: {0: "train", 1: "val", 2: "test"}[p] for n, p in zip(names, part)}
    assert all(expect[i] == s for i, s in zip(table["id"], table["split"]))
    make_celeba(tmp_path / "train_only")
    with pytest.raises(FairlatentError, match=r"leaves val and test empty.*--split identity"):
        read_celeba(tmp_path / "train_only", split="official", progress=False)


def test_attribute_file_count_line_ignored_and_bad_values(tmp_path):
    f = tmp_path / "list_attr_celeba.txt"
    f.write_text("7\nA B\n1.jpg  1 -1\n2.jpg -1 1\n")
    t = read_attribute_file(f)
    assert t.index.tolist() == ["1.jpg", "2.jpg"] and t.to_numpy().tolist() == [[1, 0], [0, 1]]
    f.write_text("2\nA B\n1.jpg 1 -1\n2.jpg 2 1\n")
    with pytest.raises(FairlatentError, match=r"line 4, column 'A': value '2'"):
        read_attribute_file(f)
    f.write_text("2\nA B\n1.jpg -1 -1\n2.jpg 0 1\n")
    with pytest.raises(FairlatentError, match=r"'A' mixes -1 \(line 3\) and 0 \(line 4\)"):
        read_attribute_file(f)
    f.write_text("2\nA B\n1.jpg 1\n")
    with pytest.raises(FairlatentError, match=r"line 3: 1 values for 2 attributes"):
        read_attribute_file(f)
    f.write_text("2\nA B\n1.jpg 1 1\n1.jpg 1 1\n")
    with pytest.raises(FairlatentError, match=r"duplicate image '1.jpg'"):
        read_attribute_file(f)


def test_corrupt_jpeg_named_or_skipped(tmp_path):
    make_celeba(tmp_path, corrupt="000005.jpg")
    with pytest.raises(FairlatentError, match=r"celeba_imgs.zip:img_align_celeba_small/000005.jpg: cannot decode"):
        read_celeba(tmp_path, fractions=(0.5, 0.25, 0.25), progress=False)
    images, table, meta = read_celeba(tmp_path, fractions=(0.5, 0.25, 0.25), skip_bad=True, progress=False)
    assert "000005.jpg" not in set(table["id"]) and len(table) == len(images) == 18
    assert meta["reported"]["skipped_bad_images"]["count"] == 1


def test_unexpected_size_and_grayscale(tmp_path):
    make_celeba(tmp_path / "odd", odd_size=(90, 110, "000007.jpg"))
    with pytest.raises(FairlatentError, match=r"000007.jpg: image is 90×110 but the CelebA images here are 89×109"):
        read_celeba(tmp_path / "odd", fractions=(0.5, 0.25, 0.25), progress=False)
    make_celeba(tmp_path / "gray", gray=("000003.jpg", "000004.jpg"))
    with pytest.warns(UserWarning, match=r"converted 2 non-RGB image\(s\) to RGB \(2 L\)") as rec:
        images, table, meta = read_celeba(tmp_path / "gray", fractions=(0.5, 0.25, 0.25), progress=False)
    assert meta["reported"]["converted_to_rgb"] == {"L": 2}
    assert meta["notes"] == ["converted 2 non-RGB image(s) to RGB (2 L)"]
    assert len([w for w in rec if "non-RGB" in str(w.message)]) == 1  # said once, not per image
    g = images[table["id"].tolist().index("000003.jpg")]
    assert np.array_equal(g[..., 0], g[..., 1]) and np.array_equal(g[..., 1], g[..., 2])


def test_cli_end_to_end_and_errors(tmp_path, capsys):
    make_celeba(tmp_path / "c")
    out = tmp_path / "out"
    with pytest.raises(SystemExit) as exc:
        main(["data", "celeba", "--root", str(tmp_path / "c"), "--out", str(out), "--fractions", "0.5,0.25,0.25",
              "--attributes", "Male,Young"])
    assert exc.value.code == 0
    ds = load_dataset(out)
    assert ds.attribute_names == ["Male", "Young"] and len(ds) == 19
    assert ds.meta["reported"]["labels_without_image"]["count"] == 1
    err = capsys.readouterr().err
    assert "1 label rows without an image" in err and "1 images without a label row" in err
    for argv, msg in [
        (["--overwrite", "--attributes", "Male,Bald"], "no attribute column 'Bald'; columns are: Male, Smiling, Young"),
        ([], "already exists"),
        (["--overwrite", "--split", "official"], "--split identity"),
        (["--overwrite", "--fractions", "0.5,0.5"], "expected 3 values"),
    ]:
        with pytest.raises(SystemExit) as exc:
            main(["data", "celeba", "--root", str(tmp_path / "c"), "--out", str(out), *argv])
        assert exc.value.code == 2
        assert msg in " ".join(capsys.readouterr().err.split())


@pytest.mark.skipif(not SHARED.is_dir(), reason=f"shared CelebA subset not found at {SHARED}")
def test_shared_celeba_subset(tmp_path):
    out = tmp_path / "celeba"
    path, meta = convert_celeba(out, SHARED, size=64, limit=300, progress=False)
    ds = load_dataset(path)
    ref = pd.read_csv(SHARED / "celeba_000001-010000_attrs.csv", dtype={"image_id": str}).iloc[:300]
    assert ds.table["id"].tolist() == ref["image_id"].tolist()
    attrs = [c for c in ref.columns if c not in ("image_id", "partition", "identity")]
    assert ds.attribute_names == attrs
    assert np.array_equal(ds.table[attrs].to_numpy(), (ref[attrs].to_numpy() == 1).astype(np.int8))
    assert np.array_equal(ds.table["group_id"].astype(int).to_numpy(), ref["identity"].to_numpy())
    with zipfile.ZipFile(SHARED / "celeba_000001-010000_89x109_jpg.zip") as zf:
        for row in (0, 137, 299):
            name = ref["image_id"].iloc[row]
            img = np.asarray(Image.open(io.BytesIO(zf.read(f"img_align_celeba_89x109/{name}"))))
            assert np.array_equal(ds.images[row], img[28:92, 12:76])
    assert 0.3 < ds.table["Male"].mean() < 0.55
    by = ds.table.groupby("split")["group_id"].apply(set)
    assert not (by["train"] & by["val"]) and not (by["train"] & by["test"]) and not (by["val"] & by["test"])
    # The label file holds 20,000 rows (its count line says 202599); the rest have no image here.
    assert meta["label_rows_in_file"] == 20000
    assert meta["reported"]["labels_without_image"]["count"] == 10000
