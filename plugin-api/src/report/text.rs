//! Text for reports: removing what XML and terminals leave behind,
//! escaping markup, cutting to a size, and formatting times.

use std::borrow::Cow;

use crate::time::UtcTime;

/// Whether XML 1.0 allows the character (and it is not a C1 control or a
/// non-character, which tmt strips as well). Tab, LF and CR stay.
pub fn xml_allowed(c: char) -> bool {
    match c {
        '\t' | '\n' | '\r' => true,
        '\u{0}'..='\u{1f}' => false,
        '\u{7f}'..='\u{84}' | '\u{86}'..='\u{9f}' => false,
        '\u{fdd0}'..='\u{fdef}' => false,
        c => (c as u32) & 0xfffe != 0xfffe,
    }
}

/// Compares names the way people count: runs of digits by their value, so
/// `/t2` comes before `/t10`; everything else byte by byte. Equal values
/// with different digits (`t01`, `t1`) fall back to the plain order, so the
/// order is total.
pub fn natural_cmp(a: &str, b: &str) -> std::cmp::Ordering {
    use std::cmp::Ordering;
    let (x, y) = (a.as_bytes(), b.as_bytes());
    let (mut i, mut j) = (0, 0);
    while i < x.len() && j < y.len() {
        if x[i].is_ascii_digit() && y[j].is_ascii_digit() {
            let si = i;
            while i < x.len() && x[i].is_ascii_digit() {
                i += 1;
            }
            let sj = j;
            while j < y.len() && y[j].is_ascii_digit() {
                j += 1;
            }
            // Compare the numbers without leading zeros: longer is larger.
            let (na, nb) = (trim_zeros(&x[si..i]), trim_zeros(&y[sj..j]));
            let o = na.len().cmp(&nb.len()).then_with(|| na.cmp(nb));
            if o != Ordering::Equal {
                return o;
            }
        } else {
            if x[i] != y[j] {
                return x[i].cmp(&y[j]);
            }
            i += 1;
            j += 1;
        }
    }
    (x.len() - i).cmp(&(y.len() - j)).then_with(|| a.cmp(b))
}

fn trim_zeros(d: &[u8]) -> &[u8] {
    let n = d.iter().take_while(|&&c| c == b'0').count();
    &d[n..]
}

/// Removes ANSI escape sequences (CSI, OSC and friends, two- and
/// three-character escapes) and characters XML 1.0 does not allow
/// ([`xml_allowed`]). Borrows when there is nothing to remove.
pub fn clean(s: &str) -> Cow<'_, str> {
    if s.chars().all(xml_allowed) {
        return Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len());
    let mut it = s.chars().peekable();
    while let Some(c) = it.next() {
        if c != '\x1b' {
            if xml_allowed(c) {
                out.push(c);
            }
            continue;
        }
        match it.peek().copied() {
            // CSI: parameters and intermediates 0x20-0x3f, then a final
            // byte 0x40-0x7e. Anything else ends the sequence unconsumed.
            Some('[') => {
                it.next();
                while let Some(&n) = it.peek() {
                    if ('\x20'..='\x3f').contains(&n) {
                        it.next();
                    } else {
                        if ('\x40'..='\x7e').contains(&n) {
                            it.next();
                        }
                        break;
                    }
                }
            }
            // OSC, DCS, SOS, PM, APC: a string up to BEL or ESC \ (or, to
            // not swallow a log after a broken sequence, the end of line).
            Some(']' | 'P' | 'X' | '^' | '_') => {
                it.next();
                while let Some(&n) = it.peek() {
                    if n == '\n' {
                        break;
                    }
                    it.next();
                    if n == '\x07' {
                        break;
                    }
                    if n == '\x1b' {
                        if it.peek() == Some(&'\\') {
                            it.next();
                        }
                        break;
                    }
                }
            }
            // nF escapes (ESC ( B and the like): intermediates, then a final.
            Some(n) if ('\x20'..='\x2f').contains(&n) => {
                while it.peek().is_some_and(|n| ('\x20'..='\x2f').contains(n)) {
                    it.next();
                }
                if it.peek().is_some_and(|n| ('\x30'..='\x7e').contains(n)) {
                    it.next();
                }
            }
            // Two-character escapes (ESC 7, ESC M, ESC =, ...).
            Some(n) if ('\x30'..='\x7e').contains(&n) => {
                it.next();
            }
            _ => {}
        }
    }
    Cow::Owned(out)
}

/// [`clean`]s `s`, then replaces each character `entity` names.
fn escape(s: &str, entity: impl Fn(char) -> Option<&'static str>) -> String {
    let s = clean(s);
    let mut out = String::with_capacity(s.len() + 16);
    for c in s.chars() {
        match entity(c) {
            Some(e) => out.push_str(e),
            None => out.push(c),
        }
    }
    out
}

fn markup(c: char) -> Option<&'static str> {
    match c {
        '&' => Some("&amp;"),
        '<' => Some("&lt;"),
        '>' => Some("&gt;"),
        _ => None,
    }
}

/// XML element text: cleaned, `&`, `<` and `>` escaped. Safe for any
/// input, `]]>` included.
pub fn xml_text(s: &str) -> String {
    escape(s, markup)
}

/// An XML attribute value in double quotes: cleaned, markup and `"`
/// escaped, and tab, LF and CR kept as character references so that
/// attribute normalisation does not flatten them.
pub fn xml_attr(s: &str) -> String {
    escape(s, |c| match c {
        '"' => Some("&quot;"),
        '\n' => Some("&#10;"),
        '\r' => Some("&#13;"),
        '\t' => Some("&#9;"),
        c => markup(c),
    })
}

/// HTML text or a double-quoted attribute value: cleaned, markup and `"`
/// escaped.
pub fn html_text(s: &str) -> String {
    escape(s, |c| match c {
        '"' => Some("&quot;"),
        c => markup(c),
    })
}

/// Cuts `s` to at most `max` bytes at a character boundary, adding `…`.
pub fn truncate_chars(s: &str, max: usize) -> Cow<'_, str> {
    if s.len() <= max {
        return Cow::Borrowed(s);
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    Cow::Owned(format!("{}…", &s[..end]))
}

/// `ms` since the Unix epoch as `YYYY-MM-DDTHH:MM:SSZ`.
pub fn iso_utc(ms: u64) -> String {
    format!("{}Z", UtcTime::from_unix_ms(ms).iso_seconds())
}

/// Milliseconds as seconds with three decimals, e.g. `12.345`.
pub fn seconds(ms: u64) -> String {
    format!("{}.{:03}", ms / 1000, ms % 1000)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn natural_order_counts_numbers() {
        let mut v = vec!["/t10", "/t2", "/t1", "/a/t010", "/a/t9", "/t02", "/b", "/t"];
        v.sort_by(|a, b| natural_cmp(a, b));
        assert_eq!(
            v,
            ["/a/t9", "/a/t010", "/b", "/t", "/t1", "/t02", "/t2", "/t10"]
        );
        assert_eq!(natural_cmp("x1y", "x1y"), std::cmp::Ordering::Equal);
        assert_eq!(
            natural_cmp("v99999999999999999999999", "v100000000000000000000000"),
            std::cmp::Ordering::Less
        );
    }

    #[test]
    fn iso_dates() {
        assert_eq!(iso_utc(0), "1970-01-01T00:00:00Z");
        assert_eq!(iso_utc(1_767_323_045_000), "2026-01-02T03:04:05Z");
        assert_eq!(iso_utc(951_782_400_000), "2000-02-29T00:00:00Z");
    }

    #[test]
    fn clean_strips_ansi_and_controls() {
        assert_eq!(clean("\x1b[1;31mred\x1b[0m ok"), "red ok");
        assert_eq!(
            clean("a\x00b\x07c\x0bd\u{fffe}e\u{85}f\u{9b}"),
            "abcde\u{85}f"
        );
        assert_eq!(clean("\x1b]0;title\x07after"), "after");
        assert_eq!(clean("\x1b(Bx\x1b7y"), "xy");
        assert_eq!(clean("tab\tnl\ncr\r"), "tab\tnl\ncr\r");
        assert_eq!(clean("\x1b]broken\nnext"), "\nnext");
        assert!(matches!(clean("plain ✓"), Cow::Borrowed(_)));
    }

    #[test]
    fn escaping_per_context() {
        let nasty = "<a href=\"x\">&'\t\n\x01</a>]]>";
        assert_eq!(
            xml_text(nasty),
            "&lt;a href=\"x\"&gt;&amp;'\t\n&lt;/a&gt;]]&gt;"
        );
        assert_eq!(
            xml_attr(nasty),
            "&lt;a href=&quot;x&quot;&gt;&amp;'&#9;&#10;&lt;/a&gt;]]&gt;"
        );
        assert_eq!(
            html_text(nasty),
            "&lt;a href=&quot;x&quot;&gt;&amp;'\t\n&lt;/a&gt;]]&gt;"
        );
    }

    #[test]
    fn truncation_keeps_characters_whole() {
        assert_eq!(truncate_chars("short", 10), "short");
        assert_eq!(truncate_chars("ümlaut", 1), "…");
        assert_eq!(truncate_chars("ümlaut", 3), "üm…");
    }

    #[test]
    fn seconds_format() {
        assert_eq!(seconds(0), "0.000");
        assert_eq!(seconds(61_005), "61.005");
    }
}
