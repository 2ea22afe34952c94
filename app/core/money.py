"""Money in integer minor units with an ISO-4217 currency: exact parsing and formatting.

Invariants:
* Amounts are ``int`` minor units everywhere inside the system; floats never hold money.
* Parsing is exact: a JSON number or decimal string with more decimals than the currency's
  exponent, a non-finite value, a boolean or anything not a number is refused.
* Output is a decimal string with exactly the currency's exponent (``"152.40"``).
"""

from __future__ import annotations

from decimal import Decimal, InvalidOperation

#: ISO-4217 exponents of the currencies we accept (crypto with their customary precision).
CURRENCY_EXPONENTS: dict[str, int] = {
    "EUR": 2,
    "USD": 2,
    "GBP": 2,
    "CAD": 2,
    "AUD": 2,
    "CHF": 2,
    "SEK": 2,
    "NOK": 2,
    "DKK": 2,
    "PLN": 2,
    "BRL": 2,
    "MXN": 2,
    "TRY": 2,
    "INR": 2,
    "ZAR": 2,
    "NZD": 2,
    "JPY": 0,
    "KRW": 0,
    "ISK": 0,
    "KWD": 3,
    "BHD": 3,
    "BTC": 8,
    "ETH": 8,
    "USDT": 2,
}

#: Largest amount we accept in one request: 15 significant digits survive a JSON float exactly.
MAX_SIGNIFICANT_DIGITS = 15


class MoneyError(ValueError):
    """An amount or currency that cannot be represented exactly."""


def exponent(currency: str) -> int:
    try:
        return CURRENCY_EXPONENTS[currency]
    except KeyError:
        raise MoneyError(f"Unsupported currency {currency!r}") from None


def normalize_currency(value: object) -> str:
    if not isinstance(value, str) or not value.strip():
        raise MoneyError("Currency must be an ISO-4217 code such as EUR")
    code = value.strip().upper()
    exponent(code)
    return code


#: Longest amount text we read: 15 significant digits, a sign, a point and zeros fit easily.
MAX_AMOUNT_CHARS = 64


def to_decimal(value: object) -> Decimal:
    """A JSON number or decimal string as an exact ``Decimal``; refuses anything else."""
    if isinstance(value, bool) or value is None:
        raise MoneyError("Amount must be a number or a decimal string")
    if isinstance(value, float):
        # repr() is the shortest string that round-trips, i.e. what the client typed.
        value = repr(value)
    if isinstance(value, int):
        if abs(value) >= 10**MAX_SIGNIFICANT_DIGITS * 10**8:
            raise MoneyError("Amount is too large")
        result = Decimal(value)
    elif isinstance(value, str | Decimal):
        text = str(value).strip()
        if not text or any(c in text for c in "_ ") or text.lower().startswith(("0x", "+")):
            raise MoneyError("Amount must be a decimal number")
        if len(text) > MAX_AMOUNT_CHARS:
            raise MoneyError("Amount is too long")
        try:
            result = Decimal(text)
        except InvalidOperation:
            raise MoneyError("Amount must be a decimal number") from None
    else:
        raise MoneyError("Amount must be a number or a decimal string")
    if not result.is_finite():
        raise MoneyError("Amount must be a finite number")
    return result


def parse_minor(value: object, currency: str, *, allow_negative: bool = False) -> int:
    """Parse a client amount into minor units of ``currency``, exactly.

    Integer arithmetic on the decimal's digits and exponent: ``"1e-999999999"`` is too
    precise (not a zero bet) and ``"1E+999999999"`` too large (not an arithmetic overflow),
    both final validation errors that no retry can fix.
    """
    exp = exponent(currency)
    amount = to_decimal(value)
    if amount < 0 and not allow_negative:
        raise MoneyError("Amount must not be negative")
    if amount.is_zero():
        return 0
    sign, digits, power = amount.as_tuple()
    assert isinstance(power, int)  # finite, checked by to_decimal
    text = "".join(map(str, digits)).rstrip("0")
    power += len(digits) - len(text)  # trailing zeros are not precision
    if power + exp < 0:
        raise MoneyError(f"{currency} amounts have at most {exp} decimal places")
    if len(text) + power + exp > MAX_SIGNIFICANT_DIGITS:
        raise MoneyError("Amount is too large")
    minor = int(text) * 10 ** (power + exp)
    return -minor if sign else minor


def format_minor(minor: int, currency: str) -> str:
    """``15240, "EUR"`` → ``"152.40"``."""
    exp = exponent(currency)
    if exp == 0:
        return str(int(minor))
    sign = "-" if minor < 0 else ""
    whole, frac = divmod(abs(int(minor)), 10**exp)
    return f"{sign}{whole}.{frac:0{exp}d}"
