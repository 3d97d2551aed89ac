"""What every test folder shares: the OAuth checks a relying party makes
(oauth.py), the headless Chromium and the steps a person takes in it
(chromium.py), the mail the outbox wrote (mail.py), and the fixtures of the
black-box tests (fixtures.py). tests/conftest.py loads fixtures.py and
chromium.py as pytest plugins."""
