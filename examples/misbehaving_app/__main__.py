from examples.misbehaving_app import REDIRECT_URI, MisbehavingApp
from examples.sample_app.cli import main

main(MisbehavingApp, redirect_uri=REDIRECT_URI)
