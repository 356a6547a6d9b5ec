"""Written numbers: the composer's layout and boxes, the API, and the OCR dataset export."""

import json

import numpy as np
import pytest
import torch
from PIL import Image

from inkdigits import cli, load_generator
from inkdigits.compose import INK, MAX_OVERLAP
from inkdigits.errors import InkdigitsError
from inkdigits.limits import NUMBERS_NEATNESS
from inkdigits.numbers import number_jobs


@pytest.fixture(scope="module")
def g():
    return load_generator()  # the shipped generator: real ink to crop


def ink_outside_boxes(image, boxes) -> int:
    covered = np.zeros(image.shape, bool)
    for x0, y0, x1, y1, _ in boxes:
        covered[y0:y1, x0:x1] = True
    return int(((image > INK) & ~covered).sum())


@pytest.mark.parametrize("seed", range(12))
def test_boxes_cover_the_ink_and_barely_overlap(g, seed):
    text = "".join(np.random.default_rng(seed).choice(list("0123456789-./: "), 14)).strip() or "7"
    image, boxes = g.write(text, seed=seed)
    assert image.dtype == np.uint8 and image.ndim == 2
    assert [b[4] for b in boxes] == [ch for ch in " ".join(text.split()) if ch != " "]
    assert ink_outside_boxes(image, boxes) == 0
    for (ax0, _, ax1, _, _), (bx0, by0, bx1, by1, _) in zip(boxes[:-1], boxes[1:], strict=True):
        slant_room = int(np.ceil(0.12 * (by1 - by0))) + 1  # a slanted glyph's box is wider than its ink
        assert ax1 - bx0 <= MAX_OVERLAP + slant_room
        assert bx0 < bx1 and ax0 < bx1  # left to right
    for x0, y0, x1, y1, _ in boxes:
        assert 0 <= x0 < x1 <= image.shape[1] and 0 <= y0 < y1 <= image.shape[0]


def test_same_seed_same_image_and_one_hand(g):
    a, boxes_a = g.write("555-0100", seed=7)
    b, boxes_b = g.write("555-0100", seed=7)
    np.testing.assert_array_equal(a, b)
    assert boxes_a == boxes_b
    c, _ = g.write("555-0100", seed=8)
    assert a.shape != c.shape or not np.array_equal(a, c)
    # One hand: the three 5s come from one style vector, so they look alike (closer than across hands).
    def fives(image, boxes):
        return [np.asarray(Image.fromarray(image[y0:y1, x0:x1]).resize((16, 16)), float) for x0, y0, x1, y1, ch in boxes
                if ch == "5"]  # fmt: skip

    ours = fives(a, boxes_a)
    others = [f for seed in range(20, 30) for f in fives(*g.write("555-0100", seed=seed))[:1]]
    within = np.mean([np.abs(p - q).mean() for i, p in enumerate(ours) for q in ours[i + 1 :]])
    across = np.mean([np.abs(p - q).mean() for p in ours for q in others])
    assert len(ours) == 3 and within < 0.75 * across


def test_sixteen_digits_fit_and_a_fixed_canvas(g):
    image, boxes = g.write("1234567890123456", seed=1)
    assert len(boxes) == 16 and ink_outside_boxes(image, boxes) == 0
    image, boxes = g.write("12/05/2026", seed=2, height=28, width=140)
    assert image.shape == (28, 140) and len(boxes) == 10
    assert ink_outside_boxes(image, boxes) == 0


@pytest.mark.parametrize("text, message", [("12a4", "only digits 0-9"), ("", "at least one digit"),
                                           ("1" * 17, "at most 16 digits"), ("- -", "at least one digit")])  # fmt: skip
def test_bad_text_is_one_clear_error(g, text, message):
    with pytest.raises(InkdigitsError, match=message):
        g.write(text, seed=0)


def test_new_hand_per_digit_changes_the_glyphs_not_the_text(g):
    one, boxes = g.write("4444", seed=3)
    many, boxes_many = g.write("4444", seed=3, new_hand_per_digit=True)
    assert [b[4] for b in boxes] == [b[4] for b in boxes_many] == list("4444")
    assert one.shape != many.shape or not np.array_equal(one, many)


def test_export_numbers_writes_exactly_n_labelled_items(tmp_path, capsys):
    out = tmp_path / "numbers"
    assert cli.main(["export", "--numbers", "12", "--pattern", "ddd-dddd", "--seed", "0", "--workers", "2",
                     "--out", str(out)]) == 0  # fmt: skip
    assert "wrote 12 numbers" in capsys.readouterr().out
    records = [json.loads(line) for line in (out / "labels.jsonl").read_text().splitlines()]
    assert len(records) == 12 and sorted(p.name for p in out.glob("*.png")) == [r["file"] for r in records]
    for r in records:
        assert len(r["text"]) == 8 and r["text"][3] == "-" and r["text"].replace("-", "").isdigit()
        assert "".join(b[4] for b in r["boxes"]) == r["text"]
        image = np.asarray(Image.open(out / r["file"]))
        assert ink_outside_boxes(image, r["boxes"]) == 0
    again = tmp_path / "again"
    assert cli.main(["export", "--numbers", "12", "--pattern", "ddd-dddd", "--seed", "0", "--workers", "1",
                     "--out", str(again)]) == 0  # fmt: skip
    assert (again / "labels.jsonl").read_text() == (out / "labels.jsonl").read_text()  # workers change nothing


def test_export_numbers_npz_with_lengths_and_a_canvas(tmp_path):
    out = tmp_path / "n"
    assert cli.main(["export", "--numbers", "10", "--length", "4-6", "--format", "npz", "--height", "32",
                     "--width", "128", "--workers", "1", "--out", str(out)]) == 0  # fmt: skip
    with np.load(out / "images.npz") as f:
        assert f["images"].shape == (10, 32, 128) and f["images"].dtype == np.uint8
        labels = f["labels"].tolist()
    records = [json.loads(line) for line in (out / "labels.jsonl").read_text().splitlines()]
    assert labels == [r["text"] for r in records] and all(4 <= len(t) <= 6 and t.isdigit() for t in labels)


def test_export_numbers_are_the_jobs_written_at_the_exports_neatness(g, tmp_path):
    """benchmarks/ocr_numbers.py builds the export's numbers in memory from number_jobs: the same images."""
    out = tmp_path / "n"
    assert cli.main(["export", "--numbers", "6", "--length", "4", "--format", "npz", "--height", "32", "--width",
                     "160", "--workers", "1", "--out", str(out)]) == 0  # fmt: skip
    with np.load(out / "images.npz") as f:
        images = f["images"]
    for i, text, seed, per_digit, layout in number_jobs(6, 0, (4, 4)):
        expected = g.write(text, seed=seed, height=32, width=160, layout=layout, new_hand_per_digit=per_digit,
                           neatness=NUMBERS_NEATNESS)[0]  # fmt: skip
        np.testing.assert_array_equal(images[i], expected)


@pytest.mark.parametrize("argv, message", [
    (["--pattern", "ddx"], "use d for a digit"),
    (["--pattern", "./."], "use d for a digit"),
    (["--length", "0-3"], "1 to 16 digits"),
    (["--length", "abc"], "expected N or N-M"),
    (["--format", "idx"], "png (default) or npz"),
    (["--width", "100"], "--width needs --height"),
])  # fmt: skip
def test_export_numbers_bad_arguments(tmp_path, capsys, argv, message):
    out = tmp_path / "n"
    assert cli.main(["export", "--numbers", "3", "--out", str(out), *argv]) == 2
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1
    assert not out.exists() and not list(tmp_path.iterdir())


def test_export_numbers_never_overwrites(tmp_path, capsys):
    out = tmp_path / "n"
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    assert cli.main(["export", "--numbers", "3", "--out", str(out)]) == 2
    assert "not an empty folder" in capsys.readouterr().err and (out / "keep.txt").read_text() == "mine"


def test_export_numbers_failing_worker_leaves_no_folder_and_no_workers(tmp_path, monkeypatch):
    import multiprocessing as mp

    from inkdigits import numbers
    from inkdigits.resources import default_weights
    from inkdigits.sample import DigitGenerator

    def broken(self, text, **options):
        raise RuntimeError("worker failed")

    monkeypatch.setattr(DigitGenerator, "write", broken)  # the forked workers inherit the patched class
    with pytest.raises(RuntimeError, match="worker failed"):
        numbers.export_numbers(load_generator(default_weights()), 40, 0, tmp_path / "n", workers=2, progress=False)
    assert not list(tmp_path.iterdir())  # neither the folder nor its temporary twin
    assert not mp.active_children()  # the pool was stopped, not left for the garbage collector


def test_a_slash_is_told_from_a_one(g):
    """In dates, '/' must not look like the 1s beside it: a linear classifier on 28 x 28 crops (each box's ink
    alone, in a square of the line's height) trained on half of 120 written "1/1/1" tells them apart on the other half."""
    crops, is_slash = [], []
    for seed in range(120):
        line, boxes = g.write("1/1/1", seed=seed, height=32)
        for x0, _, x1, _, ch in boxes:
            if ch in "1/":
                alone = np.zeros((32, line.shape[1] + 32), np.uint8)  # the box's ink only, centred
                alone[:, x0 + 16 : x1 + 16] = line[:, x0:x1]
                centre = (x0 + x1) // 2 + 16
                crop = Image.fromarray(alone[:, centre - 16 : centre + 16]).resize((28, 28), Image.Resampling.BILINEAR)
                crops.append(np.asarray(crop))
                is_slash.append(ch == "/")
    x = torch.from_numpy(np.stack(crops)).float().div(255).flatten(1)
    y = torch.tensor(is_slash, dtype=torch.float32)
    half = len(x) // 2
    w = torch.zeros(x.shape[1], requires_grad=True)
    b = torch.zeros(1, requires_grad=True)
    opt = torch.optim.Adam([w, b], lr=0.05)
    for _ in range(300):
        loss = torch.nn.functional.binary_cross_entropy_with_logits(x[:half] @ w + b, y[:half])
        opt.zero_grad()
        loss.backward()
        opt.step()
    with torch.no_grad():
        correct = ((x[half:] @ w + b > 0).float() == y[half:]).float()
    slashes = y[half:].bool()
    assert correct[slashes].mean() >= 0.99 and correct[~slashes].mean() >= 0.99  # neither read as the other


def test_the_varied_layout_varies_size_place_and_stroke_on_a_fixed_canvas(g):
    """On a 32 x 160 canvas, plain lines are centred and fill the height; varied ones move and shrink."""
    from inkdigits.compose import INK

    def extents(layout):
        boxes = []
        for seed in range(30):
            image, char_boxes = g.write("20261201", seed=seed, height=32, width=160, layout=layout)
            ys, xs = np.nonzero(image > INK)
            boxes.append((xs.min(), xs.max(), ys.max() - ys.min(), (image > INK).mean()))
            assert image.shape == (32, 160) and len(char_boxes) == 8
        return np.array(boxes, float)

    plain, varied = extents("plain"), extents("varied")
    assert varied[:, 0].std() > 2 * plain[:, 0].std()  # where the line starts
    assert varied[:, 2].std() > 1.4 * plain[:, 2].std()  # how tall it is
    assert varied[:, 3].std() > 1.5 * plain[:, 3].std()  # how much ink: sizes and stroke weights


def test_export_numbers_mixes_hands_and_layouts_by_default(tmp_path):
    out = tmp_path / "n"
    assert cli.main(["export", "--numbers", "40", "--length", "4", "--workers", "1", "--out", str(out)]) == 0
    rows = [json.loads(line) for line in (out / "labels.jsonl").read_text().splitlines()]
    assert {r["hands"] for r in rows} == {"one", "per-digit"}  # the defaults: mixed hands and mixed layouts
    assert {r["layout"] for r in rows} == {"plain", "varied"}
    one = tmp_path / "one"
    argv = ["export", "--numbers", "20", "--hands", "one", "--layout", "mixed", "--workers", "1", "--out", str(one)]
    assert cli.main(argv) == 0
    rows = [json.loads(line) for line in (one / "labels.jsonl").read_text().splitlines()]
    assert {r["hands"] for r in rows} == {"one"} and {r["layout"] for r in rows} == {"plain", "varied"}
