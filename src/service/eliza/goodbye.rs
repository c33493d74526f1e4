//! Recognising that the user wants to end the conversation.
//!
//! In 1966 an empty line ended the session and the DOCTOR script has no rule
//! for leaving, so the phrases live here in the engine rather than in the
//! script. An input is a goodbye only when, read as whole words without case
//! or punctuation, it *is* a goodbye phrase, optionally with a few courtesy
//! words around it: `bye`, `Good bye!`, `ok bye`, `thanks, bye`, `see you
//! later`. A sentence that merely contains such a word (`I want to quit my
//! job`, `exiting the highway`) is ordinary input.

/// Whole-input phrases that end a conversation (lower case, one word each).
const PHRASES: &[&[&str]] = &[
    &["bye"],
    &["goodbye"],
    &["good", "bye"],
    &["bye", "bye"],
    &["byebye"],
    &["quit"],
    &["exit"],
    &["farewell"],
    &["see", "you"],
    &["see", "you", "later"],
    &["see", "you", "soon"],
    &["see", "ya"],
    &["cya"],
    &["so", "long"],
    &["good", "night"],
    &["goodnight"],
    &["take", "care"],
    &["ciao"],
    &["adieu"],
];

/// Words allowed around a phrase without changing its meaning (`thank you` too).
const COURTESY: &[&str] = &[
    "ok", "okay", "oh", "well", "alright", "right", "thanks", "thx", "cheers", "then", "now",
    "for", "all", "everyone", "eliza", "doctor", "and", "again", "so", "bye",
];

/// At most this many courtesy words: "a few", not a sentence.
const MAX_COURTESY_WORDS: usize = 3;

/// Longest input worth looking at: a phrase plus a few courtesy words.
const MAX_WORDS: usize = 8;

/// The replies to a goodbye, used in turn.
pub(crate) const FAREWELLS: &[&str] = &[
    "Goodbye. It was nice talking to you.",
    "Goodbye. Take good care of yourself.",
    "Farewell. Come back whenever you want to talk.",
];

/// Whether the whole of `input` is a goodbye.
pub(crate) fn is_goodbye(input: &str) -> bool {
    let mut words = [""; MAX_WORDS];
    let mut count = 0;
    for word in input
        .split(|c: char| !(c.is_alphanumeric() || c == '\'' || c == '\u{2019}'))
        .map(|w| w.trim_matches(['\'', '\u{2019}']))
        .filter(|w| !w.is_empty())
    {
        if count == MAX_WORDS {
            return false;
        }
        words[count] = word;
        count += 1;
    }
    let words = &words[..count];
    (0..words.len()).any(|start| {
        PHRASES.iter().any(|phrase| {
            let end = start + phrase.len();
            end <= words.len()
                && same_words(&words[start..end], phrase)
                && courtesy_count(&words[..start])
                    .zip(courtesy_count(&words[end..]))
                    .is_some_and(|(before, after)| before + after <= MAX_COURTESY_WORDS)
        })
    })
}

fn same_words(words: &[&str], phrase: &[&str]) -> bool {
    words
        .iter()
        .zip(phrase)
        .all(|(w, p)| w.eq_ignore_ascii_case(p))
}

/// How many courtesy words `words` holds, or `None` if anything else is there.
fn courtesy_count(words: &[&str]) -> Option<usize> {
    let mut rest = words;
    let mut count = 0;
    while let Some((first, tail)) = rest.split_first() {
        rest = match tail.first() {
            Some(next)
                if first.eq_ignore_ascii_case("thank") && next.eq_ignore_ascii_case("you") =>
            {
                &tail[1..]
            }
            _ if COURTESY.iter().any(|c| first.eq_ignore_ascii_case(c)) => tail,
            _ => return None,
        };
        count += 1;
    }
    Some(count)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn whole_goodbye_phrases_are_goodbyes() {
        for input in [
            "bye",
            "Bye.",
            "GOODBYE!",
            "good bye",
            "Bye bye",
            "bye-bye",
            "quit",
            "exit",
            "farewell",
            "See you",
            "see you later.",
            "so long",
            "Good night!",
            "  bye  ",
        ] {
            assert!(is_goodbye(input), "{input:?} should be a goodbye");
        }
    }

    #[test]
    fn a_few_courtesy_words_around_the_phrase_are_allowed() {
        for input in [
            "ok bye",
            "bye now",
            "thanks, bye",
            "Thank you, goodbye.",
            "ok, bye for now",
        ] {
            assert!(is_goodbye(input), "{input:?} should be a goodbye");
        }
    }

    #[test]
    fn sentences_that_only_contain_a_goodbye_word_are_not_goodbyes() {
        for input in [
            "I want to leave my job",
            "exiting the highway",
            "quitting smoking is hard",
            "I quit",
            "bye is a short word",
            "thank you",
            "goodbyes are hard",
            "ok ok ok ok bye",
            "",
        ] {
            assert!(!is_goodbye(input), "{input:?} should not be a goodbye");
        }
    }

    #[test]
    fn long_inputs_are_rejected_without_work() {
        assert!(!is_goodbye(&"bye ".repeat(1000)));
    }
}
