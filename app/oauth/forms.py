from flask_wtf import FlaskForm
from wtforms import SubmitField


class ConsentForm(FlaskForm):
    approve = SubmitField("Allow")
    deny = SubmitField("Deny")
