//! The ELIZA script: a parser for Weizenbaum's 1966 script language and the
//! immutable data model the engine runs on.
//!
//! A script is text made of S-expressions: the opening line, an optional
//! `START`, then one entry per word (`(MY = YOUR 2 ((0 YOUR 0) (YOUR 3)) ...)`),
//! `(MEMORY ...)`, `(NONE ...)`, and an optional closing `()`. `;` starts a
//! comment. `doctor.script` documents the language in its header.
//!
//! Everything the engine needs per reply is computed here once: words are
//! interned to numbers, so keyword lookup, substitution and tags are a hash
//! lookup and array reads; links are resolved to keyword indices; each
//! reassembly knows whether it is a question. A [`Script`] never changes after
//! parsing, so one `Arc<Script>` serves every conversation.

use std::collections::HashSet;

use rustc_hash::FxHashMap;
use std::sync::{Arc, OnceLock};

use super::format::{self, Piece, Terminal};

/// An interned word of the script: an index into [`Script::symbols`].
pub(crate) type Sym = u32;

/// A keyword: an index into [`Script::keywords`].
pub(crate) type KeyId = u32;

/// The DOCTOR script shipped with the engine.
const DOCTOR_SOURCE: &str = include_str!("doctor.script");

/// Deepest list nesting the language needs is 4; anything far deeper is a mistake.
const MAX_DEPTH: usize = 16;

/// A script that could not be parsed, with the 1-based position of the problem.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("line {line}, column {column}: {message}")]
pub struct ScriptError {
    /// Line of the offending text, from 1.
    pub line: usize,
    /// Column (in characters) of the offending text, from 1.
    pub column: usize,
    /// What is wrong there.
    pub message: String,
}

/// A parsed, immutable ELIZA script, meant to be shared as `Arc<Script>`.
#[derive(Debug)]
pub struct Script {
    /// The opening line, already formatted for display.
    pub(crate) greeting: String,
    /// Text of every interned word, upper case.
    pub(crate) symbols: Vec<Box<str>>,
    /// Upper-case word to its symbol: the only lookup the engine does per word. Fx hashing:
    /// the map is fixed after parsing, so input words cannot flood it, and it is the
    /// fastest hash for short keys.
    pub(crate) lookup: FxHashMap<Box<str>, Sym>,
    /// What the script says about each symbol, indexed like `symbols`.
    pub(crate) words: Vec<WordInfo>,
    /// Keywords in script order, plus NONE (which no input word can reach).
    pub(crate) keywords: Vec<Keyword>,
    /// Number of decomposition rules: one cycle counter each per conversation.
    pub(crate) rule_count: usize,
    /// The NONE rules, used when the input has no keyword.
    pub(crate) none: Option<KeyId>,
    /// The MEMORY entry, if the script has one.
    pub(crate) memory: Option<Memory>,
}

/// What the script says about one word.
#[derive(Debug, Default)]
pub(crate) struct WordInfo {
    /// The keyword this word triggers, if it has transformation rules.
    pub(crate) keyword: Option<KeyId>,
    /// The word that replaces it in the input during the scan.
    pub(crate) substitution: Option<Sym>,
    /// Its DLIST tags, for `(/TAG)` patterns.
    pub(crate) tags: Box<[Sym]>,
}

/// A keyword and its transformation rules.
#[derive(Debug)]
pub(crate) struct Keyword {
    /// Precedence on the keystack; 0 when the script gives none.
    pub(crate) rank: u32,
    /// Tried in order; the first that applies answers.
    pub(crate) rules: Vec<Rule>,
}

/// One transformation rule of a keyword.
#[derive(Debug)]
pub(crate) enum Rule {
    /// A decomposition pattern with its reassemblies.
    Decomposition(Decomposition),
    /// `(=KEY)` in place of a rule: continue with KEY's rules.
    Link(KeyId),
}

/// A decomposition pattern and the reassemblies it cycles through.
#[derive(Debug)]
pub(crate) struct Decomposition {
    /// Index of this rule's cycle counter in a conversation.
    pub(crate) id: usize,
    pub(crate) pattern: Box<[Element]>,
    /// Never empty.
    pub(crate) reassemblies: Box<[Reassembly]>,
}

/// One element of a decomposition pattern; each matches one part of the input.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Element {
    /// `0`: any number of words, as few as possible.
    Any,
    /// `n`: exactly n words.
    Count(u32),
    /// A word, compared whole.
    Word(Sym),
    /// `(*A B C)`: one word, any of these.
    OneOf(Box<[Sym]>),
    /// `(/TAG ...)`: one word carrying any of these tags.
    Tagged(Box<[Sym]>),
}

/// What a matched decomposition does.
#[derive(Debug)]
pub(crate) enum Reassembly {
    /// Reply with this text.
    Text(Template),
    /// `(=KEY)`: continue with KEY's rules.
    Link(KeyId),
    /// `(PRE (text) (=KEY))`: rewrite the input with the text, then KEY's rules.
    Pre(Template, KeyId),
    /// `(NEWKEY)`: try the next keyword on the keystack.
    NewKey,
}

/// Reassembly text: script words and numbered parts of the decomposed input.
#[derive(Debug)]
pub(crate) struct Template {
    pub(crate) parts: Box<[Part]>,
    /// How the reply ends, decided once here.
    pub(crate) terminal: Terminal,
}

/// One item of a [`Template`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Part {
    Word(Sym),
    /// Zero-based index of a decomposition element; always in range.
    Input(usize),
}

/// `(MEMORY KEY ...)`: how to remember an input that used KEY.
#[derive(Debug)]
pub(crate) struct Memory {
    pub(crate) keyword: KeyId,
    pub(crate) forms: [Transformation; 4],
}

/// One `pattern = reassembly` of MEMORY.
#[derive(Debug)]
pub(crate) struct Transformation {
    pub(crate) pattern: Box<[Element]>,
    pub(crate) template: Template,
}

impl Script {
    /// Parses a script, refusing anything malformed with its line and column.
    pub fn parse(text: &str) -> Result<Script, ScriptError> {
        let nodes = read_tree(text)?;
        Builder::default().build(&nodes)
    }

    /// The DOCTOR script from Weizenbaum's 1966 paper, parsed once and shared.
    pub fn doctor() -> Arc<Script> {
        static DOCTOR: OnceLock<Arc<Script>> = OnceLock::new();
        DOCTOR
            .get_or_init(|| {
                // The embedded text is fixed at compile time and a unit test parses it.
                Arc::new(Script::parse(DOCTOR_SOURCE).expect("the embedded DOCTOR script parses"))
            })
            .clone()
    }

    /// The script's opening line, e.g. `How do you do. Please tell me your problem.`
    pub fn greeting(&self) -> &str {
        &self.greeting
    }

    /// The text of an interned word.
    pub(crate) fn text(&self, sym: Sym) -> &str {
        self.symbols.get(sym as usize).map_or("", |s| s)
    }

    /// What the script says about an interned word.
    pub(crate) fn info(&self, sym: Sym) -> Option<&WordInfo> {
        self.words.get(sym as usize)
    }
}

/// A position in the script text, 1-based.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Pos {
    line: usize,
    column: usize,
}

impl Pos {
    fn error(self, message: impl Into<String>) -> ScriptError {
        ScriptError {
            line: self.line,
            column: self.column,
            message: message.into(),
        }
    }
}

/// The S-expression tree of a script.
#[derive(Debug)]
enum Node {
    /// A word or number, upper-cased.
    Atom(String, Pos),
    /// `=`, which is always a token of its own.
    Equals(Pos),
    List(Vec<Node>, Pos),
}

impl Node {
    fn pos(&self) -> Pos {
        match self {
            Node::Atom(_, pos) | Node::Equals(pos) | Node::List(_, pos) => *pos,
        }
    }

    fn atom(&self) -> Option<&str> {
        match self {
            Node::Atom(text, _) => Some(text),
            _ => None,
        }
    }
}

/// Reads the text into a list of top-level nodes, checking parentheses.
fn read_tree(text: &str) -> Result<Vec<Node>, ScriptError> {
    let mut open: Vec<(Vec<Node>, Pos)> = Vec::new();
    let mut top = Vec::new();
    let mut atom = String::new();
    let mut atom_pos = Pos { line: 1, column: 1 };
    let mut pos = Pos { line: 1, column: 1 };
    let mut comment = false;
    let mut chars = text.chars();
    loop {
        let c = chars.next();
        let here = pos;
        match c {
            Some('\n') => {
                pos.line += 1;
                pos.column = 1;
            }
            Some(_) => pos.column += 1,
            None => {}
        }
        if comment {
            comment = c != Some('\n') && c.is_some();
            if c.is_some() {
                continue;
            }
        }
        let separates = match c {
            None => true,
            Some(c) => c.is_whitespace() || matches!(c, '(' | ')' | '=' | ';'),
        };
        if !separates {
            if atom.is_empty() {
                atom_pos = here;
            }
            if let Some(c) = c {
                atom.extend(c.to_uppercase());
            }
            continue;
        }
        let siblings = match open.last_mut() {
            Some((items, _)) => items,
            None => &mut top,
        };
        if !atom.is_empty() {
            siblings.push(Node::Atom(std::mem::take(&mut atom), atom_pos));
        }
        match c {
            None => break,
            Some(';') => comment = true,
            Some('=') => siblings.push(Node::Equals(here)),
            Some('(') => {
                if open.len() == MAX_DEPTH {
                    return Err(here.error("lists are nested too deeply"));
                }
                open.push((Vec::new(), here));
            }
            Some(')') => match open.pop() {
                Some((items, start)) => {
                    let list = Node::List(items, start);
                    match open.last_mut() {
                        Some((parent, _)) => parent.push(list),
                        None => top.push(list),
                    }
                }
                None => {
                    return Err(here.error("unbalanced parenthesis: ')' without a matching '('"));
                }
            },
            Some(_) => {}
        }
    }
    match open.last() {
        Some((_, start)) => Err(start.error("unbalanced parenthesis: '(' is never closed")),
        None => Ok(top),
    }
}

/// An entry's header, read before any rules so that links can point forward.
struct Draft<'a> {
    name: Sym,
    rank: u32,
    rules: &'a [Node],
}

/// Accumulates the script while the tree is interpreted.
#[derive(Default)]
struct Builder {
    symbols: Vec<Box<str>>,
    lookup: FxHashMap<Box<str>, Sym>,
    words: Vec<WordInfo>,
    keywords: Vec<Keyword>,
    rule_count: usize,
    /// Entry names seen so far, to refuse duplicates.
    defined: HashSet<Sym>,
}

impl Builder {
    fn build(mut self, nodes: &[Node]) -> Result<Script, ScriptError> {
        let mut rest = nodes;
        let greeting = match rest.split_first() {
            Some((Node::List(items, pos), tail)) => {
                rest = tail;
                greeting(items, *pos)?
            }
            Some((other, _)) => {
                return Err(other
                    .pos()
                    .error("expected the opening line, in parentheses"));
            }
            None => return Err(Pos { line: 1, column: 1 }.error("the script is empty")),
        };
        if rest.first().and_then(Node::atom) == Some("START") {
            rest = &rest[1..];
        }

        let mut drafts = Vec::new();
        let mut none_rules = None;
        let mut memory_entry = None;
        let mut ended = false;
        for node in rest {
            let (items, pos) = match node {
                _ if ended => return Err(node.pos().error("unexpected text after the closing ()")),
                Node::List(items, pos) => (items, *pos),
                Node::Atom(word, pos) => {
                    return Err(pos.error(format!("unexpected word {word} outside an entry")));
                }
                Node::Equals(pos) => return Err(pos.error("unexpected '=' outside an entry")),
            };
            match items.first() {
                None => ended = true,
                Some(Node::Equals(_)) => {
                    return Err(pos.error("empty keyword: an entry must start with its word"));
                }
                Some(Node::List(_, at)) => {
                    return Err(
                        at.error("empty keyword: an entry must start with its word, not a list")
                    );
                }
                Some(Node::Atom(name, at)) => match name.as_str() {
                    "MEMORY" if memory_entry.is_some() => {
                        return Err(at.error("MEMORY is defined twice"));
                    }
                    "MEMORY" => memory_entry = Some((items.as_slice(), pos)),
                    "NONE" if none_rules.is_some() => return Err(at.error("NONE is defined twice")),
                    "NONE" => none_rules = Some(none_entry(items, *at)?),
                    _ => drafts.push(self.header(name, *at, &items[1..])?),
                },
            }
        }

        // Number the keywords before reading any rule, so links can point forward.
        let mut keyed = Vec::new();
        for draft in drafts.into_iter().filter(|d| !d.rules.is_empty()) {
            let id = self.add_keyword(draft.rank);
            if let Some(info) = self.words.get_mut(draft.name as usize) {
                info.keyword = Some(id);
            }
            keyed.push((id, draft.rules));
        }
        let none = none_rules.map(|rules| (self.add_keyword(0), rules));
        for &(id, nodes) in keyed.iter().chain(none.iter()) {
            let rules = nodes
                .iter()
                .map(|node| self.rule(node))
                .collect::<Result<Vec<_>, _>>()?;
            if let Some(keyword) = self.keywords.get_mut(id as usize) {
                keyword.rules = rules;
            }
        }
        let memory = match memory_entry {
            Some((items, pos)) => Some(self.memory(items, pos)?),
            None => None,
        };

        Ok(Script {
            greeting,
            symbols: self.symbols,
            lookup: self.lookup,
            words: self.words,
            keywords: self.keywords,
            rule_count: self.rule_count,
            none: none.map(|(id, _)| id),
            memory,
        })
    }

    fn intern(&mut self, text: &str) -> Sym {
        if let Some(&sym) = self.lookup.get(text) {
            return sym;
        }
        let sym = self.symbols.len() as Sym;
        self.symbols.push(text.into());
        self.lookup.insert(text.into(), sym);
        self.words.push(WordInfo::default());
        sym
    }

    /// The keyword an entry name stands for, if that entry has rules.
    fn keyword_named(&self, name: &str) -> Option<KeyId> {
        let sym = *self.lookup.get(name)?;
        self.words.get(sym as usize)?.keyword
    }

    fn add_keyword(&mut self, rank: u32) -> KeyId {
        self.keywords.push(Keyword {
            rank,
            rules: Vec::new(),
        });
        (self.keywords.len() - 1) as KeyId
    }

    /// Reads `KEY [= NEW] [RANK] [DLIST(/TAG ...)]`, leaving the rules for later.
    fn header<'a>(
        &mut self,
        name: &str,
        at: Pos,
        items: &'a [Node],
    ) -> Result<Draft<'a>, ScriptError> {
        let sym = self.intern(name);
        if !self.defined.insert(sym) {
            return Err(at.error(format!("{name} is defined twice")));
        }
        let mut rank = None;
        let mut substitution = None;
        let mut tags = None;
        let mut i = 0;
        while let Some(node) = items.get(i) {
            match node {
                Node::List(..) => break,
                Node::Equals(pos) => match items.get(i + 1) {
                    Some(Node::Atom(word, _)) if substitution.is_some() => {
                        return Err(pos.error(format!("{name} has a second substitution, {word}")));
                    }
                    Some(Node::Atom(word, _)) if !is_number(word) => {
                        substitution = Some(self.intern(word));
                        i += 2;
                    }
                    _ => return Err(pos.error("'=' must be followed by the replacing word")),
                },
                Node::Atom(word, pos) if is_number(word) => {
                    if rank.is_some() {
                        return Err(pos.error(format!("{name} has a second rank, {word}")));
                    }
                    rank = Some(number(word, *pos)?);
                    i += 1;
                }
                Node::Atom(word, pos) if word == "DLIST" => match items.get(i + 1) {
                    Some(Node::List(_, _)) if tags.is_some() => {
                        return Err(pos.error(format!("{name} has a second DLIST")));
                    }
                    Some(Node::List(list, list_pos)) => {
                        tags = Some(self.symbol_list(list, *list_pos, '/', "DLIST")?);
                        i += 2;
                    }
                    _ => {
                        return Err(
                            pos.error("DLIST must be followed by a list of tags, (/TAG ...)")
                        );
                    }
                },
                Node::Atom(word, pos) => {
                    return Err(
                        pos.error(format!("unexpected word {word} in the entry for {name}"))
                    );
                }
            }
        }
        let rules = &items[i..];
        if let Some(stray) = rules.iter().find(|node| !matches!(node, Node::List(..))) {
            return Err(stray.pos().error(format!(
                "expected a rule in parentheses in the entry for {name}"
            )));
        }
        if let Some(info) = self.words.get_mut(sym as usize) {
            info.substitution = substitution;
            info.tags = tags.unwrap_or_default();
        }
        Ok(Draft {
            name: sym,
            rank: rank.unwrap_or(0),
            rules,
        })
    }

    /// Reads `(=KEY)` as a rule or `((pattern) reassembly ...)`.
    fn rule(&mut self, node: &Node) -> Result<Rule, ScriptError> {
        let Node::List(items, pos) = node else {
            return Err(node.pos().error("expected a rule in parentheses"));
        };
        if let Some(target) = self.link(items, *pos)? {
            return Ok(Rule::Link(target));
        }
        let Some((Node::List(pattern, pattern_pos), reassemblies)) = items.split_first() else {
            return Err(
                pos.error("expected (=KEY) or a decomposition rule, ((pattern) reassembly ...)")
            );
        };
        let pattern = self.pattern(pattern, *pattern_pos)?;
        if reassemblies.is_empty() {
            return Err(pos.error("decomposition rule has no reassembly"));
        }
        if reassemblies.len() > usize::from(u16::MAX) {
            return Err(pos.error("decomposition rule has too many reassemblies"));
        }
        let reassemblies = reassemblies
            .iter()
            .map(|node| self.reassembly(node, pattern.len()))
            .collect::<Result<Box<[_]>, _>>()?;
        let id = self.rule_count;
        self.rule_count += 1;
        Ok(Rule::Decomposition(Decomposition {
            id,
            pattern,
            reassemblies,
        }))
    }

    /// Reads a link, `(=KEY)` or `(= KEY)`; `Ok(None)` if the list is not one.
    fn link(&self, items: &[Node], pos: Pos) -> Result<Option<KeyId>, ScriptError> {
        match items {
            [Node::Equals(_), Node::Atom(name, at)] => {
                let keyword = self.keyword_named(name);
                match keyword {
                    Some(id) => Ok(Some(id)),
                    None => Err(at.error(format!("unknown keyword {name} in link (={name})"))),
                }
            }
            [Node::Equals(_), ..] => Err(pos.error("a link is written (=KEY)")),
            _ => Ok(None),
        }
    }

    fn reassembly(&mut self, node: &Node, elements: usize) -> Result<Reassembly, ScriptError> {
        let Node::List(items, pos) = node else {
            return Err(node.pos().error("expected a reassembly in parentheses"));
        };
        if let Some(target) = self.link(items, *pos)? {
            return Ok(Reassembly::Link(target));
        }
        match items.as_slice() {
            [Node::Atom(word, _)] if word == "NEWKEY" => Ok(Reassembly::NewKey),
            [
                Node::Atom(word, _),
                Node::List(text, text_pos),
                Node::List(link, link_pos),
            ] if word == "PRE" => {
                let template = self.template(text, *text_pos, elements)?;
                match self.link(link, *link_pos)? {
                    Some(target) => Ok(Reassembly::Pre(template, target)),
                    None => Err(link_pos.error("PRE must end with a link, (=KEY)")),
                }
            }
            [Node::Atom(word, at), ..] if word == "PRE" => {
                Err(at.error("PRE is written (PRE (reassembly) (=KEY))"))
            }
            _ => Ok(Reassembly::Text(self.template(items, *pos, elements)?)),
        }
    }

    /// Reads reassembly text; numbers refer to the pattern's `elements` parts.
    fn template(
        &mut self,
        items: &[Node],
        pos: Pos,
        elements: usize,
    ) -> Result<Template, ScriptError> {
        if items.is_empty() {
            return Err(pos.error("empty reassembly"));
        }
        let mut parts = Vec::with_capacity(items.len());
        for item in items {
            let part = match item {
                Node::Atom(word, at) if is_number(word) => {
                    let n = number(word, *at)? as usize;
                    if n == 0 || n > elements {
                        return Err(at.error(format!(
                            "reassembly refers to part {n}, but the pattern has {elements} parts"
                        )));
                    }
                    Part::Input(n - 1)
                }
                Node::Atom(word, _) => Part::Word(self.intern(word)),
                Node::Equals(at) => return Err(at.error("unexpected '=' in a reassembly")),
                Node::List(_, at) => return Err(at.error("unexpected list in a reassembly")),
            };
            parts.push(part);
        }
        let pieces: Vec<Piece<'_>> = parts
            .iter()
            .map(|part| match part {
                Part::Word(sym) => Piece::Word(&self.symbols[*sym as usize]),
                Part::Input(_) => Piece::Part,
            })
            .collect();
        let terminal = format::terminal(&pieces);
        Ok(Template {
            parts: parts.into(),
            terminal,
        })
    }

    fn pattern(&mut self, items: &[Node], pos: Pos) -> Result<Box<[Element]>, ScriptError> {
        if items.is_empty() {
            return Err(pos.error("empty decomposition pattern"));
        }
        items
            .iter()
            .map(|item| match item {
                Node::Atom(word, at) if is_number(word) => match number(word, *at)? {
                    0 => Ok(Element::Any),
                    n => Ok(Element::Count(n)),
                },
                Node::Atom(word, _) => Ok(Element::Word(self.intern(word))),
                Node::List(list, at) => match list.first().and_then(Node::atom) {
                    Some(first) if first.starts_with('*') => {
                        Ok(Element::OneOf(self.symbol_list(list, *at, '*', "(*...)")?))
                    }
                    Some(first) if first.starts_with('/') => {
                        Ok(Element::Tagged(self.symbol_list(list, *at, '/', "(/...)")?))
                    }
                    _ => Err(at.error("a list in a pattern is (*WORD ...) or (/TAG ...)")),
                },
                Node::Equals(at) => Err(at.error("unexpected '=' in a pattern")),
            })
            .collect()
    }

    /// Reads `(*A B C)` or `(/TAG ...)`: words, the first prefixed by `marker`.
    fn symbol_list(
        &mut self,
        items: &[Node],
        pos: Pos,
        marker: char,
        what: &str,
    ) -> Result<Box<[Sym]>, ScriptError> {
        let mut symbols = Vec::with_capacity(items.len());
        for item in items {
            let Node::Atom(word, _) = item else {
                return Err(item.pos().error(format!("{what} may only hold words")));
            };
            let word = word.strip_prefix(marker).unwrap_or(word);
            if !word.is_empty() {
                symbols.push(self.intern(word));
            }
        }
        if symbols.is_empty() {
            return Err(pos.error(format!("{what} is empty")));
        }
        Ok(symbols.into())
    }

    /// Reads `(MEMORY KEY (pattern = reassembly) x4)`.
    fn memory(&mut self, items: &[Node], pos: Pos) -> Result<Memory, ScriptError> {
        let keyword = match items.get(1) {
            Some(Node::Atom(name, at)) => self.keyword_named(name).ok_or_else(|| {
                at.error(format!(
                    "MEMORY names {name}, which is not a keyword with rules"
                ))
            })?,
            _ => return Err(pos.error("MEMORY must name its keyword, (MEMORY KEY ...)")),
        };
        let transformations = &items[2..];
        if transformations.len() != 4 {
            return Err(pos.error(format!(
                "MEMORY needs exactly 4 transformations, found {}",
                transformations.len()
            )));
        }
        let mut forms = Vec::with_capacity(4);
        for node in transformations {
            let Node::List(list, at) = node else {
                return Err(node
                    .pos()
                    .error("a MEMORY transformation is written (pattern = reassembly)"));
            };
            let Some(equals) = list.iter().position(|n| matches!(n, Node::Equals(_))) else {
                return Err(at.error("a MEMORY transformation is written (pattern = reassembly)"));
            };
            let pattern = self.pattern(&list[..equals], *at)?;
            let template = self.template(&list[equals + 1..], *at, pattern.len())?;
            forms.push(Transformation { pattern, template });
        }
        let forms = <[Transformation; 4]>::try_from(forms)
            .map_err(|_| pos.error("MEMORY needs exactly 4 transformations"))?;
        Ok(Memory { keyword, forms })
    }
}

/// Formats the opening line, which may only hold words.
fn greeting(items: &[Node], pos: Pos) -> Result<String, ScriptError> {
    let mut words = Vec::with_capacity(items.len());
    for item in items {
        match item {
            Node::Atom(word, _) => words.push(word.as_str()),
            other => return Err(other.pos().error("the opening line may only hold words")),
        }
    }
    if words.is_empty() {
        return Err(pos.error("the opening line is empty"));
    }
    let pieces: Vec<Piece<'_>> = words.iter().map(|w| Piece::Word(w)).collect();
    Ok(format::render(
        words.iter().copied(),
        format::terminal(&pieces),
    ))
}

/// Reads `(NONE rule ...)`, which holds rules and nothing else.
fn none_entry(items: &[Node], at: Pos) -> Result<&[Node], ScriptError> {
    let rules = &items[1..];
    if rules.is_empty() {
        return Err(at.error("NONE has no rules"));
    }
    if let Some(stray) = rules.iter().find(|node| !matches!(node, Node::List(..))) {
        return Err(stray.pos().error("NONE may only hold rules in parentheses"));
    }
    Ok(rules)
}

fn is_number(word: &str) -> bool {
    !word.is_empty() && word.bytes().all(|b| b.is_ascii_digit())
}

fn number(word: &str, pos: Pos) -> Result<u32, ScriptError> {
    word.parse()
        .map_err(|_| pos.error(format!("number {word} is too large")))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn error(text: &str) -> ScriptError {
        Script::parse(text).expect_err("script should be refused")
    }

    fn keyword<'a>(script: &'a Script, name: &str) -> &'a Keyword {
        let sym = script.lookup[name];
        let id = script.words[sym as usize].keyword.expect("a keyword");
        &script.keywords[id as usize]
    }

    #[test]
    fn the_embedded_doctor_script_parses() {
        let script = Script::parse(DOCTOR_SOURCE).expect("DOCTOR parses");
        assert_eq!(
            script.greeting(),
            "How do you do. Please tell me your problem."
        );
        assert!(script.none.is_some());
        assert_eq!(Script::doctor().greeting(), script.greeting());
    }

    #[test]
    fn doctor_is_parsed_once_and_shared() {
        assert!(Arc::ptr_eq(&Script::doctor(), &Script::doctor()));
    }

    #[test]
    fn an_entry_can_hold_a_substitution_a_rank_tags_and_rules() {
        let script = Script::doctor();
        let my = script.lookup["MY"];
        let info = &script.words[my as usize];
        assert_eq!(info.substitution.map(|sym| script.text(sym)), Some("YOUR"));
        assert_eq!(keyword(&script, "MY").rank, 2);
        assert_eq!(keyword(&script, "MY").rules.len(), 2);
        assert_eq!(keyword(&script, "COMPUTER").rank, 50);
        assert_eq!(keyword(&script, "ARE").rank, 0);
        let memory = script.memory.as_ref().expect("MEMORY");
        assert_eq!(Some(memory.keyword), info.keyword);

        let mom = &script.words[script.lookup["MOM"] as usize];
        assert_eq!(mom.substitution.map(|sym| script.text(sym)), Some("MOTHER"));
        let family = script.lookup["FAMILY"];
        assert_eq!(&*mom.tags, &[family]);
        let mother = &script.words[script.lookup["MOTHER"] as usize];
        assert!(mother.tags.contains(&family) && mother.keyword.is_none());
        // Only words with rules are keywords; NONE is not reachable from input.
        assert!(
            script.words[script.lookup["DONT"] as usize]
                .keyword
                .is_none()
        );
        assert!(
            script
                .lookup
                .get("NONE")
                .is_none_or(|&sym| script.words[sym as usize].keyword.is_none())
        );
    }

    #[test]
    fn links_and_pre_are_resolved_to_keywords() {
        let script = Script::doctor();
        let what = script.words[script.lookup["WHAT"] as usize].keyword;
        assert!(matches!(keyword(&script, "HOW").rules[..], [Rule::Link(id)] if Some(id) == what));
        let i = script.words[script.lookup["I"] as usize].keyword;
        let Rule::Decomposition(rule) = &keyword(&script, "I'M").rules[0] else {
            panic!("a decomposition")
        };
        assert!(matches!(&rule.reassemblies[..], [Reassembly::Pre(_, id)] if Some(*id) == i));
    }

    #[test]
    fn comments_case_and_the_end_marker_are_handled() {
        let script = Script::parse("; a comment (with parens\n(hello there)\nstart\n(k ((0) (yes))) ; trailing\n()\n; after\n")
            .expect("parses");
        assert_eq!(script.greeting(), "Hello there.");
        assert_eq!(keyword(&script, "K").rules.len(), 1);
    }

    #[test]
    fn errors_display_line_and_column_first() {
        let err = error("(HI)\n(A ((0) (B)))\n)");
        assert_eq!(
            err.to_string(),
            "line 3, column 1: unbalanced parenthesis: ')' without a matching '('"
        );
    }

    #[test]
    fn an_unclosed_parenthesis_is_refused_where_it_opens() {
        let err = error("(HI)\n  (A ((0) (B))\n");
        assert_eq!((err.line, err.column), (2, 3));
        assert!(err.message.contains("unbalanced parenthesis"));
    }

    #[test]
    fn an_unknown_link_target_is_refused() {
        let err = error("(HI)\n(A (=B))\n");
        assert_eq!((err.line, err.column), (2, 6));
        assert!(err.message.contains("unknown keyword B"), "{err}");
        // A word that has only tags is no keyword either.
        let err = error("(HI)\n(T DLIST(/X))\n(A ((0) (= T)))\n");
        assert_eq!((err.line, err.column), (3, 12));
    }

    #[test]
    fn memory_must_have_exactly_four_transformations() {
        let text = "(HI)\n(MY ((0) (X)))\n(MEMORY MY\n (0 = A)\n (0 = B)\n (0 = C))\n";
        let err = error(text);
        assert_eq!((err.line, err.column), (3, 1));
        assert!(
            err.message.contains("exactly 4 transformations, found 3"),
            "{err}"
        );
    }

    #[test]
    fn memory_must_name_a_keyword_and_use_pattern_equals_reassembly() {
        let err = error("(HI)\n(MEMORY XX (0 = A) (0 = B) (0 = C) (0 = D))\n");
        assert_eq!((err.line, err.column), (2, 9));
        let err = error("(HI)\n(K ((0) (X)))\n(MEMORY K (0 = A) (0 A) (0 = C) (0 = D))\n");
        assert_eq!((err.line, err.column), (3, 19));
    }

    #[test]
    fn an_entry_without_a_keyword_is_refused() {
        let err = error("(HI)\n( = YOU)\n");
        assert_eq!((err.line, err.column), (2, 1));
        assert!(err.message.contains("empty keyword"));
        let err = error("(HI)\n(((0) (X)))\n");
        assert_eq!((err.line, err.column), (2, 2));
    }

    #[test]
    fn a_reassembly_may_only_refer_to_parts_the_pattern_has() {
        let err = error("(HI)\n(K ((0 K 0) (YOU SAID 4)))\n");
        assert_eq!((err.line, err.column), (2, 23));
        assert!(err.message.contains("part 4"), "{err}");
        let err = error("(HI)\n(K ((0 K 0) (YOU SAID 0)))\n");
        assert!(err.message.contains("part 0"), "{err}");
    }

    #[test]
    fn malformed_rules_and_patterns_are_refused() {
        for (text, line, column) in [
            ("", 1, 1),
            ("HELLO", 1, 1),
            ("(HI)\n(K ((0) ))\n", 2, 4),
            ("(HI)\n(K (() (X)))\n", 2, 5),
            ("(HI)\n(K ((0 (A B)) (X)))\n", 2, 8),
            ("(HI)\n(K ((0 (*)) (X)))\n", 2, 8),
            ("(HI)\n(K ((0) ()))\n", 2, 9),
            ("(HI)\n(K ((0) (PRE (X) (Y))))\n", 2, 18),
            ("(HI)\n(K 1 2 ((0) (X)))\n", 2, 6),
            ("(HI)\n(K = )\n", 2, 4),
            ("(HI)\n(K DLIST)\n", 2, 4),
            ("(HI)\n(K ((0) (X)))\n(K ((0) (Y)))\n", 3, 2),
            ("(HI)\n(K ((0) (X)) STRAY)\n", 2, 14),
            ("(HI)\n(K 99999999999 ((0) (X)))\n", 2, 4),
            ("(HI)\n()\n(K ((0) (X)))\n", 3, 1),
            ("(HI)\nWORD\n", 2, 1),
            ("(HI)\n(NONE)\n", 2, 2),
            ("(HI (THERE))\n", 1, 5),
            ("()\n", 1, 1),
        ] {
            let err = error(text);
            assert_eq!((err.line, err.column), (line, column), "{text:?}: {err}");
        }
    }

    #[test]
    fn absurdly_deep_nesting_is_refused_without_recursion() {
        let text = format!("(HI)\n{}", "(".repeat(100_000));
        let err = error(&text);
        assert_eq!(err.line, 2);
        assert!(err.message.contains("nested too deeply"));
    }

    #[test]
    fn columns_count_characters_not_bytes() {
        let err = error("(HÉLLO)\n(ÄÖ (=ÜBER))\n");
        assert_eq!((err.line, err.column), (2, 7));
    }
}
