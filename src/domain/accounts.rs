//! What a person's account name and password must be, wherever an account is made (sign-up, the CLI).

/// Usernames are 3–64 characters of `[A-Za-z0-9._-]`, compared in lower case.
pub fn validate_username(username: &str) -> Result<String, &'static str> {
    let ok = (3..=64).contains(&username.len())
        && username.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'));
    if ok {
        Ok(username.to_ascii_lowercase())
    } else {
        Err("The username must be 3–64 letters, digits, dots, dashes or underscores.")
    }
}

/// Passwords are 8–1024 characters (the upper bound keeps hashing cost bounded).
pub fn validate_password(password: &str) -> Result<(), &'static str> {
    if (8..=1024).contains(&password.chars().count()) {
        Ok(())
    } else {
        Err("The password must be at least 8 characters long.")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_lower_cased_and_limited_to_a_safe_alphabet() {
        assert_eq!(validate_username("Ada.L-ove_1").as_deref(), Ok("ada.l-ove_1"));
        for bad in ["ab", "a b c", "ada@example", "ada/..", &"x".repeat(65)] {
            assert!(validate_username(bad).is_err(), "{bad}");
        }
        assert!(validate_password("short").is_err() && validate_password("long enough").is_ok());
        assert!(validate_password(&"x".repeat(1025)).is_err());
    }
}
