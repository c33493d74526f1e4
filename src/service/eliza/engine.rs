//! One ELIZA conversation: reading an input, choosing a keyword, and replying.
//!
//! [`Eliza::reply`] follows the 1966 program, line for line as far as a modern
//! service can (docs/eliza.md lists the differences, and a test
//! checks the engine against recorded replies of a faithful re-creation). The
//! input is read the way the 1966 program read it: upper case, words separated by
//! spaces, `,` and `.` (and `?` `!`, which become `.`, and `;` `:` and en or em
//! dashes, which become `,`) ending a clause, and the word `BUT` too; any other
//! character, an ASCII hyphen or an apostrophe included, is part of a word. Words
//! are substituted as they are read, keywords go on a keystack by rank, and only the
//! first clause holding a keyword is kept. The top keyword's decomposition rules
//! are tried in order; a match answers with the rule's next reassembly, or follows
//! a link, a `PRE` rewrite or `NEWKEY`. Inputs with no keyword get a remembered
//! `MY` sentence (when the LIMIT counter is 4) or the NONE rules. Goodbyes and
//! empty input are handled before any of that.
//!
//! A conversation holds only counters and the memory queue; the script is
//! shared and never changes.

use std::collections::VecDeque;
use std::sync::Arc;

use super::format;
use super::goodbye::{self, FAREWELLS};
use super::hash;
use super::matcher::{self, Word};
use super::script::{KeyId, Part, Reassembly, Rule, Script, Template};

/// The built-in replies when a keyword's rules all fail, indexed by LIMIT (1..=4).
const NO_MATCH: [&str; 4] = ["Please continue.", "Hmmm.", "Go on, please.", "I see."];

/// The reply to an empty message (nothing but whitespace).
const PROMPT: &str = "Please say something.";

/// Links and `PRE`s followed for one keyword; a script with a link cycle stops here.
/// DOCTOR's longest chain is two.
const MAX_LINK_HOPS: u32 = 32;

/// Words kept after a `PRE` rewrite (or twice the input, if more), so that a script
/// cannot grow the input forever. DOCTOR's rewrites never grow it by more than one.
const MAX_WORDS: usize = 4096;

/// Memories kept. In 1966 the queue was unbounded; here a full queue keeps what it
/// has and forgets the new memory instead, so what is recalled is still what 1966
/// would recall. A memory is made per `MY` sentence and recalled at most every
/// fourth input, so a realistic conversation stays far below either bound.
const MAX_MEMORIES: usize = 256;

/// Bytes of remembered text kept, all memories together (see [`MAX_MEMORIES`]).
const MAX_MEMORY_BYTES: usize = 32 * 1024;

/// ELIZA's answer to one input.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    /// The reply, in sentence case with closing punctuation.
    pub text: String,
    /// Whether the user said goodbye, so the conversation can end.
    pub goodbye: bool,
}

/// One conversation with ELIZA, running a shared script.
///
/// Small by design, so that very many can be open at once: the shared script,
/// one `u16` per decomposition rule (55 rules, 110 bytes, for DOCTOR), two counters,
/// and the remembered replies (at most 256, at most 32 KiB together).
#[derive(Debug, Clone)]
pub struct Eliza {
    script: Arc<Script>,
    /// Next reassembly of each decomposition rule, so each cycles in turn.
    cycles: Box<[u16]>,
    /// Remembered replies, oldest first.
    memories: VecDeque<Box<str>>,
    /// Bytes held in `memories`.
    memory_bytes: u32,
    /// The 1966 LIMIT counter: 1, 2, 3, 4, 1, ... stepped before each input.
    limit: u8,
    /// Next farewell to use.
    farewell: u8,
}

/// What applying a keyword's rules came to.
enum Outcome {
    Reply(String),
    NewKey,
    NoMatch,
}

impl Eliza {
    /// Starts a conversation.
    pub fn new(script: Arc<Script>) -> Eliza {
        let cycles = vec![0; script.rule_count].into_boxed_slice();
        Eliza {
            script,
            cycles,
            memories: VecDeque::new(),
            memory_bytes: 0,
            limit: 1,
            farewell: 0,
        }
    }

    /// The script's opening line.
    pub fn greeting(&self) -> &str {
        self.script.greeting()
    }

    /// Answers one line of user input.
    ///
    /// A goodbye (see the `goodbye` module) gets a farewell with `goodbye` set; an
    /// empty message (nothing but whitespace) gets a prompt to say something.
    /// Neither counts as a turn for the LIMIT counter. Any other input, even one
    /// without a letter (`...`, `?!`), gets the script's answer, as in 1966. Never
    /// panics and always returns a non-empty text.
    pub fn reply(&mut self, input: &str) -> Reply {
        if goodbye::is_goodbye(input) {
            let text = FAREWELLS[usize::from(self.farewell) % FAREWELLS.len()];
            self.farewell = ((usize::from(self.farewell) + 1) % FAREWELLS.len()) as u8;
            return Reply {
                text: text.to_owned(),
                goodbye: true,
            };
        }
        if input.trim().is_empty() {
            return Reply {
                text: PROMPT.to_owned(),
                goodbye: false,
            };
        }
        self.limit = self.limit % 4 + 1;
        let buffer = normalize(input);
        let mut turn = Turn {
            script: &self.script,
            cycles: &mut self.cycles,
            memories: &mut self.memories,
            memory_bytes: &mut self.memory_bytes,
            limit: self.limit,
            buffer: &buffer,
            parts: Vec::new(),
            hops: 0,
        };
        let text = turn.respond();
        Reply {
            text,
            goodbye: false,
        }
    }
}

/// The working state of one reply.
struct Turn<'a> {
    script: &'a Script,
    cycles: &'a mut [u16],
    memories: &'a mut VecDeque<Box<str>>,
    memory_bytes: &'a mut u32,
    limit: u8,
    /// The upper-cased input that [`Word::Other`] ranges point into.
    buffer: &'a str,
    /// Scratch for decompositions, reused between rules.
    parts: Vec<(usize, usize)>,
    /// Links followed for the current keyword.
    hops: u32,
}

impl<'a> Turn<'a> {
    fn respond(&mut self) -> String {
        let (mut words, keystack) = self.scan();
        if keystack.is_empty() {
            let recalled = if self.limit == 4 {
                self.memories.pop_front()
            } else {
                None
            };
            return match recalled {
                Some(memory) => {
                    *self.memory_bytes = self.memory_bytes.saturating_sub(memory.len() as u32);
                    memory.into()
                }
                None => self.none(&mut words),
            };
        }
        // Keywords that said NEWKEY without changing anything (no reassembly cycled,
        // no rewrite, no memory): trying them again would say NEWKEY again, so a
        // keystack of a thousand LIKEs costs one try, not a thousand.
        let mut futile: Vec<KeyId> = Vec::new();
        let initial_words = words.len();
        for key in keystack {
            if futile.contains(&key) {
                continue;
            }
            let mut changed = false;
            match self.apply(key, &mut words, initial_words, &mut changed) {
                Outcome::Reply(text) => return text,
                Outcome::NoMatch => return self.no_match(),
                Outcome::NewKey if changed => futile.clear(),
                Outcome::NewKey => futile.push(key),
            }
        }
        self.none(&mut words)
    }

    /// Reads the input into words, substituting and stacking keywords.
    ///
    /// At a delimiter, a clause without keywords is dropped and a clause with
    /// one ends the input.
    fn scan(&self) -> (Vec<Word>, Vec<KeyId>) {
        let mut words = Vec::new();
        let mut keystack: Vec<KeyId> = Vec::new();
        let mut top_rank = 0;
        for token in Tokens::new(self.buffer) {
            let (start, text) = match token {
                Token::Word { start, text } => (start, text),
                Token::Delimiter if keystack.is_empty() => {
                    words.clear();
                    continue;
                }
                Token::Delimiter => break,
            };
            let known = self.script.lookup.get(text).copied();
            let Some((sym, info)) = known.and_then(|sym| Some((sym, self.script.info(sym)?)))
            else {
                words.push(Word::Other {
                    start,
                    end: start + text.len(),
                });
                continue;
            };
            if let Some(key) = info.keyword {
                let rank = self.script.keywords.get(key as usize).map_or(0, |k| k.rank);
                if rank > top_rank {
                    keystack.insert(0, key);
                    top_rank = rank;
                } else {
                    keystack.push(key);
                }
            }
            words.push(Word::Known(info.substitution.unwrap_or(sym)));
        }
        (words, keystack)
    }

    /// Applies a keyword's rules, following links and `PRE` rewrites.
    ///
    /// Sets `changed` when anything was done that could make a second try come
    /// out differently: a memory made, a reassembly cycled or the input rewritten.
    fn apply(
        &mut self,
        key: KeyId,
        words: &mut Vec<Word>,
        initial_words: usize,
        changed: &mut bool,
    ) -> Outcome {
        let script = self.script;
        let memory_keyword = script.memory.as_ref().map(|memory| memory.keyword);
        let mut key = key;
        self.hops = 0;
        'keyword: loop {
            // As in 1966, every keyword taken up, a link's target too, may make a memory.
            if Some(key) == memory_keyword {
                *changed |= self.remember(words);
            }
            let Some(keyword) = script.keywords.get(key as usize) else {
                return Outcome::NoMatch;
            };
            for rule in &keyword.rules {
                let decomposition = match rule {
                    Rule::Link(target) => {
                        if !self.hop() {
                            return Outcome::NoMatch;
                        }
                        key = *target;
                        continue 'keyword;
                    }
                    Rule::Decomposition(decomposition) => decomposition,
                };
                if !matcher::decompose(&decomposition.pattern, words, script, &mut self.parts) {
                    continue;
                }
                let count = decomposition.reassemblies.len();
                let index = match self.cycles.get_mut(decomposition.id) {
                    Some(next) => {
                        let index = usize::from(*next) % count;
                        *next = ((index + 1) % count) as u16;
                        index
                    }
                    None => 0,
                };
                *changed |= count > 1;
                match &decomposition.reassemblies[index] {
                    Reassembly::Text(template) => {
                        let text = self.render(template, words);
                        return if is_blank(&text) {
                            Outcome::NoMatch
                        } else {
                            Outcome::Reply(text)
                        };
                    }
                    Reassembly::Link(target) => {
                        if !self.hop() {
                            return Outcome::NoMatch;
                        }
                        key = *target;
                        continue 'keyword;
                    }
                    Reassembly::Pre(template, target) => {
                        if !self.hop() {
                            return Outcome::NoMatch;
                        }
                        *words = self.rewrite(template, words, initial_words);
                        *changed = true;
                        key = *target;
                        continue 'keyword;
                    }
                    Reassembly::NewKey => return Outcome::NewKey,
                }
            }
            return Outcome::NoMatch;
        }
    }

    /// Counts one link; false once the keyword has used up its budget.
    fn hop(&mut self) -> bool {
        self.hops += 1;
        self.hops <= MAX_LINK_HOPS
    }

    /// The NONE rules, or the built-in message when they do not answer.
    fn none(&mut self, words: &mut Vec<Word>) -> String {
        let initial_words = words.len();
        let mut changed = false;
        match self
            .script
            .none
            .map(|key| self.apply(key, words, initial_words, &mut changed))
        {
            Some(Outcome::Reply(text)) => text,
            _ => self.no_match(),
        }
    }

    fn no_match(&self) -> String {
        NO_MATCH[usize::from(self.limit.clamp(1, 4)) - 1].to_owned()
    }

    /// Queues a MEMORY transformation of the input, chosen by the 1966 hash of the
    /// last word; true if a memory was made.
    fn remember(&mut self, words: &[Word]) -> bool {
        let script = self.script;
        let (Some(memory), Some(&last)) = (&script.memory, words.last()) else {
            return false;
        };
        let Some(form) = memory.forms.get(hash::memory_choice(self.text(last))) else {
            return false;
        };
        if !matcher::decompose(&form.pattern, words, script, &mut self.parts) {
            return false;
        }
        let text = self.render(&form.template, words);
        let bytes = *self.memory_bytes as usize + text.len();
        if is_blank(&text) || self.memories.len() >= MAX_MEMORIES || bytes > MAX_MEMORY_BYTES {
            // A full queue keeps its oldest memories, which are the ones recalled.
            return false;
        }
        *self.memory_bytes = bytes as u32;
        self.memories.push_back(text.into());
        true
    }

    /// The text of a reassembly, from the last decomposition's parts.
    fn render(&self, template: &Template, words: &[Word]) -> String {
        let mut tokens: Vec<&str> = Vec::with_capacity(template.parts.len() + words.len());
        for part in &template.parts {
            match *part {
                Part::Word(sym) => tokens.push(self.script.text(sym)),
                Part::Input(index) => {
                    tokens.extend(
                        self.part_words(words, index)
                            .iter()
                            .map(|&word| self.text(word)),
                    );
                }
            }
        }
        format::render(tokens, template.terminal)
    }

    /// The input rewritten by a `PRE` reassembly.
    fn rewrite(&self, template: &Template, words: &[Word], initial_words: usize) -> Vec<Word> {
        let mut rewritten = Vec::with_capacity(words.len() + template.parts.len());
        for part in &template.parts {
            match *part {
                Part::Word(sym) => rewritten.push(Word::Known(sym)),
                Part::Input(index) => rewritten.extend_from_slice(self.part_words(words, index)),
            }
        }
        rewritten.truncate(MAX_WORDS.max(2 * initial_words));
        rewritten
    }

    /// The words of the `index`-th part of the last decomposition.
    fn part_words<'w>(&self, words: &'w [Word], index: usize) -> &'w [Word] {
        self.parts
            .get(index)
            .and_then(|&(start, end)| words.get(start..end))
            .unwrap_or_default()
    }

    fn text(&self, word: Word) -> &'a str {
        match word {
            Word::Known(sym) => self.script.text(sym),
            Word::Other { start, end } => self.buffer.get(start..end).unwrap_or_default(),
        }
    }
}

/// Whether a rendered reply is nothing but its closing mark (only a user script
/// can make one: every DOCTOR reassembly has words of its own).
fn is_blank(text: &str) -> bool {
    text.len() <= 1
}

/// The input as the 1966 program read it: upper case, `?` and `!` as `.`, `;`
/// `:` and en and em dashes as `,`, double quotes as spaces.
///
/// Outside ASCII this follows the re-creation the engine is tested against
/// (anthay/ELIZA): a typographic apostrophe becomes `'`, other typographic quotes
/// and `¡` `¿` become spaces, `ß` and the Latin ligatures are spelled out, and any
/// other character takes its one-character upper case, if it has one. ASCII
/// whitespace separates words like a space; anything else (an ASCII hyphen, an
/// apostrophe, a bracket, a non-breaking space) is part of a word.
fn normalize(input: &str) -> String {
    let mut buffer = String::with_capacity(input.len() + 8);
    for c in input.chars() {
        match c {
            'a'..='z' => buffer.push(c.to_ascii_uppercase()),
            '!' | '?' => buffer.push('.'),
            ':' | ';' => buffer.push(','),
            '"' | '`' | '\t' | '\n' | '\u{B}' | '\u{C}' | '\r' => buffer.push(' '),
            c if c.is_ascii() => buffer.push(c),
            '\u{2019}' => buffer.push('\''),
            '\u{2018}'
            | '\u{AB}'
            | '\u{BB}'
            | '\u{201A}'..='\u{201F}'
            | '\u{2039}'
            | '\u{203A}'
            | '\u{A1}'
            | '\u{BF}' => buffer.push(' '),
            '\u{2013}' | '\u{2014}' => buffer.push(','),
            '\u{DF}' => buffer.push_str("SS"),
            '\u{FB00}' => buffer.push_str("FF"),
            '\u{FB01}' => buffer.push_str("FI"),
            '\u{FB02}' => buffer.push_str("FL"),
            '\u{FB03}' => buffer.push_str("FFI"),
            '\u{FB04}' => buffer.push_str("FFL"),
            '\u{FB05}' | '\u{FB06}' => buffer.push_str("ST"),
            c => buffer.push(upper(c)),
        }
    }
    buffer
}

/// The one-character upper case of `c` (Unicode's simple case mapping), or `c`.
///
/// The re-creation uses a case table of 2014 (ISO/IEC 30112), which leaves alone
/// the letters that got an upper case in Unicode since (556 with Rust 1.95:
/// Georgian Mtavruli, Cherokee, some Latin and Cyrillic extensions, ...); this
/// upper-cases them. With DOCTOR that only changes which MEMORY form is chosen
/// after a last word holding one of them.
fn upper(c: char) -> char {
    match c {
        // Greek with ypogegrammeni: the full mapping spells out the iota, the simple
        // one takes the capital with prosgegrammeni.
        '\u{1F80}'..='\u{1F87}' | '\u{1F90}'..='\u{1F97}' | '\u{1FA0}'..='\u{1FA7}' => {
            char::from_u32(u32::from(c) + 8).unwrap_or(c)
        }
        '\u{1FB3}' | '\u{1FC3}' | '\u{1FF3}' => char::from_u32(u32::from(c) + 9).unwrap_or(c),
        _ => {
            let mut upper = c.to_uppercase();
            match (upper.next(), upper.next()) {
                (Some(one), None) => one,
                _ => c,
            }
        }
    }
}

/// A token of the input.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Token<'a> {
    /// A word and its byte offset in the buffer.
    Word { start: usize, text: &'a str },
    /// `,` `.` or the word `BUT`: all end a clause.
    Delimiter,
}

/// Splits the normalized input into words and delimiters, as in 1966: spaces
/// separate words, `,` and `.` are delimiters of their own wherever they are, and
/// every other character belongs to a word.
struct Tokens<'a> {
    text: &'a str,
    at: usize,
}

impl<'a> Tokens<'a> {
    fn new(text: &'a str) -> Tokens<'a> {
        Tokens { text, at: 0 }
    }
}

impl<'a> Iterator for Tokens<'a> {
    type Item = Token<'a>;

    fn next(&mut self) -> Option<Token<'a>> {
        // Only ASCII bytes are looked at, so every cut is on a character boundary.
        let bytes = self.text.as_bytes();
        let start = self.at + bytes.get(self.at..)?.iter().position(|&b| b != b' ')?;
        if matches!(bytes.get(start), Some(b',' | b'.')) {
            self.at = start + 1;
            return Some(Token::Delimiter);
        }
        let end = bytes
            .get(start..)?
            .iter()
            .position(|&b| matches!(b, b' ' | b',' | b'.'))
            .map_or(bytes.len(), |len| start + len);
        self.at = end;
        let text = self.text.get(start..end)?;
        Some(if text == "BUT" {
            Token::Delimiter
        } else {
            Token::Word { start, text }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const CONVERSATION: &str = include_str!("testdata/cacm-1966-conversation.tsv");

    fn doctor() -> Eliza {
        Eliza::new(Script::doctor())
    }

    fn with_script(text: &str) -> Eliza {
        Eliza::new(Arc::new(Script::parse(text).expect("test script parses")))
    }

    fn say(eliza: &mut Eliza, input: &str) -> String {
        eliza.reply(input).text
    }

    fn first_reply(input: &str) -> String {
        say(&mut doctor(), input)
    }

    /// A reply as the 1966 transcript printed it: upper-case words, no punctuation.
    fn words_only(text: &str) -> String {
        let spaced: String = text
            .chars()
            .map(|c| {
                if c.is_alphanumeric() || c == '\'' {
                    c.to_ascii_uppercase()
                } else {
                    ' '
                }
            })
            .collect();
        spaced.split_whitespace().collect::<Vec<_>>().join(" ")
    }

    #[test]
    fn the_1966_sample_conversation_is_reproduced_in_one_conversation() {
        let mut eliza = doctor();
        let mut lines = 0;
        for line in CONVERSATION.lines().filter(|line| !line.trim().is_empty()) {
            let (input, expected) = line.split_once('\t').expect("tab-separated line");
            let reply = eliza.reply(input);
            assert_eq!(
                words_only(&reply.text),
                words_only(expected),
                "reply to {input:?}"
            );
            assert!(!reply.goodbye);
            lines += 1;
        }
        assert_eq!(lines, 15);
    }

    #[test]
    fn replies_read_as_sentences_with_question_marks_for_questions() {
        let mut eliza = doctor();
        assert_eq!(say(&mut eliza, "Men are all alike."), "In what way?");
        assert_eq!(
            say(
                &mut eliza,
                "They're always bugging us about something or other."
            ),
            "Can you think of a specific example?"
        );
        assert_eq!(
            say(&mut eliza, "Well, my boyfriend made me come here."),
            "Your boyfriend made you come here."
        );
        assert_eq!(
            say(&mut eliza, "He says I'm depressed much of the time."),
            "I am sorry to hear you are depressed."
        );
        assert_eq!(first_reply("My car."), "Your car.");
        assert_eq!(
            first_reply("Hello"),
            "How do you do. Please state your problem."
        );
        assert_eq!(
            doctor().greeting(),
            "How do you do. Please tell me your problem."
        );
    }

    #[test]
    fn a_higher_ranked_keyword_goes_on_top_of_the_keystack() {
        // I (0), REMEMBER (5), MY (2), COMPUTER (50): COMPUTER answers.
        assert_eq!(
            first_reply("I remember my computer"),
            "Do computers worry you?"
        );
        // MY (2) beats PERHAPS and I (0) even though it comes last.
        assert_eq!(
            first_reply("Perhaps I could learn to get along with my mother."),
            "Tell me more about your family."
        );
    }

    #[test]
    fn a_keyword_of_equal_rank_goes_to_the_bottom_of_the_keystack() {
        assert_eq!(first_reply("sorry perhaps"), "Please don't apologize.");
        assert_eq!(
            first_reply("perhaps sorry"),
            "You don't seem quite certain."
        );
    }

    #[test]
    fn clauses_before_the_first_keyword_and_after_its_clause_are_dropped() {
        assert_eq!(
            first_reply("Nothing much, I need a holiday, my mother disagrees."),
            "What would it mean to you if you got a holiday?"
        );
        assert_eq!(
            first_reply("It's true. I am unhappy."),
            "I am sorry to hear you are unhappy."
        );
    }

    #[test]
    fn but_full_stops_commas_and_what_1966_read_as_them_end_a_clause() {
        let expected = "What would it mean to you if you got rest?";
        for input in [
            "I need rest but my mother disagrees",
            "I need rest, my mother disagrees",
            "I need rest. My mother disagrees",
            "I need rest? My mother disagrees",
            "I need rest! My mother disagrees",
            "I need rest; my mother disagrees",
            "I need rest: my mother disagrees",
            "I need rest \u{2013} my mother disagrees",
            "I need rest\u{2014}my mother disagrees",
        ] {
            assert_eq!(first_reply(input), expected, "{input:?}");
        }
    }

    #[test]
    fn an_ascii_dash_is_part_of_a_word_and_ends_no_clause() {
        // One clause: MY (rank 2) beats I (rank 0).
        for input in [
            "I need rest - my mother disagrees",
            "I need rest -- my mother disagrees",
        ] {
            assert_eq!(
                first_reply(input),
                "Tell me more about your family.",
                "{input:?}"
            );
        }
        assert_eq!(
            first_reply("I need rest-my mother disagrees"),
            "What would it mean to you if you got rest-my mother disagrees?"
        );
        // A dash stuck to a keyword hides it, as in 1966.
        assert_eq!(
            first_reply("computer-"),
            "I am not sure I understand you fully."
        );
    }

    #[test]
    fn question_marks_and_double_quotes_do_not_hide_a_word() {
        assert_eq!(first_reply("Computer?!"), "Do computers worry you?");
        assert_eq!(first_reply("\"My\" dog."), "Your dog.");
        assert_eq!(first_reply("I don\u{2019}t know"), "Don't you really know?");
    }

    #[test]
    fn other_symbols_and_stray_apostrophes_are_part_of_the_word() {
        for input in [
            "(computers)",
            "[computer]",
            "computer/",
            "&computer",
            "'computer'",
        ] {
            assert_eq!(
                first_reply(input),
                "I am not sure I understand you fully.",
                "{input:?}"
            );
        }
        // ... and come back in the reply as they were typed.
        assert_eq!(first_reply("my (car) [red]"), "Your (car) [red].");
        assert_eq!(first_reply("I 'want' it"), "You say you 'want' it.");
        assert_eq!(
            first_reply("I' want it"),
            "I am not sure I understand you fully."
        );
    }

    #[test]
    fn words_are_split_at_spaces_commas_and_full_stops_only() {
        let text = normalize("don't well-known 'quoted' a--b but (x) a,b.c\tend");
        let tokens: Vec<Token<'_>> = Tokens::new(&text).collect();
        let words: Vec<&str> = tokens
            .iter()
            .map(|token| match token {
                Token::Word { text, .. } => text,
                Token::Delimiter => "|",
            })
            .collect();
        assert_eq!(
            words,
            [
                "DON'T",
                "WELL-KNOWN",
                "'QUOTED'",
                "A--B",
                "|",
                "(X)",
                "A",
                "|",
                "B",
                "|",
                "C",
                "END"
            ]
        );
    }

    #[test]
    fn input_is_read_as_the_1966_program_and_its_recreation_read_it() {
        assert_eq!(normalize("Hello! How are you?"), "HELLO. HOW ARE YOU.");
        assert_eq!(normalize("a;b:c\u{2013}d\u{2014}e"), "A,B,C,D,E");
        assert_eq!(
            normalize("\"a\" `b` \u{AB}c\u{BB} \u{201C}d\u{201D}"),
            " A   B   C   D "
        );
        assert_eq!(normalize("I\u{2019}m \u{2018}x"), "I'M  X");
        assert_eq!(normalize("stra\u{DF}e \u{FB01}ne"), "STRASSE FINE");
        assert_eq!(
            normalize("caf\u{E9} \u{3C3}\u{3C2} \u{1F80}"),
            "CAF\u{C9} \u{3A3}\u{3A3} \u{1F88}"
        );
        // No one-character upper case: unchanged (full case mapping would give 'N).
        assert_eq!(normalize("\u{149}"), "\u{149}");
        // Dashes other than en and em, the ellipsis and non-breaking spaces are letters.
        assert_eq!(
            normalize("a\u{2012}\u{2015}\u{2026}\u{A0}-"),
            "A\u{2012}\u{2015}\u{2026}\u{A0}-"
        );
    }

    #[test]
    fn keywords_match_whole_words_only() {
        assert_eq!(
            first_reply("computerized systems"),
            "I am not sure I understand you fully."
        );
    }

    #[test]
    fn zero_matches_any_number_of_words_as_few_as_possible() {
        let script = "(HI)\n(K ((0 K 0 K 0) (FIRST 1 MIDDLE 3 LAST 5)))\n";
        assert_eq!(
            say(&mut with_script(script), "a k b k c k d"),
            "First a middle b last c k d."
        );
        assert_eq!(say(&mut with_script(script), "k k"), "First middle last.");
    }

    #[test]
    fn a_number_matches_exactly_that_many_words() {
        let script = "(HI)\n(K ((K 2 0) (TWO 2 REST 3)) ((0) (SHORT)))\n";
        assert_eq!(say(&mut with_script(script), "k a b c"), "Two a b rest c.");
        assert_eq!(say(&mut with_script(script), "k a"), "Short.");
    }

    #[test]
    fn alternatives_match_any_one_of_their_words() {
        assert_eq!(
            first_reply("I want a car"),
            "What would it mean to you if you got a car?"
        );
        assert_eq!(
            first_reply("I need a car"),
            "What would it mean to you if you got a car?"
        );
        assert_eq!(first_reply("I wish a car"), "You say you wish a car.");
    }

    #[test]
    fn tags_match_any_word_carrying_the_tag() {
        assert_eq!(
            first_reply("My brother is mean"),
            "Tell me more about your family."
        );
        // MOM is replaced by MOTHER, which carries /FAMILY.
        assert_eq!(
            first_reply("My mom is mean"),
            "Tell me more about your family."
        );
        assert_eq!(first_reply("My car is mean"), "Your car is mean.");
    }

    #[test]
    fn all_pattern_elements_together_split_the_input_into_parts() {
        let script =
            "(HI)\n(RED DLIST(/HUE))\n(K ((0 K 2 (*RED BLUE) (/HUE) 0) (A 1 B 3 C 4 D 5 E 6)))\n";
        assert_eq!(
            say(&mut with_script(script), "x y k one two blue red z"),
            "A x y b one two c blue d red e z."
        );
    }

    #[test]
    fn reassemblies_are_used_in_turn_and_then_repeat() {
        let mut eliza = doctor();
        let replies: Vec<String> = (0..5).map(|_| say(&mut eliza, "sorry")).collect();
        assert_eq!(
            replies,
            [
                "Please don't apologize.",
                "Apologies are not necessary.",
                "What feelings do you have when you apologize?",
                "I've told you that apologies are not required.",
                "Please don't apologize.",
            ]
        );
        // Another conversation starts its own cycle.
        assert_eq!(first_reply("sorry"), "Please don't apologize.");
    }

    #[test]
    fn a_link_continues_with_the_other_keywords_rules() {
        assert_eq!(first_reply("alike"), "In what way?");
        assert_eq!(first_reply("How are you?"), "Why do you ask?");
        assert_eq!(first_reply("Maybe"), "You don't seem quite certain.");
        // A link as a reassembly: the fourth DREAMT reply goes on to DREAM.
        let mut eliza = doctor();
        let replies: Vec<String> = (0..4)
            .map(|_| say(&mut eliza, "I dreamed of sheep"))
            .collect();
        assert_eq!(replies[0], "Really, of sheep.");
        assert_eq!(replies[3], "What does that dream suggest to you?");
    }

    #[test]
    fn pre_rewrites_the_input_before_following_its_link() {
        assert_eq!(
            first_reply("You're so clever"),
            "What makes you think I am so clever?"
        );
        assert_eq!(
            first_reply("I'm depressed"),
            "I am sorry to hear you are depressed."
        );
    }

    #[test]
    fn newkey_goes_on_with_the_next_keyword() {
        // WAS finds nothing and says NEWKEY; MY answers.
        assert_eq!(
            first_reply("Was my father kind"),
            "Tell me more about your family."
        );
    }

    #[test]
    fn newkey_with_no_keyword_left_falls_back_to_none() {
        assert_eq!(
            first_reply("Was it raining"),
            "I am not sure I understand you fully."
        );
    }

    #[test]
    fn memory_is_recalled_without_a_keyword_only_when_limit_is_four() {
        let forms = [
            "Lets discuss further why your car is broken.",
            "Earlier you said your car is broken.",
            "But your car is broken.",
            "Does that have anything to do with the fact that your car is broken?",
        ];
        let remembered = forms[hash::memory_choice("BROKEN")];
        let mut eliza = doctor();
        assert_eq!(say(&mut eliza, "My car is broken"), "Your car is broken."); // LIMIT 2
        assert_eq!(
            say(&mut eliza, "Bullies."),
            "I am not sure I understand you fully."
        ); // 3
        assert_eq!(say(&mut eliza, "Bullies."), remembered); // 4
        assert_eq!(say(&mut eliza, "Bullies."), "Please go on."); // 1
    }

    #[test]
    fn memories_come_back_oldest_first_and_not_when_a_keyword_answers() {
        let mut eliza = doctor();
        say(&mut eliza, "My car is broken"); // LIMIT 2
        say(&mut eliza, "My dog is here"); // 3
        assert_eq!(say(&mut eliza, "sorry"), "Please don't apologize."); // 4, keyword
        say(&mut eliza, "Bullies"); // 1
        say(&mut eliza, "Bullies"); // 2
        say(&mut eliza, "Bullies"); // 3
        assert!(say(&mut eliza, "Bullies").contains("car is broken")); // 4
        for _ in 0..3 {
            say(&mut eliza, "Bullies");
        }
        assert!(say(&mut eliza, "Bullies").contains("dog is here"));
    }

    #[test]
    fn a_full_memory_queue_keeps_its_oldest_entries() {
        let mut eliza = doctor();
        for i in 0..MAX_MEMORIES + 50 {
            say(&mut eliza, &format!("My thing number {i} is here"));
        }
        assert_eq!(eliza.memories.len(), MAX_MEMORIES);
        assert!(eliza.memories[0].contains("number 0 "));
        let last = MAX_MEMORIES - 1;
        assert!(eliza.memories[last].contains(&format!("number {last} ")));
        // The oldest is recalled first (on one of the next four inputs, when LIMIT is
        // 4), and recalling makes room again.
        let replies: Vec<String> = (0..4).map(|_| say(&mut eliza, "Bullies")).collect();
        assert_eq!(
            replies.iter().filter(|r| r.contains("number 0 ")).count(),
            1,
            "{replies:?}"
        );
        say(&mut eliza, "My last thing is here");
        assert_eq!(eliza.memories.len(), MAX_MEMORIES);
        assert!(eliza.memories[last].contains("last thing"));
    }

    #[test]
    fn the_memory_queue_is_bounded_in_bytes_too() {
        let mut eliza = doctor();
        let long = "x".repeat(1000);
        for _ in 0..100 {
            say(&mut eliza, &format!("My {long} is here"));
        }
        let held: usize = eliza.memories.iter().map(|m| m.len()).sum();
        assert!(held <= MAX_MEMORY_BYTES, "{held} bytes");
        assert_eq!(held, eliza.memory_bytes as usize);
        assert!(eliza.memories.len() >= MAX_MEMORY_BYTES / 1100);
    }

    #[test]
    fn a_link_to_the_memory_keyword_makes_a_memory_too() {
        let script = "(HI)\n(K ((0 K 0) (REPLY 3)))\n(L (=K))\n\
                      (MEMORY K (0 K 0 = ONE 3) (0 K 0 = TWO 3) (0 K 0 = THREE 3) (0 K 0 = FOUR 3))\n\
                      (NONE ((0) (NOTHING)))\n";
        let mut eliza = with_script(script);
        // L (first found, rank 0) is on top and links to K, as 1966 did.
        assert_eq!(say(&mut eliza, "l k x"), "Reply x."); // LIMIT 2
        assert_eq!(say(&mut eliza, "zzz"), "Nothing."); // 3
        let recalled = say(&mut eliza, "zzz"); // 4
        assert!(recalled.ends_with(" x."), "{recalled}");
    }

    #[test]
    fn none_rules_answer_in_turn_when_there_is_no_keyword() {
        let mut eliza = doctor();
        let replies: Vec<String> = (0..5).map(|_| say(&mut eliza, "Bullies.")).collect();
        assert_eq!(
            replies,
            [
                "I am not sure I understand you fully.",
                "Please go on.",
                "What does that suggest to you?",
                "Do you feel strongly about discussing such things?",
                "I am not sure I understand you fully.",
            ]
        );
    }

    #[test]
    fn a_keyword_whose_rules_all_fail_gets_the_builtin_message_for_limit() {
        // CAN only has patterns for "can I" and "can you".
        let mut eliza = doctor();
        let replies: Vec<String> = (0..4).map(|_| say(&mut eliza, "Can pigs fly")).collect();
        assert_eq!(
            replies,
            ["Hmmm.", "Go on, please.", "I see.", "Please continue."]
        );
    }

    #[test]
    fn goodbyes_end_the_conversation_with_farewells_in_turn() {
        let mut eliza = doctor();
        let first = eliza.reply("Goodbye!");
        assert!(first.goodbye);
        assert_eq!(first.text, FAREWELLS[0]);
        let second = eliza.reply("ok, bye");
        assert!(second.goodbye);
        assert_eq!(second.text, FAREWELLS[1]);
        assert!(eliza.reply("see you later").goodbye);
        assert_eq!(eliza.reply("quit").text, FAREWELLS[0]);
    }

    #[test]
    fn sentences_that_mention_leaving_are_ordinary_input() {
        for input in [
            "I want to leave my job",
            "exiting the highway",
            "quitting smoking is hard",
        ] {
            let reply = doctor().reply(input);
            assert!(!reply.goodbye, "{input:?}");
            assert!(!reply.text.is_empty());
        }
    }

    #[test]
    fn an_empty_message_asks_the_user_to_say_something_without_using_a_turn() {
        let mut eliza = doctor();
        for input in ["", "   ", "\n\t", "\u{A0}\u{2003}"] {
            let reply = eliza.reply(input);
            assert_eq!(reply.text, PROMPT, "{input:?}");
            assert!(!reply.goodbye);
        }
        assert_eq!(eliza.limit, 1);
    }

    #[test]
    fn input_without_letters_is_a_turn_without_keywords() {
        let mut eliza = doctor();
        say(&mut eliza, "My car is broken"); // LIMIT 2, a memory
        let replies: Vec<String> = ["?!...", "-- ;", "\u{1F642}", "(", "..."]
            .iter()
            .map(|input| say(&mut eliza, input))
            .collect();
        assert_eq!(
            replies,
            [
                "I am not sure I understand you fully.",              // 3
                "But your car is broken.",                            // 4: the memory
                "Please go on.",                                      // 1
                "What does that suggest to you?",                     // 2
                "Do you feel strongly about discussing such things?", // 3
            ]
        );
    }

    #[test]
    fn a_long_run_of_newkey_keywords_still_reaches_the_last_keyword() {
        // LIKE (rank 10) without AM/IS/ARE/WAS before it says NEWKEY, and so does
        // REMEMBER without YOU or I; WERE links to WAS, which says NEWKEY too. The 1966
        // keystack had no bound: the keyword at its bottom still answers.
        assert_eq!(
            first_reply(&format!("{} my car", "like ".repeat(200))),
            "Your car."
        );
        for input in [
            format!("{} sorry", "were ".repeat(200)),
            format!("{} sorry", "like remember ".repeat(200)),
        ] {
            assert_eq!(first_reply(&input), "Please don't apologize.", "{input}");
        }
    }

    #[test]
    fn a_link_cycle_in_a_user_script_terminates() {
        let script = "(HI)\n(A (=B))\n(B ((0) (=A)))\n(NONE ((0) (NOTHING)))\n";
        let mut eliza = with_script(script);
        assert_eq!(say(&mut eliza, "a"), "Hmmm.");
        assert_eq!(say(&mut eliza, "b"), "Go on, please.");
        assert_eq!(say(&mut eliza, "zzz"), "Nothing.");
    }

    #[test]
    fn a_pre_that_grows_the_input_forever_terminates() {
        let script = "(HI)\n(G ((0) (PRE (1 1 1) (=G))))\n";
        let mut eliza = with_script(script);
        assert_eq!(say(&mut eliza, "g g g g"), "Hmmm.");
    }

    #[test]
    fn a_script_without_none_or_memory_still_answers_everything() {
        let mut eliza = with_script("(HI)\n(K ((0 K) (YES)))\n");
        assert_eq!(say(&mut eliza, "k"), "Yes.");
        assert_eq!(say(&mut eliza, "k k k x"), "Go on, please.");
        assert_eq!(say(&mut eliza, "hello"), "I see.");
    }

    #[test]
    fn scripts_can_be_shared_and_conversations_moved_between_threads() {
        fn shared<T: Send + Sync>() {}
        fn movable<T: Send>() {}
        shared::<Script>();
        movable::<Eliza>();
        movable::<Reply>();
    }

    #[test]
    fn a_conversation_is_small() {
        let eliza = doctor();
        let size = size_of::<Eliza>() + eliza.cycles.len() * size_of::<u16>();
        assert!(size < 400, "{size} bytes");
    }

    /// xorshift64*: a tiny deterministic generator, no dependency needed.
    struct Rng(u64);

    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 >> 12;
            self.0 ^= self.0 << 25;
            self.0 ^= self.0 >> 27;
            self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
        }

        fn below(&mut self, n: usize) -> usize {
            (self.next() % n as u64) as usize
        }
    }

    const FRAGMENTS: &[&str] = &[
        "you",
        "YOU",
        "me",
        "my",
        "I",
        "i'm",
        "you're",
        "remember",
        "dreamed",
        "computer",
        "like",
        "alike",
        "are",
        "am",
        "was",
        "were",
        "everybody",
        "why",
        "can't",
        "don't",
        "because",
        "mother",
        "feel",
        "think",
        "but",
        "BUT",
        "perhaps",
        "sorry",
        "if",
        "name",
        "deutsch",
        "no",
        "yes",
        ",",
        ".",
        "?",
        "!",
        ";",
        ":",
        "-",
        "--",
        "\u{2014}",
        "'",
        "\u{2019}",
        "\"",
        "(",
        ")",
        "=",
        "*",
        "/",
        "0",
        "42",
        " ",
        "  ",
        "\t",
        "\n",
        "bye",
        "good bye",
        "ß",
        "ŉ",
        "İ",
        "ﬃ",
        "é",
        "e\u{301}",
        "日本語",
        "\u{1F642}",
        "\u{200D}",
        "\u{FEFF}",
        "Ω",
        "ǅ",
    ];

    fn random_input(rng: &mut Rng) -> String {
        let limit = if rng.below(10) == 0 { 4096 } else { 200 };
        let target = rng.below(limit + 1);
        let mut text = String::new();
        while text.len() < target {
            if rng.below(4) == 0 {
                // Any scalar value, weighted towards the multi-byte ranges.
                let c = char::from_u32(rng.next() as u32 % 0x11_0000).unwrap_or('\u{FFFD}');
                text.push(c);
            } else {
                text.push_str(FRAGMENTS[rng.below(FRAGMENTS.len())]);
                if rng.below(2) == 0 {
                    text.push(' ');
                }
            }
        }
        while text.len() > 4096 {
            text.pop();
        }
        text
    }

    #[test]
    fn arbitrary_input_never_panics_and_always_gets_a_reply() {
        let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
        let mut conversation = doctor();
        for _ in 0..3000 {
            let input = random_input(&mut rng);
            let reply = conversation.reply(&input);
            assert!(!reply.text.is_empty(), "{input:?}");
            assert!(!doctor().reply(&input).text.is_empty(), "{input:?}");
        }
    }

    #[test]
    fn pathological_repetitions_get_a_reply() {
        // Matching is linear in the input per pattern, and a keyword that said NEWKEY
        // without changing anything is not tried again, so none of these is slow.
        let mut conversation = doctor();
        let words = [
            "you ",
            "my ",
            "I ",
            "remember ",
            "you are ",
            "I think you ",
            "was ",
            ", ",
            "x ",
        ];
        let mut inputs: Vec<String> = words.iter().map(|w| w.repeat(4096 / w.len())).collect();
        for w in ["like ", "were ", "was ", "dreamt ", "like were remember "] {
            inputs.push(format!("{} my car", w.repeat(4000 / w.len())));
        }
        inputs.push("you ".repeat(2000));
        inputs.push("you".repeat(2000));
        inputs.push("\u{1F642}".repeat(1024));
        for input in &inputs {
            let reply = conversation.reply(input);
            assert!(!reply.text.is_empty());
        }
    }

    mod properties {
        use super::*;
        use proptest::prelude::*;

        proptest! {
            #![proptest_config(ProptestConfig {
                cases: 512,
                failure_persistence: None,
                ..ProptestConfig::default()
            })]

            #[test]
            fn any_unicode_text_gets_a_non_empty_reply(
                inputs in prop::collection::vec(any::<String>(), 1..6)
            ) {
                let mut conversation = doctor();
                for input in &inputs {
                    let reply = conversation.reply(input);
                    prop_assert!(!reply.text.is_empty());
                    // A fresh conversation answers the same input the same way.
                    prop_assert_eq!(doctor().reply(input), doctor().reply(input));
                }
            }

            #[test]
            fn script_words_and_punctuation_in_any_mix_get_a_non_empty_reply(
                lines in prop::collection::vec(
                    prop::collection::vec(prop::sample::select(FRAGMENTS), 0..40),
                    1..8,
                )
            ) {
                let mut conversation = doctor();
                for fragments in &lines {
                    let input = fragments.join(" ");
                    prop_assert!(!conversation.reply(&input).text.is_empty(), "{:?}", input);
                }
            }
        }
    }
}
