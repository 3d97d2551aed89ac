from wtforms import PasswordField
from wtforms.validators import DataRequired, Length

from app.web.forms import Form


class LinkExistingForm(Form):
    password = PasswordField("Password", validators=[DataRequired(), Length(max=1024)])


class UnlinkForm(Form):
    pass
