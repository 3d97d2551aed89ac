from wtforms import BooleanField, HiddenField, PasswordField, StringField
from wtforms.validators import DataRequired, Length, Optional

from app.web.forms import Form, Present


class LoginForm(Form):
    email = StringField("Email", validators=[DataRequired(), Length(max=320)])
    password = PasswordField("Password", validators=[DataRequired(), Length(max=1024)])
    next = HiddenField()


class SecondFactorForm(Form):
    code = StringField("Code", validators=[Optional(), Length(max=16)])
    recovery_code = StringField(
        "Recovery code", validators=[Optional(), Length(max=40)]
    )


class LogoutForm(Form):
    pass


class ForgotPasswordForm(Form):
    email = StringField("Email", validators=[DataRequired(), Length(max=320)])


class SetPasswordForm(Form):
    password = PasswordField(
        "New password", validators=[DataRequired(), Length(max=1024)]
    )
    sign_out_everywhere = BooleanField(
        "Sign out connected devices after password change", default=True
    )


class ChangePasswordForm(SetPasswordForm):
    current_password = PasswordField(
        "Current password", validators=[Optional(), Length(max=1024)]
    )


class SignupForm(Form):
    email = StringField("Email", validators=[DataRequired(), Length(max=320)])
    name = StringField("Name", validators=[Optional(), Length(max=200)])
    password = PasswordField("Password", validators=[DataRequired(), Length(max=1024)])


class ChangeEmailForm(Form):
    new_email = StringField("New email", validators=[DataRequired(), Length(max=320)])
    # Optional: an SSO-only account has none and proves itself upstream.
    current_password = PasswordField(
        "Current password", validators=[Optional(), Length(max=1024)]
    )


class ReauthForm(Form):
    """One of: the password, an authenticator code, a recovery code."""

    password = PasswordField("Password", validators=[Optional(), Length(max=1024)])
    code = StringField("Code", validators=[Optional(), Length(max=16)])
    recovery_code = StringField(
        "Recovery code", validators=[Optional(), Length(max=40)]
    )
    next = HiddenField(validators=[Optional(), Length(max=2000)])


class ProfileForm(Form):
    name = StringField(
        "Display name", validators=[Present(), Optional(), Length(max=200)]
    )
