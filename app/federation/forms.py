from flask_wtf import FlaskForm
from wtforms import PasswordField
from wtforms.validators import DataRequired, Length


class LinkExistingForm(FlaskForm):
    password = PasswordField("Password", validators=[DataRequired(), Length(max=1024)])


class UnlinkForm(FlaskForm):
    pass
