//! Names in subjects: cluster and host names, and actor names as one subject token.

/// Checks a cluster name: 1–64 ASCII letters, digits, `-` and `_` (it names streams, which
/// may not hold `.`, and subjects).
pub fn check_cluster_name(name: &str) -> Result<(), String> {
    let ok = (1..=64).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    if ok {
        Ok(())
    } else {
        Err(format!(
            "cluster name {name:?} must be 1 to 64 ASCII letters, digits, '-' or '_'"
        ))
    }
}

/// Checks a host name: 1–128 ASCII letters, digits, `-`, `_` and `.`.
pub(crate) fn check_host_name(name: &str) -> Result<(), String> {
    let ok = (1..=128).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'));
    if ok {
        Ok(())
    } else {
        Err(format!(
            "host name {name:?} must be 1 to 128 ASCII letters, digits, '-', '_' or '.'"
        ))
    }
}

/// An actor name as one subject token: actor names may hold `.`, which separates tokens,
/// so it is written `~` (which actor names never hold).
pub fn subject_token(actor: &str) -> String {
    actor.replace('.', "~")
}

/// The actor name a [`subject_token`] stands for.
pub fn token_name(token: &str) -> String {
    token.replace('~', ".")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_round_trip_and_hold_no_dot() {
        for name in ["a", "room-1.eu", "x.y.z", "_q-"] {
            let t = subject_token(name);
            assert!(!t.contains('.'), "{t}");
            assert_eq!(token_name(&t), name);
        }
    }

    #[test]
    fn names_are_checked() {
        assert!(check_cluster_name("prod-1_a").is_ok());
        for bad in ["", "a.b", "a b", "a*", &"x".repeat(65)] {
            assert!(check_cluster_name(bad).is_err(), "{bad:?}");
        }
        assert!(check_host_name("h1.example").is_ok());
        assert!(check_host_name("h 1").is_err());
    }
}
