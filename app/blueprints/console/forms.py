"""WTForms for the console; Flask-WTF adds and checks the CSRF token on every one."""

from __future__ import annotations

import re

from flask_babel import lazy_gettext as _l
from flask_wtf import FlaskForm
from wtforms import (
    BooleanField,
    DateTimeLocalField,
    EmailField,
    HiddenField,
    IntegerField,
    PasswordField,
    RadioField,
    SelectField,
    StringField,
    TextAreaField,
)
from wtforms.fields.choices import SelectChoice
from wtforms.validators import (
    DataRequired,
    Length,
    NumberRange,
    Optional,
    Regexp,
    StopValidation,
)

from app.core.money import parse_minor
from app.identity.models import ADMIN, AGENT, MANAGER, SUPPORT

_CODE = Regexp(r"^\s*\d{3}\s?\d{3}\s*$", message=_l("Enter the 6-digit code from your app"))


class LoginForm(FlaskForm):
    username = StringField(_l("Username or e-mail"), validators=[DataRequired(), Length(max=255)])
    password = PasswordField(_l("Password"), validators=[DataRequired(), Length(max=128)])
    code = StringField(
        _l("Authentication code"),
        validators=[Optional(), Length(max=16)],
        description=_l("6 digits from your authenticator app, or one of your recovery codes."),
    )
    next = HiddenField()


class EnrolForm(FlaskForm):
    code = StringField(_l("Code from your app"), validators=[DataRequired(), _CODE])


class RecoveryCodesForm(FlaskForm):
    code = StringField(_l("Current code from your app"), validators=[DataRequired(), _CODE])


class PlayerActionForm(FlaskForm):
    """Every player decision needs a reason; ``context`` says which fragment to swap back."""

    reason = TextAreaField(
        _l("Reason"), validators=[DataRequired(), Length(min=3, max=500)], render_kw={"rows": 3}
    )
    context = HiddenField(default="panel")


class SuspendForm(PlayerActionForm):
    duration = RadioField(
        _l("Length"),
        choices=[
            SelectChoice("24h", _l("24 hours")),
            SelectChoice("7d", _l("7 days")),
            SelectChoice("30d", _l("30 days")),
            SelectChoice("indefinite", _l("Until lifted")),
        ],
        default="7d",
    )


STAFF_ROLE_CHOICES = [
    SelectChoice(str(SUPPORT), "Support"),
    SelectChoice(str(MANAGER), "Manager"),
    SelectChoice(str(AGENT), "Agent"),
    SelectChoice(str(ADMIN), "Admin"),
]


class StaffCreateForm(FlaskForm):
    username = StringField(_l("Username"), validators=[DataRequired(), Length(min=3, max=50)])
    email = EmailField(_l("E-mail"), validators=[DataRequired(), Length(max=255)])
    first_name = StringField(_l("First name"), validators=[Optional(), Length(max=100)])
    last_name = StringField(_l("Last name"), validators=[Optional(), Length(max=100)])
    role = SelectField(_l("Role"), choices=STAFF_ROLE_CHOICES, default=str(SUPPORT))
    password = PasswordField(
        _l("Initial password"),
        validators=[DataRequired(), Length(max=128)],
        description=_l(
            "At least 12 characters, not a common password; a passphrase is welcome. "
            "Admins and Managers set up their authenticator at first sign-in."
        ),
    )


class DecisionForm(FlaskForm):
    """A money or KYC decision with a required reason (rejections)."""

    reason = TextAreaField(
        _l("Reason"), validators=[DataRequired(), Length(min=3, max=500)], render_kw={"rows": 3}
    )
    context = HiddenField(default="panel")


class ApproveForm(FlaskForm):
    """An approval: an optional note for the record."""

    note = TextAreaField(_l("Note (optional)"), validators=[Optional(), Length(max=500)])
    context = HiddenField(default="panel")


class ConfirmForm(FlaskForm):
    """A decision whose service takes no free text (a withdrawal approval): confirm only."""

    context = HiddenField(default="panel")


_GROUPED = re.compile(r"^[-+]?\d{1,3}(,\d{3})+(\.\d+)?$")


def without_grouping(text: str) -> str:
    """``"1,000.50"`` → ``"1000.50"``: staff may type thousands separators."""
    text = text.strip()
    return text.replace(",", "") if _GROUPED.match(text) else text


class AdjustBalanceForm(FlaskForm):
    currency = SelectField(_l("Currency"), choices=[])
    balance_type = RadioField(
        _l("Balance"),
        choices=[SelectChoice("cash", _l("Cash")), SelectChoice("bonus", _l("Bonus"))],
        default="cash",
    )
    amount = StringField(
        _l("Amount"),
        validators=[DataRequired(), Length(max=32)],
        description=_l(
            "In the currency chosen above, e.g. 25.00 (1,000.00 works too). "
            "Positive credits the player, negative (e.g. -12.50) debits."
        ),
        render_kw={"inputmode": "decimal", "autocomplete": "off"},
    )
    reason = TextAreaField(
        _l("Reason"), validators=[DataRequired(), Length(min=3, max=500)], render_kw={"rows": 3}
    )
    context = HiddenField(default="panel")

    def validate_amount(self, field: StringField) -> None:
        """The amount's own problems, in the same round as a missing reason."""
        currency = self.currency.data or ""
        try:
            amount = parse_minor(without_grouping(field.data or ""), currency, allow_negative=True)
        except (ValueError, ArithmeticError) as exc:
            text = str(exc)
            if "decimal places" not in text and "large" not in text:
                text = f"Enter an amount in {currency}, e.g. 25.00 or -12.50."
            raise StopValidation(text) from None
        if amount == 0:
            raise StopValidation("Enter an amount other than zero.")


class JackpotPayoutForm(FlaskForm):
    """A manual jackpot payout: who, why, and an explicit confirmation."""

    player = StringField(
        _l("Player (username, e-mail or id)"),
        validators=[DataRequired(), Length(max=255)],
        render_kw={"autocomplete": "off"},
    )
    reason = TextAreaField(
        _l("Reason"), validators=[DataRequired(), Length(min=3, max=500)], render_kw={"rows": 3}
    )
    confirm = BooleanField(
        _l("I confirm: pay the whole current amount of this jackpot to this player"),
        validators=[DataRequired(message=_l("Tick the box to confirm the payout"))],
    )
    context = HiddenField(default="panel")


class TournamentForm(FlaskForm):
    """Create/edit a tournament. The prize table is one prize per line, rank 1 first:
    ``100.00`` (cash) or ``25.00 bonus`` (a bonus with the promotion's wagering)."""

    name = StringField(_l("Name"), validators=[DataRequired(), Length(max=120)])
    description = TextAreaField(
        _l("Description"), validators=[Optional(), Length(max=2000)], render_kw={"rows": 2}
    )
    currency = StringField(
        _l("Currency"), validators=[DataRequired(), Length(max=8)], default="EUR"
    )
    starts_at = DateTimeLocalField(_l("Starts (UTC)"), validators=[DataRequired()])
    ends_at = DateTimeLocalField(_l("Ends (UTC)"), validators=[DataRequired()])
    scoring = SelectField(
        _l("Scoring"),
        choices=[
            SelectChoice("wagered", _l("Most wagered")),
            SelectChoice("won", _l("Most won")),
            SelectChoice("multiplier", _l("Best multiplier")),
            SelectChoice("net", _l("Best net result")),
        ],
    )
    entry = SelectField(
        _l("Entry"),
        choices=[
            SelectChoice("free", _l("Free: the first qualifying bet enrols")),
            SelectChoice("opt_in", _l("Opt-in: players join first (needed for a fee)")),
        ],
    )
    entry_fee = StringField(
        _l("Entry fee"),
        validators=[Optional(), Length(max=32)],
        default="0",
        description=_l("Paid from the cash wallet at join; refunded if cancelled or deleted."),
    )
    min_bet = StringField(_l("Minimum bet"), validators=[Optional(), Length(max=32)], default="0")
    max_participants = IntegerField(
        _l("Maximum participants"), validators=[Optional(), NumberRange(min=1, max=1_000_000)]
    )
    game_ids = StringField(
        _l("Game ids"),
        validators=[Optional(), Length(max=2000), Regexp(r"^[\d,\s]*$", message=_l("Ids, commas"))],
        description=_l("Comma-separated; empty = every game."),
    )
    prizes = TextAreaField(
        _l("Prize table"),
        validators=[Optional(), Length(max=4000)],
        render_kw={"rows": 4},
        description=_l(
            "One line per rank, first place first: 100.00 for cash, 25.00 bonus for a bonus prize."
        ),
    )
    bonus_promotion_id = IntegerField(
        _l("Bonus terms (promotion id)"),
        validators=[Optional(), NumberRange(min=1)],
        description=_l("Bonus prizes are granted with this promotion's wagering terms."),
    )
