def is_valid_token(token: str | None) -> bool:
    return token == "secret-token"
