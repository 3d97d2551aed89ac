from wtforms import SubmitField

from app.web.forms import Form


class ConsentForm(Form):
    approve = SubmitField("Allow")
    deny = SubmitField("Deny")
