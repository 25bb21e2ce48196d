//! `$NAME` / `${NAME}` expansion with the syntax of Go's `os.ExpandEnv`, which image-syncer
//! applies to auth usernames and passwords and to image destinations
//! (`pkg/client/config.go`, `pkg/utils/types/imageList.go`).
//!
//! One deliberate difference: Go substitutes an empty string for an unset variable, which
//! turns a forgotten `export` into an anonymous login or a broken destination much later.
//! ferry reports the variable by name instead.

/// The caller's environment: returns the value of a variable, if set. The core never reads
/// the process environment itself.
pub type Env<'a> = &'a dyn Fn(&str) -> Option<String>;

/// Expands `value`, or returns the name of the first variable that `env` does not know.
pub(crate) fn expand(value: &str, env: Env<'_>) -> Result<String, String> {
    let mut out = String::with_capacity(value.len());
    let mut rest = value;
    while let Some(dollar) = rest.find('$') {
        let (literal, from_dollar) = rest.split_at(dollar);
        out.push_str(literal);
        let after = from_dollar.get(1..).unwrap_or_default();
        if after.is_empty() {
            // Go keeps a trailing '$'.
            out.push('$');
            return Ok(out);
        }
        let (name, consumed) = shell_name(after);
        match name {
            Some(name) => out.push_str(&env(name).ok_or_else(|| name.to_owned())?),
            // `$` not followed by a name stays as it is, like Go.
            None if consumed == 0 => out.push('$'),
            // Bad syntax (`${`, `${}`): Go drops it.
            None => {}
        }
        rest = after.get(consumed..).unwrap_or_default();
    }
    out.push_str(rest);
    Ok(out)
}

/// Go's `getShellName`: the variable name at the start of `s` and how many bytes it spans.
fn shell_name(s: &str) -> (Option<&str>, usize) {
    let special = |b: u8| matches!(b, b'*' | b'#' | b'$' | b'@' | b'!' | b'?' | b'-' | b'0'..=b'9');
    let bytes = s.as_bytes();
    match bytes.first() {
        Some(b'{') => {
            if let (Some(&c), Some(b'}')) = (bytes.get(1), bytes.get(2)) {
                if special(c) {
                    return (s.get(1..2), 3);
                }
            }
            match s.find('}') {
                Some(1) => (None, 2),
                Some(close) => (s.get(1..close), close + 1),
                None => (None, 1),
            }
        }
        Some(&c) if special(c) => (s.get(..1), 1),
        _ => {
            let len = bytes.iter().take_while(|b| b.is_ascii_alphanumeric() || **b == b'_').count();
            (s.get(..len).filter(|name| !name.is_empty()), len)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(name: &str) -> Option<String> {
        match name {
            "USER" => Some("ferry".into()),
            "PASS_1" => Some("s3cret".into()),
            "1" => Some("one".into()),
            "EMPTY" => Some(String::new()),
            _ => None,
        }
    }

    #[test]
    fn expands_like_go() {
        let cases: Vec<(&str, Result<&str, &str>)> = vec![
            ("plain", Ok("plain")),
            ("$USER", Ok("ferry")),
            ("${USER}", Ok("ferry")),
            ("x${USER}y", Ok("xferryy")),
            ("$USER-$PASS_1", Ok("ferry-s3cret")),
            ("${EMPTY}", Ok("")),
            ("$1x", Ok("onex")),
            ("${1}", Ok("one")),
            ("cost: 5$", Ok("cost: 5$")),
            ("a $ b", Ok("a $ b")),
            ("é$", Ok("é$")),
            ("$é", Ok("$é")),
            ("${}", Ok("")),
            ("${USER", Ok("USER")),
            ("$MISSING", Err("MISSING")),
            ("${NOPE}", Err("NOPE")),
            ("pa$$word", Err("$")),
            ("${A-B}", Err("A-B")),
        ];
        for (input, want) in cases {
            assert_eq!(expand(input, &env), want.map(str::to_owned).map_err(str::to_owned), "{input:?}");
        }
    }
}
