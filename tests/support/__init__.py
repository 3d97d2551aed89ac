"""What every test folder shares: the OAuth checks a relying party makes
(oauth.py), the headless Chromium and the steps a person takes in it
(chromium.py), and the fixtures of the black-box tests (fixtures.py, loaded
by tests/conftest.py as a pytest plugin)."""
