from wtforms import HiddenField, SubmitField

from app.web.forms import Form


class EndSessionForm(Form):
    """The "sign out?" question. The hidden fields are checked again on
    submit: they are the browser's word, not ours."""

    client_id = HiddenField()
    post_logout_redirect_uri = HiddenField()
    state = HiddenField()
    confirm = SubmitField("Sign out")
    cancel = SubmitField("Stay signed in")
