"""``providers add`` for key-pair aggregators (Hub88), ``providers key``, and the protocol
registry the CLI offers."""

from __future__ import annotations

from app.core.crypto import generate_rsa_private_key, rsa_public_pem, rsa_sign, rsa_verify
from app.play import games
from app.play.callbacks.adapters import ADAPTERS
from app.play.callbacks.protocol import provider_config
from app.play.models import PROVIDER_PROTOCOLS


def test_every_protocol_a_provider_may_have_has_an_adapter():
    assert set(PROVIDER_PROTOCOLS) == set(ADAPTERS)


def test_a_hub88_provider_gets_our_key_pair_and_keeps_the_aggregators(runner, tmp_path):
    theirs = generate_rsa_private_key()
    pem = tmp_path / "hub88.pub"
    pem.write_text(rsa_public_pem(theirs))
    added = runner.invoke(
        args=[
            "jackpotx", "providers", "add", "--code", "hub88", "--name", "Hub88",
            "--protocol", "hub88", "--public-key-file", str(pem), "--currencies", "EUR",
            "--api-url", "https://api.hub88.example/operator/generic/v2/",
        ]
    )  # fmt: skip
    assert added.exit_code == 0, added.output
    assert "BEGIN PUBLIC KEY" in added.output
    key = runner.invoke(args=["jackpotx", "providers", "key", "--code", "hub88"])
    assert key.exit_code == 0, key.output
    assert key.output in added.output
    config = provider_config("hub88")
    assert config.peer_public_key == rsa_public_pem(theirs)
    assert config.api_url == "https://api.hub88.example/operator/generic/v2"
    # Our private key is stored encrypted and signs what our public key verifies.
    provider = games.provider_by_code("hub88")
    assert "PRIVATE" not in (provider.private_key_enc or "")
    assert rsa_verify(key.output, b"answer", rsa_sign(config.private_key or "", b"answer"))


def test_a_hub88_provider_needs_a_public_key_and_no_secret(runner, tmp_path):
    no_key = runner.invoke(
        args=["jackpotx", "providers", "add", "--code", "h1", "--name", "H", "--protocol", "hub88"]
    )
    assert no_key.exit_code == 1
    assert "public key" in no_key.output
    bad = tmp_path / "bad.pem"
    bad.write_text("-----BEGIN PUBLIC KEY-----\nnope\n-----END PUBLIC KEY-----\n")
    garbage = runner.invoke(
        args=[
            "jackpotx", "providers", "add", "--code", "h2", "--name", "H",
            "--protocol", "hub88", "--public-key-file", str(bad),
        ]
    )  # fmt: skip
    assert garbage.exit_code == 1
    with_secret = runner.invoke(
        args=[
            "jackpotx", "providers", "add", "--code", "h3", "--name", "H", "--protocol", "hub88",
            "--public-key-file", str(_pem(tmp_path)), "--secret", "x" * 20,
        ]
    )  # fmt: skip
    assert with_secret.exit_code == 1
    assert "signs with keys" in with_secret.output


def test_a_shared_secret_provider_has_no_key_to_print(runner):
    runner.invoke(
        args=["jackpotx", "providers", "add", "--code", "nat", "--name", "N", "--secret", "s" * 20]
    )
    key = runner.invoke(args=["jackpotx", "providers", "key", "--code", "nat"])
    assert key.exit_code == 1
    assert "no key pair" in key.output


def _pem(tmp_path):
    path = tmp_path / "ok.pub"
    path.write_text(rsa_public_pem(generate_rsa_private_key()))
    return path


def test_a_slotegrator_provider_is_added_with_its_secret(runner):
    added = runner.invoke(
        args=[
            "jackpotx", "providers", "add", "--code", "slotegrator", "--name", "Slotegrator",
            "--protocol", "slotegrator", "--secret", "g" * 24, "--currencies", "EUR,USD",
        ]
    )  # fmt: skip
    assert added.exit_code == 0, added.output
    config = provider_config("slotegrator")
    assert (config.protocol, config.secret) == ("slotegrator", "g" * 24)
    assert config.currencies == ("EUR", "USD")


def test_an_evolution_provider_is_added_with_its_auth_token(runner):
    added = runner.invoke(
        args=[
            "jackpotx", "providers", "add", "--code", "evolution", "--name", "Evolution",
            "--protocol", "evolution", "--secret", "e" * 24, "--currencies", "EUR",
        ]
    )  # fmt: skip
    assert added.exit_code == 0, added.output
    config = provider_config("evolution")
    assert (config.protocol, config.secret) == ("evolution", "e" * 24)
