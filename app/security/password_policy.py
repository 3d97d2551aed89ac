"""What makes a password acceptable, told in plain words."""

from zxcvbn import zxcvbn

MAX_LENGTH = 1024
# zxcvbn's cost grows with length; beyond this, length alone makes it strong.
SCORED_PREFIX = 100


def password_problems(
    password: str,
    email: str = "",
    name: str = "",
    min_length: int = 8,
    min_score: int = 3,
) -> list[str]:
    """Reasons ``password`` is refused; empty when it is acceptable.

    Any characters are allowed. Common passwords and ones built from the
    person's email or name are refused, judged by zxcvbn's dictionaries.
    """
    problems = []
    if len(password) < min_length:
        problems.append(f"Use at least {min_length} characters.")
    if len(password) > MAX_LENGTH:
        problems.append(f"Use at most {MAX_LENGTH} characters.")
    if problems:
        return problems
    lowered = password.lower()
    personal = [p for p in _personal_words(email, name) if len(p) >= 3]
    if any(word in lowered for word in personal):
        problems.append("Do not use your email address or name in your password.")
    result = zxcvbn(password[:SCORED_PREFIX], user_inputs=personal)
    if result["score"] < min_score:
        warning = result["feedback"].get("warning") or "This password is easy to guess."
        hint = " ".join(result["feedback"].get("suggestions") or [])
        problems.append(f"{warning} {hint}".strip())
    return problems


def _personal_words(email: str, name: str) -> list[str]:
    local = (email or "").lower().split("@")[0]
    words = [local, *local.replace(".", " ").replace("_", " ").split()]
    words += (name or "").lower().split()
    return words
