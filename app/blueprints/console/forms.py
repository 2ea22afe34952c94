"""WTForms for the console; Flask-WTF adds and checks the CSRF token on every one."""

from __future__ import annotations

import re

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

_CODE = Regexp(r"^\s*\d{3}\s?\d{3}\s*$", message="Enter the 6-digit code from your app")


class LoginForm(FlaskForm):
    username = StringField("Username or e-mail", validators=[DataRequired(), Length(max=255)])
    password = PasswordField("Password", validators=[DataRequired(), Length(max=128)])
    code = StringField(
        "Authentication code",
        validators=[Optional(), Length(max=16)],
        description="6 digits from your authenticator app, or one of your recovery codes.",
    )
    next = HiddenField()


class EnrolForm(FlaskForm):
    code = StringField("Code from your app", validators=[DataRequired(), _CODE])


class RecoveryCodesForm(FlaskForm):
    code = StringField("Current code from your app", validators=[DataRequired(), _CODE])


class PlayerActionForm(FlaskForm):
    """Every player decision needs a reason; ``context`` says which fragment to swap back."""

    reason = TextAreaField(
        "Reason", validators=[DataRequired(), Length(min=3, max=500)], render_kw={"rows": 3}
    )
    context = HiddenField(default="panel")


class SuspendForm(PlayerActionForm):
    duration = RadioField(
        "Length",
        choices=[
            SelectChoice("24h", "24 hours"),
            SelectChoice("7d", "7 days"),
            SelectChoice("30d", "30 days"),
            SelectChoice("indefinite", "Until lifted"),
        ],
        default="7d",
    )


class MaintenanceForm(FlaskForm):
    enabled = BooleanField(
        "Maintenance mode on (the player API answers 503)",
        # console.js asks for a confirmation when this is ticked (switching it on).
        render_kw={"data-confirm-when": "on"},
    )
    message = StringField("Message shown to players", validators=[Optional(), Length(max=300)])


STAFF_ROLE_CHOICES = [
    SelectChoice(str(SUPPORT), "Support"),
    SelectChoice(str(MANAGER), "Manager"),
    SelectChoice(str(AGENT), "Agent"),
    SelectChoice(str(ADMIN), "Admin"),
]


class StaffCreateForm(FlaskForm):
    username = StringField("Username", validators=[DataRequired(), Length(min=3, max=50)])
    email = EmailField("E-mail", validators=[DataRequired(), Length(max=255)])
    first_name = StringField("First name", validators=[Optional(), Length(max=100)])
    last_name = StringField("Last name", validators=[Optional(), Length(max=100)])
    role = SelectField("Role", choices=STAFF_ROLE_CHOICES, default=str(SUPPORT))
    password = PasswordField(
        "Initial password",
        validators=[DataRequired(), Length(max=128)],
        description="At least 12 characters, not a common password; a passphrase is welcome. "
        "Admins and Managers set up their authenticator at first sign-in.",
    )


class DecisionForm(FlaskForm):
    """A money or KYC decision with a required reason (rejections)."""

    reason = TextAreaField(
        "Reason", validators=[DataRequired(), Length(min=3, max=500)], render_kw={"rows": 3}
    )
    context = HiddenField(default="panel")


class ApproveForm(FlaskForm):
    """An approval: an optional note for the record."""

    note = TextAreaField("Note (optional)", validators=[Optional(), Length(max=500)])
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
    currency = SelectField("Currency", choices=[])
    balance_type = RadioField(
        "Balance",
        choices=[SelectChoice("cash", "Cash"), SelectChoice("bonus", "Bonus")],
        default="cash",
    )
    amount = StringField(
        "Amount",
        validators=[DataRequired(), Length(max=32)],
        description="In the currency chosen above, e.g. 25.00 (1,000.00 works too). "
        "Positive credits the player, negative (e.g. -12.50) debits.",
        render_kw={"inputmode": "decimal", "autocomplete": "off"},
    )
    reason = TextAreaField(
        "Reason", validators=[DataRequired(), Length(min=3, max=500)], render_kw={"rows": 3}
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
        "Player (username, e-mail or id)",
        validators=[DataRequired(), Length(max=255)],
        render_kw={"autocomplete": "off"},
    )
    reason = TextAreaField(
        "Reason", validators=[DataRequired(), Length(min=3, max=500)], render_kw={"rows": 3}
    )
    confirm = BooleanField(
        "I confirm: pay the whole current amount of this jackpot to this player",
        validators=[DataRequired(message="Tick the box to confirm the payout")],
    )
    context = HiddenField(default="panel")


class TournamentForm(FlaskForm):
    """Create/edit a tournament. The prize table is one prize per line, rank 1 first:
    ``100.00`` (cash) or ``25.00 bonus`` (a bonus with the promotion's wagering)."""

    name = StringField("Name", validators=[DataRequired(), Length(max=120)])
    description = TextAreaField(
        "Description", validators=[Optional(), Length(max=2000)], render_kw={"rows": 2}
    )
    currency = StringField("Currency", validators=[DataRequired(), Length(max=8)], default="EUR")
    starts_at = DateTimeLocalField("Starts (UTC)", validators=[DataRequired()])
    ends_at = DateTimeLocalField("Ends (UTC)", validators=[DataRequired()])
    scoring = SelectField(
        "Scoring",
        choices=[
            SelectChoice("wagered", "Most wagered"),
            SelectChoice("won", "Most won"),
            SelectChoice("multiplier", "Best multiplier"),
            SelectChoice("net", "Best net result"),
        ],
    )
    entry = SelectField(
        "Entry",
        choices=[
            SelectChoice("free", "Free: the first qualifying bet enrols"),
            SelectChoice("opt_in", "Opt-in: players join first (needed for a fee)"),
        ],
    )
    entry_fee = StringField(
        "Entry fee",
        validators=[Optional(), Length(max=32)],
        default="0",
        description="Paid from the cash wallet at join; refunded if cancelled or deleted.",
    )
    min_bet = StringField("Minimum bet", validators=[Optional(), Length(max=32)], default="0")
    max_participants = IntegerField(
        "Maximum participants", validators=[Optional(), NumberRange(min=1, max=1_000_000)]
    )
    game_ids = StringField(
        "Game ids",
        validators=[Optional(), Length(max=2000), Regexp(r"^[\d,\s]*$", message="Ids, commas")],
        description="Comma-separated; empty = every game.",
    )
    prizes = TextAreaField(
        "Prize table",
        validators=[Optional(), Length(max=4000)],
        render_kw={"rows": 4},
        description="One line per rank, first place first: 100.00 for cash, 25.00 bonus "
        "for a bonus prize.",
    )
    bonus_promotion_id = IntegerField(
        "Bonus terms (promotion id)",
        validators=[Optional(), NumberRange(min=1)],
        description="Bonus prizes are granted with this promotion's wagering terms.",
    )
