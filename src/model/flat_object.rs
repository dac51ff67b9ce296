//! A fast reader for the shape nearly every event has: one flat JSON object whose keys and string
//! values hold no escapes, with string, number, `true`, `false` and `null` values.
//!
//! It accepts only text that is valid JSON (RFC 8259) and hands back each member's key and raw value
//! text, the same spans serde_json's `RawValue` gives. Anything else (a nested value, an escape, a
//! syntax error) it declines, and the caller reads the line with serde_json, which also names the
//! fault: the fast path changes how fast a line is read, never what it reads as.

/// Calls `member(key, raw value)` for each member of the object `text` in order, and returns true;
/// or returns false, having called it for some members, when `text` is not of the flat shape.
pub(super) fn members<'a>(text: &'a str, member: impl FnMut(&'a str, &'a str)) -> bool {
    read(text, member).is_some()
}

fn read<'a>(text: &'a str, mut member: impl FnMut(&'a str, &'a str)) -> Option<()> {
    let b = text.as_bytes();
    let mut i = skip_ws(b, 0);
    expect(b, i, b'{')?;
    i = skip_ws(b, i + 1);
    if b.get(i) == Some(&b'}') {
        return (skip_ws(b, i + 1) == b.len()).then_some(());
    }
    loop {
        expect(b, i, b'"')?;
        let key_end = string_end(b, i + 1)?;
        // Quotes are ASCII, so these slices fall on character boundaries.
        let key = &text[i + 1..key_end];
        i = skip_ws(b, key_end + 1);
        expect(b, i, b':')?;
        i = skip_ws(b, i + 1);
        let end = match *b.get(i)? {
            b'"' => string_end(b, i + 1)? + 1,
            b'-' | b'0'..=b'9' => number_end(b, i)?,
            b't' => literal_end(b, i, b"true")?,
            b'f' => literal_end(b, i, b"false")?,
            b'n' => literal_end(b, i, b"null")?,
            _ => return None,
        };
        member(key, &text[i..end]);
        i = skip_ws(b, end);
        match *b.get(i)? {
            b',' => i = skip_ws(b, i + 1),
            b'}' => return (skip_ws(b, i + 1) == b.len()).then_some(()),
            _ => return None,
        }
    }
}

fn expect(b: &[u8], i: usize, byte: u8) -> Option<()> {
    (b.get(i) == Some(&byte)).then_some(())
}

/// JSON's whitespace: space, tab, line feed, carriage return.
fn skip_ws(b: &[u8], mut i: usize) -> usize {
    while let Some(b' ' | b'\t' | b'\n' | b'\r') = b.get(i) {
        i += 1;
    }
    i
}

/// The index of the closing quote of a string whose text starts at `i`; None at an escape or a
/// control character (the first needs decoding, the second is not JSON) or at the end of input.
#[inline(always)] // Two calls per member: inlined, the call costs more than most strings' scan.
fn string_end(b: &[u8], mut i: usize) -> Option<usize> {
    // Sixteen bytes at a time where the target has SSE2 (every x86_64): most keys and values end
    // in the first sixteen.
    #[cfg(target_arch = "x86_64")]
    while let Some(chunk) = b.get(i..i + 16) {
        if let Some(at) = sse2::first_special(chunk.try_into().expect("sixteen bytes")) {
            return (chunk[at] == b'"').then_some(i + at);
        }
        i += 16;
    }
    // Eight bytes at a time while none of them is a quote, a backslash or a control character.
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGH: u64 = 0x8080_8080_8080_8080;
    while let Some(chunk) = b.get(i..i + 8) {
        let x = u64::from_le_bytes(chunk.try_into().expect("eight bytes"));
        let zero_byte = |v: u64| v.wrapping_sub(ONES) & !v & HIGH;
        let special =
            zero_byte(x ^ (ONES * b'"' as u64)) | zero_byte(x ^ (ONES * b'\\' as u64)) | {
                // A byte below 0x20 (bytes of 0x80 and above never flag).
                x.wrapping_sub(ONES * 0x20) & !x & HIGH
            };
        if special != 0 {
            // The lowest flag is exact (the borrow that can flag a byte above a match starts at
            // the match), so the first special byte is found without another scan.
            let at = i + (special.trailing_zeros() / 8) as usize;
            return (b[at] == b'"').then_some(at);
        }
        i += 8;
    }
    // Fewer than eight bytes left.
    loop {
        match *b.get(i)? {
            b'"' => return Some(i),
            b'\\' | 0..=0x1f => return None,
            _ => i += 1,
        }
    }
}

#[cfg(target_arch = "x86_64")]
mod sse2 {
    use std::arch::x86_64::{
        __m128i, _mm_cmpeq_epi8, _mm_loadu_si128, _mm_min_epu8, _mm_movemask_epi8, _mm_or_si128,
        _mm_set1_epi8,
    };

    /// The index of the first quote, backslash or control character among sixteen bytes.
    pub(super) fn first_special(chunk: &[u8; 16]) -> Option<usize> {
        // SAFETY: SSE2 is part of x86_64, and the load reads the sixteen bytes of `chunk`
        // (unaligned loads allowed).
        let mask = unsafe {
            let x = _mm_loadu_si128(chunk.as_ptr().cast::<__m128i>());
            let quote = _mm_cmpeq_epi8(x, _mm_set1_epi8(b'"' as i8));
            let backslash = _mm_cmpeq_epi8(x, _mm_set1_epi8(b'\\' as i8));
            // Below 0x20 exactly when the unsigned minimum with 0x1f is the byte itself.
            let control = _mm_cmpeq_epi8(_mm_min_epu8(x, _mm_set1_epi8(0x1f)), x);
            _mm_movemask_epi8(_mm_or_si128(_mm_or_si128(quote, backslash), control))
        };
        (mask != 0).then(|| mask.trailing_zeros() as usize)
    }
}

/// The end of a number starting at `i`, by JSON's grammar: `-? (0 | [1-9][0-9]*) (. [0-9]+)?
/// ([eE] [+-]? [0-9]+)?`. What follows it is the caller's to check.
fn number_end(b: &[u8], mut i: usize) -> Option<usize> {
    let digits = |mut i: usize| {
        let start = i;
        while b.get(i).is_some_and(u8::is_ascii_digit) {
            i += 1;
        }
        (i > start).then_some(i)
    };
    if b.get(i) == Some(&b'-') {
        i += 1;
    }
    i = match *b.get(i)? {
        b'0' => i + 1,
        b'1'..=b'9' => digits(i)?,
        _ => return None,
    };
    if b.get(i) == Some(&b'.') {
        i = digits(i + 1)?;
    }
    if let Some(b'e' | b'E') = b.get(i) {
        i += 1;
        if let Some(b'+' | b'-') = b.get(i) {
            i += 1;
        }
        i = digits(i)?;
    }
    Some(i)
}

fn literal_end(b: &[u8], i: usize, word: &[u8]) -> Option<usize> {
    b[i..].starts_with(word).then_some(i + word.len())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use serde_json::value::RawValue;

    fn fast(text: &str) -> Option<Vec<(&str, &str)>> {
        let mut out = Vec::new();
        members(text, |k, v| out.push((k, v))).then_some(out)
    }

    /// serde_json's reading of the same text, when it is an object: keys decoded, values raw.
    fn reference(text: &str) -> Option<Vec<(String, String)>> {
        struct Members(Vec<(String, String)>);
        impl<'de> serde::Deserialize<'de> for Members {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                struct V;
                impl<'de> serde::de::Visitor<'de> for V {
                    type Value = Members;
                    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                        f.write_str("an object")
                    }
                    fn visit_map<A: serde::de::MapAccess<'de>>(
                        self,
                        mut map: A,
                    ) -> Result<Members, A::Error> {
                        let mut out = Vec::new();
                        while let Some((k, v)) = map.next_entry::<String, &'de RawValue>()? {
                            out.push((k, v.get().to_string()));
                        }
                        Ok(Members(out))
                    }
                }
                d.deserialize_map(V)
            }
        }
        serde_json::from_str::<Members>(text).ok().map(|m| m.0)
    }

    fn agrees(text: &str) {
        if let Some(got) = fast(text) {
            let want = reference(text)
                .unwrap_or_else(|| panic!("fast path accepted what serde_json refuses: {text:?}"));
            let got: Vec<(String, String)> = got
                .into_iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect();
            assert_eq!(got, want, "{text:?}");
        }
    }

    #[test]
    fn reads_the_common_shape_and_declines_the_rest() {
        let line = r#"{"event_id":"evt-1","price":19.99,"quantity":-2,"ok":true,"no":false,"n":null,"e":1.5E+3}"#;
        assert_eq!(
            fast(line).unwrap(),
            [
                ("event_id", r#""evt-1""#),
                ("price", "19.99"),
                ("quantity", "-2"),
                ("ok", "true"),
                ("no", "false"),
                ("n", "null"),
                ("e", "1.5E+3")
            ]
        );
        assert_eq!(fast(" {  } ").unwrap(), []);
        assert_eq!(
            fast("{ \"a\" :\t\"x y\" ,\r\n\"b\":0 }").unwrap(),
            [("a", "\"x y\""), ("b", "0")]
        );
        for declined in [
            r#"{"a":"e\"1"}"#,
            r#"{"a\u0041":1}"#,
            r#"{"a":{"b":1}}"#,
            r#"{"a":[1]}"#,
            "{\"a\":\"tab\there\"}",
            r#"{"a":01}"#,
            r#"{"a":1.}"#,
            r#"{"a":.5}"#,
            r#"{"a":1e}"#,
            r#"{"a":-}"#,
            r#"{"a":tru}"#,
            r#"{"a":1,}"#,
            r#"{"a":1}x"#,
            r#"{"a" 1}"#,
            r#"{"a":1"#,
            r#"{"a":"unterminated"#,
            "[1]",
            "",
        ] {
            assert!(fast(declined).is_none(), "{declined}");
            agrees(declined);
        }
    }

    #[cfg(target_arch = "x86_64")]
    #[test]
    fn sixteen_byte_scan_flags_exactly_quotes_backslashes_and_controls() {
        for byte in 0..=255u8 {
            let special = byte == b'"' || byte == b'\\' || byte < 0x20;
            for at in 0..16 {
                let mut chunk = [b'a'; 16];
                chunk[at] = byte;
                let want = special.then_some(at);
                assert_eq!(sse2::first_special(&chunk), want, "{byte:#04x} at {at}");
                // A special byte after it does not move the first.
                chunk[15] = b'"';
                let want = if special { at } else { 15 };
                assert_eq!(
                    sse2::first_special(&chunk),
                    Some(want),
                    "{byte:#04x} at {at}"
                );
            }
        }
    }

    #[test]
    fn strings_longer_than_eight_bytes_find_their_end() {
        for n in 0..40 {
            let s = "é".repeat(n / 2) + &"a".repeat(n);
            let line = format!(r#"{{"k{n}":"{s}"}}"#);
            let got = fast(&line).unwrap();
            assert_eq!(got[0].1, format!("\"{s}\""));
            for bad in ["\\n", "\u{1}", "\u{1f}"] {
                let line = format!(r#"{{"k":"{s}{bad}{s}"}}"#);
                assert!(fast(&line).is_none(), "{line:?}");
            }
        }
        // DEL and bytes above 0x7f are plain text in JSON.
        assert!(fast("{\"k\":\"a\u{7f}b\u{80}c\u{ff}d\"}").is_some());
    }

    proptest! {
        /// Any text the fast path accepts, serde_json reads the same way.
        #[test]
        fn agrees_with_serde_json(text in r#"[ {}\[\]":,.\\a-e0-9+\-\t\u{1}é]{0,40}"#) {
            agrees(&text);
        }

        /// The same, over texts close to events: objects with mutated members.
        #[test]
        fn agrees_on_near_events(
            members in proptest::collection::vec(
                (r#"[a-z_"\\]{0,6}"#, r#"("[a-zé \\"]{0,12}"|-?[0-9]{1,4}(\.[0-9]{0,2})?([eE][+-]?[0-9]{0,2})?|true|fals|null|\{\}|\[\])"#),
                0..6),
            sep in r#"[ ,:]{0,2}"#,
        ) {
            let body: Vec<String> = members.iter().map(|(k, v)| format!("\"{k}\"{sep}:{v}")).collect();
            agrees(&format!("{{{}}}", body.join(",")));
        }
    }
}
