"""Order tracker tokens: the page of an order is opened only with the token made for it."""

from domain.tracker_tokens import make_token, read_token, tracker_key


def test_a_token_opens_its_own_order_only():
    key = tracker_key("a-long-random-secret-key")
    token = make_token(key, 42)
    assert read_token(key, token) == 42
    order, signature = token.split("-", 1)
    assert read_token(key, f"43-{signature}") is None
    assert (
        read_token(
            key, f"{order}-{signature[:-1]}A" if signature[-1] != "A" else f"{order}-{signature[:-1]}B"
        )
        is None
    )
    assert read_token(tracker_key("another-secret-key"), token) is None
    assert read_token(key, "42") is None
    assert len(signature) == 22  # 128 bits
