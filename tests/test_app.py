"""Streamlit AppTest tests for every tab, on a small untrained generator (fast and independent of models/)."""

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from streamlit.testing.v1 import AppTest

ROOT = Path(__file__).resolve().parents[1]
APP = str(ROOT / "app.py")


@pytest.fixture
def app(measured_weights, monkeypatch):
    monkeypatch.setenv("INKDIGITS_WEIGHTS", str(measured_weights))
    at = AppTest.from_file(APP, default_timeout=60)
    at.run()
    assert not at.exception
    return at


def result(at, key):
    return at.session_state["results"][key]


def test_generate_five_images_of_a_digit(app):
    app.selectbox(key="digit").set_value(3)
    app.button(key="go-digit").click().run()
    assert not app.exception
    assert len(app.image) == 5
    assert [c for img in app.image for c in img.captions] == [f"3 · #{i}" for i in range(1, 6)]
    title = [h.value for h in app.subheader]
    assert any(t.startswith("Digit 3 · seed ") for t in title)
    assert result(app, "digit")["images"].shape == (5, 28, 28)
    assert len(app.get("download_button")) == 2


def test_count_and_fixed_seed_reproduce_images(app):
    app.number_input(key="count").set_value(12)
    app.text_input(key="seed-digit").set_value("1234")
    app.button(key="go-digit").click().run()
    first = result(app, "digit")["images"].copy()
    assert first.shape == (12, 28, 28)
    assert any(h.value == "Digit 7 · seed 1234" for h in app.subheader)
    app.button(key="go-digit").click().run()
    np.testing.assert_array_equal(result(app, "digit")["images"], first)


def test_unseeded_clicks_draw_new_images(app):
    app.button(key="go-digit").click().run()
    a = result(app, "digit")
    app.button(key="go-digit").click().run()
    b = result(app, "digit")
    assert a["title"] != b["title"] and not np.array_equal(a["images"], b["images"])


def test_write_a_number(app):
    app.text_input(key="number").set_value("555-0100")
    app.text_input(key="seed-number").set_value("3")
    app.button(key="go-number").click().run()
    assert not app.exception and not app.error
    res = result(app, "number")
    assert list(res["labels"]) == [5, 5, 5, 0, 1, 0, 0]
    assert "".join(b[4] for b in res["boxes"]) == "555-0100"  # the dash is drawn and boxed too
    assert res["picture"].ndim == 2 and res["png"].startswith(b"\x89PNG")
    assert len(app.image) == 1
    wider = res["picture"].shape[1]
    app.slider(key="spacing").set_value(3.0).run()
    app.button(key="go-number").click().run()
    assert result(app, "number")["picture"].shape[1] > wider  # the same hand, wider gaps


def test_share_link_reproduces_the_result(measured_weights, monkeypatch):
    monkeypatch.setenv("INKDIGITS_WEIGHTS", str(measured_weights))
    first = AppTest.from_file(APP, default_timeout=60).run()
    first.selectbox(key="digit").set_value(4)
    first.number_input(key="count").set_value(6)
    first.button(key="go-digit").click().run()  # no seed typed: a random one, which the link records
    link = first.query_params
    assert link["tab"] == "digit" and link["digit"] == "4" and link["count"] == "6"
    assert link["seed-digit"].isdigit()

    opened = AppTest.from_file(APP, default_timeout=60)
    opened.query_params.update(dict(link))
    opened.run()
    assert not opened.exception
    assert opened.selectbox(key="digit").value == 4 and opened.text_input(key="seed-digit").value == link["seed-digit"]
    np.testing.assert_array_equal(result(opened, "digit")["images"], result(first, "digit")["images"])


def test_share_link_for_a_written_number(measured_weights, monkeypatch):
    monkeypatch.setenv("INKDIGITS_WEIGHTS", str(measured_weights))
    first = AppTest.from_file(APP, default_timeout=60).run()
    first.text_input(key="number").set_value("12/05")
    first.slider(key="spacing").set_value(1.5)
    first.button(key="go-number").click().run()
    opened = AppTest.from_file(APP, default_timeout=60)
    opened.query_params.update(dict(first.query_params))
    opened.run()
    assert opened.text_input(key="number").value == "12/05" and opened.slider(key="spacing").value == 1.5
    np.testing.assert_array_equal(result(opened, "number")["picture"], result(first, "number")["picture"])


def test_a_damaged_link_keeps_the_defaults_and_says_so(app_with_link):
    at = app_with_link({"tab": "digit", "digit": "99", "count": "many", "seed-digit": "x"})
    assert not at.exception and not at.error
    assert at.selectbox(key="digit").value == 7  # the default: this model has no class 99
    assert at.number_input(key="count").value == 5
    note = " ".join(c.value for c in at.caption)
    assert all(f"{key} '{value}' cannot be used" in note for key, value in (("digit", "99"), ("count", "many"), ("seed-digit", "x")))
    assert len(result(at, "digit")["images"]) == 5  # drawn with the defaults and a new seed


@pytest.fixture
def app_with_link(measured_weights, monkeypatch):
    monkeypatch.setenv("INKDIGITS_WEIGHTS", str(measured_weights))

    def open_with(params):
        at = AppTest.from_file(APP, default_timeout=60)
        at.query_params.update(params)
        return at.run()

    return open_with


@pytest.mark.parametrize("text, message", [("12a", "only digits"), ("1" * 17, "at most 16 digits"), ("", "at least one")])
def test_bad_number_gets_an_inline_message(app, text, message):
    app.button(key="go-number").click().run()  # a good result first: the bad input must replace it
    assert "number" in app.session_state["results"]
    app.text_input(key="number").set_value(text)
    app.button(key="go-number").click().run()
    assert not app.exception
    assert any(message in e.value for e in app.error)
    assert "number" not in app.session_state["results"]


@pytest.mark.parametrize("count", [0, 65])
def test_bad_count_gets_an_inline_message(app, count):
    app.number_input(key="count").set_value(count)
    app.button(key="go-digit").click().run()
    assert not app.exception
    assert any("between 1 and 64" in e.value for e in app.error)


def test_bad_seed_gets_an_inline_message(app):
    app.text_input(key="seed-digit").set_value("-3")
    app.button(key="go-digit").click().run()
    assert any("seed must be a whole number" in e.value for e in app.error)


def test_style_sheet(app):
    app.slider(key="rows").set_value(2)
    app.text_input(key="seed-styles").set_value("5")
    app.button(key="go-styles").click().run()
    res = result(app, "styles")
    assert res["images"].shape == (20, 28, 28) and list(res["labels"]) == list(range(10)) * 2
    assert any(h.value == "2 hands × digits 0-9 · seed 5" for h in app.subheader)


def test_morph(app):
    app.slider(key="frames").set_value(6)
    app.button(key="go-morph").click().run()
    assert not app.exception
    res = result(app, "morph")
    assert res["images"].shape == (6, 28, 28)
    assert res["labels"][0] == 1 and res["labels"][-1] == 7


def test_results_stay_when_another_widget_changes(app):
    app.button(key="go-digit").click().run()
    before = result(app, "digit")["images"].copy()
    app.text_input(key="number").set_value("42").run()
    app.slider(key="rows").set_value(4).run()
    assert len(app.image) == 5
    np.testing.assert_array_equal(result(app, "digit")["images"], before)


def test_sidebar_shows_the_metrics(app):
    text = " ".join(m.value for m in app.sidebar.markdown)
    assert "conditional GAN" in text and "Measured" in text
    table = app.sidebar.table[0].value
    assert "50.00%" in table.to_string() and "75.00%" in table.to_string()


@pytest.mark.parametrize("content", [None, b"", b"\x80\x04garbage"])
def test_missing_or_corrupt_weights_show_the_fix(tmp_path, monkeypatch, content):
    path = tmp_path / "generator.safetensors"
    if content is not None:
        path.write_bytes(content)
    monkeypatch.setenv("INKDIGITS_WEIGHTS", str(path))
    at = AppTest.from_file(APP, default_timeout=60).run()
    assert not at.exception
    assert any(str(path) in e.value for e in at.error)
    assert any("git checkout models/" in i.value for i in at.info)


def test_app_imports_no_training_code_and_no_dataset(tiny_weights, tmp_path):
    code = (
        "import sys; from streamlit.testing.v1 import AppTest\n"
        f"at = AppTest.from_file({APP!r}, default_timeout=180).run()\n"
        "assert not at.exception, at.exception\n"
        "print(sorted(m for m in sys.modules if m.startswith('inkdigits')))\n"
    )
    env = {"INKDIGITS_WEIGHTS": str(tiny_weights), "INKDIGITS_DATA_DIR": str(tmp_path / "no-data"),
           "PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "OMP_NUM_THREADS": "1"}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=240)
    assert out.returncode == 0, out.stderr
    assert "inkdigits.train" not in out.stdout and "inkdigits.data" not in out.stdout
    assert not (tmp_path / "no-data").exists()
