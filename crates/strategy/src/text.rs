//! Text from outside the host on its way to a terminal or a log: a strategy's
//! log lines and refusals, trap messages naming guest functions, a panic's
//! message. A strategy must not be able to move the operator's cursor, recolour
//! or hide lines, fake a log line with a line break, or fill the log.

/// Characters of one line written to stderr, at most.
pub const LOG_CHARS: usize = 4096;

/// `text` without terminal control: ANSI escape sequences dropped; line
/// breaks and tabs as spaces; other control characters and bidirectional
/// overrides as U+FFFD.
pub fn clean(text: &str) -> String {
    clean_up_to(text, usize::MAX)
}

/// [`clean`], and at most [`LOG_CHARS`] characters (then `…`).
pub fn for_log(text: &str) -> String {
    clean_up_to(text, LOG_CHARS)
}

fn clean_up_to(text: &str, max_chars: usize) -> String {
    let mut out = String::with_capacity(text.len().min(max_chars));
    let mut chars = text.chars().peekable();
    let mut kept = 0;
    while let Some(c) = chars.next() {
        if kept == max_chars {
            out.push('…');
            break;
        }
        match c {
            '\u{1b}' => match chars.next() {
                // CSI: parameters and intermediates up to a final byte.
                Some('[') => skip_csi(&mut chars),
                // OSC and the other string commands: up to BEL or ST.
                Some(']' | 'P' | 'X' | '^' | '_') => skip_string(&mut chars),
                // Two-character sequences (or a lone ESC at the end).
                _ => {}
            },
            '\u{9b}' => skip_csi(&mut chars),
            '\u{9d}' | '\u{90}' | '\u{98}' | '\u{9e}' | '\u{9f}' => skip_string(&mut chars),
            '\n' | '\r' | '\t' => {
                out.push(' ');
                kept += 1;
            }
            c if c.is_control() || is_bidi_control(c) => {
                out.push('\u{fffd}');
                kept += 1;
            }
            c => {
                out.push(c);
                kept += 1;
            }
        }
    }
    out
}

fn skip_csi(chars: &mut std::iter::Peekable<std::str::Chars<'_>>) {
    for c in chars.by_ref() {
        if ('\u{40}'..='\u{7e}').contains(&c) {
            break;
        }
    }
}

fn skip_string(chars: &mut std::iter::Peekable<std::str::Chars<'_>>) {
    while let Some(c) = chars.next() {
        match c {
            '\u{7}' | '\u{9c}' => break,
            '\u{1b}' if chars.peek() == Some(&'\\') => {
                chars.next();
                break;
            }
            _ => {}
        }
    }
}

/// Characters that reorder the text shown around them.
fn is_bidi_control(c: char) -> bool {
    matches!(c, '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}' | '\u{200e}' | '\u{200f}' | '\u{61c}')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_and_control_characters_do_not_reach_the_terminal() {
        assert_eq!(clean("plain text, ünïcode ✓"), "plain text, ünïcode ✓");
        assert_eq!(clean("\u{1b}[31mred\u{1b}[0m"), "red");
        assert_eq!(
            clean("a\u{1b}[2J\u{1b}[1;1Hb"),
            "ab",
            "clear screen, move cursor"
        );
        assert_eq!(
            clean("\u{1b}]0;title\u{7}x\u{1b}]8;;http://e\u{1b}\\y"),
            "xy"
        );
        assert_eq!(
            clean("ok\ngrid tick 9 failed: forged"),
            "ok grid tick 9 failed: forged"
        );
        assert_eq!(
            clean("a\rb\tc\u{0}d\u{7f}e\u{85}f"),
            "a b c\u{fffd}d\u{fffd}e\u{fffd}f"
        );
        assert_eq!(clean("\u{9b}31mx"), "x");
        assert_eq!(clean("\u{202e}gnp.exe"), "\u{fffd}gnp.exe");
        assert_eq!(clean("end\u{1b}"), "end");
        let long = "é".repeat(LOG_CHARS + 10);
        let capped = for_log(&long);
        assert_eq!(capped.chars().count(), LOG_CHARS + 1);
        assert!(capped.ends_with('…'));
        assert_eq!(for_log(&"x".repeat(LOG_CHARS)), "x".repeat(LOG_CHARS));
    }
}
