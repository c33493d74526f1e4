//! Decomposition: matching a pattern against the input's words.
//!
//! A pattern is a list of elements. `0` matches any number of words and every
//! other element a fixed number (`n` exactly n, a word, `(*A B)` or `(/TAG)` one
//! each), so the pattern is fixed-length segments separated by `0`s. Each `0`
//! takes as few words as it can, which is the first match a left-to-right
//! backtracking matcher would find; but instead of backtracking, each segment
//! is placed at its earliest fit and the last one is anchored at the end. That
//! finds the same match in time linear in the input for a given pattern, so
//! adversarial input (2000 repetitions of `YOU`) cannot blow up.

use super::script::{Element, Script, Sym};

/// A word of the input as the engine holds it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Word {
    /// A word the script knows (after substitution).
    Known(Sym),
    /// Any other word: a byte range of the upper-cased input.
    Other { start: usize, end: usize },
}

/// Matches `pattern` against all of `words`.
///
/// On success `parts` holds, for each element in order, the range of `words`
/// it matched (the numbered parts a reassembly refers to).
pub(crate) fn decompose(
    pattern: &[Element],
    words: &[Word],
    script: &Script,
    parts: &mut Vec<(usize, usize)>,
) -> bool {
    parts.clear();
    let Some(first_any) = pattern.iter().position(|e| *e == Element::Any) else {
        if width(pattern) != Some(words.len()) || !fits(pattern, words, 0, script) {
            return false;
        }
        place(pattern, 0, parts);
        return true;
    };
    let last_any = pattern
        .iter()
        .rposition(|e| *e == Element::Any)
        .unwrap_or(first_any);
    let head = &pattern[..first_any];
    let tail = &pattern[last_any + 1..];
    let (Some(head_width), Some(tail_width)) = (width(head), width(tail)) else {
        return false;
    };
    let Some(tail_start) = words.len().checked_sub(tail_width) else {
        return false;
    };
    if head_width > tail_start
        || !fits(head, words, 0, script)
        || !fits(tail, words, tail_start, script)
    {
        return false;
    }
    place(head, 0, parts);

    // Between the first and the last `0`: each segment at its earliest fit.
    let mut at = head_width;
    let mut any = first_any;
    while any < last_any {
        let next_any = pattern[any + 1..]
            .iter()
            .position(|e| *e == Element::Any)
            .map_or(last_any, |i| any + 1 + i);
        let segment = &pattern[any + 1..next_any];
        let Some(segment_width) = width(segment) else {
            return false;
        };
        let Some(latest) = tail_start.checked_sub(segment_width) else {
            return false;
        };
        let Some(start) = (at..=latest).find(|&start| fits(segment, words, start, script)) else {
            return false;
        };
        parts.push((at, start));
        place(segment, start, parts);
        at = start + segment_width;
        any = next_any;
    }
    parts.push((at, tail_start));
    place(tail, tail_start, parts);
    true
}

/// How many words a segment without `0` spans; `None` if absurdly many.
fn width(segment: &[Element]) -> Option<usize> {
    segment
        .iter()
        .try_fold(0usize, |sum, element| match element {
            Element::Count(n) => sum.checked_add(usize::try_from(*n).ok()?),
            _ => sum.checked_add(1),
        })
}

/// Whether a segment without `0` matches `words` from `start` on.
fn fits(segment: &[Element], words: &[Word], start: usize, script: &Script) -> bool {
    let mut at = start;
    for element in segment {
        match element {
            Element::Count(n) => {
                at = at.saturating_add(*n as usize);
                if at > words.len() {
                    return false;
                }
            }
            _ => {
                let Some(&word) = words.get(at) else {
                    return false;
                };
                if !matches_one(element, word, script) {
                    return false;
                }
                at += 1;
            }
        }
    }
    true
}

/// Records the word ranges of a segment that fits at `start`.
fn place(segment: &[Element], start: usize, parts: &mut Vec<(usize, usize)>) {
    let mut at = start;
    for element in segment {
        let end = match element {
            Element::Count(n) => at + *n as usize,
            _ => at + 1,
        };
        parts.push((at, end));
        at = end;
    }
}

/// Whether one single-word element matches `word`.
fn matches_one(element: &Element, word: Word, script: &Script) -> bool {
    let Word::Known(sym) = word else {
        // Unknown words are never script words, so only counts match them.
        return false;
    };
    match element {
        Element::Word(expected) => sym == *expected,
        Element::OneOf(choices) => choices.contains(&sym),
        Element::Tagged(wanted) => script
            .info(sym)
            .is_some_and(|info| info.tags.iter().any(|tag| wanted.contains(tag))),
        Element::Any | Element::Count(_) => true,
    }
}
