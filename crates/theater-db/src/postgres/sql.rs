//! What the PostgreSQL backend does to an actor's SQL text before it runs: SQLite's numbered
//! placeholders become PostgreSQL's, and statements that would take the transaction or the
//! session away from the host are refused.

/// `sql` with every `?N` placeholder written `$N`, outside string literals, quoted
/// identifiers and comments; everything else unchanged. A bare `?` is left alone: it is an
/// operator in PostgreSQL (`jsonb ? 'key'`).
pub(crate) fn numbered_placeholders(sql: &str) -> String {
    let b = sql.as_bytes();
    let mut out = String::with_capacity(sql.len());
    let mut i = 0;
    let mut copied = 0;
    while i < b.len() {
        match b[i] {
            b'\'' => i = skip_quoted(b, i, b'\'', backslash_escapes(b, i)),
            b'"' => i = skip_quoted(b, i, b'"', false),
            b'-' if b.get(i + 1) == Some(&b'-') => {
                i = b[i..]
                    .iter()
                    .position(|&c| c == b'\n' || c == b'\r')
                    .map_or(b.len(), |p| i + p + 1);
            }
            b'/' if b.get(i + 1) == Some(&b'*') => i = skip_block_comment(b, i),
            // `$` inside an identifier (`a$b`) starts nothing.
            b'$' if i > 0 && (b[i - 1].is_ascii_alphanumeric() || b[i - 1] == b'_') => i += 1,
            b'$' => i = skip_dollar_quoted(b, i),
            b'?' if b.get(i + 1).is_some_and(u8::is_ascii_digit) => {
                out.push_str(&sql[copied..i]);
                out.push('$');
                i += 1;
                copied = i;
            }
            _ => i += 1,
        }
    }
    out.push_str(&sql[copied..]);
    out
}

/// Whether the quote at `i` opens an escape string (`E'...'`), where `\'` does not end it.
fn backslash_escapes(b: &[u8], i: usize) -> bool {
    i > 0
        && matches!(b[i - 1], b'E' | b'e')
        && (i < 2 || !(b[i - 2].is_ascii_alphanumeric() || b[i - 2] == b'_'))
}

/// The index after the literal or identifier quoted with `q` that starts at `i` (a doubled
/// quote is part of it).
fn skip_quoted(b: &[u8], i: usize, q: u8, backslashes: bool) -> usize {
    let mut j = i + 1;
    while j < b.len() {
        if backslashes && b[j] == b'\\' {
            j += 2;
        } else if b[j] == q {
            if b.get(j + 1) == Some(&q) {
                j += 2;
            } else {
                return j + 1;
            }
        } else {
            j += 1;
        }
    }
    b.len()
}

/// The index after the (nested) block comment starting at `i`.
fn skip_block_comment(b: &[u8], i: usize) -> usize {
    let mut depth = 0;
    let mut j = i;
    while j + 1 < b.len() {
        if b[j] == b'/' && b[j + 1] == b'*' {
            depth += 1;
            j += 2;
        } else if b[j] == b'*' && b[j + 1] == b'/' {
            depth -= 1;
            j += 2;
            if depth == 0 {
                return j;
            }
        } else {
            j += 1;
        }
    }
    b.len()
}

/// The index after a dollar-quoted string (`$$...$$`, `$tag$...$tag$`) starting at `i`, or
/// after the `$` if none starts there (a `$1` placeholder).
fn skip_dollar_quoted(b: &[u8], i: usize) -> usize {
    let tag_end = b[i + 1..]
        .iter()
        .position(|&c| !(c.is_ascii_alphanumeric() || c == b'_'))
        .map(|p| i + 1 + p);
    let Some(end) = tag_end else {
        return b.len();
    };
    // A tag does not start with a digit ($1 is a placeholder), and ends with `$`.
    if b[end] != b'$' || b.get(i + 1).is_some_and(u8::is_ascii_digit) {
        return i + 1;
    }
    let tag = &b[i..=end];
    b[end + 1..]
        .windows(tag.len())
        .position(|w| w == tag)
        .map_or(b.len(), |p| end + 1 + p + tag.len())
}

/// The first keyword of `sql`, upper case, after what PostgreSQL skips before a statement:
/// whitespace (vertical tab included), comments, parentheses and empty statements (`;`).
pub(crate) fn leading_keyword(sql: &str) -> String {
    let b = sql.as_bytes();
    let mut i = 0;
    loop {
        while i < b.len() && (b[i].is_ascii_whitespace() || matches!(b[i], b'(' | b';' | 0x0B)) {
            i += 1;
        }
        if b[i..].starts_with(b"--") {
            i = b[i..]
                .iter()
                .position(|&c| c == b'\n' || c == b'\r')
                .map_or(b.len(), |p| i + p + 1);
        } else if b[i..].starts_with(b"/*") {
            i = skip_block_comment(b, i);
        } else {
            break;
        }
    }
    let end = b[i..]
        .iter()
        .position(|c| !c.is_ascii_alphabetic())
        .map_or(b.len(), |p| i + p);
    sql[i..end].to_ascii_uppercase()
}

/// Why the host refuses `sql` from an actor, if it does: statements that end or split the
/// host's transaction, change the session, or enter COPY's own protocol.
pub(crate) fn refused(sql: &str) -> Option<String> {
    let keyword = leading_keyword(sql);
    let what = match keyword.as_str() {
        "BEGIN" | "START" | "COMMIT" | "END" | "ROLLBACK" | "ABORT" | "SAVEPOINT" | "RELEASE"
        | "PREPARE" => "control transactions (the host does)",
        "SET" | "RESET" | "DISCARD" | "EXECUTE" | "DEALLOCATE" | "LISTEN" | "UNLISTEN" | "LOAD" => {
            "change its session (the host may use another connection for its next input)"
        }
        "COPY" => "use COPY (insert rows with INSERT, read them with SELECT)",
        _ => return None,
    };
    Some(format!(
        "an actor's SQL may not {what}: {keyword} is refused"
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placeholders_are_renumbered_outside_literals_and_comments_only() {
        let cases = [
            ("SELECT ?1, ?2", "SELECT $1, $2"),
            (
                "SELECT * FROM t WHERE a = ?10",
                "SELECT * FROM t WHERE a = $10",
            ),
            ("SELECT '?1', \"?2\", ?3", "SELECT '?1', \"?2\", $3"),
            ("SELECT 'it''s ?1' || ?1", "SELECT 'it''s ?1' || $1"),
            ("SELECT E'\\' ?1' || ?2", "SELECT E'\\' ?1' || $2"),
            ("SELECT 1 -- ?1\n, ?2", "SELECT 1 -- ?1\n, $2"),
            ("SELECT /* /* ?1 */ ?2 */ ?3", "SELECT /* /* ?1 */ ?2 */ $3"),
            (
                "SELECT $$ ?1 $$, $x$ ?2 $x$, ?3",
                "SELECT $$ ?1 $$, $x$ ?2 $x$, $3",
            ),
            ("SELECT $1, ?2", "SELECT $1, $2"),
            (
                "SELECT doc ? 'k', doc ?| array['a']",
                "SELECT doc ? 'k', doc ?| array['a']",
            ),
            ("SELECT 'unterminated ?1", "SELECT 'unterminated ?1"),
            ("SELECT ?1 -- é ?2", "SELECT $1 -- é ?2"),
            (
                "SELECT a$b$ FROM t WHERE x = ?1",
                "SELECT a$b$ FROM t WHERE x = $1",
            ),
        ];
        for (sql, want) in cases {
            assert_eq!(numbered_placeholders(sql), want, "{sql}");
        }
    }

    use proptest::prelude::*;

    /// What PostgreSQL skips before a statement's first keyword: whitespace, comments (line
    /// comments ended by LF or CR, nested block comments), parentheses, empty statements.
    fn skipped() -> impl Strategy<Value = String> {
        let piece = prop_oneof![
            Just(" ".to_string()),
            Just("\t".to_string()),
            Just("\n".to_string()),
            Just("\r".to_string()),
            Just("\u{0B}".to_string()),
            Just("\u{0C}".to_string()),
            Just(";".to_string()),
            Just("(".to_string()),
            "[a-z ;'$?*/]{0,8}".prop_map(|t| format!("--{}\n", t.replace(['\n', '\r'], ""))),
            "[a-z ;'$?]{0,8}".prop_map(|t| format!("--{t}\r")),
            "[a-z ;'$?]{0,8}".prop_map(|t| format!("/*{t}*/")),
            "[a-z ;'$?]{0,8}".prop_map(|t| format!("/* /* {t} */ */")),
        ];
        prop::collection::vec(piece, 0..6).prop_map(|v| v.concat())
    }

    proptest! {
        /// However a refused statement is introduced, the check sees its keyword.
        #[test]
        fn a_refused_keyword_is_found_behind_anything_postgresql_skips(
            before in skipped(),
            keyword in prop::sample::select(vec!["COMMIT", "rollback", "Begin", "SET", "copy", "savepoint", "PREPARE", "end", "reset"]),
            after in "( [a-z0-9 ]{0,10})?",
        ) {
            let sql = format!("{before}{keyword}{after}");
            prop_assert!(refused(&sql).is_some(), "{:?} was not refused", sql);
        }

        /// Rewriting placeholders only ever turns a `?` into a `$`: the text is otherwise
        /// the same, byte for byte.
        #[test]
        fn rewriting_placeholders_changes_only_question_marks(sql in "[a-z0-9 ?'\"$*/\n-]{0,40}") {
            let out = numbered_placeholders(&sql);
            prop_assert_eq!(out.len(), sql.len());
            for (a, b) in sql.bytes().zip(out.bytes()) {
                prop_assert!(a == b || (a == b'?' && b == b'$'), "{:?} -> {:?}", sql, out);
            }
        }
    }

    #[test]
    fn statements_that_take_the_transaction_or_session_are_refused() {
        for sql in [
            "COMMIT",
            " -- c\n/* x */ rollback",
            "begin",
            "SAVEPOINT a",
            "RELEASE a",
            "SET search_path = other",
            "reset role",
            "PREPARE TRANSACTION 'x'",
            "COPY t FROM STDIN",
            "DISCARD ALL",
            "END",
            ";COMMIT",
            "--x\rCOMMIT",
            " ; ;\n rollback",
            "\u{0B}COMMIT",
            "/* x */;PREPARE TRANSACTION 'x'",
        ] {
            let why = refused(sql).unwrap_or_else(|| panic!("{sql} was not refused"));
            assert!(why.contains("is refused"), "{why}");
        }
        for sql in [
            "SELECT 1",
            "(SELECT 1)",
            "WITH x AS (SELECT 1) SELECT * FROM x",
            "INSERT INTO settings VALUES (1)",
            "CREATE TABLE commits (x int)",
            "DO $$ BEGIN END $$",
        ] {
            assert_eq!(refused(sql), None, "{sql}");
        }
    }
}
