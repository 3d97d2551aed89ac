from flask_wtf import FlaskForm


class RemoveAccessForm(FlaskForm):
    """Only the CSRF token: the client is in the URL."""
