#!/usr/bin/env python3
"""Record the 1966 ELIZA oracle's replies to generated conversations.

The oracle (Anthony Hay's CC0 re-creation of the 1966 program, in
../shared/eliza/oracle/) is a tool beside the project, not part of it. This script
makes conversations from the project's own DOCTOR script (src/service/eliza/doctor.script),
asks the oracle for its replies through `replies.sh`, and writes them as test data
(tests/data/eliza/oracle.tsv). `cargo test` (tests/it/eliza_oracle.rs) then checks
the engine against the recorded replies without needing the oracle.

    python3 tools/eliza-oracle/generate.py                  # rewrite the data file
    python3 tools/eliza-oracle/generate.py --check          # re-ask the oracle, compare
    python3 tools/eliza-oracle/generate.py --coverage-only  # print coverage, write nothing

Generation is deterministic (seeded): the same script and seed give the same file.
Every line is one the oracle can take (not blank, not starting with `*`, no TAB) and
none is a goodbye (which ends a Talk stream: the engine's own rule, not the oracle's).

Conversations come in classes:
  plain        sentences built from every decomposition pattern, ordinary . , ? !
  clauses      all clause punctuation: ; : - -- BUT, repeated and punctuation-only lines
  symbols      apostrophes outside words, brackets and symbols stuck to words
  memory       long conversations with many MY sentences (MEMORY queue, LIMIT)
  noise        random printable ASCII mixed with script words
  unicode      en/em dashes, curly quotes, accents, ß, ligatures, other scripts
  edge         script words that are no keywords (PRE, NEWKEY, DLIST, =, numbers),
               long lines with many keywords (NEWKEY chains), repeated delimiters

A coverage pass re-runs each conversation through the oracle binary with its trace
on, and the script refuses to write data that misses a keyword, a decomposition, a
reassembly, a MEMORY form, a LIMIT message, NEWKEY or a link.
"""

import argparse
import os
import random
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "src" / "eliza" / "doctor.script"
DATA = ROOT / "tests" / "data" / "eliza" / "oracle.tsv"
ORACLE = Path(os.environ.get("ELIZA_ORACLE", ROOT.parent / "shared" / "eliza" / "oracle"))
ORACLE_DIR = Path(os.environ.get("ORACLE_DIR", "/tmp/eliza-oracle"))

# Words that would make a whole line a goodbye for the engine (see src/service/eliza/goodbye.rs).
GOODBYE_WORDS = {
    "bye", "goodbye", "byebye", "quit", "exit", "farewell", "see", "cya", "so", "long",
    "night", "goodnight", "take", "care", "ciao", "adieu", "ya",
}

# Ordinary words that are not keywords of DOCTOR (checked against the script below).
FILLERS = """
the a an very really quite much many some lot it that this these those thing things
people life work job school home house car dog cat money time day days night today
tomorrow often never sometimes again still just only also even here there now then
he she they we him her them his their our us is be been being have has had do does
did get got go went make made want need feel feels think thought believe wish sad
happy unhappy depressed sick elated glad better worse angry tired lonely afraid
boyfriend girlfriend friend friends boss teacher doctor brother sister wife husband
children son daughter father mother family about of in on at for with from to into
over under after before while until since and or not nothing everything something
anything nobody somebody anyone everyone hate hates love loves help helps come came
here bugging us other whole world problem problems trouble worry worries hurt hurts
talk talking say said tell told know knew understand mean means play plays read
write wrote walk run drive rain raining sun weather music book books computer's
""".split()

LONG_WORDS = [
    "purpose", "devonshire", "predicament", "executioners", "gloucestershire",
    "grandmother", "relationship", "consequences", "unfortunately", "everything",
    "nervousness", "communication", "psychiatrist", "understanding", "conversation",
]

SYMBOL_WRAPS = [
    "({})", "[{}]", "{{{}}}", "'{}'", '"{}"', "{}'", "'{}", "{}/", "/{}", "&{}", "{}&",
    "{}*", "#{}", "{}%", "${}", "{}+", "={}", "<{}>", "{}~", "^{}", "_{}_", "{}|",
    "\\{}", "`{}`", "@{}", "{}-", "-{}", "--{}", "{}--", "({}", "{})", "{}'s", "{}''",
    "'{}'.", "({}).", "{}=",
]

LONE_SYMBOLS = ["&", "/", "'", "(", ")", "-", "--", "*", "=", "+", "#", "@", "%", "$",
                "<", ">", "~", "^", "_", "|", "\\", "`", "[", "]", "{", "}", "''", "()"]

CLAUSE_SEPARATORS = [", ", ". ", "? ", "! ", "; ", ": ", " - ", " -- ", "-", "--",
                     " but ", " BUT ", " But ", "... ", "?! ", " , ", ",, ", " . ", ",",
                     ".", " ;", ":", " ---  ", "!!! "]

PUNCTUATION_ONLY = ["...", "?", "!", "?!", "(", ")", "-", "--", "'", '"', "...?", ";",
                    ":", ",", ".", "&", "/", "''", "()", "[]", "- - -", "!?!", "`", "#",
                    "@", "$", "%", "^", "+", "=", "~", "|", "\\", "{", "}", "<", ">", "_",
                    " .", ", ,", '" "', "' '", "(-)", "?? ??", "--- ...", " *"]

ENDINGS = ["", "", ".", ".", "?", "!", "...", "?!", " .", ";", ":", "!!", " ?", "-"]

# Characters the oracle treats in a defined way, and words in other scripts whose upper
# case both sides agree on (Unicode letters that got case pairs after 2014 are avoided:
# the oracle's table predates them; see docs/eliza.md).
UNICODE_SEPARATORS = ["\u2014", " \u2014 ", "\u2013", " \u2013 ", "\u2026 ", " \u2012 ",
                      " \u2015 ", "\u00bf", "\u00a1", " \u00ab", "\u00bb "]
UNICODE_WRAPS = ["\u2018{}\u2019", "\u201c{}\u201d", "\u00ab{}\u00bb", "{}\u2019",
                 "\u2019{}", "\u00bf{}?", "\u00a1{}!", "{}\u2026", "{}\u2014", "\u201e{}\u201c",
                 "\u2039{}\u203a", "{}\u00a0"]
UNICODE_WORDS = ["caf\u00e9", "na\u00efve", "r\u00e9sum\u00e9", "Stra\u00dfe", "gro\u00df",
                 "\ufb01ne", "\ufb02ow", "o\ufb03ce", "se\u00f1or", "\u00fcber", "Z\u00fcrich",
                 "\u00e6sop", "Ph\u0153b\u00eb", "\u0395\u03bb\u03bb\u03ac\u03b4\u03b1",
                 "\u043c\u0430\u043c\u0430", "\u041c\u043e\u0441\u043a\u0432\u0430",
                 "\u65e5\u672c", "\U0001f642", "\u00e7a", "\u00e9t\u00e9", "\u0101\u0113",
                 "\u0142\u00f3d\u017a", "\u010d\u0161\u017e", "\u00f0\u00fe", "\u00b5m",
                 "\u00ff", "\u01c6", "\u03c2\u03c3", "\u1f00\u1f80", "\u0561\u0562",
                 "\u0127\u0131j", "\u017fun", "\u0430\u0431\u0432\u0433\u0434\u0435\u0436",
                 "\u0131f", "\u017forry", "\u017fame", "\u0131", "m\u0131ne"]

# Words the script uses that are not keywords, and other oddities for the edge class.
EDGE_WORDS = ["PRE", "NEWKEY", "DLIST", "=", "NONE", "MEMORY", "START", "/FAMILY",
              "(*SAD", "(/BELIEF)", "0", "1", "3", "4", "5", "10", "DIT", "XFREMD",
              "YOUR", "I'VE", "'AM'", "'NO'", "-", "BUT", "but", "Buts", "BUTTER", "abut",
              "computers", "machines", "dreams", "dreamed", "noone", "everybody",
              "deutsch", "francais", "italiano", "espanol", "like", "alike", "same",
              "remember", "were", "was", "dreamt", "you're", "i'm", "cant", "wont", "dont",
              "myself", "yourself", "mom", "dad", "family", "how", "when", "why"]
UNICODE_CONTRACTIONS = ["I\u2019m", "don\u2019t", "can\u2019t", "you\u2019re",
                        "I\u2018m", "won\u2019t"]

# ---------------------------------------------------------------------------
# The DOCTOR script, read the way src/service/eliza/script.rs reads it.
# ---------------------------------------------------------------------------


def read_tree(text):
    """S-expressions of the script: lists of atoms, '=' a token of its own."""
    text = re.sub(r";[^\n]*", "", text)
    tokens = re.findall(r"[()=]|[^\s()=]+", text)
    stack, top = [], []
    for tok in tokens:
        if tok == "(":
            stack.append([])
        elif tok == ")":
            done = stack.pop()
            (stack[-1] if stack else top).append(done)
        else:
            (stack[-1] if stack else top).append(tok.upper())
    return top


class Doctor:
    """What the generator needs to know about the script."""

    def __init__(self, text):
        nodes = read_tree(text)
        self.substitution = {}   # input word -> replacement
        self.tags = {}           # word -> set of tags
        self.rank = {}           # keyword -> rank
        self.rules = {}          # keyword -> list of (pattern, [reassembly]) or ("=", key)
        self.memory = []
        self.none = []
        for entry in nodes[1:]:
            if not isinstance(entry, list) or not entry:
                continue
            name, rest = entry[0], entry[1:]
            if name == "MEMORY":
                self.memory = rest[1:]
                continue
            if name == "NONE":
                self.none = rest
                continue
            i = 0
            if i < len(rest) and rest[i] == "=":
                self.substitution[name] = rest[i + 1]
                i += 2
            if i < len(rest) and isinstance(rest[i], str) and rest[i].isdigit():
                self.rank[name] = int(rest[i])
                i += 1
            if i < len(rest) and rest[i] == "DLIST":
                tags = set()
                for t in rest[i + 1]:
                    t = t.lstrip("/")
                    if t:
                        tags.add(t)
                self.tags[name] = tags
                i += 2
            rules = []
            for rule in rest[i:]:
                if rule and rule[0] == "=":
                    rules.append(("=", rule[1]))
                else:
                    rules.append((rule[0], rule[1:]))
            if rules:
                self.rules[name] = rules
                self.rank.setdefault(name, 0)
        self.keywords = set(self.rules)
        # Input words that become `word` after substitution.
        self.sources = {}
        for word, new in self.substitution.items():
            self.sources.setdefault(new, []).append(word)
        self.script_words = set(self.substitution) | set(self.substitution.values()) | \
            set(self.tags) | self.keywords

    def inputs_for(self, pattern_word):
        """Input words that read as `pattern_word` once substituted."""
        found = list(self.sources.get(pattern_word, []))
        if pattern_word not in self.substitution:
            found.append(pattern_word)
        return found or [pattern_word]

    def tagged(self, tags):
        """Input words that, once substituted, carry one of `tags`."""
        words = [w for w, t in self.tags.items() if t & tags]
        result = []
        for w in words:
            result.extend(self.inputs_for(w))
        return sorted(set(result))

    def decompositions(self):
        for key, rules in sorted(self.rules.items()):
            for rule in rules:
                if rule[0] != "=":
                    yield key, rule[0], rule[1]


# ---------------------------------------------------------------------------
# Making lines.
# ---------------------------------------------------------------------------


class Maker:
    def __init__(self, doctor, rng):
        self.doctor = doctor
        self.rng = rng
        bad = doctor.script_words | {w.upper() for w in GOODBYE_WORDS}
        self.fillers = [w for w in FILLERS if w.upper() not in bad and w not in GOODBYE_WORDS]
        self.neutral = [w for w in FILLERS if w.upper() not in doctor.keywords
                        and w not in GOODBYE_WORDS]
        # Every input word that is a keyword or becomes one (sorted: sets have no
        # stable order between runs).
        self.all_inputs = sorted({
            w for k in doctor.keywords for w in [k] + doctor.sources.get(k, [])})

    def filler(self, n, neutral=False):
        pool = self.neutral if neutral else self.fillers
        return [self.rng.choice(pool) for _ in range(n)]

    def instance(self, pattern):
        """Input words that match `pattern` once substituted (other keywords allowed)."""
        rng = self.rng
        words = []
        for element in pattern:
            if isinstance(element, list):
                first = element[0]
                if first.startswith("*"):
                    choices = [first[1:]] + element[1:] if first != "*" else element[1:]
                    choices = [c for c in choices if c]
                    words.append(rng.choice(self.doctor.inputs_for(rng.choice(choices))))
                else:
                    tags = {t.lstrip("/") for t in element if t.lstrip("/")}
                    words.append(rng.choice(self.doctor.tagged(tags)))
            elif element.isdigit():
                n = int(element)
                if n == 0:
                    n = rng.choice([0, 0, 1, 1, 2, 3, 4])
                words.extend(self.filler(n, neutral=rng.random() < 0.7))
            else:
                words.append(rng.choice(self.doctor.inputs_for(element)))
        return words

    def keyword_instance(self, key, pattern):
        """An instance of `pattern` that also holds the keyword `key` itself."""
        words = self.instance(pattern)
        if key not in (w.upper() for w in words):
            # First, so that it is on top of keywords of the same rank.
            words.insert(0, key)
        return words

    def keyword_sentence(self):
        key, pattern, _ = self.rng.choice(list(self.doctor.decompositions()))
        return self.keyword_instance(key, pattern)

    def my_sentence(self):
        rng = self.rng
        noun = rng.choice(self.fillers + ["mother", "father", "mom", "dad", "sister",
                                          "brother", "wife", "children"])
        tail = self.filler(rng.choice([0, 1, 2, 3]), neutral=True)
        last = rng.choice(self.fillers + LONG_WORDS + ["here", "there", "x", "42", "it's"])
        words = rng.choice([["my"], ["well", "my"], ["i", "think", "my"], ["my", "own"],
                            ["and", "my"]]) + [noun] + tail + [last]
        return words

    def free_sentence(self):
        return self.filler(self.rng.choice([1, 2, 3, 4, 5, 6]), neutral=False)

    def mixed_sentence(self):
        rng = self.rng
        words = self.filler(rng.choice([0, 1, 2, 3]), neutral=True)
        for _ in range(rng.choice([1, 1, 2, 3])):
            words.insert(rng.randrange(len(words) + 1), rng.choice(self.all_inputs).lower())
        return words

    def sentence(self, weights):
        kinds = [self.keyword_sentence, self.my_sentence, self.free_sentence,
                 self.mixed_sentence]
        return self.rng.choices(kinds, weights)[0]() or self.filler(1)

    def case(self, text):
        rng = self.rng
        style = rng.choices(["lower", "sentence", "upper", "random", "title"],
                            [4, 6, 1, 1, 1])[0]
        if style == "lower":
            return text.lower()
        if style == "upper":
            return text.upper()
        if style == "title":
            return text.title()
        if style == "random":
            return "".join(c.upper() if rng.random() < 0.5 else c.lower() for c in text)
        text = text.lower()
        text = re.sub(r"\bi\b", "I", text)
        return text[:1].upper() + text[1:]

    def join(self, words):
        return " ".join(w.lower() for w in words)

    def plain_line(self):
        rng = self.rng
        parts = [self.join(self.sentence([5, 2, 2, 2]))]
        while rng.random() < 0.25:
            parts.append(rng.choice([", ", ". ", "? ", "! "]))
            parts.append(self.join(self.sentence([4, 2, 3, 2])))
        return self.case("".join(parts)) + rng.choice(["", ".", ".", "?", "!"])

    def clauses_line(self):
        rng = self.rng
        if rng.random() < 0.12:
            return rng.choice(PUNCTUATION_ONLY)
        parts = [self.join(self.sentence([5, 2, 3, 2]))]
        for _ in range(rng.choice([0, 1, 1, 2, 3])):
            parts.append(rng.choice(CLAUSE_SEPARATORS))
            parts.append(self.join(self.sentence([4, 2, 3, 2])))
        text = "".join(parts)
        if rng.random() < 0.2:
            # A dash joined inside a word, e.g. "well-known" or "rest--my".
            words = text.split(" ")
            i = rng.randrange(len(words))
            words[i] = words[i] + rng.choice(["-", "--", "-known", "--x"])
            text = " ".join(words)
        return self.case(text) + rng.choice(ENDINGS)

    def symbols_line(self):
        rng = self.rng
        if rng.random() < 0.08:
            return rng.choice(PUNCTUATION_ONLY)
        words = [w.lower() for w in self.sentence([5, 2, 2, 2])]
        for _ in range(rng.choice([1, 1, 2, 3])):
            i = rng.randrange(len(words))
            if rng.random() < 0.75:
                words[i] = rng.choice(SYMBOL_WRAPS).format(words[i])
            else:
                words.insert(i + 1, rng.choice(LONE_SYMBOLS))
        text = " ".join(words)
        if rng.random() < 0.3:
            text = text.replace(" ", rng.choice(["  ", "   "]), 1)
        if rng.random() < 0.2:
            text = " " + text
        if rng.random() < 0.2:
            text = text + " "
        return self.case(text) + rng.choice(ENDINGS)

    def memory_line(self):
        rng = self.rng
        weights = [3, 5, 4, 2]
        text = self.join(self.sentence(weights))
        if rng.random() < 0.2:
            text = self.join(self.sentence(weights)) + rng.choice([", ", ". ", " but "]) + text
        return self.case(text) + rng.choice(["", ".", "?", "!"])

    def noise_line(self):
        rng = self.rng
        pieces = []
        for _ in range(rng.choice([1, 2, 3, 5, 8])):
            r = rng.random()
            if r < 0.4:
                pieces.append(rng.choice(self.all_inputs).lower())
            elif r < 0.7:
                pieces.append(rng.choice(self.fillers))
            else:
                pieces.append("".join(chr(rng.randrange(33, 127))
                                      for _ in range(rng.choice([1, 1, 2, 3]))))
        text = ""
        for p in pieces:
            text += p + rng.choice([" ", " ", " ", "", "  "])
        text = text.strip() or "x"
        if text.startswith("*"):
            text = "x" + text
        return text

    def unicode_line(self):
        rng = self.rng
        words = [w.lower() for w in self.sentence([5, 3, 2, 2])]
        for _ in range(rng.choice([1, 1, 2, 3])):
            r = rng.random()
            i = rng.randrange(len(words))
            if r < 0.3:
                words[i] = rng.choice(UNICODE_WRAPS).format(words[i])
            elif r < 0.6:
                words.insert(i + 1, rng.choice(UNICODE_WORDS))
            elif r < 0.8:
                words.insert(i + 1, rng.choice(UNICODE_CONTRACTIONS))
            else:
                words[i] = words[i] + rng.choice(UNICODE_SEPARATORS)
        text = " ".join(words)
        if rng.random() < 0.3:
            text = "my " + rng.choice(self.fillers) + " is " + rng.choice(UNICODE_WORDS)
        return self.case(text) + rng.choice(["", ".", "?", "\u2026", "!"])


    def edge_line(self):
        rng = self.rng
        r = rng.random()
        if r < 0.25:
            # A long line: many keywords, NEWKEY chains, a deep keystack.
            words = []
            for _ in range(rng.randint(20, 160)):
                words.append(rng.choice(EDGE_WORDS + self.all_inputs + self.fillers).lower())
            text = " ".join(words)
        elif r < 0.4:
            word = rng.choice(["like", "were", "was", "remember", "dream", "dreamt",
                               "like remember", "were like", "dreamed"])
            tail = rng.choice(["my car", "sorry", "i am sad", "computer", "", "x",
                               "perhaps", "you are nice"])
            text = (word + " ") * rng.randint(2, 80) + tail
        elif r < 0.55:
            text = rng.choice([", ", ",,, ", ". . ", "but but ", " BUT, ", "..., "]).join(
                self.join(self.sentence([4, 2, 3, 2])) for _ in range(rng.randint(1, 4)))
        else:
            words = [w.lower() for w in self.sentence([5, 3, 2, 2])]
            for _ in range(rng.choice([1, 2, 3])):
                words.insert(rng.randrange(len(words) + 1), rng.choice(EDGE_WORDS))
            text = " ".join(words)
        text = text.strip() or "x"
        if text.startswith("*"):
            text = "x" + text
        return self.case(text) + rng.choice(ENDINGS)


CLASSES = {
    # name: (share of conversations, lines (min, max), line maker)
    "plain": (28, (6, 24), "plain_line"),
    "clauses": (18, (6, 24), "clauses_line"),
    "symbols": (18, (6, 24), "symbols_line"),
    "memory": (12, (30, 70), "memory_line"),
    "noise": (12, (6, 24), "noise_line"),
    "unicode": (12, (6, 24), "unicode_line"),
    "edge": (10, (6, 30), "edge_line"),
}


def usable(line):
    if not line.strip() or line.startswith("*") or "\t" in line or "\n" in line:
        return False
    if "\r" in line:
        return False
    words = re.findall(r"[^\W_]+(?:['\u2019][^\W_]+)*", line.lower())
    # Never a goodbye for the engine: no goodbye word at all in a short line.
    if len(words) <= 8 and any(w in GOODBYE_WORDS for w in words):
        return False
    return True


def conversations(doctor, seed, count):
    rng = random.Random(seed)
    maker = Maker(doctor, rng)
    names = list(CLASSES)
    shares = [CLASSES[n][0] for n in names]
    result = []
    for index in range(count):
        name = names[index % len(names)] if index < 2 * len(names) else \
            rng.choices(names, shares)[0]
        lo, hi = CLASSES[name][1]
        make = getattr(maker, CLASSES[name][2])
        lines = []
        target = rng.randint(lo, hi)
        while len(lines) < target:
            line = make()
            if usable(line):
                lines.append(line)
        result.append((name, lines))
    # Every decomposition pattern, often enough in one conversation to cycle through
    # all its reassemblies, two decompositions to a conversation.
    groups = list(doctor.decompositions())
    rng.shuffle(groups)
    for start in range(0, len(groups), 2):
        chunk = []
        for key, pattern, reassemblies in groups[start:start + 2]:
            for _ in range(len(reassemblies) + 3):
                line = " ".join(maker.keyword_instance(key, pattern)).lower()
                if usable(line):
                    chunk.append(line)
        rng.shuffle(chunk)
        if chunk:
            result.append(("patterns", chunk))
    return result


# ---------------------------------------------------------------------------
# The oracle.
# ---------------------------------------------------------------------------


def oracle_replies(lines):
    out = subprocess.run(["bash", str(ORACLE / "replies.sh")], input="".join(l + "\n" for l in lines),
                         capture_output=True, text=True, check=True, timeout=120,
                         env=dict(os.environ, ORACLE_DIR=str(ORACLE_DIR))).stdout
    replies = out.split("\n")
    if replies and replies[-1] == "":
        replies.pop()
    if len(replies) != len(lines):
        raise RuntimeError("oracle gave %d replies to %d lines" % (len(replies), len(lines)))
    return replies


def oracle_traces(lines):
    """The oracle's trace of each reply, from its binary with *traceauto on."""
    binary = ORACLE_DIR / "eliza"
    out = subprocess.run([str(binary), "--nobanner"],
                         input="*traceauto\n" + "".join(l + "\n" for l in lines),
                         capture_output=True, text=True, check=True, timeout=120).stdout
    blocks = out.split("\n\n")
    # blocks: greeting, "tracing enabled", then one block per reply, then "".
    traces = [b for b in blocks[2:] if b.strip()]
    if len(traces) != len(lines):
        raise RuntimeError("trace has %d blocks for %d lines" % (len(traces), len(lines)))
    return traces


def squash(text):
    """A pattern or reassembly as text, without spaces or parentheses."""
    return re.sub(r"[\s()]+", "", text).replace("APOLIGIZE", "APOLOGIZE")


class Coverage:
    def __init__(self, doctor):
        self.doctor = doctor
        self.keywords = {}
        self.patterns = {}
        self.reassemblies = {}
        self.memory_forms = {}
        self.counts = {"memory recalled": 0, "NEWKEY": 0, "NEWKEY with empty keystack": 0,
                       "link (=KEY) rule": 0, "link (=KEY) reassembly": 0, "PRE": 0,
                       "NONE": 0, "BUT or clause dropped": 0}
        self.nomatch = {}

    def add(self, trace, reply):
        lines = trace.split("\n")
        key = None
        limit = None
        for i, line in enumerate(lines):
            m = re.match(r" \| LIMIT: (\d)", line)
            if m:
                limit = int(m.group(1))
            m = re.match(r" \| selected keyword: (.*)", line)
            if m:
                key = m.group(1)
                self.keywords[key] = self.keywords.get(key, 0) + 1
            m = re.match(r" \| matching decompose pattern: \((.*)\)", line)
            if m:
                p = (key, squash(m.group(1)))
                self.patterns[p] = self.patterns.get(p, 0) + 1
            m = re.match(r" \| selected reassemble rule: \((.*)\)", line)
            if m:
                r = squash(m.group(1))
                pk = (key, squash(self.last_pattern(lines, i)), r)
                self.reassemblies[pk] = self.reassemblies.get(pk, 0) + 1
                if r == "NEWKEY":
                    self.counts["NEWKEY"] += 1
                elif r.startswith("="):
                    self.counts["link (=KEY) reassembly"] += 1
                elif r.startswith("PRE"):
                    self.counts["PRE"] += 1
            if "reference to equivalence class" in line:
                self.counts["link (=KEY) rule"] += 1
            m = re.match(r" \| new memory: (.*)", line)
            if m:
                form = m.group(1).split(" ")[0]
                self.memory_forms[form] = self.memory_forms.get(form, 0) + 1
            if "so the response is the oldest" in line:
                self.counts["memory recalled"] += 1
            if "NOMACH[LIMIT]" in line:
                self.nomatch[limit] = self.nomatch.get(limit, 0) + 1
            if "keyword stack is empty; response is a NONE" in line:
                self.counts["NEWKEY with empty keystack"] += 1
            if "next remark from the NONE rule" in line:
                self.counts["NONE"] += 1
            if "no transformation keywords found in subclause" in line:
                self.counts["BUT or clause dropped"] += 1

    @staticmethod
    def last_pattern(lines, i):
        for j in range(i, -1, -1):
            m = re.match(r" \| matching decompose pattern: \((.*)\)", lines[j])
            if m:
                return m.group(1)
        return ""

    def missing(self):
        doctor = self.doctor
        missing = []
        for key in sorted(doctor.keywords):
            if key not in self.keywords:
                missing.append("keyword %s" % key)
        for key, pattern, reassemblies in doctor.decompositions():
            p = squash(" ".join(flatten(pattern)))
            if (key, p) not in self.patterns:
                missing.append("decomposition %s (%s)" % (key, " ".join(flatten(pattern))))
                continue
            for r in reassemblies:
                text = squash(" ".join(flatten(r)))
                if (key, p, text) not in self.reassemblies:
                    missing.append("reassembly %s (%s) -> (%s)" % (
                        key, " ".join(flatten(pattern)), " ".join(flatten(r))))
        for form in ["LETS", "EARLIER", "BUT", "DOES"]:
            if form not in self.memory_forms:
                missing.append("MEMORY form %s" % form)
        for limit in [1, 2, 3, 4]:
            if limit not in self.nomatch:
                missing.append("built-in message for LIMIT %d" % limit)
        for name, n in self.counts.items():
            if n == 0:
                missing.append(name)
        return missing

    def summary(self):
        doctor = self.doctor
        n_dec = sum(1 for _ in doctor.decompositions())
        n_re = sum(len(r) for _, _, r in doctor.decompositions())
        covered_re = sum(1 for _ in self.reassemblies)
        return [
            "keywords selected: %d of %d" % (len(self.keywords), len(doctor.keywords)),
            "decompositions matched: %d of %d" % (
                len({p for p in self.patterns if p[0] in doctor.keywords}), n_dec),
            "reassemblies used: %d (script has %d)" % (covered_re, n_re),
            "MEMORY forms: " + ", ".join("%s %d" % kv for kv in sorted(self.memory_forms.items())),
            "built-in messages by LIMIT: " + ", ".join(
                "%d: %d" % kv for kv in sorted(self.nomatch.items())),
        ] + ["%s: %d" % kv for kv in self.counts.items()]


def flatten(items):
    out = []
    for item in items:
        if isinstance(item, list):
            out.append("(" + " ".join(flatten(item)) + ")")
        else:
            out.append(item)
    return out


# ---------------------------------------------------------------------------


def write(path, convs, replies, coverage, seed):
    path.parent.mkdir(parents=True, exist_ok=True)
    lines_total = sum(len(c[1]) for c in convs)
    with open(path, "w", encoding="utf-8", newline="\n") as f:
        f.write("Replies of the 1966 ELIZA oracle (anthay/ELIZA, CC0) to generated conversations.\n")
        f.write("Made by tools/eliza-oracle/generate.py --seed %d; do not edit by hand.\n" % seed)
        f.write("Checked by tests/it/eliza_oracle.rs. Lines without a TAB are comments; a line\n")
        f.write("'= conversation N: CLASS' starts a conversation; then one line per turn:\n")
        f.write("user line, TAB, the oracle's reply.\n")
        f.write("%d conversations, %d lines. Oracle coverage:\n" % (len(convs), lines_total))
        for s in coverage.summary():
            f.write("  %s\n" % s)
        for i, ((name, lines), reps) in enumerate(zip(convs, replies), 1):
            f.write("\n= conversation %d: %s\n" % (i, name))
            for line, reply in zip(lines, reps):
                f.write("%s\t%s\n" % (line, reply))


def read(path):
    convs = []
    with open(path, encoding="utf-8") as f:
        for raw in f:
            raw = raw.rstrip("\n")
            if raw.startswith("= conversation") and "\t" not in raw:
                convs.append((raw.split(": ", 1)[1], [], []))
            elif "\t" in raw and convs:
                user, reply = raw.split("\t", 1)
                convs[-1][1].append(user)
                convs[-1][2].append(reply)
    return convs


def main(argv):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--seed", type=int, default=1966)
    ap.add_argument("--conversations", type=int, default=420)
    ap.add_argument("--out", type=Path, default=DATA)
    ap.add_argument("--check", action="store_true",
                    help="re-ask the oracle for the recorded conversations and compare")
    ap.add_argument("--coverage-only", action="store_true")
    ap.add_argument("--allow-gaps", action="store_true",
                    help="write the data even if coverage is incomplete (for extra runs)")
    args = ap.parse_args(argv)

    if args.check:
        bad = 0
        for name, lines, expected in read(args.out):
            got = oracle_replies(lines)
            for line, e, g in zip(lines, expected, got):
                if e != g:
                    bad += 1
                    print("DIFF %r\n  recorded: %s\n  oracle:   %s" % (line, e, g))
        print("recorded data %s the oracle" % ("differs from" if bad else "agrees with"))
        return 1 if bad else 0

    doctor = Doctor(SCRIPT.read_text(encoding="utf-8"))
    convs = conversations(doctor, args.seed, args.conversations)
    coverage = Coverage(doctor)
    replies = []
    for n, (name, lines) in enumerate(convs, 1):
        reps = oracle_replies(lines)
        traces = oracle_traces(lines)
        for trace, reply in zip(traces, reps):
            last = trace.rstrip("\n").split("\n")[-1]
            if last != reply:
                raise RuntimeError("trace and replies.sh disagree: %r vs %r" % (last, reply))
            coverage.add(trace, reply)
        replies.append(reps)
        if n % 50 == 0:
            print("%d conversations" % n, file=sys.stderr)
    for s in coverage.summary():
        print(s)
    missing = coverage.missing()
    for m in missing:
        print("NOT COVERED:", m)
    if missing and not args.allow_gaps:
        print("coverage incomplete: data not written", file=sys.stderr)
        return 1
    if not args.coverage_only:
        write(args.out, convs, replies, coverage, args.seed)
        print("wrote %s (%d bytes)" % (args.out, args.out.stat().st_size))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
