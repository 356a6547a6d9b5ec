"""Streamlit Cloud's entry point (main file `app.py`); the app itself is inkdigits/app.py."""

from inkdigits.app import main

main()
