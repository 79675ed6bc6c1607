//! Cuts streamed LLM text into speakable pieces as soon as each is complete, so the TTS can
//! start on the first sentence while the model is still writing the rest.
//!
//! Rules, in order of preference (first cut point in the pending text wins):
//! - after `.`, `!`, `?` (and runs like `?!` or `...`, plus closing quotes/brackets) when
//!   whitespace follows — not inside numbers (`3.5`), not after abbreviations (`Mr.`, `e.g.`,
//!   `U.S.`, single initials) and not when the piece would hold no letter (a list marker `1.`);
//! - after `;` or `:` when whitespace follows (`10:30` is not cut);
//! - after `,` when whitespace follows and the piece is at least [`MIN_CLAUSE_CHARS`] long;
//! - at a line break;
//! - otherwise, once the pending text exceeds [`MAX_PIECE_CHARS`], at the last space before it.
//!
//! A cut point right at the end of the pushed text is not decided until more text (or
//! [`SentenceSplitter::finish`]) shows what follows. Pieces are trimmed and never empty.
//! This module is pure text handling: it must not do I/O, log, or know about TTS or providers.

/// A comma cuts only once the pending piece is at least this many characters long.
pub const MIN_CLAUSE_CHARS: usize = 40;
/// With no punctuation to cut at, a piece is cut on a space once it gets this long.
pub const MAX_PIECE_CHARS: usize = 200;

/// Words (lower case, without the final dot) whose dot does not end a sentence.
const ABBREVIATIONS: &[&str] = &[
    "mr", "mrs", "ms", "dr", "prof", "sr", "jr", "st", "vs", "etc", "inc", "ltd", "co", "corp",
    "dept", "approx", "est", "fig", "mt", "ft", "jan", "feb", "mar", "apr", "jun", "jul", "aug",
    "sep", "sept", "oct", "nov", "dec",
];

/// Characters that may follow a sentence terminator before the whitespace (`"Hi." Then`).
fn is_closer(c: char) -> bool {
    matches!(c, '"' | '\'' | ')' | ']' | '}' | '”' | '’' | '»')
}

/// Accumulates streamed tokens and hands out complete, speakable pieces.
#[derive(Debug, Default, Clone)]
pub struct SentenceSplitter {
    pending: String,
}

impl SentenceSplitter {
    /// An empty splitter.
    pub fn new() -> Self {
        Self::default()
    }

    /// Add a streamed token; returns the pieces completed by it, in order (often none).
    pub fn push(&mut self, token: &str) -> Vec<String> {
        self.pending.push_str(token);
        let mut out = Vec::new();
        while let Some(end) = next_cut(&self.pending) {
            let rest = self.pending.split_off(end);
            let piece = self.pending.trim();
            if !piece.is_empty() {
                out.push(piece.to_string());
            }
            self.pending = rest.trim_start().to_string();
        }
        if self.pending.trim().is_empty() {
            self.pending.clear();
        }
        out
    }

    /// The end of the text: whatever is still pending, trimmed (`None` when nothing is).
    pub fn finish(&mut self) -> Option<String> {
        let rest = std::mem::take(&mut self.pending);
        let rest = rest.trim();
        (!rest.is_empty()).then(|| rest.to_string())
    }

    /// The text not yet handed out.
    pub fn pending(&self) -> &str {
        &self.pending
    }
}

/// The byte offset where the first complete piece of `text` ends, if one is complete.
fn next_cut(text: &str) -> Option<usize> {
    let chars: Vec<(usize, char)> = text.char_indices().collect();
    let n = chars.len();
    let ws_at = |j: usize| j < n && chars[j].1.is_whitespace();
    let mut i = 0;
    while i < n {
        let (pos, c) = chars[i];
        match c {
            '.' | '!' | '?' => {
                let mut j = i + 1;
                while j < n && matches!(chars[j].1, '.' | '!' | '?') {
                    j += 1;
                }
                let single_dot = c == '.' && j == i + 1;
                while j < n && is_closer(chars[j].1) {
                    j += 1;
                }
                if j == n {
                    break; // What follows decides: wait for more text.
                }
                if ws_at(j)
                    && !(single_dot && is_abbreviation(&text[..pos]))
                    && text[..pos].chars().any(char::is_alphabetic)
                {
                    return Some(chars[j].0);
                }
                i = j;
                continue;
            }
            ';' | ':' if i + 1 == n => break,
            ';' | ':' if ws_at(i + 1) => return Some(chars[i + 1].0),
            ',' if i + 1 >= MIN_CLAUSE_CHARS => {
                if i + 1 == n {
                    break;
                }
                if ws_at(i + 1) {
                    return Some(chars[i + 1].0);
                }
            }
            '\n' if text[..pos].chars().any(|c| !c.is_whitespace()) => return Some(pos),
            _ => {}
        }
        i += 1;
    }
    hard_cut(&chars)
}

/// With no punctuation cut: past [`MAX_PIECE_CHARS`], cut at the last whitespace before the
/// limit (or at the limit itself when there is none).
fn hard_cut(chars: &[(usize, char)]) -> Option<usize> {
    if chars.len() <= MAX_PIECE_CHARS {
        return None;
    }
    let space = chars[1..=MAX_PIECE_CHARS]
        .iter()
        .rposition(|&(_, c)| c.is_whitespace())
        .map(|k| k + 1);
    Some(chars[space.unwrap_or(MAX_PIECE_CHARS)].0)
}

/// Whether the word ending at the end of `before` (the text up to a single `.`) is an
/// abbreviation or initial, so its dot does not end the sentence.
fn is_abbreviation(before: &str) -> bool {
    let word = before
        .rsplit(char::is_whitespace)
        .next()
        .unwrap_or("")
        .trim_start_matches(|c: char| !c.is_alphanumeric());
    if word.is_empty() {
        return false;
    }
    if word.contains('.') {
        return true; // "e.g", "U.S", "a.m"
    }
    let mut letters = word.chars();
    if let (Some(first), None) = (letters.next(), letters.next()) {
        return first.is_uppercase(); // An initial: "John F. Kennedy".
    }
    ABBREVIATIONS.contains(&word.to_lowercase().as_str())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Push `tokens` one by one, then finish: every piece in order.
    fn split(tokens: &[&str]) -> Vec<String> {
        let mut s = SentenceSplitter::new();
        let mut out: Vec<String> = tokens.iter().flat_map(|t| s.push(t)).collect();
        out.extend(s.finish());
        out
    }

    fn whole(text: &str) -> Vec<String> {
        split(&[text])
    }

    #[test]
    fn sentences_come_out_as_soon_as_complete() {
        let mut s = SentenceSplitter::new();
        assert!(s.push("Hello").is_empty());
        assert!(s.push(" there.").is_empty(), "the dot may still be 3.5");
        assert_eq!(s.push(" How"), vec!["Hello there."]);
        assert!(s.push(" are you?").is_empty());
        assert_eq!(s.push(" "), vec!["How are you?"]);
        assert_eq!(s.pending(), "");
        assert_eq!(s.finish(), None);
    }

    #[test]
    fn terminators_and_runs() {
        assert_eq!(whole("Wow! Really? Yes."), vec!["Wow!", "Really?", "Yes."]);
        assert_eq!(
            whole("What?! No way... Fine."),
            vec!["What?!", "No way...", "Fine."]
        );
        assert_eq!(
            whole(r#"He said "hi." Then left."#),
            vec![r#"He said "hi.""#, "Then left."]
        );
        assert_eq!(whole("(Really.) Ok"), vec!["(Really.)", "Ok"]);
    }

    #[test]
    fn numbers_abbreviations_and_initials_do_not_cut() {
        assert_eq!(
            whole("It costs 3.5 dollars. Ok."),
            vec!["It costs 3.5 dollars.", "Ok."]
        );
        assert_eq!(
            whole("Bring fruit, e.g. apples. Done."),
            vec!["Bring fruit, e.g. apples.", "Done."]
        );
        assert_eq!(
            whole("Mr. Smith is here. Hi."),
            vec!["Mr. Smith is here.", "Hi."]
        );
        assert_eq!(whole("Ask Dr. Who."), vec!["Ask Dr. Who."]);
        assert_eq!(
            whole("Made in the U.S. by hand."),
            vec!["Made in the U.S. by hand."]
        );
        assert_eq!(
            whole("John F. Kennedy spoke. Yes."),
            vec!["John F. Kennedy spoke.", "Yes."]
        );
        assert_eq!(whole("Open at 10:30 today."), vec!["Open at 10:30 today."]);
        assert_eq!(
            whole("Version 2.0.1 is out."),
            vec!["Version 2.0.1 is out."]
        );
    }

    #[test]
    fn short_answers_still_cut() {
        assert_eq!(
            whole("No. I said no. A b."),
            vec!["No.", "I said no.", "A b."]
        );
        assert_eq!(whole("I am here. OK."), vec!["I am here.", "OK."]);
    }

    #[test]
    fn list_markers_are_not_pieces() {
        assert_eq!(whole("1. Eggs\n2. Milk"), vec!["1. Eggs", "2. Milk"]);
    }

    #[test]
    fn semicolons_and_colons_cut() {
        assert_eq!(
            whole("Two options: pickup; delivery. Which?"),
            vec!["Two options:", "pickup;", "delivery.", "Which?"]
        );
    }

    #[test]
    fn commas_cut_only_long_pieces() {
        assert_eq!(
            whole("Yes, sure, of course."),
            vec!["Yes, sure, of course."]
        );
        let long = "I have checked your account and your last order, which shipped on Monday.";
        assert_eq!(
            whole(long),
            vec![
                "I have checked your account and your last order,",
                "which shipped on Monday."
            ]
        );
        assert!("I have checked your account and your last order,".len() >= MIN_CLAUSE_CHARS);
    }

    #[test]
    fn comma_at_the_end_of_a_token_waits() {
        let mut s = SentenceSplitter::new();
        let first = "I have checked your account and your last order,";
        assert!(s.push(first).is_empty());
        assert_eq!(s.push(" which"), vec![first]);
        assert_eq!(s.finish().as_deref(), Some("which"));
    }

    #[test]
    fn long_text_without_punctuation_is_cut_on_a_space() {
        let text = "word ".repeat(100);
        let pieces = whole(&text);
        assert!(pieces.len() >= 2, "{pieces:?}");
        for p in &pieces {
            assert!(p.chars().count() <= MAX_PIECE_CHARS, "{}", p.len());
            assert!(p.split(' ').all(|w| w == "word"), "cut inside a word: {p}");
        }
        assert_eq!(pieces.join(" "), text.trim());
        let blob = "x".repeat(450);
        let pieces = whole(&blob);
        assert_eq!(pieces.concat(), blob);
        assert_eq!(pieces[0].chars().count(), MAX_PIECE_CHARS);
    }

    #[test]
    fn whitespace_is_trimmed_and_empty_pieces_never_emitted() {
        assert_eq!(whole("   "), Vec::<String>::new());
        assert_eq!(whole("  Hi.   \n\n  Bye.  "), vec!["Hi.", "Bye."]);
        assert_eq!(whole("... !"), vec!["... !"]);
        assert!(split(&["", " ", "\n"]).is_empty());
        let mut s = SentenceSplitter::new();
        assert!(s.push("\n\n").is_empty());
        assert_eq!(s.finish(), None);
    }

    #[test]
    fn token_by_token_equals_whole_text() {
        let text = "Sure! Your order, number 42, ships today; it arrives on Friday at 3.30 p.m. Anything else? Mr. Jones says hi.";
        let by_char: Vec<String> = text.chars().map(String::from).collect();
        let refs: Vec<&str> = by_char.iter().map(String::as_str).collect();
        assert_eq!(split(&refs), whole(text));
        assert_eq!(
            whole(text),
            vec![
                "Sure!",
                "Your order, number 42, ships today;",
                "it arrives on Friday at 3.30 p.m. Anything else?",
                "Mr. Jones says hi."
            ]
        );
    }

    #[test]
    fn unicode_is_handled() {
        assert_eq!(
            whole("Ça va? Très bien. 日本語です。"),
            vec!["Ça va?", "Très bien.", "日本語です。"]
        );
        let text = "é".repeat(250);
        assert_eq!(whole(&text).concat(), text);
    }
}
