//! Text helpers the request paths share.

/// `s` without the whitespace around it: [`str::trim`]'s answer, found
/// byte by byte over ASCII. Every login trims a few short pieces (the
/// signature header's keys and values, the address), which seldom have
/// anything to cut; `str::trim` decodes characters to find that out.
pub fn trim(s: &str) -> &str {
    let bytes = s.as_bytes();
    // `char::is_whitespace` over ASCII: `u8::is_ascii_whitespace` plus the
    // vertical tab.
    let cut = |b: &u8| b.is_ascii_whitespace() || *b == 0x0b;
    let kept = |b: &u8| b.is_ascii() && !cut(b);
    match (bytes.first(), bytes.last()) {
        // The usual piece: nothing to cut at either end.
        (Some(first), Some(last)) if kept(first) && kept(last) => return s,
        _ => {}
    }
    let start = bytes.iter().position(|b| !cut(b)).unwrap_or(bytes.len());
    let end = bytes
        .iter()
        .rposition(|b| !cut(b))
        .map_or(start, |at| at + 1);
    let trimmed = &s[start..end];
    match (trimmed.as_bytes().first(), trimmed.as_bytes().last()) {
        // A non-ASCII character at an end may be whitespace (U+00A0,
        // U+3000...): left to `str::trim`.
        (Some(first), Some(last)) if !first.is_ascii() || !last.is_ascii() => s.trim(),
        _ => trimmed,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn every_ascii_character_is_cut_as_str_trim_cuts_it() {
        for b in 0u8..=0x7f {
            let c = char::from(b);
            for s in [
                format!("{c}"),
                format!("{c}x{c}"),
                format!("x{c}"),
                format!("{c}x"),
            ] {
                assert_eq!(trim(&s), s.trim(), "{s:?}");
            }
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 1024, ..ProptestConfig::default() })]

        #[test]
        fn trim_answers_as_str_trim(
            any_text in any::<String>(),
            spaced in "[ \t\n\r\u{0b}\u{0c}\u{85}\u{a0}\u{1680}\u{2000}\u{2028}\u{202f}\u{3000}\u{200b}a-z]{0,8}",
        ) {
            for s in [&any_text, &spaced] {
                prop_assert_eq!(trim(s), s.trim(), "{:?}", s);
            }
        }
    }
}
