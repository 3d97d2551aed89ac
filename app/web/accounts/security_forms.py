"""Forms of the account-security pages: two-factor settings and
deactivation. Each carries Flask-WTF's CSRF token; a password field is
offered when the sign-in is not fresh (app.web.reauth)."""

from wtforms import PasswordField, StringField
from wtforms.validators import DataRequired, Length, Optional

from app.web.forms import Form


def _password():
    return PasswordField("Your password", validators=[Optional(), Length(max=1024)])


class EnableTotpForm(Form):
    code = StringField("Code from the app", validators=[DataRequired(), Length(max=16)])
    password = _password()


class RegenerateCodesForm(Form):
    password = _password()


class DisableTotpForm(Form):
    password = _password()
    recovery_code = StringField(
        "Or a recovery code", validators=[Optional(), Length(max=40)]
    )


class DeactivateForm(Form):
    password = _password()


class DeleteForm(Form):
    password = _password()
