from wtforms import HiddenField, PasswordField, StringField
from wtforms.validators import DataRequired, Length, Optional

from app.web.forms import Form


class UserCodeForm(Form):
    user_code = StringField("Code", validators=[DataRequired(), Length(max=32)])


class DeviceDecisionForm(Form):
    user_code = HiddenField(validators=[DataRequired(), Length(max=32)])
    decision = HiddenField(validators=[DataRequired()])


class SignOutDeviceForm(Form):
    pass


class RenameDeviceForm(Form):
    name = StringField("Name", validators=[DataRequired(), Length(max=200)])


class SignOutEverywhereForm(Form):
    password = PasswordField("Password", validators=[Optional(), Length(max=1024)])
