"""Forms of the account-security pages: two-factor settings and
deactivation. Each carries Flask-WTF's CSRF token; a password field is
offered when the sign-in is not fresh (app.security.reauth)."""

from flask_wtf import FlaskForm
from wtforms import PasswordField, StringField
from wtforms.validators import DataRequired, Length, Optional


def _password():
    return PasswordField("Your password", validators=[Optional(), Length(max=1024)])


class EnableTotpForm(FlaskForm):
    code = StringField("Code from the app", validators=[DataRequired(), Length(max=16)])
    password = _password()


class RegenerateCodesForm(FlaskForm):
    password = _password()


class DisableTotpForm(FlaskForm):
    password = _password()
    recovery_code = StringField(
        "Or a recovery code", validators=[Optional(), Length(max=40)]
    )


class DeactivateForm(FlaskForm):
    password = _password()


class DeleteForm(FlaskForm):
    password = _password()
