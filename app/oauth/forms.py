from wtforms import SubmitField

from app.forms import Form


class ConsentForm(Form):
    approve = SubmitField("Allow")
    deny = SubmitField("Deny")
