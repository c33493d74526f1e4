//! Turning the engine's upper-case word lists into readable sentences.
//!
//! The 1966 program printed bare upper-case words. Replies here get sentence
//! case, a capital `I`, tidy punctuation and a closing `?` or `.`. Whether a
//! reply is a question is decided once per reassembly when the script is parsed
//! (see [`terminal`]), never from the user's words.

/// How a reply ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Terminal {
    /// A statement: ends with `.`.
    Statement,
    /// A question: ends with `?`.
    Question,
    /// An exclamation, only when the script writes a `!` itself.
    Exclamation,
}

impl Terminal {
    fn mark(self) -> char {
        match self {
            Terminal::Statement => '.',
            Terminal::Question => '?',
            Terminal::Exclamation => '!',
        }
    }
}

/// One item of a reassembly as the question heuristic sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Piece<'a> {
    /// A word written in the script (upper case).
    Word(&'a str),
    /// A part of the user's input: never decides anything.
    Part,
}

/// Words that open a question: interrogatives and auxiliary verbs.
const QUESTION_OPENERS: &[&str] = &[
    "WHAT",
    "WHY",
    "HOW",
    "WHO",
    "WHOM",
    "WHOSE",
    "WHERE",
    "WHEN",
    "WHICH",
    "DO",
    "DOES",
    "DID",
    "DON'T",
    "DOESN'T",
    "DIDN'T",
    "CAN",
    "CAN'T",
    "COULD",
    "COULDN'T",
    "WOULD",
    "WOULDN'T",
    "SHOULD",
    "SHOULDN'T",
    "WILL",
    "WON'T",
    "SHALL",
    "MAY",
    "MIGHT",
    "AM",
    "ARE",
    "AREN'T",
    "IS",
    "ISN'T",
    "WAS",
    "WASN'T",
    "WERE",
    "WEREN'T",
    "HAVE",
    "HAVEN'T",
    "HAS",
    "HASN'T",
    "HAD",
];

/// Interrogatives that still make a question after a preposition (`IN WHAT WAY`).
const WH_WORDS: &[&str] = &[
    "WHAT", "WHICH", "WHOM", "WHOSE", "HOW", "WHY", "WHEN", "WHERE",
];

const PREPOSITIONS: &[&str] = &[
    "IN", "OF", "FOR", "WITH", "ABOUT", "TO", "FROM", "BY", "ON", "AT", "SINCE", "UNTIL",
];

/// Pronouns that end a tag question (`..., DON'T YOU`).
const TAG_PRONOUNS: &[&str] = &["YOU", "I", "WE", "THEY", "IT", "HE", "SHE"];

/// Decides how a reassembly ends.
///
/// An explicit `?`, `.` or `!` at the end of the script's text wins. Otherwise
/// the last sentence is a question when it opens with a question word (`WHAT`,
/// `DO`, `CAN`, ...) or with a preposition plus an interrogative (`IN WHAT WAY`),
/// when its last clause after a comma or dash opens with one (`..., DON'T YOU`,
/// `... - WHAT WOULD THAT MEAN`), or when it ends with a tag such as `DON'T YOU`.
pub(crate) fn terminal(pieces: &[Piece<'_>]) -> Terminal {
    if let Some(Piece::Word(last)) = pieces.last() {
        match last.chars().last() {
            Some('?') => return Terminal::Question,
            Some('!') => return Terminal::Exclamation,
            Some('.') => return Terminal::Statement,
            _ => {}
        }
    }
    let body = match pieces.split_last() {
        Some((_, body)) => body,
        None => return Terminal::Statement,
    };
    let start = body
        .iter()
        .rposition(|p| matches!(p, Piece::Word(w) if ends_sentence(w)))
        .map_or(0, |i| i + 1);
    let sentence = &pieces[start..];
    if opens_question(sentence) {
        return Terminal::Question;
    }
    let last_clause = sentence
        .split_last()
        .and_then(|(_, clauses)| clauses.iter().rposition(breaks_clause))
        .map_or(&[][..], |i| &sentence[i + 1..]);
    let tagged = match sentence {
        [.., Piece::Word(aux), Piece::Word(pronoun)] => {
            is_one_of(aux, QUESTION_OPENERS) && is_one_of(pronoun, TAG_PRONOUNS)
        }
        _ => false,
    };
    if opens_question(last_clause) || tagged {
        Terminal::Question
    } else {
        Terminal::Statement
    }
}

fn opens_question(clause: &[Piece<'_>]) -> bool {
    match clause {
        [Piece::Word(first), rest @ ..] => {
            is_one_of(first, QUESTION_OPENERS)
                || (is_one_of(first, PREPOSITIONS)
                    && matches!(rest.first(), Some(Piece::Word(w)) if is_one_of(w, WH_WORDS)))
        }
        _ => false,
    }
}

fn breaks_clause(piece: &Piece<'_>) -> bool {
    match piece {
        Piece::Word(w) => *w == "-" || w.ends_with([',', ';', ':']),
        Piece::Part => false,
    }
}

/// Whether `word`, stripped of surrounding punctuation, is in `list`.
fn is_one_of(word: &str, list: &[&str]) -> bool {
    let bare = word.trim_matches(|c: char| !c.is_alphanumeric());
    list.iter().any(|w| w.eq_ignore_ascii_case(bare))
}

fn ends_sentence(word: &str) -> bool {
    word.ends_with(['.', '?', '!'])
}

/// Whether `token` is punctuation that sticks to the word before it.
fn is_attached_punctuation(token: &str) -> bool {
    token
        .chars()
        .all(|c| matches!(c, ',' | '.' | ';' | ':' | '!' | '?'))
}

/// Renders upper-case tokens as one readable line ending in `terminal`'s mark.
///
/// Sentence case, `I` and `I'...` capitalised, no space before `,` or `.`, a
/// standalone `'` quotes the words up to the next one (`' 4 '` becomes `'...'`).
pub(crate) fn render<'a>(tokens: impl IntoIterator<Item = &'a str>, terminal: Terminal) -> String {
    // Replies are short: one allocation for almost all of them.
    let mut out = String::with_capacity(96);
    let mut capitalize = true;
    let mut glue = true;
    let mut quote_open = false;
    for token in tokens {
        if token.is_empty() {
            continue;
        }
        if is_attached_punctuation(token) {
            if !out.is_empty() {
                out.push_str(token);
                capitalize |= ends_sentence(token);
            }
            continue;
        }
        if token == "'" || token == "\"" {
            if quote_open {
                out.push('\'');
            } else {
                if !glue {
                    out.push(' ');
                }
                out.push('\'');
                glue = true;
            }
            quote_open = !quote_open;
            continue;
        }
        if !glue {
            out.push(' ');
        }
        glue = false;
        push_word(&mut out, token, capitalize);
        capitalize = ends_sentence(token);
    }
    let kept = out
        .trim_end_matches([',', '.', ';', ':', '!', '?', '-', ' '])
        .len();
    out.truncate(kept);
    out.push(terminal.mark());
    out
}

/// Appends `word` in lower case, capitalising it at a sentence start or when it is `I`.
fn push_word(out: &mut String, word: &str, capitalize: bool) {
    let is_i = word.eq_ignore_ascii_case("i") || word.starts_with("I'") || word.starts_with("i'");
    let mut pending = capitalize || is_i;
    if word.is_ascii() {
        // The common case (every script word, most input): byte-wise, no Unicode tables.
        out.reserve(word.len());
        for b in word.bytes() {
            if pending && b.is_ascii_alphanumeric() {
                out.push(char::from(b.to_ascii_uppercase()));
                pending = false;
            } else {
                out.push(char::from(b.to_ascii_lowercase()));
            }
        }
        return;
    }
    for c in word.chars() {
        if pending && c.is_alphanumeric() {
            out.extend(c.to_uppercase());
            pending = false;
        } else {
            out.extend(c.to_lowercase());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pieces(text: &str) -> Vec<Piece<'_>> {
        text.split_whitespace()
            .map(|w| {
                if w.chars().all(|c| c.is_ascii_digit()) {
                    Piece::Part
                } else {
                    Piece::Word(w)
                }
            })
            .collect()
    }

    fn shown(text: &str) -> String {
        render(text.split_whitespace(), terminal(&pieces(text)))
    }

    #[test]
    fn question_words_at_the_start_make_a_question() {
        assert_eq!(
            shown("CAN YOU THINK OF A SPECIFIC EXAMPLE"),
            "Can you think of a specific example?"
        );
        assert_eq!(shown("WHY DO YOU ASK"), "Why do you ask?");
        assert_eq!(shown("DON'T YOU KNOW"), "Don't you know?");
        assert_eq!(shown("IN WHAT WAY"), "In what way?");
        assert_eq!(
            shown("OF WHAT DOES FEELING 4 REMIND YOU"),
            "Of what does feeling 4 remind you?"
        );
    }

    #[test]
    fn a_question_in_the_last_clause_or_a_tag_makes_a_question() {
        assert_eq!(
            shown("YOU'RE NOT REALLY TALKING ABOUT ME - ARE YOU"),
            "You're not really talking about me - are you?"
        );
        assert_eq!(
            shown("YOU HAVE A PARTICULAR PERSON IN MIND, DON'T YOU"),
            "You have a particular person in mind, don't you?"
        );
        assert_eq!(
            shown("YOU BELIEVE I CAN 4 DON'T YOU"),
            "You believe I can 4 don't you?"
        );
    }

    #[test]
    fn statements_end_with_a_full_stop() {
        assert_eq!(shown("YOUR 4"), "Your 4.");
        assert_eq!(
            shown("TELL ME MORE ABOUT YOUR FAMILY"),
            "Tell me more about your family."
        );
        assert_eq!(
            shown("I'VE TOLD YOU BEFORE, I DON'T CARE ABOUT NAMES - PLEASE CONTINUE"),
            "I've told you before, I don't care about names - please continue."
        );
        assert_eq!(shown("REALLY, 4"), "Really, 4.");
    }

    #[test]
    fn only_the_last_sentence_decides_and_earlier_ones_keep_their_stop() {
        assert_eq!(
            shown("HOW DO YOU DO. PLEASE TELL ME YOUR PROBLEM"),
            "How do you do. Please tell me your problem."
        );
    }

    #[test]
    fn explicit_final_punctuation_wins() {
        assert_eq!(shown("YOU ARE SURE ?"), "You are sure?");
        assert_eq!(shown("WHAT A DAY !"), "What a day!");
        assert_eq!(shown("WHY NOT ."), "Why not.");
    }

    #[test]
    fn spacing_around_punctuation_is_fixed() {
        assert_eq!(
            render("GO ON , PLEASE".split(' '), Terminal::Statement),
            "Go on, please."
        );
        assert_eq!(
            render(
                "WHAT DOES ' FLYING HIGH ' SUGGEST TO YOU".split(' '),
                Terminal::Question
            ),
            "What does 'flying high' suggest to you?"
        );
        assert_eq!(
            render(", HELLO ,".split(' '), Terminal::Statement),
            "Hello."
        );
    }

    #[test]
    fn the_pronoun_i_and_its_contractions_are_capitalised() {
        assert_eq!(
            render(
                "PERHAPS I'M SURE I'VE SEEN IT".split(' '),
                Terminal::Statement
            ),
            "Perhaps I'm sure I've seen it."
        );
        assert_eq!(
            render("'AM' IS A WORD".split(' '), Terminal::Statement),
            "'Am' is a word."
        );
    }

    #[test]
    fn rendering_nothing_still_gives_a_mark() {
        assert_eq!(render([], Terminal::Statement), ".");
        assert_eq!(terminal(&[]), Terminal::Statement);
    }
}
