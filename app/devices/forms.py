from flask_wtf import FlaskForm
from wtforms import HiddenField, PasswordField, StringField
from wtforms.validators import DataRequired, Length, Optional


class UserCodeForm(FlaskForm):
    user_code = StringField("Code", validators=[DataRequired(), Length(max=32)])


class DeviceDecisionForm(FlaskForm):
    user_code = HiddenField(validators=[DataRequired(), Length(max=32)])
    decision = HiddenField(validators=[DataRequired()])


class SignOutDeviceForm(FlaskForm):
    pass


class RenameDeviceForm(FlaskForm):
    name = StringField("Name", validators=[DataRequired(), Length(max=200)])


class SignOutEverywhereForm(FlaskForm):
    password = PasswordField("Password", validators=[Optional(), Length(max=1024)])
