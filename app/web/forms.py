"""The base of every Latchkey form: text fields from the form body only.

Flask-WTF's FlaskForm also feeds a form with uploaded files
(``request.files``) and with a JSON body (``request.get_json()``). No
Latchkey form takes either, and both hand a field something other than a
string (a FileStorage, a number, a list), which the validators then trip
over. Reading ``request.form`` alone makes such a request what it is: a form
with its fields missing, answered by the form's own error page; a body of
another type (JSON, text) is no form submission at all.
"""

from flask import request
from flask_wtf import FlaskForm
from wtforms.validators import StopValidation

SUBMIT_METHODS = {"POST", "PUT", "PATCH", "DELETE"}
# What a browser sends for our forms (HTML §4.10.21.7: no form here sets
# enctype="text/plain").
FORM_TYPES = {"application/x-www-form-urlencoded", "multipart/form-data"}


_FORM_BODY = object()


class Form(FlaskForm):
    """A FlaskForm whose data is, unless ``formdata`` is given, the text
    fields of the form body (``request.form``: never files, never JSON),
    or nothing on a GET."""

    def __init__(self, formdata=_FORM_BODY, **kwargs):
        if formdata is _FORM_BODY:
            submitted = request.method in SUBMIT_METHODS
            formdata = request.form if submitted else None
        super().__init__(formdata=formdata, **kwargs)

    def validate(self, extra_validators=None) -> bool:
        """WTForms' validation, and a body that is a form at all: JSON or
        text sent where a form is expected is refused even when the form
        has no field but its CSRF token (sent in a header)."""
        if request.method in SUBMIT_METHODS and request.mimetype not in FORM_TYPES:
            self.form_errors.append("This is not a form submission.")
            return False
        return super().validate(extra_validators)


class Present:
    """WTForms validator: the field was sent, even if empty. An optional
    field that is missing altogether (a file part, a hand-made request) is
    not the person clearing it, so it changes nothing."""

    def __call__(self, form, field):
        if not field.raw_data:
            raise StopValidation("This field is missing.")


class ConfirmForm(Form):
    """A button and its CSRF token, nothing else: for actions whose only
    input is the person's say-so (resend a verification email, confirm)."""
