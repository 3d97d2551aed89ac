from app.web.forms import Form


class RemoveAccessForm(Form):
    """Only the CSRF token: the client is in the URL."""
