//! Durations on the command line: a number and a unit, as Go and Prometheus write them.

use std::time::Duration;

/// `500ms`, `30s`, `5m`, `1h`, or a combination such as `1h30m`.
pub(crate) fn parse_duration(text: &str) -> Result<Duration, String> {
    let fail =
        || format!("{text:?} is not a duration: write a number and a unit (ms, s, m, h), e.g. 30s or 5m");
    let mut total = Duration::ZERO;
    let mut rest = text.trim();
    if rest.is_empty() {
        return Err(fail());
    }
    while !rest.is_empty() {
        let digits = rest.find(|c: char| !c.is_ascii_digit()).ok_or_else(fail)?;
        let number: u64 = rest[..digits].parse().map_err(|_| fail())?;
        rest = &rest[digits..];
        let unit_len = rest.find(|c: char| c.is_ascii_digit()).unwrap_or(rest.len());
        let unit = match &rest[..unit_len] {
            "ms" => Duration::from_millis(number),
            "s" => Duration::from_secs(number),
            "m" => Duration::from_secs(number.saturating_mul(60)),
            "h" => Duration::from_secs(number.saturating_mul(3600)),
            _ => return Err(fail()),
        };
        total = total.saturating_add(unit);
        rest = &rest[unit_len..];
    }
    Ok(total)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_are_numbers_with_units() {
        let cases: &[(&str, Option<Duration>)] = &[
            ("500ms", Some(Duration::from_millis(500))),
            ("30s", Some(Duration::from_secs(30))),
            ("5m", Some(Duration::from_secs(300))),
            ("1h30m", Some(Duration::from_secs(5400))),
            ("0s", Some(Duration::ZERO)),
            ("", None),
            ("30", None),
            ("s", None),
            ("5 m", None),
            ("1d", None),
            ("-1s", None),
        ];
        for (text, want) in cases {
            let got = parse_duration(text);
            match want {
                Some(want) => assert_eq!(got.as_ref(), Ok(want), "{text:?}"),
                None => {
                    assert!(got.as_ref().is_err_and(|e| e.contains("is not a duration")), "{text:?}: {got:?}")
                }
            }
        }
    }
}
